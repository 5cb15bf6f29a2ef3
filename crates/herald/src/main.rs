//! `herald`: parse the command line, load the layered configuration, hand over to the library
//! (the server) or to the command-line client (`client`).

mod cert;
mod cli;
mod client;
mod config_file;

use clap::Parser;
use std::process::ExitCode;

/// Errors end the process with status 1 and one line on stderr: the message with its causes
/// (`{:#}`), without the backtrace `anyhow` would add under `RUST_BACKTRACE`.
fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli::dispatch(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
