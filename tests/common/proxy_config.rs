//! The test-side description of a `proxy.toml` (users, targets, TLS, extras) and its rendering.

#![allow(dead_code)]

use super::*;

/// `[[users]]` entry (the verifier is computed from `password`).
#[derive(Debug, Clone)]
pub struct UserSpec {
    pub name: String,
    pub team: String,
    pub groups: Vec<String>,
    pub password: String,
}

/// Upstream credentials.
#[derive(Debug, Clone)]
pub struct CredSpec {
    pub user: String,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl CredSpec {
    /// The SCRAM upstream role, password from [`UPSTREAM_PASSWORD_ENV`].
    pub fn upstream_scram() -> CredSpec {
        CredSpec {
            user: UPSTREAM_USER.into(),
            password_env: Some(UPSTREAM_PASSWORD_ENV.into()),
            password_file: None,
        }
    }
}

/// `[[targets]]` entry.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub name: String,
    pub family: Option<String>,
    pub environment: String,
    pub protected: bool,
    pub allowed_groups: Vec<String>,
    pub read_only_backstop: Option<bool>,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// `disable` | `prefer` | `require` | `verify-full`
    pub tls: String,
    pub ca_file: Option<PathBuf>,
    pub read_credentials: Option<CredSpec>,
    pub write_credentials: Option<CredSpec>,
    /// `trusted_functions` (`schema.name`).
    pub trusted_functions: Vec<String>,
    /// `engine` (absent: Postgres).
    pub engine: Option<String>,
    /// `mysql_schemas`: other schemas a MySQL session may switch to.
    pub mysql_schemas: Vec<String>,
}

impl TargetSpec {
    /// A target on the local PostgreSQL database `database`, reached as the
    /// SCRAM upstream role (read and write credentials alike).
    pub fn local(name: &str, database: &str, protected: bool) -> TargetSpec {
        TargetSpec {
            name: name.into(),
            family: None,
            environment: String::new(),
            protected,
            allowed_groups: vec!["developers".into(), "dba".into()],
            read_only_backstop: None,
            host: PG_HOST.into(),
            port: PG_PORT,
            database: database.into(),
            tls: "disable".into(),
            ca_file: None,
            read_credentials: Some(CredSpec::upstream_scram()),
            write_credentials: Some(CredSpec::upstream_scram()),
            trusted_functions: Vec::new(),
            engine: None,
            mysql_schemas: Vec::new(),
        }
    }

    /// A MariaDB target on the local server's schema `schema`, reached as
    /// root with the empty password (read and write credentials alike: the
    /// classifier must hold alone).
    pub fn mariadb(name: &str, schema: &str, protected: bool) -> TargetSpec {
        let root = CredSpec {
            user: MARIADB_USER.into(),
            password_env: None,
            password_file: None,
        };
        TargetSpec {
            host: MARIADB_HOST.into(),
            port: MARIADB_PORT,
            read_credentials: Some(root.clone()),
            write_credentials: Some(root),
            engine: Some("mariadb".into()),
            ..TargetSpec::local(name, schema, protected)
        }
    }
}

/// `[tls]` for the client listener.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub require: bool,
}

/// Everything that goes into the generated `proxy.toml`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub users: Vec<UserSpec>,
    pub families: Vec<(String, Vec<String>)>,
    pub targets: Vec<TargetSpec>,
    pub tls: Option<TlsSpec>,
    /// Extra `key = value` TOML lines for `[server]` (values already TOML).
    pub server_extra: Vec<(String, String)>,
    /// Extra environment for the airlock process.
    pub env: Vec<(String, String)>,
    /// HTTP API tokens: (user, token); the config gets the token's SHA-256.
    pub api_tokens: Vec<(String, String)>,
    /// `[store] url` (default: the SQLite file next to the config).
    pub store_url: Option<String>,
    /// Raw TOML appended at the end of the config (e.g. `[audit]`).
    pub extra_toml: String,
    /// Users' Slack ids: (user, `U…`).
    pub slack_ids: Vec<(String, String)>,
    /// Port of the MySQL listener (chosen at start when a target is MySQL).
    pub mysql_port: u16,
    /// Users whose `mysql_sha2_verifier` is the salted `$A$005$…` form
    /// (and who have no native verifier).
    pub salted_mysql_users: Vec<String>,
    /// A whole config file instead of the one made from the fields, with
    /// `{PG}`, `{HTTP}` and `{MYSQL}` standing for the listeners' ports.
    pub raw_toml: Option<String>,
}

/// TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(o, "\\u{:04x}", c as u32).unwrap(),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl ProxyConfig {
    /// Default config for one upstream database `db`: users alice
    /// (developers), bob (developers, dba), mallory (contractors); family
    /// `db` (dev < qa < prod); targets `<db>-dev` (unprotected) and
    /// `<db>-prod` (protected), both for developers and dba, both on the
    /// local database `db` as the SCRAM upstream role.
    pub fn for_db(db: &str) -> ProxyConfig {
        let users = DEFAULT_USERS
            .iter()
            .map(|(n, t, g, p)| UserSpec {
                name: n.to_string(),
                team: t.to_string(),
                groups: g.iter().map(|s| s.to_string()).collect(),
                password: p.to_string(),
            })
            .collect();
        let mut dev = TargetSpec::local(&format!("{db}-dev"), db, false);
        dev.family = Some(db.into());
        dev.environment = "dev".into();
        let mut prod = TargetSpec::local(&format!("{db}-prod"), db, true);
        prod.family = Some(db.into());
        prod.environment = "prod".into();
        ProxyConfig {
            users,
            families: vec![(db.into(), vec!["dev".into(), "qa".into(), "prod".into()])],
            targets: vec![dev, prod],
            tls: None,
            server_extra: vec![],
            env: vec![],
            api_tokens: vec![],
            store_url: None,
            extra_toml: String::new(),
            slack_ids: vec![],
            mysql_port: 0,
            salted_mysql_users: vec![],
            raw_toml: None,
        }
    }

    /// The default users with one unprotected MariaDB target named like
    /// the local schema `schema` (so dumps and `DATABASE()` read the same
    /// through the proxy and directly).
    pub fn for_mariadb(schema: &str) -> ProxyConfig {
        let mut c = ProxyConfig::for_db(schema);
        c.families.clear();
        c.targets = vec![TargetSpec::mariadb(schema, schema, false)];
        c
    }

    /// Gives `user` an HTTP API token (builder style).
    pub fn with_api_token(mut self, user: &str, token: &str) -> ProxyConfig {
        self.api_tokens.push((user.into(), token.into()));
        self
    }

    /// The target called `name`, for changes.
    pub fn target_mut(&mut self, name: &str) -> &mut TargetSpec {
        self.targets
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no target {name} in the test config"))
    }

    /// Adds a target (builder style).
    pub fn with_target(mut self, t: TargetSpec) -> ProxyConfig {
        self.targets.push(t);
        self
    }

    /// Sets `[tls]` (builder style).
    pub fn with_tls(mut self, cert: &Path, key: &Path, require: bool) -> ProxyConfig {
        self.tls = Some(TlsSpec {
            cert_file: cert.into(),
            key_file: key.into(),
            require,
        });
        self
    }

    /// Whether a target is a MySQL/MariaDB one.
    pub fn has_mysql(&self) -> bool {
        match &self.raw_toml {
            Some(raw) => raw.contains("{MYSQL}"),
            None => self.targets.iter().any(|t| t.engine.is_some()),
        }
    }

    /// Password of a configured user.
    pub fn password(&self, user: &str) -> String {
        self.users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.password.clone())
            .unwrap_or_else(|| panic!("no user {user} in the test config"))
    }

    /// Renders `proxy.toml` for the given listener ports.
    pub fn to_toml(&self, pg_port: u16, http_port: u16) -> String {
        if let Some(raw) = &self.raw_toml {
            return raw
                .replace("{PG}", &pg_port.to_string())
                .replace("{HTTP}", &http_port.to_string())
                .replace("{MYSQL}", &self.mysql_port.to_string());
        }
        let mut s = String::new();
        writeln!(s, "[server]").unwrap();
        writeln!(s, "postgres_listen = \"127.0.0.1:{pg_port}\"").unwrap();
        writeln!(s, "http_listen = \"127.0.0.1:{http_port}\"").unwrap();
        if self.has_mysql() {
            writeln!(s, "mysql_listen = \"127.0.0.1:{}\"", self.mysql_port).unwrap();
        }
        if !self.server_extra.iter().any(|(k, _)| k == "shutdown_grace") {
            writeln!(s, "shutdown_grace = \"5s\"").unwrap();
        }
        for (k, v) in &self.server_extra {
            writeln!(s, "{k} = {v}").unwrap();
        }
        if let Some(tls) = &self.tls {
            writeln!(s, "\n[tls]").unwrap();
            writeln!(
                s,
                "cert_file = {}",
                toml_str(&tls.cert_file.to_string_lossy())
            )
            .unwrap();
            writeln!(
                s,
                "key_file = {}",
                toml_str(&tls.key_file.to_string_lossy())
            )
            .unwrap();
            writeln!(s, "require = {}", tls.require).unwrap();
        }
        for (name, envs) in &self.families {
            writeln!(
                s,
                "\n[[families]]\nname = {}\nenvironments = {}",
                toml_str(name),
                toml_list(envs)
            )
            .unwrap();
        }
        for u in &self.users {
            writeln!(s, "\n[[users]]").unwrap();
            writeln!(s, "name = {}", toml_str(&u.name)).unwrap();
            writeln!(s, "team = {}", toml_str(&u.team)).unwrap();
            writeln!(s, "groups = {}", toml_list(&u.groups)).unwrap();
            writeln!(s, "scram_verifier = {}", toml_str(&verifier(&u.password))).unwrap();
            if self.salted_mysql_users.contains(&u.name) {
                writeln!(s, "{}", salted_sha2_verifier_line(&u.password)).unwrap();
            } else {
                for line in mysql_verifier_lines(&u.password) {
                    writeln!(s, "{line}").unwrap();
                }
            }
            for (_, token) in self.api_tokens.iter().filter(|(n, _)| *n == u.name) {
                use sha2::Digest;
                let hash: String = sha2::Sha256::digest(token.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                writeln!(s, "api_token_sha256 = {}", toml_str(&hash)).unwrap();
            }
            for (_, id) in self.slack_ids.iter().filter(|(n, _)| *n == u.name) {
                writeln!(s, "slack_user_id = {}", toml_str(id)).unwrap();
            }
        }
        for t in &self.targets {
            writeln!(s, "\n[[targets]]").unwrap();
            writeln!(s, "name = {}", toml_str(&t.name)).unwrap();
            if let Some(f) = &t.family {
                writeln!(s, "family = {}", toml_str(f)).unwrap();
                writeln!(s, "environment = {}", toml_str(&t.environment)).unwrap();
            }
            writeln!(s, "protected = {}", t.protected).unwrap();
            if let Some(e) = &t.engine {
                writeln!(s, "engine = {}", toml_str(e)).unwrap();
            }
            writeln!(s, "allowed_groups = {}", toml_list(&t.allowed_groups)).unwrap();
            if let Some(b) = t.read_only_backstop {
                writeln!(s, "read_only_backstop = {b}").unwrap();
            }
            if !t.mysql_schemas.is_empty() {
                writeln!(s, "mysql_schemas = {}", toml_list(&t.mysql_schemas)).unwrap();
            }
            if !t.trusted_functions.is_empty() {
                writeln!(s, "trusted_functions = {}", toml_list(&t.trusted_functions)).unwrap();
            }
            writeln!(s, "\n[targets.upstream]").unwrap();
            writeln!(s, "host = {}", toml_str(&t.host)).unwrap();
            writeln!(s, "port = {}", t.port).unwrap();
            writeln!(s, "database = {}", toml_str(&t.database)).unwrap();
            writeln!(s, "tls = {}", toml_str(&t.tls)).unwrap();
            if let Some(ca) = &t.ca_file {
                writeln!(s, "ca_file = {}", toml_str(&ca.to_string_lossy())).unwrap();
            }
            for (key, c) in [
                ("read_credentials", &t.read_credentials),
                ("write_credentials", &t.write_credentials),
            ] {
                let Some(c) = c else { continue };
                writeln!(s, "\n[targets.{key}]").unwrap();
                writeln!(s, "user = {}", toml_str(&c.user)).unwrap();
                if let Some(e) = &c.password_env {
                    writeln!(s, "password_env = {}", toml_str(e)).unwrap();
                }
                if let Some(f) = &c.password_file {
                    writeln!(s, "password_file = {}", toml_str(&f.to_string_lossy())).unwrap();
                }
            }
        }
        if let Some(url) = &self.store_url {
            writeln!(s, "\n[store]\nurl = {}", toml_str(url)).unwrap();
        }
        if !self.extra_toml.is_empty() {
            writeln!(s, "\n{}", self.extra_toml).unwrap();
        }
        s
    }
}

// ---------------------------------------------------------------------------
// The proxy process
// ---------------------------------------------------------------------------
