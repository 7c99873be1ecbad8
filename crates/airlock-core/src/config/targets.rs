//! `[[families]]`, `[[users]]` and `[[targets]]` with their upstreams and credentials.

use super::{PolicyConfig, TrustedFunction};
use crate::request::Engine;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

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
    /// MySQL `mysql_native_password` verifier from `airlock passwd`
    /// (`*` and 40 hex digits: SHA1(SHA1(password)), as MySQL's `PASSWORD()`).
    pub mysql_native_verifier: Option<String>,
    /// MySQL `caching_sha2_password` verifier from `airlock passwd`
    /// (64 hex digits: SHA256(SHA256(password))).
    pub mysql_sha2_verifier: Option<String>,
    /// Hex SHA-256 of the user's HTTP API bearer token (from `airlock token`).
    pub api_token_sha256: Option<String>,
    /// Their Slack user id (`U…`): their clicks in Slack act as them, and they get DMs.
    pub slack_user_id: Option<String>,
}

/// `[[targets]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Name clients use as `dbname` (Postgres) or the schema (MySQL).
    pub name: String,
    /// The database engine, which picks the listener and the wire crate.
    #[serde(default)]
    pub engine: Engine,
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
    /// MySQL: other schemas of the same server this target's sessions may
    /// switch to (`USE`, COM_INIT_DB) to read; on a protected target a
    /// change is held only while the session is on the target's database.
    #[serde(default)]
    pub mysql_schemas: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Target {
    /// The upstream port (the engine's usual one when not set).
    pub fn upstream_port(&self) -> u16 {
        self.upstream.port.unwrap_or(self.engine.default_port())
    }

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
    /// Port (the engine's usual one when absent: 5432, 3306); read it with
    /// [`Target::upstream_port`].
    pub port: Option<u16>,
    /// Upstream database name (the schema on MySQL).
    pub database: String,
    /// TLS towards the upstream.
    #[serde(default)]
    pub tls: UpstreamTlsMode,
    /// CA bundle for `verify-full` (system roots when absent).
    pub ca_file: Option<PathBuf>,
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
