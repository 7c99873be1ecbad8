//! The workflow service: what the wire crates, the HTTP API, the CLI and
//! Slack call to hold a statement as a change request, decide on it, run it
//! once, roll it back and settle it after a crash. It applies the state
//! machine and the approval rules, writes through the [`Store`] port, and
//! audits every accepted and refused action.

use crate::audit::{kinds, NewAuditEvent};
use crate::ports::{EarlierRunsQuery, StatusChange, Store, StoreError, TransitionObserver};
use crate::request::approval::{
    check_approval, check_rejection, Actor, ApprovalOutcome, ApprovalPolicy, Refusal,
};
use crate::request::state::{transition, Event, Settlement, TransitionError};
use crate::request::{
    Approval, ChangeRequest, EarlierRun, Execution, RequestDetails, RequestFilter, RequestId,
    RequestPatch, RequestStatus, RiskLevel, RunRecord, UpstreamSession,
};
use crate::time::{Clock, Timestamp};
use airlock_sql::StatementClass;
use serde_json::json;
use std::sync::Arc;

/// Actor name of the proxy itself in audit events (expiry, crash recovery).
pub const SYSTEM_ACTOR: &str = "airlock";

/// How many earlier runs a new request carries.
pub const EARLIER_RUNS_LIMIT: u32 = 10;

/// Attempts to hold a statement whose open request keeps changing under it.
const MAX_HOLD_ATTEMPTS: usize = 3;

/// Supplies the current approval policies (the config; swapped on reload).
pub trait PolicySource: Send + Sync {
    /// The resolved policy for a class of statement on a target; `None` for an unknown target.
    fn policy(&self, target: &str, class: StatementClass) -> Option<ApprovalPolicy>;
    /// The environments below `environment` in `family`, lowest first.
    fn lower_environments(&self, family: &str, environment: &str) -> Vec<String>;
}

/// Why a workflow action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// No such request.
    #[error("request {0} not found")]
    NotFound(RequestId),
    /// The target has no policy (not in the config).
    #[error("unknown target {0:?}")]
    UnknownTarget(String),
    /// The rules refuse it (audited).
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The state machine refuses it.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This process has no executor for the request's engine.
    #[error("this airlock process cannot run changes on {} targets", .0.as_str())]
    NoExecutor(crate::request::Engine),
}

/// What holding a statement led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// A new pending request.
    Created(ChangeRequest),
    /// The same statement already waits for approval: no duplicate was made.
    StillPending(ChangeRequest),
    /// The same statement was approved: the caller may run it now (with
    /// [`Workflow::start_run`]), using the text and parameters stored in it.
    Approved(ChangeRequest),
}

/// The result of running a change (or its rollback) upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Rows affected (or that would have been, when the row guard tripped).
    pub rows_affected: Option<i64>,
    /// Command tag.
    pub command_tag: Option<String>,
    /// Duration upstream.
    pub duration_ms: i64,
    /// Error; `None` means it committed.
    pub error: Option<String>,
}

/// The workflow service.
#[derive(Clone)]
pub struct Workflow {
    store: Arc<dyn Store>,
    policies: Arc<dyn PolicySource>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn TransitionObserver>>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow").finish_non_exhaustive()
    }
}

fn refusal_payload(action: &str, refusal: &Refusal) -> serde_json::Value {
    json!({ "action": action, "refusal": refusal.code(), "message": refusal.to_string() })
}

impl Workflow {
    /// Builds the service.
    pub fn new(
        store: Arc<dyn Store>,
        policies: Arc<dyn PolicySource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Workflow {
            store,
            policies,
            clock,
            observer: None,
        }
    }

    /// Tells `observer` of every status change from now on.
    pub fn with_observer(mut self, observer: Arc<dyn TransitionObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, request: &ChangeRequest, from: RequestStatus) {
        if let Some(o) = &self.observer {
            o.transition(request, from, self.now());
        }
    }

