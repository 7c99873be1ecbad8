//! The `proxy.toml` configuration: parsing, validation with key paths, and
//! secret resolution through a caller-supplied reader.

use crate::request::approval::ApprovalPolicy;
use crate::workflow::PolicySource;
use airlock_sql::StatementClass;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod slack;
mod trust;
pub use slack::{is_channel_id, is_user_id, SecretRef, SlackConfig, SlackMode, SLACK_API_URL};
pub use trust::TrustedFunction;

/// One problem found in a config, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `targets[2].upstream.port`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or does not match the schema.
    #[error("{0}")]
    Syntax(String),
    /// The file parsed but has semantic problems (all of them are listed).
    #[error("{} problem(s) in config:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

impl ConfigError {
    /// Every problem as `path: message` lines.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        match self {
            ConfigError::Syntax(s) => vec![ConfigProblem {
                path: "(file)".into(),
                message: s.clone(),
            }],
            ConfigError::Invalid(p) => p.clone(),
        }
    }
}

/// Reads secrets for the config (environment variables and files); the
/// binary passes the real one, tests may pass a map.
pub trait SecretReader {
    /// Value of an environment variable, if set.
    fn env(&self, name: &str) -> Option<String>;
    /// Content of a file.
    fn file(&self, path: &Path) -> std::io::Result<String>;
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and process settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// TLS for the client listeners.
    pub tls: Option<TlsConfig>,
    /// Families of targets and their environment order.
    #[serde(default)]
    pub families: Vec<Family>,
    /// People allowed to connect.
    #[serde(default)]
    pub users: Vec<User>,
    /// Upstream databases.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Default approval policy of every target (`[policy]`); targets override it.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The state store (`[store]`).
    #[serde(default)]
    pub store: StoreConfig,
    /// The audit trail (`[audit]`).
    #[serde(default)]
    pub audit: AuditConfig,
    /// Slack review messages and decisions (`[slack]`); none when absent.
    pub slack: Option<SlackConfig>,
    /// Sensitive patterns redacted in every rendering of a statement (`[redaction]`).
    #[serde(default)]
    pub redaction: RedactionConfig,
}

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

fn is_store_url(url: &str) -> bool {
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

/// `[[families]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// Family name, e.g. `orders`.
    pub name: String,
    /// Environments from lowest to highest, e.g. `["dev", "qa", "prod"]`.
    pub environments: Vec<String>,
}

/// `[[users]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Team, shown to reviewers.
    #[serde(default)]
    pub team: String,
    /// Groups, matched against targets' `allowed_groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Postgres SCRAM-SHA-256 verifier from `airlock passwd`.
    pub scram_verifier: Option<String>,
    /// Hex SHA-256 of the user's HTTP API bearer token (from `airlock token`).
    pub api_token_sha256: Option<String>,
    /// Their Slack user id (`U…`): their clicks in Slack act as them, and they get DMs.
    pub slack_user_id: Option<String>,
}

/// `[[targets]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Name clients use as `dbname`.
    pub name: String,
    /// Family this target belongs to.
    pub family: Option<String>,
    /// Environment within the family.
    #[serde(default)]
    pub environment: String,
    /// Whether non-read statements are held.
    #[serde(default)]
    pub protected: bool,
    /// Groups whose members may connect.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// On protected targets, start the upstream session read-only.
    #[serde(default = "yes")]
    pub read_only_backstop: bool,
    /// Where the database is.
    pub upstream: UpstreamConfig,
    /// Credentials for developer sessions on protected targets.
    pub read_credentials: Option<Credentials>,
    /// Credentials for sessions on unprotected targets and for approved changes.
    pub write_credentials: Option<Credentials>,
    /// Approval policy of this target (`[targets.policy]`), over the global `[policy]`.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// User functions (`schema.name`) a DBA vouches for as read-only on
    /// this protected target: calling them does not hold a statement.
    #[serde(default)]
    pub trusted_functions: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Statement classes whose policy can be overridden (`[…policy.classes.<class>]`):
/// the classes that are held on protected targets.
pub const POLICY_CLASSES: [&str; 5] = ["write", "ddl", "privilege", "admin", "unknown"];

/// Approval rules for one layer (`[policy]`, `[policy.classes.ddl]`,
/// `[targets.policy]`, `[targets.policy.classes.ddl]`); every key is optional
/// and unset keys fall through to the layer below.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    /// Distinct approvers needed.
    pub approvals_required: Option<u32>,
    /// Groups whose members may approve or reject (default: the target's `allowed_groups`).
    pub approver_groups: Option<Vec<String>>,
    /// Groups whose members may run, roll back or cancel anyone's request.
    pub admin_groups: Option<Vec<String>>,
    /// How long a request may stay pending.
    #[serde(default, with = "opt_duration")]
    pub pending_expiry: Option<Duration>,
    /// How long an approved request may wait to be run.
    #[serde(default, with = "opt_duration")]
    pub run_window: Option<Duration>,
    /// Whether a reason is required.
    pub require_reason: Option<bool>,
    /// Slack review channel.
    pub review_channel: Option<String>,
    /// Default row guard.
    pub max_rows: Option<i64>,
    /// Row guard as a multiple of the planner estimate.
    pub max_rows_ratio: Option<f64>,
    /// `statement_timeout` for approved changes.
    #[serde(default, with = "opt_duration")]
    pub statement_timeout: Option<Duration>,
    /// `lock_timeout` for approved changes.
    #[serde(default, with = "opt_duration")]
    pub lock_timeout: Option<Duration>,
}

