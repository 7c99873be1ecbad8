//! Approval rules: who may approve, reject, run, roll back or cancel a
//! request, and when an approval completes it.

use super::{Approval, ChangeRequest, RequestStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An authenticated airlock user acting on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Login name.
    pub name: String,
    /// Their groups.
    pub groups: Vec<String>,
}

impl Actor {
    /// Builds an actor.
    pub fn new(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Actor {
            name: name.into(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether the actor is in any of `groups`.
    pub fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

/// The approval policy of one target (and statement class), fully resolved
/// from the config's layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Distinct approvers needed (at least 1).
    pub approvals_required: u32,
    /// Groups whose members may approve or reject.
    pub approver_groups: Vec<String>,
    /// How long a request may stay pending.
    pub pending_expiry: Duration,
    /// How long an approved request may wait to be run.
    pub run_window: Duration,
    /// Whether `airlock.reason` must be given.
    pub require_reason: bool,
    /// Groups whose members may run, roll back or cancel anyone's request.
    pub admin_groups: Vec<String>,
    /// Review channel (Slack) for this target/class.
    pub review_channel: Option<String>,
    /// Default row guard when the developer sets none.
    pub max_rows: Option<i64>,
    /// Row guard as a multiple of the planner estimate (e.g. 2.0).
    pub max_rows_ratio: Option<f64>,
    /// `statement_timeout` for approved changes.
    pub statement_timeout: Option<Duration>,
    /// `lock_timeout` for approved changes.
    pub lock_timeout: Option<Duration>,
}

/// `statement_timeout` of approved runs unless a policy sets one.
pub const DEFAULT_RUN_STATEMENT_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            approvals_required: 1,
            approver_groups: Vec::new(),
            pending_expiry: Duration::from_secs(24 * 3600),
            run_window: Duration::from_secs(8 * 3600),
            require_reason: false,
            admin_groups: Vec::new(),
            review_channel: None,
            max_rows: None,
            max_rows_ratio: None,
            // An approved change never runs unbounded; a policy may lengthen it.
            statement_timeout: Some(DEFAULT_RUN_STATEMENT_TIMEOUT),
            lock_timeout: None,
        }
    }
}

/// The effect of an accepted approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// Recorded; more approvals are needed.
    Recorded {
        /// Distinct approvers so far, this one included.
        have: u32,
        /// Distinct approvers needed.
        need: u32,
    },
    /// This approval completed the request: it is now approved.
    Approved {
        /// Distinct approvers.
        have: u32,
    },
}

/// Why an action on a request is refused (shown to the user and audited).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// The requester tried to approve or reject their own request.
    #[error("you cannot approve or reject your own request")]
    OwnRequest,
    /// The user is in none of the groups that may decide.
    #[error("only members of {} may approve or reject this request", groups_text(.allowed))]
    NotApprover {
        /// Groups that may.
        allowed: Vec<String>,
    },
    /// The user has already approved this request.
    #[error("you have already approved this request")]
    AlreadyApproved,
    /// The request is not in a status that allows this.
    #[error("the request is {status}, so it cannot be {action}")]
    WrongStatus {
        /// Its status.
        status: RequestStatus,
        /// What was attempted, as a past participle (`approved`, `run`…).
        action: String,
    },
    /// It expired (pending past its expiry, or approved past its run window).
    #[error("the request expired at {at}")]
    Expired {
        /// When.
        at: Timestamp,
    },
    /// Only the requester or an admin may do this.
    #[error("only the requester or members of {} may {action} this request", groups_text(.admin_groups))]
    NotRequesterOrAdmin {
        /// What was attempted (`run`, `roll back`, `cancel`).
        action: String,
        /// The admin groups.
        admin_groups: Vec<String>,
    },
    /// A rollback was asked for but none was approved with the change.
    #[error("the request has no rollback statement")]
    NoRollback,
    /// A reason is required by the policy and none was given.
    #[error("a reason is required on target {target}: SET airlock.reason = '…' (or /* airlock: reason=… */)")]
    ReasonRequired {
        /// The target.
        target: String,
    },
    /// A script that runs in one guarded transaction holds its own
    /// transaction control, which would split that transaction.
    #[error("the script contains its own transaction control ({statement}); airlock runs a script in one transaction of its own, so remove BEGIN/COMMIT/ROLLBACK and submit it again")]
    TransactionControl {
        /// The offending statement kind (`COMMIT`, `BEGIN`…).
        statement: String,
    },
}

