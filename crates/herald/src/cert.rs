//! `herald cert --self-signed`: a key and certificate for local HTTPS, so that trying TLS and
//! HTTP/2 needs no OpenSSL command line. Browsers will warn about it; production certificates come
//! from a certificate authority (ACME, an internal CA).

use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct CertArgs {
    /// Generate a self-signed certificate (the only kind this command makes)
    #[arg(long, required = true)]
    self_signed: bool,
    /// Host name or IP address the certificate is for (repeatable, comma-separated)
    #[arg(long = "host", value_delimiter = ',', default_value = "localhost")]
    hosts: Vec<String>,
    /// Directory to write herald.crt and herald.key into
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Replace existing files
    #[arg(long)]
    force: bool,
}

pub fn run(args: CertArgs) -> anyhow::Result<()> {
    let (cert, key) = herald_server::self_signed(&args.hosts)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let cert_path = args.out_dir.join("herald.crt");
    let key_path = args.out_dir.join("herald.key");
    write_new(&key_path, &key, args.force, 0o600)?;
    write_new(&cert_path, &cert, args.force, 0o644)?;
    println!("wrote {} and {} for {}", cert_path.display(), key_path.display(), args.hosts.join(", "));
    println!(
        "serve with: herald serve --tls-cert-file {} --tls-key-file {}",
        cert_path.display(),
        key_path.display()
    );
    Ok(())
}

/// Writes `text` to a file that must not exist yet (unless `force`), with `mode` permissions.
fn write_new(path: &Path, text: &str, force: bool, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} already exists (pass --force to replace it)", path.display())
        } else {
            format!("cannot write {}", path.display())
        }
    })?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
