//! Command-line interface.

use crate::audit_cmd::{self, AuditAction};
use crate::requests_cmd::{self, ApiArgs, RequestsAction};
use crate::submit_cmd::{self, SubmitArgs};
use crate::{api, serve};
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
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the proxy.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "AIRLOCK_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file and print every problem with its key path;
    /// also checks each protected target's `trusted_functions` against its catalog.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
        /// Skip the checks that ask the targets (`trusted_functions` against
        /// each protected target's catalog).
        #[arg(long)]
        offline: bool,
    },
    /// Read a password on stdin and print its verifiers (SCRAM-SHA-256 for Postgres).
    Passwd,
    /// Generate an HTTP API token: prints the token (give it to the user) and
    /// its SHA-256 (put it in the user's `api_token_sha256`).
    Token {
        /// Print both as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Review change requests through the HTTP API.
    Requests {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        action: RequestsAction,
    },
    /// Submit a statement or a whole SQL script as one change request.
    Submit {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        args: SubmitArgs,
    },
    /// Verify, show or export the audit trail (reads the state store directly).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => serve::serve(&config).map(|_| ExitCode::SUCCESS),
        Command::CheckConfig { file, offline } => Ok(crate::check_config::run(&file, offline)),
        Command::Passwd => passwd(),
        Command::Token { json } => Ok(token(json)),
        Command::Requests { api, action } => requests_cmd::run(api, action),
        Command::Submit { api, args } => submit_cmd::run(api, args),
        Command::Audit { action } => audit_cmd::run(action),
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
    // The SCRAM verifier alone on the first line, as before; then the
    // MySQL verifiers as the `[[users]]` lines to paste.
    println!("{}", airlock_pg::make_verifier(password));
    println!(
        "mysql_sha2_verifier = \"{}\"",
        hex::encode(airlock_mysql::auth::sha2_verifier(password))
    );
    println!(
        "mysql_native_verifier = \"*{}\"",
        hex::encode_upper(airlock_mysql::auth::native_verifier(password))
    );
    let alphabet = airlock_core::config::sha2_crypt::SALT_ALPHABET;
    let salt: [u8; airlock_core::config::sha2_crypt::SALT_LEN] =
        std::array::from_fn(|_| alphabet[usize::from(rand::random::<u8>() & 0x3f)]);
    let stored = airlock_core::config::StoredHash::make(password.as_bytes(), &salt, 5000);
    println!(
        "# or salted, as MySQL stores it (a user's first MySQL login to each airlock process then sends the password over TLS or RSA):\n# mysql_sha2_verifier = \"{}\"",
        String::from_utf8_lossy(&stored)
    );
    Ok(ExitCode::SUCCESS)
}

fn token(json: bool) -> ExitCode {
    let bytes: [u8; 32] = rand::random();
    let token = format!("alk_{}", hex::encode(bytes));
    let hash = api::token_hash(&token);
    if json {
        println!(
            "{}",
            serde_json::json!({ "token": token, "api_token_sha256": hash })
        );
    } else {
        println!("token: {token}");
        println!("api_token_sha256 = \"{hash}\"");
    }
    ExitCode::SUCCESS
}
