//! The `proxy.toml` configuration: parsing, validation with key paths, and
//! secret resolution through a caller-supplied reader.

use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

fn yes() -> bool {
    true
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

    /// Whether a user with these groups may connect.
    pub fn allows(&self, user: &User) -> bool {
        user.groups.iter().any(|g| self.allowed_groups.contains(g))
    }
}

/// `[targets.upstream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Host name or address.
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
    pub fn load(text: &str, base_dir: &Path, secrets: &dyn SecretReader) -> Result<Self, ConfigError> {
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
        if self.server.classifier_cache_entries == 0 {
            problem(
                "server.classifier_cache_entries".into(),
                "must be at least 1".into(),
            );
        }

        let mut families: HashMap<&str, &Family> = HashMap::new();
        for (i, f) in self.families.iter().enumerate() {
            if families.insert(f.name.as_str(), f).is_some() {
                problem(format!("families[{i}].name"), format!("duplicate family {:?}", f.name));
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
                problem(format!("users[{i}].name"), format!("duplicate user {:?}", u.name));
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
        out
    }

    /// Reads every configured secret, reporting the ones that cannot be read.
    pub fn resolve_secrets(&mut self, secrets: &dyn SecretReader) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
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
        let err = Config::load("[server]\nshutdown_grace = \"soon\"\n", Path::new("/"), &NoSecrets)
            .expect_err("bad duration");
        assert!(err.to_string().contains("soon"), "{err}");
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

    #[test]
    fn verifier_parsing() {
        assert!(ScramVerifier::parse(VERIFIER).is_ok());
        assert!(ScramVerifier::parse("SCRAM-SHA-256$10:a$b:c").is_err());
        assert!(ScramVerifier::parse("SCRAM-SHA-256$4096:a$b").is_err());
    }
}
