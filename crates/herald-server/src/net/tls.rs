//! TLS with rustls (ring; no OpenSSL): the certificate and key Herald serves, read from PEM files
//! and swapped atomically on reload so that handshakes after a `SIGHUP` see the new pair while
//! open connections keep theirs; TLS 1.2 and 1.3 only; ALPN offering `h2`, then `http/1.1`.
//! Also the self-signed certificate `herald cert --self-signed` writes for local use.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_cert_file {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("tls_key_file {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("tls_key_file {key} does not belong to the certificate in tls_cert_file {cert}: {message}")]
    Mismatch { cert: PathBuf, key: PathBuf, message: String },
    #[error("cannot set up TLS: {0}")]
    Setup(#[from] rustls::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The certificate in use, and where to read it again.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    /// Reads the pair once; a missing, unreadable or mismatched file is an error naming it.
    pub fn open(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load(cert_file, key_file, &provider)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: ArcSwap::from_pointee(pair),
        }))
    }

    /// Re-reads both files; on any error the pair in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load(&self.cert_file, &self.key_file, &self.provider)?;
        self.current.store(Arc::new(pair));
        Ok(())
    }

    /// The acceptor for new connections: TLS 1.2+, ALPN `h2` and `http/1.1`, this store's pair.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&versions)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The chain (leaf first) and its key, checked to belong together.
fn load(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_error = |message: String| TlsError::Cert { path: cert_file.to_owned(), message };
    let key_error = |message: String| TlsError::Key { path: key_file.to_owned(), message };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_error(pem_message(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(pem_message(e)))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| key_error(pem_message(e)))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(format!("not a usable private key: {e}")))?;
    let pair = CertifiedKey::new(chain, key);
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(e) => Err(TlsError::Mismatch {
            cert: cert_file.to_owned(),
            key: key_file.to_owned(),
            message: e.to_string(),
        }),
    }
}

fn pem_message(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => "holds no PEM block of the expected kind".into(),
        rustls_pki_types::pem::Error::Io(e) => format!("cannot read it: {e}"),
        other => format!("is not valid PEM: {other}"),
    }
}

/// A self-signed certificate for `hosts` (DNS names or IP addresses) and its key, both PEM.
pub fn self_signed(hosts: &[String]) -> Result<(String, String), TlsError> {
    let generated = rcgen::generate_simple_self_signed(hosts.to_vec())?;
    Ok((generated.cert.pem(), generated.key_pair.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, host: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self_signed(&[host.to_owned()]).unwrap();
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    #[test]
    fn a_generated_pair_loads_and_a_foreign_key_is_named_as_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a", "localhost");
        let (_, other_key) = write_pair(dir.path(), "b", "localhost");
        assert!(CertStore::open(&cert, &key).is_ok());
        let err = CertStore::open(&cert, &other_key).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn missing_or_garbage_files_are_errors_naming_the_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a", "localhost");
        let missing = dir.path().join("nope.pem");
        let err = CertStore::open(&missing, &key).unwrap_err().to_string();
        assert!(err.starts_with("tls_cert_file") && err.contains("nope.pem"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").unwrap();
        let err = CertStore::open(&cert, &garbage).unwrap_err().to_string();
        assert!(err.starts_with("tls_key_file") && err.contains("garbage.pem"), "{err}");
        let err = CertStore::open(&garbage, &key).unwrap_err().to_string();
        assert!(err.contains("no PEM"), "{err}");
    }

    #[test]
    fn a_failed_reload_keeps_the_pair_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a", "localhost");
        let store = CertStore::open(&cert, &key).unwrap();
        let before = store.current.load_full();
        std::fs::write(&cert, "broken").unwrap();
        assert!(store.reload().is_err());
        assert!(Arc::ptr_eq(&before, &store.current.load_full()));
    }
}