/// A policy layer with its per-class overrides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Distinct approvers needed.
    pub approvals_required: Option<u32>,
    /// Groups whose members may approve or reject.
    pub approver_groups: Option<Vec<String>>,
    /// Groups whose members may run, roll back or cancel anyone's request.
    pub admin_groups: Option<Vec<String>>,
    /// How long a request may stay pending.
    #[serde(default, with = "opt_duration")]
    pub pending_expiry: Option<Duration>,
    /// How long an approved request may wait to be run.
    #[serde(default, with = "opt_duration")]
    pub run_window: Option<Duration>,
    /// Whether a reason is required.
    pub require_reason: Option<bool>,
    /// Slack review channel.
    pub review_channel: Option<String>,
    /// Default row guard.
    pub max_rows: Option<i64>,
    /// Row guard as a multiple of the planner estimate.
    pub max_rows_ratio: Option<f64>,
    /// `statement_timeout` for approved changes.
    #[serde(default, with = "opt_duration")]
    pub statement_timeout: Option<Duration>,
    /// `lock_timeout` for approved changes.
    #[serde(default, with = "opt_duration")]
    pub lock_timeout: Option<Duration>,
    /// Overrides per statement class (`write`, `ddl`, `privilege`, `admin`, `unknown`).
    #[serde(default)]
    pub classes: BTreeMap<String, PolicyRules>,
}

impl PolicyConfig {
    /// This layer's own rules (without the class overrides).
    pub fn rules(&self) -> PolicyRules {
        PolicyRules {
            approvals_required: self.approvals_required,
            approver_groups: self.approver_groups.clone(),
            admin_groups: self.admin_groups.clone(),
            pending_expiry: self.pending_expiry,
            run_window: self.run_window,
            require_reason: self.require_reason,
            review_channel: self.review_channel.clone(),
            max_rows: self.max_rows,
            max_rows_ratio: self.max_rows_ratio,
            statement_timeout: self.statement_timeout,
            lock_timeout: self.lock_timeout,
        }
    }
}

impl PolicyRules {
    /// Applies the keys set in this layer over `policy`.
    pub fn apply_to(&self, policy: &mut ApprovalPolicy) {
        if let Some(v) = self.approvals_required {
            policy.approvals_required = v;
        }
        if let Some(v) = &self.approver_groups {
            policy.approver_groups = v.clone();
        }
        if let Some(v) = &self.admin_groups {
            policy.admin_groups = v.clone();
        }
        if let Some(v) = self.pending_expiry {
            policy.pending_expiry = v;
        }
        if let Some(v) = self.run_window {
            policy.run_window = v;
        }
        if let Some(v) = self.require_reason {
            policy.require_reason = v;
        }
        if let Some(v) = &self.review_channel {
            policy.review_channel = Some(v.clone());
        }
        if let Some(v) = self.max_rows {
            policy.max_rows = Some(v);
        }
        if let Some(v) = self.max_rows_ratio {
            policy.max_rows_ratio = Some(v);
        }
        if let Some(v) = self.statement_timeout {
            policy.statement_timeout = Some(v);
        }
        if let Some(v) = self.lock_timeout {
            policy.lock_timeout = Some(v);
        }
    }

    fn validate(&self, path: &str, all_groups: &BTreeSet<&str>, out: &mut Vec<ConfigProblem>) {
        let mut problem = |key: &str, message: String| {
            out.push(ConfigProblem {
                path: format!("{path}.{key}"),
                message,
            })
        };
        if self.approvals_required == Some(0) {
            problem("approvals_required", "must be at least 1".into());
        }
        for (key, groups) in [
            ("approver_groups", &self.approver_groups),
            ("admin_groups", &self.admin_groups),
        ] {
            if let Some(groups) = groups {
                for (i, g) in groups.iter().enumerate() {
                    if !all_groups.contains(g.as_str()) {
                        problem(&format!("{key}[{i}]"), format!("no user is in group {g:?}"));
                    }
                }
            }
        }
        if self.approver_groups.as_ref().is_some_and(Vec::is_empty) {
            problem("approver_groups", "empty: nobody could approve".into());
        }
        for (key, d) in [
            ("pending_expiry", self.pending_expiry),
            ("run_window", self.run_window),
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
        ] {
            if d == Some(Duration::ZERO) {
                problem(key, "must be longer than 0".into());
            }
        }
        if self.max_rows.is_some_and(|m| m < 0) {
            problem("max_rows", "must not be negative".into());
        }
        if self
            .max_rows_ratio
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            problem("max_rows_ratio", "must be a number above 0".into());
        }
    }
}

impl PolicyConfig {
    fn validate(&self, path: &str, all_groups: &BTreeSet<&str>, out: &mut Vec<ConfigProblem>) {
        self.rules().validate(path, all_groups, out);
        for (class, rules) in &self.classes {
            let at = format!("{path}.classes.{class}");
            if !POLICY_CLASSES.contains(&class.as_str()) {
                out.push(ConfigProblem {
                    path: at.clone(),
                    message: format!(
                        "unknown or never-held statement class {class:?} (one of {})",
                        POLICY_CLASSES.join(", ")
                    ),
                });
            }
            rules.validate(&at, all_groups, out);
        }
    }
}

/// Optional human durations.
mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

impl Target {
    /// Credentials the developer's own upstream session uses.
    pub fn session_credentials(&self) -> Option<&Credentials> {
        if self.protected {
            self.read_credentials.as_ref()
        } else {
            self.write_credentials
                .as_ref()
                .or(self.read_credentials.as_ref())
        }
    }

    /// The valid entries of `trusted_functions` (check-config reports the others).
    pub fn trusted(&self) -> Vec<TrustedFunction> {
        self.trusted_functions
            .iter()
            .filter_map(|e| TrustedFunction::parse(e).ok())
            .collect()
    }

    /// Whether a user with these groups may connect.
    pub fn allows(&self, user: &User) -> bool {
        user.groups.iter().any(|g| self.allowed_groups.contains(g))
    }
}