    /// The store behind it.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time of its clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn policy_for(
        &self,
        target: &str,
        class: StatementClass,
    ) -> Result<ApprovalPolicy, WorkflowError> {
        self.policies
            .policy(target, class)
            .ok_or_else(|| WorkflowError::UnknownTarget(target.to_string()))
    }

    async fn load(&self, id: RequestId) -> Result<ChangeRequest, WorkflowError> {
        self.store
            .get_request(id)
            .await?
            .ok_or(WorkflowError::NotFound(id))
    }

    async fn audit_refusal(
        &self,
        kind: &str,
        actor: &str,
        id: Option<RequestId>,
        action: &str,
        refusal: Refusal,
    ) -> WorkflowError {
        let event = NewAuditEvent::new(
            self.now(),
            actor,
            kind,
            id,
            refusal_payload(action, &refusal),
        );
        match self.store.append_audit(&event).await {
            Ok(_) => WorkflowError::Refused(refusal),
            Err(e) => WorkflowError::Store(e),
        }
    }

    /// A refusal from a rule check on `request`: an overdue request is moved
    /// to `expired` on the way (best effort), then the refusal is audited.
    async fn refuse_checked(
        &self,
        request: &ChangeRequest,
        actor: &str,
        kind: &str,
        action: &str,
        refusal: Refusal,
        now: Timestamp,
    ) -> WorkflowError {
        if matches!(refusal, Refusal::Expired { .. }) {
            if let Err(e) = self.expire_if_overdue(request, now).await {
                return e;
            }
        }
        self.audit_refusal(kind, actor, Some(request.id), action, refusal)
            .await
    }

    /// A refusal because the request is no longer in the status we read:
    /// re-reads it to say what it is now.
    async fn lost_race(&self, id: RequestId, action: &str) -> WorkflowError {
        match self.store.get_request(id).await {
            Ok(Some(now)) => WorkflowError::Refused(Refusal::WrongStatus {
                status: now.status,
                action: action.to_string(),
            }),
            Ok(None) => WorkflowError::NotFound(id),
            Err(e) => WorkflowError::Store(e),
        }
    }

    /// Moves an overdue open request to `expired` (best effort; a lost race is fine).
    async fn expire_if_overdue(
        &self,
        request: &ChangeRequest,
        now: Timestamp,
    ) -> Result<bool, WorkflowError> {
        if !request.is_overdue(now) {
            return Ok(false);
        }
        let to = transition(request.status, Event::Expire)?;
        let change = StatusChange {
            from: request.status,
            to,
            patch: RequestPatch {
                decided_by: Some(SYSTEM_ACTOR.to_string()),
                decided_at: Some(now),
                decision_reason: Some(expiry_reason(request.status).to_string()),
                ..RequestPatch::default()
            },
            event: NewAuditEvent::transition(
                now,
                SYSTEM_ACTOR,
                request.id,
                request.status,
                to,
                json!({}),
            ),
        };
        Ok(self.store.transition(request.id, &change).await?)
    }

    /// Holds a statement: finds an open request for exactly the same
    /// statement (SPEC §4.3) or creates one. A new request gets the approval
    /// rules of its target and class frozen into it, its creation time from
    /// the clock, and — when the caller left them empty — the earlier runs of
    /// its fingerprint on the family's lower environments (a request with
    /// lower environments and no successful earlier run gets a risk reason).
    pub async fn hold(&self, details: RequestDetails) -> Result<Held, WorkflowError> {
        self.hold_estimated(details, |_| std::future::ready(None))
            .await
    }

    /// [`Workflow::hold`] with the planner's row estimate asked of
    /// `estimate` only for a request that is really about to be created:
    /// after the duplicate check (a re-send while pending opens no
    /// connection to production) and after the reason check.
    pub async fn hold_estimated<F, Fut>(
        &self,
        mut details: RequestDetails,
        estimate: F,
    ) -> Result<Held, WorkflowError>
    where
        F: FnOnce(&RequestDetails) -> Fut,
        Fut: std::future::Future<Output = Option<f64>>,
    {
        let now = self.now();
        let policy = self.policy_for(&details.target, details.class)?;
        if let Some(open) = self.store.find_open_exact(&details.exact_match()).await? {
            if let Some(held) = self.resent(&details, open, now).await? {
                return Ok(held);
            }
        }
        if details.transactional {
            if let Some(statement) = airlock_sql::pg_view::transaction_control(&details.statement) {
                let requester = details.requester.clone();
                let refusal = Refusal::TransactionControl { statement };
                return Err(self
                    .audit_refusal(kinds::STATEMENT_HELD, &requester, None, "hold", refusal)
                    .await);
            }
        }
        if policy.require_reason
            && details
                .reason
                .as_deref()
                .is_none_or(|r| r.trim().is_empty())
        {
            let requester = details.requester.clone();
            let refusal = Refusal::ReasonRequired {
                target: details.target.clone(),
            };
            return Err(self
                .audit_refusal(kinds::STATEMENT_HELD, &requester, None, "hold", refusal)
                .await);
        }
        if details.row_estimate.is_none() {
            details.row_estimate = estimate(&details).await;
        }
        details.created_at = now;
        details.apply_policy(&policy);
        if let Some(family) = details.family.clone() {
            let lower = self
                .policies
                .lower_environments(&family, &details.environment);
            if details.earlier_runs.is_empty() && !lower.is_empty() {
                details.earlier_runs = self
                    .store
                    .earlier_runs(&EarlierRunsQuery {
                        family,
                        fingerprint: details.fingerprint.clone(),
                        environments: lower.clone(),
                        limit: EARLIER_RUNS_LIMIT,
                    })
                    .await?;
            }
            if !lower.is_empty() && !details.earlier_runs.iter().any(|r| r.success) {
                details.risk_reasons.push(format!(
                    "never ran successfully in a lower environment ({})",
                    lower.join(", ")
                ));
                details.risk = details.risk.max(RiskLevel::Medium);
            }
        }
        // The store keeps one open request per statement: a concurrent hold
        // of the same statement (another session, another replica) that
        // created it first is this hold's request too.
        for _ in 0..MAX_HOLD_ATTEMPTS {
            match self.store.create_request(&details).await {
                Ok(created) => return Ok(Held::Created(created)),
                Err(StoreError::AlreadyOpen(id)) => {
                    let Some(open) = self.store.get_request(id).await? else {
                        continue;
                    };
                    if let Some(held) = self.resent(&details, open, now).await? {
                        return Ok(held);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Backend(format!(
            "the statement's open request kept changing; {MAX_HOLD_ATTEMPTS} attempts to hold it failed"
        ))
        .into())
    }

    /// The hold of a statement that already has the open request `open`:
    /// still pending (the re-send is audited) or approved; `None` when it
    /// is no longer open (it expired just now, or was decided meanwhile).
    async fn resent(
        &self,
        details: &RequestDetails,
        open: ChangeRequest,
        now: Timestamp,
    ) -> Result<Option<Held>, WorkflowError> {
        if self.expire_if_overdue(&open, now).await? {
            return Ok(None);
        }
        match open.status {
            RequestStatus::Pending => {
                let event = NewAuditEvent::new(
                    now,
                    &details.requester,
                    kinds::STATEMENT_HELD,
                    Some(open.id),
                    json!({ "resent": true, "status": "pending" }),
                );
                self.store.append_audit(&event).await?;
                Ok(Some(Held::StillPending(open)))
            }
            RequestStatus::Approved => Ok(Some(Held::Approved(open))),
            _ => Ok(None),
        }
    }

    /// Earlier runs of a fingerprint below `environment` in `family`.
    pub async fn earlier_runs(
        &self,
        family: &str,
        environment: &str,
        fingerprint: &str,
    ) -> Result<Vec<EarlierRun>, WorkflowError> {
        let environments = self.policies.lower_environments(family, environment);
        if environments.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .earlier_runs(&EarlierRunsQuery {
                family: family.to_string(),
                fingerprint: fingerprint.to_string(),
                environments,
                limit: EARLIER_RUNS_LIMIT,
            })
            .await?)
    }

    /// A reviewer approves. Refusals (own request, not an approver, twice,
    /// not pending, expired) are audited as `decision.refused`.
    pub async fn approve(
        &self,
        id: RequestId,
        approver: &Actor,
        via: &str,
        comment: Option<String>,
    ) -> Result<ApprovalOutcome, WorkflowError> {
        let now = self.now();
        let request = self.load(id).await?;
        let existing = self.store.approvals(id).await?;
        if let Err(refusal) = check_approval(&request, approver, &existing, now) {
            return Err(self
                .refuse_checked(
                    &request,
                    &approver.name,
                    kinds::DECISION_REFUSED,
                    "approve",
                    refusal,
                    now,
                )
                .await);
        }
        let approval = Approval {
            request_id: id,
            approver: approver.name.clone(),
            at: now,
            via: via.to_string(),
            comment,
        };
        match self.store.record_approval(&approval).await? {
            Ok(outcome @ ApprovalOutcome::Approved { .. }) => {
                if self.observer.is_some() {
                    if let Ok(Some(approved)) = self.store.get_request(id).await {
                        self.observe(&approved, RequestStatus::Pending);
                    }
                }
                Ok(outcome)
            }
            Ok(outcome) => Ok(outcome),
            Err(refusal) => Err(self
                .audit_refusal(
                    kinds::DECISION_REFUSED,
                    &approver.name,
                    Some(id),
                    "approve",
                    refusal,
                )
                .await),
        }
    }

    /// Checks, before asking a reviewer for a reason, that they may reject
    /// the request now; a refusal is audited like a refused rejection.
    pub async fn may_reject(
        &self,
        id: RequestId,
        reviewer: &Actor,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let request = self.load(id).await?;
        if let Err(refusal) = check_rejection(&request, reviewer, now) {
            return Err(self
                .refuse_checked(
                    &request,
                    &reviewer.name,
                    kinds::DECISION_REFUSED,
                    "reject",
                    refusal,
                    now,
                )
                .await);
        }
        Ok(request)
    }

    /// Audits a chat interaction refused before any decision (forged,
    /// stale or replayed payload, unknown user…). `actor` names who it
    /// claims to come from, e.g. `slack:U123`.
    pub async fn refuse_interaction(
        &self,
        actor: &str,
        request: Option<RequestId>,
        why: &str,
        detail: serde_json::Value,
    ) -> Result<(), WorkflowError> {
        let mut payload = json!({ "why": why });
        if let (Some(obj), serde_json::Value::Object(extra)) = (payload.as_object_mut(), detail) {
            obj.extend(extra);
        }
        let event = NewAuditEvent::new(
            self.now(),
            actor,
            kinds::INTERACTION_REFUSED,
            request,
            payload,
        );
        self.store.append_audit(&event).await?;
        Ok(())
    }

    /// The review channel the policy of a request's target and class names, if any.
    pub fn review_channel(&self, request: &ChangeRequest) -> Option<String> {
        self.policies
            .policy(&request.details.target, request.details.class)
            .and_then(|p| p.review_channel)
    }

    /// A reviewer rejects, with a reason shown to the requester.
    pub async fn reject(
        &self,
        id: RequestId,
        reviewer: &Actor,
        reason: &str,
    ) -> Result<ChangeRequest, WorkflowError> {
        let mut request = self.may_reject(id, reviewer).await?;
        let now = self.now();
        let to = transition(request.status, Event::Reject)?;
        let patch = RequestPatch {
            decided_by: Some(reviewer.name.clone()),
            decided_at: Some(now),
            decision_reason: Some(reason.to_string()),
            ..RequestPatch::default()
        };
        let event = NewAuditEvent::transition(
            now,
            &reviewer.name,
            id,
            request.status,
            to,
            json!({ "reason": reason }),
        );
        self.cas(&mut request, to, patch, event, "rejected").await?;
        Ok(request)
    }

    async fn cas(
        &self,
        request: &mut ChangeRequest,
        to: RequestStatus,
        patch: RequestPatch,
        event: NewAuditEvent,
        action: &str,
    ) -> Result<(), WorkflowError> {
        let change = StatusChange {
            from: request.status,
            to,
            patch,
            event,
        };
        if !self.store.transition(request.id, &change).await? {
            return Err(self.lost_race(request.id, action).await);
        }
        request.status = to;
        request.apply(&change.patch);
        request.updated_at = change.event.at;
        self.observe(request, change.from);
        Ok(())
    }

    /// The requester or an admin withdraws a pending or approved request.
    pub async fn cancel(
        &self,
        id: RequestId,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let mut request = self.load(id).await?;
        let policy = self.policy_for(&request.details.target, request.details.class)?;
        if let Err(refusal) = policy.may_cancel(actor, &request) {
            return Err(self
                .audit_refusal(
                    kinds::ACTION_REFUSED,
                    &actor.name,
                    Some(id),
                    "cancel",
                    refusal,
                )
                .await);
        }
        let to = transition(request.status, Event::Cancel)?;
        let patch = RequestPatch {
            decided_by: Some(actor.name.clone()),
            decided_at: Some(now),
            decision_reason: note.map(str::to_string),
            ..RequestPatch::default()
        };
        let event = NewAuditEvent::transition(
            now,
            &actor.name,
            id,
            request.status,
            to,
            json!({ "note": note }),
        );
        self.cas(&mut request, to, patch, event, "cancelled")
            .await?;
        Ok(request)
    }

    /// Starts the run of an approved request: approved → running, which only
    /// one caller can win. The caller then runs the stored statement and
    /// parameters, records the upstream session with [`Workflow::record_upstream`]
    /// before COMMIT, and ends with [`Workflow::finish_run`].
    pub async fn start_run(
        &self,
        id: RequestId,
        actor: &Actor,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let mut request = self.load(id).await?;
        let policy = self.policy_for(&request.details.target, request.details.class)?;
        if let Err(refusal) = policy.may_run(actor, &request, now) {
            return Err(self
                .refuse_checked(
                    &request,
                    &actor.name,
                    kinds::ACTION_REFUSED,
                    "run",
                    refusal,
                    now,
                )
                .await);
        }
        let to = transition(request.status, Event::StartRun)?;
        let patch = RequestPatch {
            run: RunRecord {
                by: Some(actor.name.clone()),
                started_at: Some(now),
                ..RunRecord::default()
            },
            ..RequestPatch::default()
        };
        let event = NewAuditEvent::transition(now, &actor.name, id, request.status, to, json!({}));
        self.cas(&mut request, to, patch, event, "run").await?;
        Ok(request)
    }

    /// Records the upstream session (backend and transaction id) of the
    /// running change (or rollback), before the change runs.
    pub async fn record_upstream(
        &self,
        id: RequestId,
        during: RequestStatus,
        session: &UpstreamSession,
    ) -> Result<(), WorkflowError> {
        if self.store.set_upstream_session(id, during, session).await? {
            Ok(())
        } else {
            Err(self.lost_race(id, "recorded").await)
        }
    }

    /// Ends a run: running → executed (no error) or failed. Also records the
    /// execution for later "earlier runs" lookups.
    pub async fn finish_run(
        &self,
        id: RequestId,
        result: &RunResult,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let mut request = self.load(id).await?;
        let ok = result.error.is_none();
        let to = transition(request.status, Event::Finish { ok })?;
        let actor = request
            .run
            .by
            .clone()
            .unwrap_or_else(|| SYSTEM_ACTOR.to_string());
        let patch = RequestPatch {
            run: run_fields(now, result),
            ..RequestPatch::default()
        };
        let event =
            NewAuditEvent::transition(now, &actor, id, request.status, to, result_payload(result));
        self.cas(&mut request, to, patch, event, "finished").await?;
        self.store
            .record_execution(&execution_of(&request, &actor, now, result))
            .await?;
        Ok(request)
    }

    /// Starts the approved rollback of an executed request: executed → rolling_back.
    pub async fn start_rollback(
        &self,
        id: RequestId,
        actor: &Actor,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let mut request = self.load(id).await?;
        let policy = self.policy_for(&request.details.target, request.details.class)?;
        if let Err(refusal) = policy.may_rollback(actor, &request) {
            return Err(self
                .audit_refusal(
                    kinds::ACTION_REFUSED,
                    &actor.name,
                    Some(id),
                    "rollback",
                    refusal,
                )
                .await);
        }
        let to = transition(request.status, Event::StartRollback)?;
        let patch = RequestPatch {
            rollback_run: RunRecord {
                by: Some(actor.name.clone()),
                started_at: Some(now),
                ..RunRecord::default()
            },
            ..RequestPatch::default()
        };
        let event = NewAuditEvent::transition(now, &actor.name, id, request.status, to, json!({}));
        self.cas(&mut request, to, patch, event, "rolled back")
            .await?;
        Ok(request)
    }

    /// Ends a rollback: rolling_back → rolled_back or rollback_failed.
    pub async fn finish_rollback(
        &self,
        id: RequestId,
        result: &RunResult,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let mut request = self.load(id).await?;
        let to = transition(
            request.status,
            Event::FinishRollback {
                ok: result.error.is_none(),
            },
        )?;
        let actor = request
            .rollback_run
            .by
            .clone()
            .unwrap_or_else(|| SYSTEM_ACTOR.to_string());
        let patch = RequestPatch {
            rollback_run: run_fields(now, result),
            ..RequestPatch::default()
        };
        let event =
            NewAuditEvent::transition(now, &actor, id, request.status, to, result_payload(result));
        self.cas(&mut request, to, patch, event, "finished").await?;
        Ok(request)
    }

    /// Settles a request left `running` or `rolling_back` by a run that lost
    /// its connection or its process: the caller asked the database
    /// (`pg_xact_status` of the recorded xid) and passes its verdict. A run becomes executed / failed / unknown; a
    /// rollback becomes rolled_back, or rollback_failed when it aborted or
    /// the outcome is unknown. Never re-runs anything.
    pub async fn recover(
        &self,
        id: RequestId,
        verdict: Settlement,
        note: &str,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let mut request = self.load(id).await?;
        let error = match verdict {
            Settlement::Executed => None,
            Settlement::Failed => Some(format!("not committed (settled from the target: {note})")),
            Settlement::Unknown => Some(format!("outcome unknown: {note}")),
        };
        let (to, patch) = match request.status {
            RequestStatus::Running => (
                transition(request.status, Event::Settle(verdict))?,
                RequestPatch {
                    run: RunRecord {
                        finished_at: Some(now),
                        error,
                        ..RunRecord::default()
                    },
                    ..RequestPatch::default()
                },
            ),
            RequestStatus::RollingBack => (
                transition(
                    request.status,
                    Event::FinishRollback {
                        ok: verdict == Settlement::Executed,
                    },
                )?,
                RequestPatch {
                    rollback_run: RunRecord {
                        finished_at: Some(now),
                        error,
                        ..RunRecord::default()
                    },
                    ..RequestPatch::default()
                },
            ),
            other => {
                return Err(WorkflowError::Refused(Refusal::WrongStatus {
                    status: other,
                    action: "recovered".to_string(),
                }))
            }
        };
        let event = NewAuditEvent::transition(
            now,
            SYSTEM_ACTOR,
            id,
            request.status,
            to,
            json!({ "recovery": true, "note": note }),
        );
        self.cas(&mut request, to, patch, event, "recovered")
            .await?;
        Ok(request)
    }

    /// An admin settles a request left `unknown` after checking the database by hand.
    pub async fn resolve_unknown(
        &self,
        id: RequestId,
        actor: &Actor,
        committed: bool,
        note: &str,
    ) -> Result<ChangeRequest, WorkflowError> {
        let now = self.now();
        let mut request = self.load(id).await?;
        let policy = self.policy_for(&request.details.target, request.details.class)?;
        if let Err(refusal) = policy.may_settle(actor, &request) {
            return Err(self
                .audit_refusal(
                    kinds::ACTION_REFUSED,
                    &actor.name,
                    Some(id),
                    "settle",
                    refusal,
                )
                .await);
        }
        let verdict = if committed {
            Settlement::Executed
        } else {
            Settlement::Failed
        };
        let to = transition(request.status, Event::Settle(verdict))?;
        let patch = RequestPatch {
            decision_reason: Some(note.to_string()),
            ..RequestPatch::default()
        };
        let event = NewAuditEvent::transition(
            now,
            &actor.name,
            id,
            request.status,
            to,
            json!({ "note": note }),
        );
        self.cas(&mut request, to, patch, event, "settled").await?;
        Ok(request)
    }

    /// Expires overdue requests (run this periodically, on any replica).
    pub async fn expire_due(&self) -> Result<Vec<RequestId>, WorkflowError> {
        let done = self.store.expire_due(self.now()).await?;
        if self.observer.is_some() {
            for (id, from) in &done {
                if let Ok(Some(expired)) = self.store.get_request(*id).await {
                    self.observe(&expired, *from);
                }
            }
        }
        Ok(done.into_iter().map(|(id, _)| id).collect())
    }

    /// Records a non-read statement that ran (any target), for earlier-run lookups.
    pub async fn record_execution(&self, execution: &Execution) -> Result<(), WorkflowError> {
        Ok(self.store.record_execution(execution).await?)
    }

    /// One request.
    pub async fn get(&self, id: RequestId) -> Result<ChangeRequest, WorkflowError> {
        self.load(id).await
    }

    /// Requests matching a filter, newest first.
    pub async fn list(&self, filter: &RequestFilter) -> Result<Vec<ChangeRequest>, WorkflowError> {
        Ok(self.store.list_requests(filter).await?)
    }

    /// The approvals of a request.
    pub async fn approvals(&self, id: RequestId) -> Result<Vec<Approval>, WorkflowError> {
        Ok(self.store.approvals(id).await?)
    }
}

/// The decision reason written when a request expires.
pub fn expiry_reason(from: RequestStatus) -> &'static str {
    if from == RequestStatus::Approved {
        "approved but not run within the run window"
    } else {
        "not approved before it expired"
    }
}

fn run_fields(now: Timestamp, result: &RunResult) -> RunRecord {
    RunRecord {
        finished_at: Some(now),
        rows_affected: result.rows_affected,
        command_tag: result.command_tag.clone(),
        duration_ms: Some(result.duration_ms),
        error: result.error.clone(),
        ..RunRecord::default()
    }
}

fn result_payload(result: &RunResult) -> serde_json::Value {
    json!({
        "rows_affected": result.rows_affected,
        "command_tag": result.command_tag,
        "duration_ms": result.duration_ms,
        "error": result.error,
    })
}

fn execution_of(
    request: &ChangeRequest,
    user: &str,
    at: Timestamp,
    result: &RunResult,
) -> Execution {
    let d = &request.details;
    Execution {
        request_id: Some(request.id),
        family: d.family.clone(),
        target: d.target.clone(),
        environment: d.environment.clone(),
        fingerprint: d.fingerprint.clone(),
        user: user.to_string(),
        class: d.class,
        rows: result.rows_affected,
        duration_ms: result.duration_ms,
        success: result.error.is_none(),
        error: result.error.clone(),
        at,
    }
}
