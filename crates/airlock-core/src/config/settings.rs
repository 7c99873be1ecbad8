//! The process-wide sections: `[server]`, `[tls]`, `[store]`, `[audit]`, `[redaction]`.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `[redaction]`: what besides password literals is never shown.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Regular expressions (Rust `regex` syntax); matches become `***` in
    /// Slack, the request page, the API and the CLI.
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// `[audit]`: how the audit chain is watched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often `serve` logs the chain's head (`audit head seq=… hash=…`), so
    /// that a copy kept with the logs can later check the tail with
    /// `airlock audit verify --head`.
    #[serde(with = "crate::duration")]
    pub head_log_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            head_log_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// Name of the SQLite state file used when `[store]` sets no URL (next to the config).
pub const DEFAULT_STATE_FILE: &str = "airlock-state.db";

/// `[store]`: where change requests, approvals and the audit trail are kept.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH?mode=rwc` (relative paths are next to the config) or
    /// `postgres://…`. After loading it always holds the URL to use.
    pub url: Option<String>,
    /// Environment variable holding the URL instead (when it carries a password).
    pub url_env: Option<String>,
    /// Connections in the store's pool.
    #[serde(default = "default_store_connections")]
    pub max_connections: u32,
}

fn default_store_connections() -> u32 {
    8
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            url_env: None,
            max_connections: default_store_connections(),
        }
    }
}

impl StoreConfig {
    /// The URL to open (filled in by [`Config::load`]).
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or("")
    }
}

pub(super) fn is_store_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("url_env", &self.url_env)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Postgres wire listener address.
    pub postgres_listen: String,
    /// MySQL wire listener address (required when a target has `engine = "mysql"`).
    pub mysql_listen: Option<String>,
    /// HTTP listener address (`/healthz`, `/readyz`).
    pub http_listen: String,
    /// How long SIGTERM waits for sessions to finish.
    #[serde(with = "crate::duration")]
    pub shutdown_grace: Duration,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// Cap for one buffered extended-protocol batch on a protected target.
    pub max_batch_bytes: usize,
    /// Entries of the classification cache.
    pub classifier_cache_entries: usize,
    /// How long a client may take to finish startup and authentication.
    #[serde(with = "crate::duration")]
    pub auth_timeout: Duration,
    /// Async runtime worker threads; 0 means one per CPU core.
    pub worker_threads: usize,
    /// Base URL people reach airlock's HTTP listener at, for links in
    /// NOTICEs and Slack messages (`{public_url}/requests/{id}`).
    pub public_url: Option<String>,
    /// How often a session waiting for a decision looks at its request when
    /// no store event woke it: the safety net under LISTEN/NOTIFY.
    #[serde(with = "crate::duration")]
    pub wait_safety_poll: Duration,
    /// How often the reconciler (on the one replica holding its lease)
    /// settles runs left behind by a replica that is gone.
    #[serde(with = "crate::duration")]
    pub reconcile_interval: Duration,
    /// How long SIGTERM waits, after the sessions are closed, for approved
    /// changes still running (they belong to the service, not the session).
    #[serde(with = "crate::duration")]
    pub run_grace: Duration,
    /// The `host:port` other replicas reach this one's Postgres listener
    /// at, for cancel requests they pass on (default: the bound address).
    pub advertise_address: Option<String>,
    /// Most client connections at once (0: no cap); the next one gets
    /// `FATAL 53300 sorry, too many clients already`.
    pub max_client_connections: usize,
    /// Most sessions of one user at once (0: no cap); the next one gets
    /// `FATAL 53300 too many connections for role`.
    pub max_connections_per_user: usize,
    /// Refused logins audited one by one per second; the rest are counted
    /// (metrics) and reported with the next one audited.
    pub refused_login_audits_per_second: u32,
    /// `idle_in_transaction_session_timeout` of the read sessions on
    /// protected targets, so a forgotten transaction does not pin the
    /// production vacuum horizon (0s: the server's own setting).
    #[serde(with = "crate::duration")]
    pub idle_in_transaction_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            postgres_listen: "127.0.0.1:6432".into(),
            mysql_listen: None,
            http_listen: "127.0.0.1:6480".into(),
            shutdown_grace: Duration::from_secs(30),
            log_format: LogFormat::Human,
            max_batch_bytes: 64 * 1024 * 1024,
            classifier_cache_entries: 10_000,
            auth_timeout: Duration::from_secs(60),
            worker_threads: 0,
            public_url: None,
            wait_safety_poll: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(10),
            run_grace: Duration::from_secs(300),
            advertise_address: None,
            max_client_connections: 5000,
            max_connections_per_user: 100,
            refused_login_audits_per_second: 20,
            idle_in_transaction_timeout: Duration::from_secs(600),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `[tls]` for client listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Refuse clients that do not use TLS.
    #[serde(default)]
    pub require: bool,
}
