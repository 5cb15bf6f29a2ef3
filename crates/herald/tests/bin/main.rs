//! The `herald` binary run as a child process: serve, signals, configuration, tokens, the
//! command-line client, the load generator and several nodes on one database. One test binary.

mod auth;
mod bench_smoke;
mod cli;
mod cli_tail;
mod cluster;
mod kafka;
mod serve;
mod support;
