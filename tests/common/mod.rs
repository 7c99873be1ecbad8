//! Shared harness for airlock's end-to-end tests against the real local
//! PostgreSQL (see `tests/setup-postgres.sh` for what it expects).
//!
//! - [`ensure_postgres`] prepares PostgreSQL once per test binary;
//! - [`fresh_db`] gives a test its own empty database;
//! - [`ProxyConfig`] + [`Proxy`] write a `proxy.toml` and run `airlock serve`
//!   on free ports, killing it on drop (its stderr is printed when the test
//!   panicked);
//! - [`Conn`] runs `psql` / `pgbench` against the proxy or directly;
//! - [`raw`] is a tiny Postgres wire client (startup, SCRAM-SHA-256, simple
//!   query, CancelRequest) for checks that need SQLSTATEs and raw bytes;
//! - [`fake_slack`] is an in-process fake Slack (Web API, Socket Mode) plus
//!   signed interaction payloads to post to airlock.
//!
//! Tests run in parallel: every test uses its own database name and ports.
// Each test binary uses part of the harness.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod block_kit;
pub mod fake_slack;
pub mod http;
pub mod mysql;
pub mod pki;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod proxy_config;
pub mod raw;
pub mod reload;
pub mod requests;
pub use http::*;
pub use mysql::*;
pub use pki::*;
pub use postgres::*;
pub use process::*;
pub use proxy::*;
pub use proxy_config::*;

/// Upstream role created by `tests/setup-postgres.sh` (LOGIN SUPERUSER, SCRAM).
pub const UPSTREAM_USER: &str = "airlock_scram";
/// Its password.
pub const UPSTREAM_PASSWORD: &str = "airlock-scram-pw";
/// Environment variable through which the proxy gets that password.
pub const UPSTREAM_PASSWORD_ENV: &str = "AIRLOCK_TEST_UPSTREAM_PW";
/// Local PostgreSQL.
pub const PG_HOST: &str = "127.0.0.1";
/// Local PostgreSQL port.
pub const PG_PORT: u16 = 5432;
/// Local MariaDB host.
pub const MARIADB_HOST: &str = "127.0.0.1";
/// Local MariaDB port.
pub const MARIADB_PORT: u16 = 3306;
/// Local MariaDB admin user (empty password).
pub const MARIADB_USER: &str = "root";
/// `application_name` every psql in the tests sends (direct and proxied alike).
pub const APP_NAME: &str = "psql";

/// Default proxy users: (name, team, groups, password).
pub const DEFAULT_USERS: &[(&str, &str, &[&str], &str)] = &[
    ("alice", "payments", &["developers"], "alice-pw-Xq7"),
    ("bob", "platform", &["developers", "dba"], "bob-pw-9Lm"),
    ("mallory", "outside", &["contractors"], "mallory-pw-3Zt"),
];

/// Password of a default user.
pub fn password_of(user: &str) -> &'static str {
    DEFAULT_USERS
        .iter()
        .find(|u| u.0 == user)
        .map(|u| u.3)
        .unwrap_or_else(|| panic!("{user} is not a default test user"))
}

/// The workspace root (where `tests/` and `Cargo.toml` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The `airlock` binary built for these tests.
pub fn airlock_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlock"))
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound then released; tiny race accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// What `airlock passwd` prints for `password` (cached).
fn passwd_output(password: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(password) {
        return v.clone();
    }
    let mut cmd = Command::new(airlock_bin());
    cmd.arg("passwd");
    let out = run_with_timeout(
        cmd,
        Some(format!("{password}\n").as_bytes()),
        Duration::from_secs(30),
    );
    out.assert_success("airlock passwd");
    assert!(
        !out.stdout().contains(password) && !out.stderr().contains(password),
        "airlock passwd echoed the password"
    );
    let text = out.stdout();
    cache
        .lock()
        .unwrap()
        .insert(password.to_string(), text.clone());
    text
}

/// SCRAM-SHA-256 verifier for `password`, from `airlock passwd` (cached).
pub fn verifier(password: &str) -> String {
    let out = passwd_output(password);
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with("SCRAM-SHA-256$"))
        .unwrap_or_else(|| panic!("airlock passwd printed no SCRAM verifier: {out}"))
        .to_string()
}

/// The salted `mysql_sha2_verifier = "$A$005$…"` line `airlock passwd`
/// prints as a comment, uncommented.
pub fn salted_sha2_verifier_line(password: &str) -> String {
    let out = passwd_output(password);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("# mysql_sha2_verifier = "))
        .map(|v| format!("mysql_sha2_verifier = {v}"))
        .unwrap_or_else(|| panic!("airlock passwd printed no salted verifier: {out}"))
}

/// The MySQL verifier lines (`mysql_… = "…"`) `airlock passwd` prints.
pub fn mysql_verifier_lines(password: &str) -> Vec<String> {
    passwd_output(password)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("mysql_"))
        .map(String::from)
        .collect()
}