/// `[targets.upstream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Host name or address, or a socket directory (`/var/run/postgresql`) for a local Unix socket.
    pub host: String,
    /// Port.
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// Upstream database name.
    pub database: String,
    /// TLS towards the upstream.
    #[serde(default)]
    pub tls: UpstreamTlsMode,
    /// CA bundle for `verify-full` (system roots when absent).
    pub ca_file: Option<PathBuf>,
}

fn default_pg_port() -> u16 {
    5432
}

/// TLS mode towards an upstream, as libpq's sslmode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTlsMode {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS if the server offers it, without certificate checks.
    Prefer,
    /// TLS required, certificate not checked.
    Require,
    /// TLS required, certificate chain and host name checked.
    VerifyFull,
}

/// Upstream role and where its password comes from.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Upstream role name.
    pub user: String,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (trailing newline trimmed).
    pub password_file: Option<PathBuf>,
    /// Resolved password (filled by [`Config::resolve_secrets`], never from the file).
    #[serde(skip)]
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file.
    File(PathBuf),
    /// No secret (trust or peer auth upstream).
    None,
}

impl Credentials {
    /// The configured source of the password.
    pub fn source(&self) -> SecretSource {
        match (&self.password_env, &self.password_file) {
            (Some(e), _) => SecretSource::Env(e.clone()),
            (None, Some(p)) => SecretSource::File(p.clone()),
            (None, None) => SecretSource::None,
        }
    }
}

