//! The `proxy.toml` configuration: parsing, validation with key paths, and
//! secret resolution through a caller-supplied reader.

use crate::request::approval::ApprovalPolicy;
use crate::workflow::PolicySource;
use airlock_sql::StatementClass;
use serde::Deserialize;
use settings::is_store_url;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod mysql_verifiers;
mod policy;
mod scram;
mod settings;
pub mod sha2_crypt;
mod slack;
mod targets;
mod trust;
mod validate;
pub use crate::request::Engine;
pub use mysql_verifiers::{NativeVerifier, Sha2Verifier};
pub use policy::{PolicyConfig, PolicyRules, POLICY_CLASSES};
pub use scram::ScramVerifier;
pub use settings::{
    redact_url, AuditConfig, LogFormat, RedactionConfig, ServerConfig, StoreConfig, TlsConfig,
    DEFAULT_STATE_FILE,
};
pub use sha2_crypt::StoredHash;
pub use slack::{is_channel_id, is_user_id, SecretRef, SlackConfig, SlackMode, SLACK_API_URL};
pub use targets::{
    Credentials, Family, SecretSource, Target, UpstreamConfig, UpstreamTlsMode, User,
};
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

#[cfg(test)]
mod tests;
