//! Command-line interface.

use crate::{config_file, serve};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// airlock: a database proxy for production change control.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "AIRLOCK_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file and print every problem with its key path.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
    },
    /// Read a password on stdin and print its verifiers (SCRAM-SHA-256 for Postgres).
    Passwd,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => serve::serve(&config).map(|_| ExitCode::SUCCESS),
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Passwd => passwd(),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config_file::load(file) {
        Ok(c) => {
            println!(
                "{}: ok ({} users, {} targets, {} families)",
                file.display(),
                c.users.len(),
                c.targets.len(),
                c.families.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                println!("{}: {p}", file.display());
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::FAILURE
        }
    }
}

fn passwd() -> anyhow::Result<ExitCode> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("empty password on stdin");
    }
    println!("{}", airlock_pg::make_verifier(password));
    Ok(ExitCode::SUCCESS)
}
