//! Holding in the session (SPEC §4) on protected targets: a held statement
//! becomes a change request through the workflow service; `SET airlock.*`,
//! `SHOW airlock.*`, `CALL airlock.run/rollback/cancel(N)` are answered by
//! the proxy and never reach the upstream; re-sending an approved statement
//! runs the text and parameters stored in its request, once, on its own
//! connection, and the client gets the real result.

use crate::executor;
use crate::frame::{
    put_command_complete, put_data_row, put_error, put_notice, put_row_description, Report,
};
use crate::gate::Judgement;
use crate::relay::{BoxFuture, Reply, ReplyKind, SessionHooks};
use airlock_core::request::{
    ChangeRequest, Engine, RequestDetails, RequestFilter, RequestId, RequestStatus,
};
use airlock_core::waiting::{self, wait_limit, WaitTiming, Waited};
use airlock_core::workflow::{Held, RunResult, Workflow, WorkflowError};
use airlock_core::{Actor, Config, Target, User};
use airlock_sql::{DirectiveKey, Directives, ProxyCommand};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// SQLSTATE: held for approval (a request exists).
pub const HELD: &str = "AL001";
/// SQLSTATE: the request could not be made as asked (missing reason, bad setting).
pub const NEEDS_INPUT: &str = "AL002";
/// SQLSTATE: an action on a request was refused by the rules.
pub const REFUSED: &str = "AL003";
/// SQLSTATE: airlock itself failed; nothing was run.
pub const INTERNAL: &str = "AL000";

/// Everything the hooks of one protected session need.
pub struct ProtectedHooks {
    /// The workflow service.
    pub workflow: Arc<Workflow>,
    /// The configuration (policies, credentials).
    pub config: Arc<Config>,
    /// The airlock user of the session.
    pub user: User,
    /// The target.
    pub target: Target,
    /// Client address.
    pub client_addr: String,
    /// Client application name.
    pub application_name: String,
    /// Runs approved requests.
    pub runner: crate::runner::ChangeRunner,
    /// `SET airlock.*` values of this session.
    pub settings: Directives,
    /// Refusals for messages that carry no SQL (FunctionCall, unknown Bind...).
    pub refuse: Box<dyn Fn(&Judgement) -> Bytes + Send + Sync>,
    /// Notices sent to the client while it waits for a decision.
    pub notices: tokio::sync::mpsc::Sender<Bytes>,
    /// Woken by the client's CancelRequest.
    pub cancel: Arc<tokio::sync::Notify>,
    /// The audit write of this session's login, which runs off the connect
    /// path; awaited before the session's first workflow action so that the
    /// audit trail shows the login first.
    pub login_audit: Option<tokio::task::JoinHandle<()>>,
    /// The target's catalog: a row estimate is asked of the planner only
    /// for statements it shows reach no user code (and before it is loaded,
    /// never).
    pub catalog: Option<Arc<crate::catalog::CatalogCell>>,
    /// Cancelled when the relay sees the client go away while a hook runs.
    pub client_gone: tokio_util::sync::CancellationToken,
}

