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
    if !matches!(cli.command, cli::Command::Serve { .. }) {
        end_quietly_on_a_closed_pipe();
    }
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("airlock: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command's output may go to a pipe that closes early (`airlock requests
/// list --json | head`): like other command-line tools the process then
/// ends quietly by SIGPIPE, where Rust's default (SIGPIPE ignored) would
/// panic in `println!`. Never for `serve`, whose sockets must see a closed
/// peer as an error to handle.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; it
    // only restores the signal's default disposition, no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
