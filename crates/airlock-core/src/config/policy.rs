//! `[policy]` and `[targets.policy]`: approval rules by layer and class, and
//! how they resolve into one [`ApprovalPolicy`].

use super::ConfigProblem;
use crate::request::approval::ApprovalPolicy;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

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

    pub(super) fn validate(
        &self,
        path: &str,
        all_groups: &BTreeSet<&str>,
        out: &mut Vec<ConfigProblem>,
    ) {
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
    pub(super) fn validate(
        &self,
        path: &str,
        all_groups: &BTreeSet<&str>,
        out: &mut Vec<ConfigProblem>,
    ) {
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