fn error_frames(code: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> Bytes {
    let mut out = BytesMut::new();
    put_error(
        &mut out,
        &Report {
            severity: "ERROR",
            code,
            message,
            detail,
            hint,
        },
    );
    out.freeze()
}

fn error_reply(code: &str, message: &str, hint: Option<&str>) -> Reply {
    Reply {
        frames: error_frames(code, message, None, hint),
        kind: ReplyKind::Error,
    }
}

fn success(frames: BytesMut) -> Reply {
    Reply {
        frames: frames.freeze(),
        kind: ReplyKind::Success,
    }
}

/// Builds the change request for `sql` (one statement, or a whole script as
/// one request) held for `user` on `target`: classification, fingerprint,
/// summary, risk, and the `airlock.*` settings given with it. The session and
/// `airlock submit` (the HTTP API) both build requests through this.
pub fn request_details(
    user: &User,
    target: &Target,
    client_addr: &str,
    application_name: &str,
    sql: &str,
    class: airlock_sql::StatementClass,
    settings: &Directives,
) -> RequestDetails {
    let classification = airlock_sql::classify(sql);
    let risk = airlock_sql::assess_risk(sql);
    let fingerprint = airlock_sql::fingerprint(sql)
        .map(|f| f.hash)
        .unwrap_or_else(|| format!("unparsed:{}", sql.trim()));
    RequestDetails {
        requester: user.name.clone(),
        team: user.team.clone(),
        groups: user.groups.clone(),
        application_name: application_name.to_string(),
        client_addr: client_addr.to_string(),
        target: target.name.clone(),
        family: target.family.clone(),
        environment: target.environment.clone(),
        engine: Engine::Postgres,
        statement: sql.to_string(),
        params: Vec::new(),
        fingerprint,
        class,
        statement_count: classification.statement_count as u32,
        transactional: !airlock_sql::needs_own_transaction(sql),
        tables: classification.tables.clone(),
        summary: airlock_sql::summarize(sql),
        ai_summary: None,
        risk: risk.level.into(),
        risk_reasons: risk.reasons,
        row_estimate: None,
        earlier_runs: Vec::new(),
        reason: settings.reason.clone(),
        description: settings.description.clone(),
        rollback_sql: settings.rollback.clone(),
        max_rows: settings.max_rows_value(),
        approvals_required: 0,
        approver_groups: Vec::new(),
        run_window: Duration::ZERO,
        created_at: airlock_core::time::Timestamp(0),
        expires_at: airlock_core::time::Timestamp(0),
    }
}

impl ProtectedHooks {
    /// The session's user with the groups the configuration in force gives
    /// them (a reload that takes away an admin group applies at once).
    fn actor(&self) -> Actor {
        match self.runner.live.current().user(&self.user.name) {
            Some(u) => Actor::new(u.name.clone(), u.groups.clone()),
            None => Actor::new(self.user.name.clone(), self.user.groups.clone()),
        }
    }

    /// A refusal when a reload since the statement started removed the
    /// session's user, access or target (a wait for a decision can outlast
    /// a reload): nothing runs.
    fn revoked(&self) -> Option<Reply> {
        let config = self.runner.live.current();
        airlock_core::standing(&config, &self.user.name, &self.target.name)
            .err()
            .map(|why| error_reply(REFUSED, &format!("{why}; nothing was run"), None))
    }

    fn refusal_reply(&self, e: &WorkflowError) -> Reply {
        match e {
            WorkflowError::Refused(r) => {
                error_reply(REFUSED, &format!("airlock: {r}; nothing was run"), None)
            }
            WorkflowError::NotFound(id) => {
                error_reply(REFUSED, &format!("airlock: request {id} not found"), None)
            }
            other => {
                warn!(error = %other, "workflow failed");
                error_reply(
                    INTERNAL,
                    &format!("airlock: {other}; nothing was run"),
                    None,
                )
            }
        }
    }

    /// Builds the request for a held statement from what the session knows.
    fn details(
        &self,
        sql: &str,
        class: airlock_sql::StatementClass,
        settings: &Directives,
    ) -> RequestDetails {
        request_details(
            &self.user,
            &self.target,
            &self.client_addr,
            &self.application_name,
            sql,
            class,
            settings,
        )
    }

    fn held_notices(&self, r: &ChangeRequest) -> BytesMut {
        let d = &r.details;
        let mut out = BytesMut::new();
        put_notice(
            &mut out,
            &format!(
                "airlock: request #{} on {} ({}) needs {} approval(s) from {}",
                r.id.0,
                d.target,
                d.environment,
                d.approvals_required,
                if d.approver_groups.is_empty() {
                    "the target's groups".to_string()
                } else {
                    d.approver_groups.join(", ")
                }
            ),
        );
        if let Some(url) = &self.config.server.public_url {
            put_notice(
                &mut out,
                &format!(
                    "airlock: request #{} is at {}/requests/{}",
                    r.id.0,
                    url.trim_end_matches('/'),
                    r.id.0
                ),
            );
        }
        put_notice(&mut out, &format!("airlock: summary: {}", d.summary));
        if let Some(rows) = d.row_estimate {
            put_notice(
                &mut out,
                &format!("airlock: planner estimate: about {rows:.0} row(s)"),
            );
        }
        put_notice(
            &mut out,
            &format!(
                "airlock: risk {}{}",
                format!("{:?}", d.risk).to_lowercase(),
                if d.risk_reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.risk_reasons.join("; "))
                }
            ),
        );
        if d.earlier_runs.is_empty() {
            put_notice(
                &mut out,
                "airlock: no earlier run of this statement in a lower environment",
            );
        }
        for run in &d.earlier_runs {
            put_notice(
                &mut out,
                &format!(
                    "airlock: earlier run on {} ({}) by {} at {}: {} row(s), {} ms, {}",
                    run.target,
                    run.environment,
                    run.who,
                    run.when.to_rfc3339(),
                    run.rows.map_or("?".to_string(), |n| n.to_string()),
                    run.duration_ms,
                    if run.success { "succeeded" } else { "failed" }
                ),
            );
        }
        put_notice(
            &mut out,
            &format!(
                "airlock: once approved, send the same statement again or CALL airlock.run({}); it runs on its own connection and commits independently of your transaction. To submit a script as one request, send it as one query (psql -c) or use airlock submit",
                r.id.0
            ),
        );
        out
    }

    /// Holds a statement: a new request, a still-pending one, or the run of an approved one.
    async fn hold(
        &mut self,
        raw_sql: &str,
        class: airlock_sql::StatementClass,
        params: Vec<airlock_core::request::Param>,
    ) -> Reply {
        self.login_audited().await;
        let (directives, sql) = airlock_sql::leading_directives(raw_sql);
        if let Some(bad) = directives.problems().first() {
            return error_reply(
                NEEDS_INPUT,
                &format!("airlock: bad airlock comment at the start of the statement: {bad}; nothing was run"),
                Some("Write it as /* airlock: reason=...; max_rows=100 */ before the statement."),
            );
        }
        let mut settings = self.settings.clone();
        for key in DirectiveKey::ALL {
            if let Some(v) = directives.get(key) {
                settings.set(key, v.to_string());
            }
        }
        let wait = match wait_limit(settings.wait.as_deref()) {
            Ok(w) => w,
            Err(bad) => {
                return error_reply(
                    NEEDS_INPUT,
                    &format!("airlock: airlock.wait must be a duration such as '10min' or 'off', not {bad:?}; nothing was run"),
                    None,
                )
            }
        };
        let mut details = self.details(sql.trim(), class, &settings);
        details.params = params;
        let plans_safely = self
            .catalog
            .as_ref()
            .and_then(|c| c.get())
            .is_some_and(|risks| risks.plans_safely(sql));
        let estimate_with = if details.statement_count == 1
            && class == airlock_sql::StatementClass::Write
            && plans_safely
        {
            self.target.write_credentials.clone().zip(
                self.runner
                    .targets
                    .current()
                    .endpoint(&self.target.name)
                    .cloned(),
            )
        } else {
            None
        };
        let database = self.target.upstream.database.clone();
        let estimate = |d: &airlock_core::request::RequestDetails| {
            let (sql, params) = (d.statement.clone(), d.params.clone());
            async move {
                let (creds, endpoint) = estimate_with?;
                executor::estimate_rows(
                    &endpoint,
                    &creds,
                    &database,
                    &sql,
                    &params,
                    Duration::from_secs(2),
                )
                .await
            }
        };
        match self.workflow.hold_estimated(details, estimate).await {
            Ok(Held::Created(r)) if wait.is_some() => {
                info!(request = r.id.0, user = %self.user.name, target = %self.target.name, "change request created; the client waits");
                let _ = self.notices.try_send(self.held_notices(&r).freeze());
                self.wait_for_decision(r.id, wait.unwrap_or_default()).await
            }
            Ok(Held::StillPending(r)) if wait.is_some() => {
                self.wait_for_decision(r.id, wait.unwrap_or_default()).await
            }
            Ok(Held::Created(r)) => {
                info!(request = r.id.0, user = %self.user.name, target = %self.target.name, "change request created");
                let mut out = self.held_notices(&r);
                put_error(
                    &mut out,
                    &Report {
                        severity: "ERROR",
                        code: HELD,
                        message: &format!(
                            "airlock: held for approval as request #{} on protected target \"{}\"; nothing was run",
                            r.id.0, self.target.name
                        ),
                        detail: Some(&r.details.summary),
                        hint: Some("Re-send the same statement after approval, or CALL airlock.run(N)."),
                    },
                );
                Reply {
                    frames: out.freeze(),
                    kind: ReplyKind::Error,
                }
            }
            Ok(Held::StillPending(r)) => error_reply(
                HELD,
                &format!(
                    "airlock: request #{} for this statement is still pending approval; nothing was run and no new request was made",
                    r.id.0
                ),
                None,
            ),
            Ok(Held::Approved(r)) => self.run(r.id).await,
            Err(WorkflowError::Refused(airlock_core::Refusal::ReasonRequired { target })) => error_reply(
                NEEDS_INPUT,
                &format!("airlock: target \"{target}\" requires a reason for changes; nothing was run"),
                Some("SET airlock.reason = 'why this change is needed'; then send the statement again."),
            ),
            Err(WorkflowError::Refused(
                refusal @ airlock_core::Refusal::TransactionControl { .. },
            )) => error_reply(NEEDS_INPUT, &format!("airlock: {refusal}; nothing was run"), None),
            Err(e) => self.refusal_reply(&e),
        }
    }

    /// Runs an approved request once and answers with its real result.
    async fn run(&mut self, id: RequestId) -> Reply {
        if let Some(refused) = self.revoked() {
            return refused;
        }
        match self.runner.run(id, &self.actor()).await {
            Ok(ran) => self.result_reply(id, "ran", ran.result, ran.outcome),
            Err(e) => self.refusal_reply(&e),
        }
    }

    fn result_reply(
        &self,
        id: RequestId,
        verb: &str,
        result: RunResult,
        outcome: Option<executor::ExecOutcome>,
    ) -> Reply {
        let mut out = BytesMut::new();
        match (&result.error, outcome) {
            (None, Some(o)) => {
                put_notice(
                    &mut out,
                    &format!(
                        "airlock: {verb} request #{} on its own connection; it committed independently of your transaction",
                        id.0
                    ),
                );
                for f in &o.frames {
                    out.extend_from_slice(f);
                }
                success(out)
            }
            (Some(_), Some(o)) if o.frames.iter().any(|f| f.first() == Some(&b'E')) => {
                for f in o.frames.iter().filter(|f| f.first() != Some(&b'E')) {
                    out.extend_from_slice(f);
                }
                if let Some(err) = o.frames.iter().find(|f| f.first() == Some(&b'E')) {
                    out.extend_from_slice(err);
                }
                Reply {
                    frames: out.freeze(),
                    kind: ReplyKind::Error,
                }
            }
            (Some(e), _) => error_reply(
                REFUSED,
                &format!("airlock: request #{} failed: {e}", id.0),
                None,
            ),
            (None, None) => error_reply(INTERNAL, "airlock: no result", None),
        }
    }

    async fn rollback(&mut self, id: RequestId) -> Reply {
        if let Some(refused) = self.revoked() {
            return refused;
        }
        match self.runner.rollback(id, &self.actor()).await {
            Ok(ran) => self.result_reply(id, "rolled back", ran.result, ran.outcome),
            Err(e) => self.refusal_reply(&e),
        }
    }

    /// Blocks until request `id` is decided, the limit passes, or the client
    /// cancels or goes away; sends a NOTICE now and then. Approved: runs it
    /// and answers with the real result.
    async fn wait_for_decision(&mut self, id: RequestId, limit: Duration) -> Reply {
        let _ = self.notices.try_send(notice(&format!(
            "airlock: waiting up to {} for a decision on request #{}; cancel (Ctrl-C) to stop waiting and cancel the request",
            humantime::format_duration(limit),
            id.0
        )));
        let cancel = self.cancel.clone();
        let cancelled = cancel.notified();
        tokio::pin!(cancelled);
        cancelled.as_mut().enable();
        let gone = self.client_gone.clone();
        let notices = self.notices.clone();
        let timing = WaitTiming {
            limit,
            safety_poll: self.config.server.wait_safety_poll,
            tick_every: WAIT_NOTICE_EVERY,
        };
        let waited = waiting::wait_for_decision(
            &self.workflow,
            id,
            timing,
            cancelled,
            gone.cancelled(),
            |waited| {
                let _ = notices.try_send(notice(&format!(
                    "airlock: still waiting for a decision on request #{} ({}s)",
                    id.0,
                    waited.as_secs()
                )));
            },
        )
        .await;
        match waited {
            Waited::Decided(r) => match self.decided(&r).await {
                Some(reply) => reply,
                None => error_reply(HELD, "airlock: the request is still pending", None),
            },
            Waited::TimedOut => error_reply(
                HELD,
                &format!(
                    "airlock: no decision on request #{} within {}; it stays pending and nothing was run",
                    id.0,
                    humantime::format_duration(limit)
                ),
                Some("Re-send the statement after approval, or CALL airlock.run(N)."),
            ),
            Waited::Cancelled => {
                self.cancel_waiting(id, "cancelled by the client while waiting")
                    .await
            }
            Waited::Gone => self.client_went_away(id).await,
            Waited::Failed(e) => self.refusal_reply(&e),
        }
    }

    /// The answer to a waiting session once request `r` is decided; `None`
    /// while it is pending.
    async fn decided(&mut self, r: &ChangeRequest) -> Option<Reply> {
        match r.status {
            RequestStatus::Pending => None,
            RequestStatus::Approved => Some(self.run(r.id).await),
            RequestStatus::Rejected => Some(error_reply(
                REFUSED,
                &format!(
                    "airlock: request #{} was rejected by {}: {}; nothing was run",
                    r.id.0,
                    r.decided_by.as_deref().unwrap_or("a reviewer"),
                    r.decision_reason.as_deref().unwrap_or("no reason given")
                ),
                None,
            )),
            other => Some(error_reply(
                REFUSED,
                &format!(
                    "airlock: request #{} is {}; nothing was run by this session",
                    r.id.0,
                    other.as_str()
                ),
                r.decision_reason.as_deref(),
            )),
        }
    }

    /// Cancels the request a session waited on (audited) and answers 57014.
    async fn cancel_waiting(&mut self, id: RequestId, note: &str) -> Reply {
        let actor = self.actor();
        let outcome = match self.workflow.cancel(id, &actor, Some(note)).await {
            Ok(_) => format!("request #{} was cancelled", id.0),
            Err(e) => format!("request #{} could not be cancelled: {e}", id.0),
        };
        Reply {
            frames: error_frames(
                "57014",
                "canceling statement due to user request",
                Some(&format!("airlock: {outcome}; nothing was run")),
                None,
            ),
            kind: ReplyKind::Error,
        }
    }

    /// The client of a waiting session disconnected: its request is
    /// cancelled (audited) unless the developer `SET airlock.on_disconnect
    /// = 'keep'`; the answer goes nowhere.
    async fn client_went_away(&mut self, id: RequestId) -> Reply {
        if self.settings.keeps_on_disconnect() {
            info!(
                request = id.0,
                "the client went away while waiting; the request stays pending (airlock.on_disconnect = keep)"
            );
            return error_reply(HELD, "airlock: the client went away", None);
        }
        self.cancel_waiting(id, "the client disconnected while waiting")
            .await
    }

    async fn show_requests(&self) -> Reply {
        let filter = RequestFilter {
            requester: Some(self.user.name.clone()),
            limit: Some(100),
            ..RequestFilter::default()
        };
        match self.workflow.list(&filter).await {
            Ok(list) => {
                let mut out = BytesMut::new();
                put_row_description(
                    &mut out,
                    &["id", "status", "target", "created_at", "summary"],
                );
                let mut n = 0;
                for r in list.iter().filter(|r| !r.status.is_final()) {
                    let id = r.id.0.to_string();
                    let created = r.details.created_at.to_rfc3339();
                    put_data_row(
                        &mut out,
                        &[
                            Some(&id),
                            Some(r.status.as_str()),
                            Some(&r.details.target),
                            Some(&created),
                            Some(&r.details.summary),
                        ],
                    );
                    n += 1;
                }
                put_command_complete(&mut out, &format!("SELECT {n}"));
                success(out)
            }
            Err(e) => self.refusal_reply(&e),
        }
    }

    /// Waits for the login's audit event (once).
    async fn login_audited(&mut self) {
        if let Some(handle) = self.login_audit.take() {
            let _ = handle.await;
        }
    }

    async fn command(&mut self, cmd: ProxyCommand) -> Reply {
        self.login_audited().await;
        match cmd {
            ProxyCommand::Set { key, value } => {
                if key == DirectiveKey::MaxRows && value.trim().parse::<i64>().is_err() {
                    return error_reply(NEEDS_INPUT, &format!("airlock: max_rows must be a number, not {value:?}"), None);
                }
                if key == DirectiveKey::OnDisconnect && airlock_sql::on_disconnect_keeps(&value).is_none() {
                    return error_reply(NEEDS_INPUT, &format!("airlock: on_disconnect must be 'cancel' or 'keep', not {value:?}"), None);
                }
                self.settings.set(key, value);
                let mut out = BytesMut::new();
                put_command_complete(&mut out, "SET");
                success(out)
            }
            ProxyCommand::Reset(key) => {
                let mut cleared = Directives::default();
                for k in DirectiveKey::ALL.into_iter().filter(|k| *k != key) {
                    if let Some(v) = self.settings.get(k) {
                        cleared.set(k, v.to_string());
                    }
                }
                self.settings = cleared;
                let mut out = BytesMut::new();
                put_command_complete(&mut out, "RESET");
                success(out)
            }
            ProxyCommand::Show(key) => {
                let mut out = BytesMut::new();
                let name = format!("airlock.{}", key.as_str());
                put_row_description(&mut out, &[&name]);
                put_data_row(&mut out, &[Some(self.settings.get(key).unwrap_or(""))]);
                put_command_complete(&mut out, "SHOW");
                success(out)
            }
            ProxyCommand::ShowRequests => self.show_requests().await,
            ProxyCommand::Run(n) => self.run(RequestId(n as i64)).await,
            ProxyCommand::Rollback(n) => self.rollback(RequestId(n as i64)).await,
            ProxyCommand::Cancel(n) => {
                let actor = self.actor();
                match self.workflow.cancel(RequestId(n as i64), &actor, None).await {
                    Ok(r) => {
                        let mut out = BytesMut::new();
                        put_notice(&mut out, &format!("airlock: request #{} cancelled", r.id.0));
                        put_command_complete(&mut out, "CALL");
                        success(out)
                    }
                    Err(e) => self.refusal_reply(&e),
                }
            }
            ProxyCommand::Unknown { name } => error_reply(
                NEEDS_INPUT,
                &format!("airlock: unknown airlock setting or procedure {name:?}"),
                Some("Settings: airlock.reason, airlock.description, airlock.rollback, airlock.wait, airlock.max_rows, airlock.on_disconnect; procedures: airlock.run(N), airlock.rollback(N), airlock.cancel(N)."),
            ),
        }
    }
}

