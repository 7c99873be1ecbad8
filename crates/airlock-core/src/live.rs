//! The configuration in force, swapped whole when the file is reloaded
//! (SIGHUP), and the rule that says whether a session started under an
//! earlier configuration may go on under the current one.

use crate::config::Config;
use crate::request::approval::ApprovalPolicy;
use crate::workflow::PolicySource;
use airlock_sql::{Redactor, StatementClass};
use std::sync::Arc;
use tokio::sync::watch;

/// One generation of the configuration with what is derived from it.
#[derive(Debug)]
pub struct Snapshot {
    /// 1 for the configuration read at start, one more per reload.
    pub generation: u64,
    /// The configuration.
    pub config: Arc<Config>,
    /// Statement redaction built from its `[redaction]` patterns.
    pub redactor: Arc<Redactor>,
}

/// The configuration in force: every reader sees one whole generation, and
/// subscribers are told when a new one is installed.
#[derive(Clone)]
pub struct LiveConfig {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// The first generation; fails when a redaction pattern is invalid.
    pub fn new(config: Config) -> Result<Self, String> {
        let redactor = config.redactor()?;
        let first = Snapshot {
            generation: 1,
            config: Arc::new(config),
            redactor: Arc::new(redactor),
        };
        let (tx, _) = watch::channel(Arc::new(first));
        Ok(LiveConfig { tx: Arc::new(tx) })
    }

    /// The configuration in force now.
    pub fn current(&self) -> Arc<Config> {
        self.tx.borrow().config.clone()
    }

    /// The generation in force now, with its redactor.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// The generation number in force now.
    pub fn generation(&self) -> u64 {
        self.tx.borrow().generation
    }

    /// A receiver told of every new generation (the current one counts as seen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    /// Checks what a new configuration derives (redaction patterns) without
    /// installing it.
    pub fn prepare(config: Config) -> Result<Prepared, String> {
        let redactor = config.redactor()?;
        Ok(Prepared {
            config: Arc::new(config),
            redactor: Arc::new(redactor),
        })
    }

    /// Installs a prepared configuration as the next generation and returns
    /// its number; subscribers are woken.
    pub fn install(&self, next: Prepared) -> u64 {
        let mut generation = 0;
        self.tx.send_modify(|current| {
            generation = current.generation + 1;
            *current = Arc::new(Snapshot {
                generation,
                config: next.config,
                redactor: next.redactor,
            });
        });
        generation
    }
}

/// A configuration checked by [`LiveConfig::prepare`], ready to install.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The configuration.
    pub config: Arc<Config>,
    /// Its redactor.
    pub redactor: Arc<Redactor>,
}

impl PolicySource for LiveConfig {
    fn policy(&self, target: &str, class: StatementClass) -> Option<ApprovalPolicy> {
        self.current().policy(target, class)
    }

    fn lower_environments(&self, family: &str, environment: &str) -> Vec<String> {
        self.current().lower_environments(family, environment)
    }
}

/// Why a session started under an earlier configuration must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Revocation {
    /// Its target is no longer configured: the session ends at once.
    #[error("airlock: target \"{target}\" was removed from the configuration")]
    TargetRemoved {
        /// The target's name.
        target: String,
    },
    /// Its user is no longer configured: the session ends at its next statement.
    #[error("airlock: user \"{user}\" was removed from the configuration")]
    UserRemoved {
        /// The user's name.
        user: String,
    },
    /// None of the user's groups may use the target any more.
    #[error("airlock: user \"{user}\" may no longer connect to target \"{target}\"")]
    AccessLost {
        /// The user's name.
        user: String,
        /// The target's name.
        target: String,
    },
}

impl Revocation {
    /// The SQLSTATE a Postgres client is told: 57P01 (admin shutdown, so
    /// drivers treat the connection as gone) for a removed target, 28000
    /// (invalid authorization) otherwise.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Revocation::TargetRemoved { .. } => "57P01",
            Revocation::UserRemoved { .. } | Revocation::AccessLost { .. } => "28000",
        }
    }

    /// Whether the session ends at once rather than at its next statement.
    pub fn is_immediate(&self) -> bool {
        matches!(self, Revocation::TargetRemoved { .. })
    }
}

/// Whether a session of `user` on `target` may go on under `config`
/// (sessions keep the target settings they started with: only removal of
/// the target or the user, or the loss of access, ends them).
pub fn standing(config: &Config, user: &str, target: &str) -> Result<(), Revocation> {
    let Some(t) = config.target(target) else {
        return Err(Revocation::TargetRemoved {
            target: target.to_string(),
        });
    };
    let Some(u) = config.user(user) else {
        return Err(Revocation::UserRemoved {
            user: user.to_string(),
        });
    };
    if !t.allows(u) {
        return Err(Revocation::AccessLost {
            user: user.to_string(),
            target: target.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env;
    impl crate::config::SecretReader for Env {
        fn env(&self, _: &str) -> Option<String> {
            Some("pw".into())
        }
        fn file(&self, p: &std::path::Path) -> std::io::Result<String> {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                p.display().to_string(),
            ))
        }
    }

    fn config(users: &str, targets: &str) -> Config {
        let text = format!("{users}\n{targets}\n");
        Config::load(&text, std::path::Path::new("/"), &Env).expect("test config")
    }

    const TARGETS: &str = r#"
[[targets]]
name = "prod"
environment = "prod"
protected = true
allowed_groups = ["developers"]
upstream = { host = "127.0.0.1", database = "app" }
read_credentials = { user = "reader", password_env = "PW" }
"#;

    fn user(name: &str, group: &str) -> String {
        format!(
            "[[users]]\nname = \"{name}\"\ngroups = [\"{group}\"]\n\
             scram_verifier = \"SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\"\n"
        )
    }

    #[test]
    fn standing_follows_users_groups_and_targets() {
        let c = config(&user("alice", "developers"), TARGETS);
        assert_eq!(standing(&c, "alice", "prod"), Ok(()));
        let gone = standing(&c, "bob", "prod").unwrap_err();
        assert!(matches!(gone, Revocation::UserRemoved { .. }));
        assert!(!gone.is_immediate());
        assert_eq!(gone.sqlstate(), "28000");
        let moved = config(
            &(user("alice", "contractors") + &user("carol", "developers")),
            TARGETS,
        );
        assert!(matches!(
            standing(&moved, "alice", "prod"),
            Err(Revocation::AccessLost { .. })
        ));
        let no_target = standing(&c, "alice", "staging").unwrap_err();
        assert!(no_target.is_immediate());
        assert_eq!(no_target.sqlstate(), "57P01");
        assert!(no_target.to_string().contains("\"staging\" was removed"));
    }

    #[test]
    fn installing_a_generation_wakes_subscribers_and_changes_policies() {
        let live = LiveConfig::new(config(&user("alice", "developers"), TARGETS)).expect("live");
        let mut rx = live.subscribe();
        assert!(!rx.has_changed().expect("sender alive"));
        assert!(live.policy("prod", StatementClass::Write).is_some());
        let next = LiveConfig::prepare(config(&user("alice", "developers"), "")).expect("prep");
        assert_eq!(live.install(next), 2);
        assert!(rx.has_changed().expect("sender alive"));
        assert_eq!(rx.borrow_and_update().generation, 2);
        assert!(live.policy("prod", StatementClass::Write).is_none());
        assert_eq!(live.generation(), 2);
    }
}
