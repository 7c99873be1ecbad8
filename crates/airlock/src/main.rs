//! `airlock`: the binary. Parses the command line and wires the crates together.

mod api;
mod audit_cmd;
mod check_config;
mod cli;
mod client;
mod config_file;
mod health;
mod http;
mod logging;
mod page;
mod reload;
mod requests_cmd;
mod serve;
mod slack;
mod submit_cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("airlock: {e:#}");
            ExitCode::FAILURE
        }
    }
}
