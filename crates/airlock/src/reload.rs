//! SIGHUP: the config file is read again and, when valid, installed as the
//! next generation without dropping a session. Users, groups, policies,
//! targets, redaction patterns and the Slack channel map follow it; the
//! listeners, TLS, the store and the Slack connection keep what they started
//! with (a change there is logged as needing a restart). An invalid file is
//! refused with every problem logged, and the old configuration stays.
//! Each attempt is audited with the file's SHA-256.

use crate::config_file;
use airlock_core::audit::{kinds, NewAuditEvent};
use airlock_core::workflow::SYSTEM_ACTOR;
use airlock_core::{Config, LiveConfig, Workflow};
use airlock_pg::targets::{TargetSet, Targets};
use serde_json::json;
use std::path::PathBuf;
use tracing::{error, info, warn};

/// What a reload needs.
pub struct Reloader {
    /// The file `serve` was started with.
    pub path: PathBuf,
    /// The configuration in force.
    pub live: LiveConfig,
    /// The Postgres listener's endpoints and catalogs.
    pub targets: Targets,
    /// For the audit trail.
    pub workflow: Workflow,
}

/// How a reload ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Installed as this generation.
    Installed(u64),
    /// Refused; the old configuration stays.
    Refused(Vec<String>),
}

impl Reloader {
    /// Reads the file again and installs it when valid.
    pub async fn reload(&self) -> Outcome {
        let text = match config_file::read(&self.path) {
            Ok(t) => t,
            Err(problems) => return self.refuse(None, problems_text(&problems)).await,
        };
        let sha256 = config_file::sha256(&text);
        let config = match config_file::load_text(&self.path, &text) {
            Ok(c) => c,
            Err(problems) => return self.refuse(Some(&sha256), problems_text(&problems)).await,
        };
        let current = self.live.current();
        let restart_required = restart_only_changes(&current, &config);
        let users = config.users.len();
        let target_names: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
        let prepared = match LiveConfig::prepare(config) {
            Ok(p) => p,
            Err(e) => {
                return self
                    .refuse(Some(&sha256), vec![format!("redaction: {e}")])
                    .await
            }
        };
        let previous = self.targets.current();
        let set = match TargetSet::build(&prepared.config, Some(&previous)).await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .refuse(Some(&sha256), vec![format!("targets: {e}")])
                    .await
            }
        };
        let rebuilt = set.rebuilt_since(&previous);
        drop(previous);
        // Endpoints first; readers pair the two by generation
        // (`airlock_pg::targets::consistent`).
        // One reload at a time (the signal loop), so the next number is known.
        self.targets.install(set, self.live.generation() + 1);
        let generation = self.live.install(prepared);
        for key in &restart_required {
            warn!(%key, "{key} changed in the file: it takes effect at the next restart");
        }
        info!(
            generation,
            %sha256,
            users,
            targets = target_names.len(),
            rebuilt = %rebuilt.join(", "),
            "config reloaded"
        );
        self.audit(
            kinds::CONFIG_RELOADED,
            json!({
                "file": self.path.display().to_string(),
                "sha256": sha256,
                "generation": generation,
                "users": users,
                "targets": target_names,
                "rebuilt_targets": rebuilt,
                "restart_required": restart_required,
            }),
        )
        .await;
        Outcome::Installed(generation)
    }

    async fn refuse(&self, sha256: Option<&str>, problems: Vec<String>) -> Outcome {
        for p in &problems {
            error!(problem = %p, "config reload refused: {p}");
        }
        error!(
            file = %self.path.display(),
            problems = problems.len(),
            generation = self.live.generation(),
            "config reload refused; the configuration in force stays"
        );
        self.audit(
            kinds::CONFIG_RELOAD_REFUSED,
            json!({
                "file": self.path.display().to_string(),
                "sha256": sha256,
                "problems": problems,
                "generation_kept": self.live.generation(),
            }),
        )
        .await;
        Outcome::Refused(problems)
    }

    async fn audit(&self, kind: &str, payload: serde_json::Value) {
        let event = NewAuditEvent::new(self.workflow.now(), SYSTEM_ACTOR, kind, None, payload);
        if let Err(e) = self.workflow.store().append_audit(&event).await {
            warn!(error = %e, "audit of a config reload failed");
        }
    }
}

fn problems_text(problems: &[airlock_core::ConfigProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

/// Settings read once at start whose change a reload cannot apply.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&old.server, &new.server);
    let checks: [(&str, String, String); 14] = [
        (
            "server.mysql_listen",
            format!("{:?}", a.mysql_listen),
            format!("{:?}", b.mysql_listen),
        ),
        (
            "server.postgres_listen",
            a.postgres_listen.clone(),
            b.postgres_listen.clone(),
        ),
        (
            "server.http_listen",
            a.http_listen.clone(),
            b.http_listen.clone(),
        ),
        (
            "server.worker_threads",
            a.worker_threads.to_string(),
            b.worker_threads.to_string(),
        ),
        (
            "server.log_format",
            format!("{:?}", a.log_format),
            format!("{:?}", b.log_format),
        ),
        (
            "server.classifier_cache_entries",
            a.classifier_cache_entries.to_string(),
            b.classifier_cache_entries.to_string(),
        ),
        (
            "server.advertise_address",
            format!("{:?}", a.advertise_address),
            format!("{:?}", b.advertise_address),
        ),
        (
            "server.reconcile_interval",
            format!("{:?}", a.reconcile_interval),
            format!("{:?}", b.reconcile_interval),
        ),
        (
            "store",
            format!("{:?}", old.store),
            format!("{:?}", new.store),
        ),
        ("tls", format!("{:?}", old.tls), format!("{:?}", new.tls)),
        (
            "slack (connection, tokens, message and retry settings)",
            slack_fixed(old),
            slack_fixed(new),
        ),
        (
            "server.public_url (in Slack links)",
            format!("{:?}", a.public_url),
            format!("{:?}", b.public_url),
        ),
        (
            "server.refused_login_audits_per_second",
            a.refused_login_audits_per_second.to_string(),
            b.refused_login_audits_per_second.to_string(),
        ),
        (
            "audit.head_log_interval",
            format!("{:?}", old.audit.head_log_interval),
            format!("{:?}", new.audit.head_log_interval),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(k, _, _)| k.to_string())
        .collect()
}

/// The `[slack]` settings read once at start: all but the review channel
/// (token values are redacted by their Debug; their sources show).
fn slack_fixed(config: &Config) -> String {
    match &config.slack {
        Some(s) => {
            let mut s = s.clone();
            s.review_channel = None;
            format!("{s:?}")
        }
        None => "none".into(),
    }
}