impl SessionHooks for ProtectedHooks {
    fn held_bound<'a>(
        &'a mut self,
        judgement: &'a Judgement,
        params: Vec<airlock_core::request::Param>,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            match judgement {
                Judgement::Hold { sql, class, .. } if !sql.trim().is_empty() => {
                    self.hold(sql, *class, params).await
                }
                other => self.held(other).await,
            }
        })
    }

    fn intercept<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Option<Reply>> {
        Box::pin(async move {
            let cmd = airlock_sql::proxy_command(sql)?;
            Some(self.command(cmd).await)
        })
    }

    fn held<'a>(&'a mut self, judgement: &'a Judgement) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            match judgement {
                Judgement::Hold { sql, class, .. } if !sql.trim().is_empty() => {
                    self.hold(sql, *class, Vec::new()).await
                }
                other => Reply {
                    frames: (self.refuse)(other),
                    kind: ReplyKind::Error,
                },
            }
        })
    }
}

/// How often a waiting session is told it still waits.
const WAIT_NOTICE_EVERY: Duration = Duration::from_secs(10);

fn notice(message: &str) -> Bytes {
    let mut out = BytesMut::new();
    put_notice(&mut out, message);
    out.freeze()
}

/// Frames of a refusal that creates no request.
pub fn plain_refusal(message: &str, detail: Option<&str>) -> Bytes {
    error_frames(HELD, message, detail, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_frames_carry_the_held_sqlstate() {
        let f = plain_refusal("held", Some("why"));
        assert_eq!(crate::frame::error_field(&f, b'C'), Some(&b"AL001"[..]));
    }
}