fn groups_text(groups: &[String]) -> String {
    if groups.is_empty() {
        "an admin group (none is configured)".to_string()
    } else {
        groups
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Refusal {
    /// Short machine name (`own_request`, `not_approver`…), for audit payloads and the API.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OwnRequest => "own_request",
            Refusal::NotApprover { .. } => "not_approver",
            Refusal::AlreadyApproved => "already_approved",
            Refusal::WrongStatus { .. } => "wrong_status",
            Refusal::Expired { .. } => "expired",
            Refusal::NotRequesterOrAdmin { .. } => "not_requester_or_admin",
            Refusal::NoRollback => "no_rollback",
            Refusal::ReasonRequired { .. } => "reason_required",
            Refusal::TransactionControl { .. } => "transaction_control",
        }
    }
}

fn wrong_status(request: &ChangeRequest, action: &str) -> Refusal {
    Refusal::WrongStatus {
        status: request.status,
        action: action.to_string(),
    }
}

/// Checks a reviewer's approval against the rules frozen in the request:
/// still pending and not expired, not the requester, in an approver group,
/// not approved already. `existing` are the approvals recorded so far.
pub fn check_approval(
    request: &ChangeRequest,
    approver: &Actor,
    existing: &[Approval],
    now: Timestamp,
) -> Result<ApprovalOutcome, Refusal> {
    check_decider(request, approver, now, "approved")?;
    if existing.iter().any(|a| a.approver == approver.name) {
        return Err(Refusal::AlreadyApproved);
    }
    let mut approvers: Vec<&str> = existing.iter().map(|a| a.approver.as_str()).collect();
    approvers.sort_unstable();
    approvers.dedup();
    let have = approvers.len() as u32 + 1;
    let need = request.details.approvals_required.max(1);
    Ok(if have >= need {
        ApprovalOutcome::Approved { have }
    } else {
        ApprovalOutcome::Recorded { have, need }
    })
}

/// Checks a reviewer's rejection: the same authority as approving.
pub fn check_rejection(
    request: &ChangeRequest,
    reviewer: &Actor,
    now: Timestamp,
) -> Result<(), Refusal> {
    check_decider(request, reviewer, now, "rejected")
}

fn check_decider(
    request: &ChangeRequest,
    actor: &Actor,
    now: Timestamp,
    action: &str,
) -> Result<(), Refusal> {
    if request.status != RequestStatus::Pending {
        return Err(wrong_status(request, action));
    }
    if now >= request.details.expires_at {
        return Err(Refusal::Expired {
            at: request.details.expires_at,
        });
    }
    if actor.name == request.details.requester {
        return Err(Refusal::OwnRequest);
    }
    if !actor.in_any(&request.details.approver_groups) {
        return Err(Refusal::NotApprover {
            allowed: request.details.approver_groups.clone(),
        });
    }
    Ok(())
}

impl ApprovalPolicy {
    fn requester_or_admin(
        &self,
        actor: &Actor,
        request: &ChangeRequest,
        action: &str,
    ) -> Result<(), Refusal> {
        if actor.name == request.details.requester || actor.in_any(&self.admin_groups) {
            Ok(())
        } else {
            Err(Refusal::NotRequesterOrAdmin {
                action: action.to_string(),
                admin_groups: self.admin_groups.clone(),
            })
        }
    }

    /// Whether `actor` may start the run of an approved request now.
    pub fn may_run(
        &self,
        actor: &Actor,
        request: &ChangeRequest,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        self.requester_or_admin(actor, request, "run")?;
        if request.status != RequestStatus::Approved {
            return Err(wrong_status(request, "run"));
        }
        if let Some(deadline) = request.run_deadline {
            if now >= deadline {
                return Err(Refusal::Expired { at: deadline });
            }
        }
        Ok(())
    }