impl Config {
    /// Parses TOML text, validates it and resolves secrets; `base_dir` anchors
    /// relative paths. Returns every problem found, each with its key path.
    pub fn load(
        text: &str,
        base_dir: &Path,
        secrets: &dyn SecretReader,
    ) -> Result<Self, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        config.anchor_paths(base_dir);
        let mut problems = config.validate();
        problems.extend(config.resolve_secrets(secrets));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn anchor_paths(&mut self, base: &Path) {
        let anchor = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if self.store.url.is_none() && self.store.url_env.is_none() {
            self.store.url = Some(format!(
                "sqlite://{}?mode=rwc",
                base.join(DEFAULT_STATE_FILE).display()
            ));
        } else if let Some(url) = &self.store.url {
            if let Some(rest) = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
            {
                let (path, query) = rest
                    .split_once('?')
                    .map_or((rest, None), |(p, q)| (p, Some(q)));
                if !path.is_empty() && !path.starts_with(':') && Path::new(path).is_relative() {
                    let joined = base.join(path);
                    self.store.url = Some(match query {
                        Some(q) => format!("sqlite://{}?{q}", joined.display()),
                        None => format!("sqlite://{}", joined.display()),
                    });
                }
            }
        }
        if let Some(slack) = &mut self.slack {
            slack.anchor(base);
        }
        if let Some(tls) = &mut self.tls {
            anchor(&mut tls.cert_file);
            anchor(&mut tls.key_file);
        }
        for t in &mut self.targets {
            if let Some(ca) = &mut t.upstream.ca_file {
                anchor(ca);
            }
            for c in [&mut t.read_credentials, &mut t.write_credentials]
                .into_iter()
                .flatten()
            {
                if let Some(p) = &mut c.password_file {
                    anchor(p);
                }
            }
        }
    }

    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut problem = |path: String, message: String| out.push(ConfigProblem { path, message });
        if self.server.postgres_listen.parse::<SocketAddr>().is_err() {
            problem(
                "server.postgres_listen".into(),
                format!("not an address:port: {:?}", self.server.postgres_listen),
            );
        }
        if self.server.http_listen.parse::<SocketAddr>().is_err() {
            problem(
                "server.http_listen".into(),
                format!("not an address:port: {:?}", self.server.http_listen),
            );
        }
        if self.server.max_batch_bytes < 1024 {
            problem(
                "server.max_batch_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if self.server.reconcile_interval.is_zero() {
            problem(
                "server.reconcile_interval".into(),
                "must be longer than 0s".into(),
            );
        }
        if self.server.wait_safety_poll.is_zero() {
            problem(
                "server.wait_safety_poll".into(),
                "must be longer than 0s".into(),
            );
        }
        if self.server.classifier_cache_entries == 0 {
            problem(
                "server.classifier_cache_entries".into(),
                "must be at least 1".into(),
            );
        }

        let mut families: HashMap<&str, &Family> = HashMap::new();
        for (i, f) in self.families.iter().enumerate() {
            if families.insert(f.name.as_str(), f).is_some() {
                problem(
                    format!("families[{i}].name"),
                    format!("duplicate family {:?}", f.name),
                );
            }
            if f.environments.is_empty() {
                problem(
                    format!("families[{i}].environments"),
                    "must list at least one environment".into(),
                );
            }
            let set: BTreeSet<&String> = f.environments.iter().collect();
            if set.len() != f.environments.len() {
                problem(
                    format!("families[{i}].environments"),
                    "lists an environment twice".into(),
                );
            }
        }

        let mut user_names = BTreeSet::new();
        let mut all_groups = BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() {
                problem(format!("users[{i}].name"), "must not be empty".into());
            }
            if !user_names.insert(u.name.as_str()) {
                problem(
                    format!("users[{i}].name"),
                    format!("duplicate user {:?}", u.name),
                );
            }
            all_groups.extend(u.groups.iter().map(String::as_str));
            match &u.scram_verifier {
                None => problem(
                    format!("users[{i}].scram_verifier"),
                    "missing: generate one with `airlock passwd`".into(),
                ),
                Some(v) => {
                    if let Err(e) = ScramVerifier::parse(v) {
                        problem(format!("users[{i}].scram_verifier"), e);
                    }
                }
            }
            if let Some(h) = &u.api_token_sha256 {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    problem(
                        format!("users[{i}].api_token_sha256"),
                        "must be 64 hex digits: generate it with `airlock token`".into(),
                    );
                }
            }
        }
        if self.audit.head_log_interval.is_zero() {
            problem(
                "audit.head_log_interval".into(),
                "must be longer than 0s".into(),
            );
        }

        let mut target_names = BTreeSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let at = |k: &str| format!("targets[{i}].{k}");
            if t.name.is_empty() {
                problem(at("name"), "must not be empty".into());
            }
            if !target_names.insert(t.name.as_str()) {
                problem(at("name"), format!("duplicate target {:?}", t.name));
            }
            if let Some(fam) = &t.family {
                match families.get(fam.as_str()) {
                    None => problem(at("family"), format!("unknown family {fam:?}")),
                    Some(f) => {
                        if !f.environments.contains(&t.environment) {
                            problem(
                                at("environment"),
                                format!(
                                    "{:?} is not one of family {fam:?}'s environments {:?}",
                                    t.environment, f.environments
                                ),
                            );
                        }
                    }
                }
            }
            if t.allowed_groups.is_empty() {
                problem(
                    at("allowed_groups"),
                    "empty: nobody could connect to this target".into(),
                );
            }
            for (g_i, g) in t.allowed_groups.iter().enumerate() {
                if !all_groups.contains(g.as_str()) {
                    problem(
                        format!("targets[{i}].allowed_groups[{g_i}]"),
                        format!("no user is in group {g:?}"),
                    );
                }
            }
            if t.upstream.host.is_empty() {
                problem(at("upstream.host"), "must not be empty".into());
            }
            if t.upstream.host.starts_with('/')
                && matches!(
                    t.upstream.tls,
                    UpstreamTlsMode::Require | UpstreamTlsMode::VerifyFull
                )
            {
                problem(
                    at("upstream.tls"),
                    "a Unix-socket upstream (host is a directory) cannot use TLS".into(),
                );
            }
            if t.upstream.port == 0 {
                problem(at("upstream.port"), "must not be 0".into());
            }
            if t.upstream.database.is_empty() {
                problem(at("upstream.database"), "must not be empty".into());
            }
            if t.upstream.ca_file.is_some() && t.upstream.tls != UpstreamTlsMode::VerifyFull {
                problem(
                    at("upstream.ca_file"),
                    "only used with tls = \"verify-full\"".into(),
                );
            }
            if t.protected && t.read_credentials.is_none() {
                problem(
                    at("read_credentials"),
                    "required on a protected target (sessions use the read role)".into(),
                );
            }
            let mut trusted = BTreeSet::new();
            for (k, entry) in t.trusted_functions.iter().enumerate() {
                let key = at(&format!("trusted_functions[{k}]"));
                if !t.protected {
                    problem(
                        key,
                        "only a protected target judges statements; trusting functions here has no effect".into(),
                    );
                    break;
                }
                match TrustedFunction::parse(entry) {
                    Ok(f) if !trusted.insert(f.clone()) => {
                        problem(key, format!("{entry:?} is listed twice"))
                    }
                    Ok(_) => {}
                    Err(e) => problem(key, e),
                }
            }
            if t.session_credentials().is_none() {
                problem(
                    at("write_credentials"),
                    "an unprotected target needs write_credentials (or read_credentials)".into(),
                );
            }
            for (key, c) in [
                ("read_credentials", &t.read_credentials),
                ("write_credentials", &t.write_credentials),
            ] {
                if let Some(c) = c {
                    if c.user.is_empty() {
                        problem(at(&format!("{key}.user")), "must not be empty".into());
                    }
                    if c.password_env.is_some() && c.password_file.is_some() {
                        problem(
                            at(key),
                            "set password_env or password_file, not both".into(),
                        );
                    }
                }
            }
        }
        if self.store.url.is_some() && self.store.url_env.is_some() {
            out.push(ConfigProblem {
                path: "store".into(),
                message: "set url or url_env, not both".into(),
            });
        }
        if let Some(url) = &self.store.url {
            if !is_store_url(url) {
                out.push(ConfigProblem {
                    path: "store.url".into(),
                    message: format!(
                        "{:?} is neither sqlite://PATH nor postgres://…",
                        redact_url(url)
                    ),
                });
            }
        }
        if self.store.max_connections == 0 {
            out.push(ConfigProblem {
                path: "store.max_connections".into(),
                message: "must be at least 1".into(),
            });
        }
        self.policy.validate("policy", &all_groups, &mut out);
        if let Err((i, e)) = airlock_sql::Redactor::new(&self.redaction.patterns) {
            out.push(ConfigProblem {
                path: format!("redaction.patterns[{i}]"),
                message: format!("not a valid regular expression: {e}"),
            });
        }
        if let Some(url) = &self.server.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                out.push(ConfigProblem {
                    path: "server.public_url".into(),
                    message: format!("must be an http(s) URL, not {url:?}"),
                });
            }
        }
        slack::validate_user_ids(
            self.users
                .iter()
                .enumerate()
                .filter_map(|(i, u)| u.slack_user_id.as_deref().map(|id| (i, id))),
            &mut out,
        );
        if let Some(slack) = &self.slack {
            slack.validate(&self.review_channels(), &mut out);
            if slack.review_channel.is_none() {
                for (i, t) in self.targets.iter().enumerate().filter(|(_, t)| t.protected) {
                    let p = self.approval_policy(t, StatementClass::Write);
                    if p.review_channel.is_none() {
                        out.push(ConfigProblem {
                            path: format!("targets[{i}].policy.review_channel"),
                            message: format!(
                                "target {:?} has no Slack review channel: set it here, in [policy] or as slack.review_channel",
                                t.name
                            ),
                        });
                    }
                }
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            t.policy
                .validate(&format!("targets[{i}].policy"), &all_groups, &mut out);
            if !t.protected {
                continue;
            }
            for class in POLICY_CLASSES {
                let Some(c) = crate::request::parse_class(class) else {
                    continue;
                };
                let p = self.approval_policy(t, c);
                let approvers = self
                    .users
                    .iter()
                    .filter(|u| u.groups.iter().any(|g| p.approver_groups.contains(g)))
                    .count();
                if (approvers as u64) < u64::from(p.approvals_required) {
                    out.push(ConfigProblem {
                        path: format!("targets[{i}].policy"),
                        message: format!(
                            "{class} requests need {} distinct approver(s) from {:?}, but only {approvers} user(s) are in those groups",
                            p.approvals_required, p.approver_groups
                        ),
                    });
                    break;
                }
            }
        }
        out
    }

    /// Every `review_channel` set in a policy, with its key path.
    fn review_channels(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |path: String, p: &PolicyConfig| {
            if let Some(c) = &p.review_channel {
                out.push((format!("{path}.review_channel"), c.clone()));
            }
            for (class, rules) in &p.classes {
                if let Some(c) = &rules.review_channel {
                    out.push((format!("{path}.classes.{class}.review_channel"), c.clone()));
                }
            }
        };
        add("policy".into(), &self.policy);
        for (i, t) in self.targets.iter().enumerate() {
            add(format!("targets[{i}].policy"), &t.policy);
        }
        out
    }

    /// The redactor for statements: password literals and `[redaction] patterns`
    /// (a pattern that does not compile was already refused by validation).
    pub fn redactor(&self) -> Result<airlock_sql::Redactor, String> {
        airlock_sql::Redactor::new(&self.redaction.patterns)
            .map_err(|(i, e)| format!("redaction.patterns[{i}]: {e}"))
    }

    /// The user a Slack user id is mapped to.
    pub fn user_by_slack_id(&self, slack_user_id: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.slack_user_id.as_deref() == Some(slack_user_id))
    }

    /// Reads every configured secret, reporting the ones that cannot be read.
    pub fn resolve_secrets(&mut self, secrets: &dyn SecretReader) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if let Some(name) = &self.store.url_env {
            match secrets.env(name) {
                Some(v) if is_store_url(&v) => self.store.url = Some(v),
                Some(_) => out.push(ConfigProblem {
                    path: "store.url_env".into(),
                    message: format!(
                        "environment variable {name} holds neither a sqlite://PATH nor a postgres://… URL"
                    ),
                }),
                None => out.push(ConfigProblem {
                    path: "store.url_env".into(),
                    message: format!("environment variable {name} is not set"),
                }),
            }
        }
        if let Some(slack) = &mut self.slack {
            slack.resolve(secrets, &mut out);
        }
        for (i, t) in self.targets.iter_mut().enumerate() {
            for (key, c) in [
                ("read_credentials", &mut t.read_credentials),
                ("write_credentials", &mut t.write_credentials),
            ] {
                let Some(c) = c else { continue };
                match c.source() {
                    SecretSource::None => c.password = None,
                    SecretSource::Env(name) => match secrets.env(&name) {
                        Some(v) => c.password = Some(v),
                        None => out.push(ConfigProblem {
                            path: format!("targets[{i}].{key}.password_env"),
                            message: format!("environment variable {name} is not set"),
                        }),
                    },
                    SecretSource::File(path) => match secrets.file(&path) {
                        Ok(v) => c.password = Some(v.trim_end_matches(['\r', '\n']).to_string()),
                        Err(e) => out.push(ConfigProblem {
                            path: format!("targets[{i}].{key}.password_file"),
                            message: format!("cannot read {}: {e}", path.display()),
                        }),
                    },
                }
            }
        }
        out
    }

    /// Looks a user up by login name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Looks a target up by the name clients connect with.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The approval policy for a class of statement on a target. Layers, each
    /// over the one before: built-in defaults, `[policy]`,
    /// `[policy.classes.<class>]`, `[targets.policy]`,
    /// `[targets.policy.classes.<class>]`. Without approver groups, the
    /// target's `allowed_groups` approve.
    pub fn approval_policy(&self, target: &Target, class: StatementClass) -> ApprovalPolicy {
        let mut p = ApprovalPolicy::default();
        self.policy.rules().apply_to(&mut p);
        if let Some(r) = self.policy.classes.get(class.as_str()) {
            r.apply_to(&mut p);
        }
        target.policy.rules().apply_to(&mut p);
        if let Some(r) = target.policy.classes.get(class.as_str()) {
            r.apply_to(&mut p);
        }
        if p.approver_groups.is_empty() {
            p.approver_groups = target.allowed_groups.clone();
        }
        p.approvals_required = p.approvals_required.max(1);
        p
    }

    /// Looks a family up by name.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}

