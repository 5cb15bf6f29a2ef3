//! `herald`: parse the command line, load the layered configuration, hand over to the library
//! (the server) or to the command-line client (`client`).

mod cert;
mod cli;
mod client;
mod config_file;

use clap::Parser;
use std::process::ExitCode;

/// jemalloc rather than glibc's `malloc`: a stream's buffers are allocated on one thread and
/// freed on another, and glibc's arenas then took a lock on most frees (a fifth of the CPU of a
/// burst of connects went to `malloc`, `free` and their lock; docs/benchmarks.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