    /// Whether `actor` may start the approved rollback of an executed request.
    pub fn may_rollback(&self, actor: &Actor, request: &ChangeRequest) -> Result<(), Refusal> {
        self.requester_or_admin(actor, request, "roll back")?;
        if request
            .details
            .rollback_sql
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(Refusal::NoRollback);
        }
        if request.status != RequestStatus::Executed {
            return Err(wrong_status(request, "rolled back"));
        }
        Ok(())
    }

    /// Whether `actor` may cancel a pending or approved request.
    pub fn may_cancel(&self, actor: &Actor, request: &ChangeRequest) -> Result<(), Refusal> {
        self.requester_or_admin(actor, request, "cancel")?;
        if !request.status.is_open() {
            return Err(wrong_status(request, "cancelled"));
        }
        Ok(())
    }

    /// Whether `actor` may settle a request by hand (from `unknown`): admins only.
    pub fn may_settle(&self, actor: &Actor, request: &ChangeRequest) -> Result<(), Refusal> {
        if !actor.in_any(&self.admin_groups) {
            return Err(Refusal::NotRequesterOrAdmin {
                action: "settle".to_string(),
                admin_groups: self.admin_groups.clone(),
            });
        }
        if request.status != RequestStatus::Unknown {
            return Err(wrong_status(request, "settled"));
        }
        Ok(())
    }

    /// The effective row guard: the developer's `max_rows`, else the policy's,
    /// else the ratio applied to the planner estimate (the smallest that applies).
    pub fn row_guard(
        &self,
        request_max_rows: Option<i64>,
        row_estimate: Option<f64>,
    ) -> Option<i64> {
        let from_ratio = match (self.max_rows_ratio, row_estimate) {
            (Some(r), Some(e)) if r > 0.0 && e.is_finite() && e >= 0.0 => {
                Some((e * r).ceil().clamp(1.0, i64::MAX as f64) as i64)
            }
            _ => None,
        };
        match request_max_rows.or(self.max_rows) {
            Some(m) => Some(from_ratio.map_or(m, |r| r.min(m))),
            None => from_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Engine, RequestDetails, RequestId, RiskLevel, RunRecord};
    use airlock_sql::StatementClass;

    pub(crate) fn sample(status: RequestStatus, need: u32) -> ChangeRequest {
        ChangeRequest {
            id: RequestId(1),
            status,
            details: RequestDetails {
                requester: "alice".into(),
                team: "payments".into(),
                groups: vec!["developers".into()],
                application_name: "psql".into(),
                client_addr: "127.0.0.1:5000".into(),
                target: "orders-prod".into(),
                family: Some("orders".into()),
                environment: "prod".into(),
                engine: Engine::Postgres,
                statement: "UPDATE t SET x = 1".into(),
                params: Vec::new(),
                fingerprint: "UPDATE t SET x = ?".into(),
                class: StatementClass::Write,
                statement_count: 1,
                transactional: true,
                tables: vec!["t".into()],
                summary: "updates t".into(),
                ai_summary: None,
                risk: RiskLevel::High,
                risk_reasons: vec!["UPDATE without WHERE".into()],
                row_estimate: Some(10.0),
                earlier_runs: Vec::new(),
                reason: Some("fix".into()),
                description: None,
                rollback_sql: Some("UPDATE t SET x = 0".into()),
                max_rows: None,
                approvals_required: need,
                approver_groups: vec!["dba".into()],
                run_window: Duration::from_secs(60),
                created_at: Timestamp(1000),
                expires_at: Timestamp(10_000),
            },
            approved_at: None,
            run_deadline: None,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            run: RunRecord::default(),
            rollback_run: RunRecord::default(),
            updated_at: Timestamp(1000),
        }
    }

    fn approval(who: &str) -> Approval {
        Approval {
            request_id: RequestId(1),
            approver: who.into(),
            at: Timestamp(2000),
            via: "cli".into(),
            comment: None,
        }
    }

    #[test]
    fn approvals_count_distinct_approvers() {
        let r = sample(RequestStatus::Pending, 2);
        let bob = Actor::new("bob", ["dba"]);
        let carol = Actor::new("carol", ["dba", "developers"]);
        assert_eq!(
            check_approval(&r, &bob, &[], Timestamp(2000)),
            Ok(ApprovalOutcome::Recorded { have: 1, need: 2 })
        );
        assert_eq!(
            check_approval(&r, &carol, &[approval("bob")], Timestamp(2000)),
            Ok(ApprovalOutcome::Approved { have: 2 })
        );
        assert_eq!(
            check_approval(&r, &bob, &[approval("bob")], Timestamp(2000)),
            Err(Refusal::AlreadyApproved)
        );
    }

    #[test]
    fn refusals() {
        let r = sample(RequestStatus::Pending, 1);
        let alice_dba = Actor::new("alice", ["dba"]);
        assert_eq!(
            check_approval(&r, &alice_dba, &[], Timestamp(2000)),
            Err(Refusal::OwnRequest)
        );
        let dave = Actor::new("dave", ["developers"]);
        let e = check_approval(&r, &dave, &[], Timestamp(2000)).expect_err("not approver");
        assert_eq!(e.code(), "not_approver");
        assert!(e.to_string().contains("\"dba\""), "{e}");
        let bob = Actor::new("bob", ["dba"]);
        assert_eq!(
            check_approval(&r, &bob, &[], Timestamp(10_000)),
            Err(Refusal::Expired {
                at: Timestamp(10_000)
            })
        );
        let done = sample(RequestStatus::Approved, 1);
        let e = check_approval(&done, &bob, &[], Timestamp(2000)).expect_err("decided");
        assert_eq!(
            e.to_string(),
            "the request is approved, so it cannot be approved"
        );
        assert_eq!(
            check_rejection(&r, &alice_dba, Timestamp(2000)),
            Err(Refusal::OwnRequest)
        );
        assert_eq!(check_rejection(&r, &bob, Timestamp(2000)), Ok(()));
    }

    #[test]
    fn run_rollback_cancel_need_requester_or_admin() {
        let policy = ApprovalPolicy {
            admin_groups: vec!["dba".into()],
            ..ApprovalPolicy::default()
        };
        let mut r = sample(RequestStatus::Approved, 1);
        r.run_deadline = Some(Timestamp(5000));
        let alice = Actor::new("alice", ["developers"]);
        let bob = Actor::new("bob", ["dba"]);
        let eve = Actor::new("eve", ["developers"]);
        assert_eq!(policy.may_run(&alice, &r, Timestamp(4000)), Ok(()));
        assert_eq!(policy.may_run(&bob, &r, Timestamp(4000)), Ok(()));
        assert_eq!(
            policy
                .may_run(&eve, &r, Timestamp(4000))
                .map_err(|e| e.code()),
            Err("not_requester_or_admin")
        );
        assert_eq!(
            policy.may_run(&alice, &r, Timestamp(5000)),
            Err(Refusal::Expired {
                at: Timestamp(5000)
            })
        );
        assert_eq!(policy.may_cancel(&alice, &r), Ok(()));
        assert!(policy.may_rollback(&alice, &r).is_err());
        r.status = RequestStatus::Executed;
        assert_eq!(policy.may_rollback(&alice, &r), Ok(()));
        assert!(policy.may_cancel(&alice, &r).is_err());
        assert!(policy.may_run(&alice, &r, Timestamp(0)).is_err());
        r.details.rollback_sql = None;
        assert_eq!(policy.may_rollback(&alice, &r), Err(Refusal::NoRollback));
    }

    #[test]
    fn row_guard() {
        let p = ApprovalPolicy {
            max_rows_ratio: Some(2.0),
            ..ApprovalPolicy::default()
        };
        assert_eq!(p.row_guard(Some(5), Some(100.0)), Some(5));
        assert_eq!(p.row_guard(None, Some(10.0)), Some(20));
        assert_eq!(p.row_guard(Some(50), Some(10.0)), Some(20));
        assert_eq!(p.row_guard(None, None), None);
        assert_eq!(
            ApprovalPolicy::default().row_guard(Some(3), Some(1.0)),
            Some(3)
        );
    }
}