impl Family {
    /// The environments below `environment`, lowest first (empty when it is
    /// the lowest or not in the family).
    pub fn lower_environments(&self, environment: &str) -> &[String] {
        match self.environments.iter().position(|e| e == environment) {
            Some(i) => &self.environments[..i],
            None => &[],
        }
    }
}

impl PolicySource for Config {
    fn policy(&self, target: &str, class: StatementClass) -> Option<ApprovalPolicy> {
        self.target(target).map(|t| self.approval_policy(t, class))
    }

    fn lower_environments(&self, family: &str, environment: &str) -> Vec<String> {
        self.family(family)
            .map(|f| f.lower_environments(environment).to_vec())
            .unwrap_or_default()
    }
}

/// A parsed Postgres SCRAM-SHA-256 verifier
/// (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, base64 parts).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// Salt, base64 as in the verifier.
    pub salt_b64: String,
    /// StoredKey, base64.
    pub stored_key_b64: String,
    /// ServerKey, base64.
    pub server_key_b64: String,
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramVerifier {
    /// Splits a verifier string into its parts (base64 is checked by the wire crate).
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or("must start with SCRAM-SHA-256$ (generate it with `airlock passwd`)")?;
        let (iter_salt, keys) = rest
            .split_once('$')
            .ok_or("must look like SCRAM-SHA-256$<iterations>:<salt>$<storedkey>:<serverkey>")?;
        let (iter, salt) = iter_salt
            .split_once(':')
            .ok_or("missing <iterations>:<salt>")?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or("missing <storedkey>:<serverkey>")?;
        let iterations: u32 = iter
            .parse()
            .map_err(|_| format!("iteration count {iter:?} is not a number"))?;
        if iterations < 4096 {
            return Err("iteration count must be at least 4096".into());
        }
        if salt.is_empty() || stored.is_empty() || server.is_empty() {
            return Err("salt and keys must not be empty".into());
        }
        Ok(Self {
            iterations,
            salt_b64: salt.into(),
            stored_key_b64: stored.into(),
            server_key_b64: server.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoSecrets;
    impl SecretReader for NoSecrets {
        fn env(&self, name: &str) -> Option<String> {
            (name == "SET_VAR").then(|| "s3cret".to_string())
        }
        fn file(&self, path: &Path) -> std::io::Result<String> {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} not found", path.display()),
            ))
        }
    }

    const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";

    fn good() -> String {
        format!(
            r#"
[[families]]
name = "orders"
environments = ["dev", "prod"]

[[users]]
name = "alice"
groups = ["developers"]
scram_verifier = "{VERIFIER}"

[[targets]]
name = "orders-prod"
family = "orders"
environment = "prod"
protected = true
allowed_groups = ["developers"]
upstream = {{ host = "127.0.0.1", database = "orders" }}
read_credentials = {{ user = "reader", password_env = "SET_VAR" }}
"#
        )
    }

    #[test]
    fn loads_a_good_config_and_resolves_secrets() {
        let c = Config::load(&good(), Path::new("/etc/airlock"), &NoSecrets).expect("valid");
        let t = c.target("orders-prod").expect("target");
        assert!(t.protected && t.read_only_backstop);
        assert_eq!(t.upstream.port, 5432);
        let creds = t.session_credentials().expect("creds");
        assert_eq!(creds.password.as_deref(), Some("s3cret"));
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let text = good()
            .replace("\"prod\"\nprotected", "\"staging\"\nprotected")
            .replace("SET_VAR", "UNSET_VAR")
            .replace(VERIFIER, "md5abc")
            + "\n[server]\npostgres_listen = \"nope\"\n";
        let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
        let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            vec![
                "server.postgres_listen",
                "users[0].scram_verifier",
                "targets[0].environment",
                "targets[0].read_credentials.password_env",
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_syntax_errors() {
        let err = Config::load("[server]\nlisten = 1\n", Path::new("/"), &NoSecrets)
            .expect_err("unknown key");
        assert!(err.to_string().contains("listen"), "{err}");
        let err = Config::load(
            "[server]\nshutdown_grace = \"soon\"\n",
            Path::new("/"),
            &NoSecrets,
        )
        .expect_err("bad duration");
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn trusted_functions_are_schema_qualified_user_functions_on_protected_targets() {
        let with = |list: &str| {
            good().replace(
                "read_credentials = {",
                &format!("trusted_functions = {list}\nread_credentials = {{"),
            )
        };
        let c = Config::load(
            &with(r#"["report.total", "public.safe_fn"]"#),
            Path::new("/"),
            &NoSecrets,
        )
        .expect("valid");
        let t = c.target("orders-prod").expect("target");
        let names: Vec<String> = t.trusted().iter().map(|f| f.to_string()).collect();
        assert_eq!(names, ["report.total", "public.safe_fn"]);
        let err = Config::load(
            &with(r#"["total", "pg_catalog.lower", "public.safe_fn", "public.safe_fn"]"#),
            Path::new("/"),
            &NoSecrets,
        )
        .expect_err("invalid");
        let problems = err.problems();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "targets[0].trusted_functions[0]",
                "targets[0].trusted_functions[1]",
                "targets[0].trusted_functions[3]"
            ]
        );
        assert!(
            problems[0].message.contains("with its schema"),
            "{problems:?}"
        );
        let unprotected = with(r#"["public.safe_fn"]"#)
            .replace("protected = true", "protected = false")
            .replace("read_credentials", "write_credentials");
        let err = Config::load(&unprotected, Path::new("/"), &NoSecrets).expect_err("invalid");
        assert!(err.problems().iter().any(
            |p| p.path == "targets[0].trusted_functions[0]" && p.message.contains("protected")
        ));
    }

    #[test]
    fn protected_target_without_read_credentials_is_a_problem() {
        let text = good().replace(
            "read_credentials = { user = \"reader\", password_env = \"SET_VAR\" }",
            "write_credentials = { user = \"writer\" }",
        );
        let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
        assert!(err
            .problems()
            .iter()
            .any(|p| p.path == "targets[0].read_credentials"));
    }

    fn with_policy() -> String {
        format!(
            r#"
[policy]
pending_expiry = "2h"
admin_groups = ["dba"]

[policy.classes.ddl]
approvals_required = 2

[[families]]
name = "orders"
environments = ["dev", "qa", "prod"]

[[users]]
name = "alice"
groups = ["developers"]
scram_verifier = "{VERIFIER}"

[[users]]
name = "bob"
groups = ["dba"]
scram_verifier = "{VERIFIER}"

[[users]]
name = "carol"
groups = ["dba"]
scram_verifier = "{VERIFIER}"

[[targets]]
name = "orders-prod"
family = "orders"
environment = "prod"
protected = true
allowed_groups = ["developers", "dba"]
upstream = {{ host = "127.0.0.1", database = "orders" }}
read_credentials = {{ user = "reader" }}

[targets.policy]
approver_groups = ["dba"]
require_reason = true
run_window = "30m"
review_channel = "C-orders"

[targets.policy.classes.privilege]
approvals_required = 2
max_rows = 0

[[targets]]
name = "orders-qa"
family = "orders"
environment = "qa"
protected = true
allowed_groups = ["developers", "dba"]
upstream = {{ host = "127.0.0.1", database = "orders_qa" }}
read_credentials = {{ user = "reader" }}
"#
        )
    }

    #[test]
    fn policies_resolve_in_layers() {
        let c = Config::load(&with_policy(), Path::new("/"), &NoSecrets).expect("valid");
        let prod = c.target("orders-prod").expect("prod");
        let w = c.approval_policy(prod, StatementClass::Write);
        assert_eq!(w.approvals_required, 1);
        assert_eq!(w.approver_groups, vec!["dba"]);
        assert_eq!(w.admin_groups, vec!["dba"]);
        assert_eq!(w.pending_expiry, Duration::from_secs(7200));
        assert_eq!(w.run_window, Duration::from_secs(1800));
        assert!(w.require_reason);
        assert_eq!(w.review_channel.as_deref(), Some("C-orders"));
        // Global class override applies to every target.
        assert_eq!(
            c.approval_policy(prod, StatementClass::Ddl)
                .approvals_required,
            2
        );
        let p = c.approval_policy(prod, StatementClass::Privilege);
        assert_eq!((p.approvals_required, p.max_rows), (2, Some(0)));
        // Without approver groups, the target's allowed groups approve; defaults apply.
        let qa = c.target("orders-qa").expect("qa");
        let q = c.approval_policy(qa, StatementClass::Write);
        assert_eq!(q.approver_groups, vec!["developers", "dba"]);
        assert!(!q.require_reason);
        assert_eq!(q.run_window, ApprovalPolicy::default().run_window);
        assert_eq!(c.lower_environments("orders", "prod"), vec!["dev", "qa"]);
        assert!(c.lower_environments("orders", "dev").is_empty());
        assert!(c.lower_environments("nope", "prod").is_empty());
        assert!(c.policy("orders-prod", StatementClass::Write).is_some());
        assert!(c.policy("nope", StatementClass::Write).is_none());
    }

    #[test]
    fn configs_without_policies_still_load() {
        let c = Config::load(&good(), Path::new("/"), &NoSecrets).expect("valid");
        let t = c.target("orders-prod").expect("target");
        let p = c.approval_policy(t, StatementClass::Write);
        assert_eq!(p.approvals_required, 1);
        assert_eq!(p.approver_groups, vec!["developers"]);
    }

    #[test]
    fn policy_problems_have_key_paths() {
        let text = with_policy()
            .replace(
                "[policy.classes.ddl]\napprovals_required = 2",
                "[policy.classes.dml]\napprovals_required = 0",
            )
            .replace(
                "approver_groups = [\"dba\"]",
                "approver_groups = [\"dbas\"]",
            )
            .replace(
                "run_window = \"30m\"",
                "run_window = \"0s\"\nmax_rows_ratio = -1.0",
            );
        let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
        let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            vec![
                "policy.classes.dml",
                "policy.classes.dml.approvals_required",
                "targets[0].policy.approver_groups[0]",
                "targets[0].policy.run_window",
                "targets[0].policy.max_rows_ratio",
                "targets[0].policy",
            ],
            "{err}"
        );
        let err = Config::load(
            &with_policy().replace(
                "approvals_required = 2\nmax_rows = 0",
                "approvals_required = 3",
            ),
            Path::new("/"),
            &NoSecrets,
        )
        .expect_err("unsatisfiable");
        assert!(
            err.to_string()
                .contains("privilege requests need 3 distinct approver(s)"),
            "{err}"
        );
        let err = Config::load(
            &with_policy().replace("require_reason = true", "require_reason = \"yes\""),
            Path::new("/"),
            &NoSecrets,
        )
        .expect_err("type");
        assert!(err.to_string().contains("require_reason"), "{err}");
    }

    #[test]
    fn store_url_defaults_next_to_the_config_and_anchors_relative_files() {
        let c = Config::load(&good(), Path::new("/etc/airlock"), &NoSecrets).expect("valid");
        assert_eq!(
            c.store.url(),
            "sqlite:///etc/airlock/airlock-state.db?mode=rwc"
        );
        let c = Config::load(
            &(good() + "\n[store]\nurl = \"sqlite://state/a.db?mode=rwc\"\n"),
            Path::new("/srv"),
            &NoSecrets,
        )
        .expect("valid");
        assert_eq!(c.store.url(), "sqlite:///srv/state/a.db?mode=rwc");
        let c = Config::load(
            &(good() + "\n[store]\nurl_env = \"SET_VAR\"\nmax_connections = 3\n"),
            Path::new("/srv"),
            &NoSecrets,
        )
        .expect_err("not a URL");
        assert_eq!(c.problems()[0].path, "store.url_env");
        assert!(!c.to_string().contains("s3cret"), "{c}");
        let err = Config::load(
            &(good() + "\n[store]\nurl = \"mysql://x\"\nurl_env = \"NOPE\"\n"),
            Path::new("/"),
            &NoSecrets,
        )
        .expect_err("invalid");
        let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, vec!["store", "store.url", "store.url_env"]);
        assert_eq!(
            redact_url("postgres://airlock:s3cret@db:5432/state"),
            "postgres://airlock:***@db:5432/state"
        );
        assert_eq!(
            redact_url("postgres://airlock@db/state"),
            "postgres://airlock@db/state"
        );
    }

    #[test]
    fn the_shipped_example_loads_with_its_policies() {
        let text = include_str!("../../../proxy.toml.example");
        let c =
            Config::load(text, Path::new("/etc/airlock"), &NoSecrets).expect("example is valid");
        let prod = c.target("orders-prod").expect("prod");
        let p = c.approval_policy(prod, StatementClass::Privilege);
        assert_eq!(p.approver_groups, vec!["dba"]);
        assert_eq!(p.run_window, Duration::from_secs(15 * 60));
        assert!(p.require_reason);
        assert_eq!(
            c.store.url(),
            "sqlite:///etc/airlock/airlock-state.db?mode=rwc"
        );
    }

    #[test]
    fn api_token_hashes_and_the_audit_interval() {
        let hash = "ab".repeat(32);
        let text = good().replace(
            "groups = [\"developers\"]\nscram",
            &format!("groups = [\"developers\"]\napi_token_sha256 = \"{hash}\"\nscram"),
        ) + "\n[audit]\nhead_log_interval = \"30s\"\n";
        let c = Config::load(&text, Path::new("/"), &NoSecrets).expect("valid");
        assert_eq!(c.users[0].api_token_sha256.as_deref(), Some(hash.as_str()));
        assert_eq!(c.audit.head_log_interval, Duration::from_secs(30));
        let c = Config::load(&good(), Path::new("/"), &NoSecrets).expect("valid");
        assert_eq!(c.audit.head_log_interval, Duration::from_secs(300));
        let err = Config::load(
            &(text.replace(&hash, "nothex").replace("\"30s\"", "\"0s\"")),
            Path::new("/"),
            &NoSecrets,
        )
        .expect_err("invalid");
        let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            vec!["users[0].api_token_sha256", "audit.head_log_interval"]
        );
    }

    #[test]
    fn verifier_parsing() {
        assert!(ScramVerifier::parse(VERIFIER).is_ok());
        assert!(ScramVerifier::parse("SCRAM-SHA-256$10:a$b:c").is_err());
        assert!(ScramVerifier::parse("SCRAM-SHA-256$4096:a$b").is_err());
    }

    fn with_slack(slack: &str) -> String {
        good().replace(
            "scram_verifier = \"",
            "slack_user_id = \"U0ALICE\"\nscram_verifier = \"",
        ) + slack
    }

    #[test]
    fn slack_section_loads_and_resolves_its_secrets() {
        let text = with_slack(
            "\n[slack]\nmode = \"http\"\nbot_token_env = \"SET_VAR\"\nsigning_secret_env = \"SET_VAR\"\nreview_channel = \"C0123ABC\"\n",
        );
        let c = Config::load(&text, Path::new("/etc/airlock"), &NoSecrets).expect("valid");
        let slack = c.slack.as_ref().expect("slack");
        assert_eq!(slack.mode, SlackMode::Http);
        assert_eq!(slack.api_url, SLACK_API_URL);
        assert_eq!(slack.bot_token.value.as_deref(), Some("s3cret"));
        assert_eq!(slack.signing_secret.value.as_deref(), Some("s3cret"));
        assert!(!format!("{slack:?}").contains("s3cret"));
        assert_eq!(
            c.user_by_slack_id("U0ALICE").map(|u| u.name.as_str()),
            Some("alice")
        );
        assert!(c.user_by_slack_id("U0BOB").is_none());
    }

    #[test]
    fn slack_problems_are_reported_with_their_paths() {
        let text = with_slack(
            "\n[slack]\nmode = \"socket\"\napi_url = \"ftp://slack\"\nbot_token_file = \"missing-token\"\nreview_channel = \"#reviews\"\nstatement_max_chars = 10\n",
        )
        .replace("slack_user_id = \"U0ALICE\"", "slack_user_id = \"alice\"");
        let err = Config::load(&text, Path::new("/etc/airlock"), &NoSecrets).expect_err("invalid");
        let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
        for want in [
            "slack.api_url",
            "slack.app_token",
            "slack.review_channel",
            "slack.statement_max_chars",
            "slack.bot_token_file",
            "users[0].slack_user_id",
        ] {
            assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
        }
        let missing = err
            .problems()
            .into_iter()
            .find(|p| p.path == "slack.bot_token_file")
            .expect("file problem");
        assert!(
            missing.message.contains("/etc/airlock/missing-token"),
            "{missing}"
        );

        // No review channel anywhere for a protected target; an unset env var;
        // one Slack user mapped to two airlock users.
        let text = with_slack(
            "\n[slack]\nmode = \"http\"\nbot_token_env = \"UNSET_VAR\"\nsigning_secret_env = \"SET_VAR\"\n",
        )
        .replace(
            "[[targets]]",
            &format!("[[users]]\nname = \"bob\"\nslack_user_id = \"U0ALICE\"\nscram_verifier = \"{VERIFIER}\"\n\n[[targets]]"),
        );
        let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
        let problems = err.problems();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "targets[0].policy.review_channel",
            "slack.bot_token_env",
            "users[1].slack_user_id",
        ] {
            assert!(paths.contains(&want), "{want} not in {problems:?}");
        }
        // The policy's channel satisfies it, and is checked too.
        let text = with_slack(
            "\n[policy]\nreview_channel = \"reviews\"\n\n[slack]\nmode = \"http\"\nbot_token_env = \"SET_VAR\"\nsigning_secret_env = \"SET_VAR\"\n",
        );
        let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
        let problems = err.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "policy.review_channel");
    }

    #[test]
    fn redaction_patterns_must_compile() {
        let ok = good() + "\n[redaction]\npatterns = [\"tok_[a-z0-9]+\"]\n";
        let c = Config::load(&ok, Path::new("/"), &NoSecrets).expect("valid");
        let r = c.redactor().expect("redactor");
        assert_eq!(r.redact("SELECT 'tok_abc'"), "SELECT '***'");
        let bad = good() + "\n[redaction]\npatterns = [\"fine\", \"(unclosed\"]\n";
        let err = Config::load(&bad, Path::new("/"), &NoSecrets).expect_err("invalid");
        let problems = err.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "redaction.patterns[1]");
    }
}
