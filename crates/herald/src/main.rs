//! `herald`: parse the command line, load the layered configuration, hand over to the library.

mod cli;
mod config_file;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(cli::dispatch(cli))
}
