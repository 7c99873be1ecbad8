//! Holding a change: the request, the held error and its notes, waiting
//! for a decision (`airlock.wait`), and running an approved request.

use super::*;

impl ProtectedGate {
    pub(super) async fn hold(
        &mut self,
        sql: &str,
        verdict: &MysqlVerdict,
        settings: &Directives,
    ) -> Verdict {
        let problems = settings.problems();
        if !problems.is_empty() {
            return needs_input(&format!("{}; nothing was run", problems.join("; ")));
        }
        let Some(workflow) = self.workflow.clone() else {
            return held_without_request(verdict);
        };
        // The approved change runs on the target's database: held while
        // the session is on another schema, its names would mean other tables.
        if self.schema != self.target.upstream.database {
            return Verdict::Refuse(ErrPacket::new(
                NEEDS_INPUT_CODE,
                NEEDS_INPUT_STATE,
                format!(
                    "airlock: this session is on schema '{}'; changes on target '{}' are held only on its database '{}' (USE {} first); nothing was run",
                    self.schema, self.target.name, self.target.upstream.database, self.target.upstream.database
                ),
            ));
        }
        // The approved change runs on a new session under the server's
        // sql_mode: held under another, its text would be read otherwise.
        if self.modes != self.server_modes {
            return Verdict::Refuse(ErrPacket::new(
                NEEDS_INPUT_CODE,
                NEEDS_INPUT_STATE,
                "airlock: this session's sql_mode reads quotes or backslashes differently from the server's default (ANSI_QUOTES / NO_BACKSLASH_ESCAPES), under which an approved change runs; set sql_mode back to the default, or send the change from a new session; nothing was run",
            ));
        }
        let wait = match airlock_core::waiting::wait_limit(settings.wait.as_deref()) {
            Ok(w) => w,
            Err(bad) => {
                return Verdict::Refuse(ErrPacket::new(
                    NEEDS_INPUT_CODE,
                    NEEDS_INPUT_STATE,
                    format!("airlock: airlock.wait must be a duration such as '10min' or 'off', not {bad:?}; nothing was run"),
                ))
            }
        };
        let mut details = request_details(
            &self.user,
            &self.target,
            &self.client_addr,
            &self.program,
            sql,
            verdict,
            self.modes,
        );
        details.apply_directives(settings);
        // Listening for a KILL before the request exists: none is missed.
        let cancel = self.interrupts.cancel.clone();
        let cancelled = cancel.notified();
        tokio::pin!(cancelled);
        cancelled.as_mut().enable();
        let estimate = airlock_sql::mysql::estimate_query_mysql(sql, self.modes);
        let (target, modes) = (self.target.clone(), self.modes);
        let estimated = |_: &RequestDetails| async move {
            let query = estimate?;
            crate::estimate::estimate_rows(&target, &query, modes, Duration::from_secs(2)).await
        };
        match workflow.hold_estimated(details, estimated).await {
            Ok(Held::Created(r) | Held::StillPending(r)) if wait.is_some() => {
                info!(request = r.id.0, user = %self.user.name, target = %self.target.name, "mysql change request held; the client waits");
                self.wait_for_decision(&workflow, r.id, wait.unwrap_or_default(), cancelled)
                    .await
            }
            Ok(Held::Created(r)) => {
                info!(request = r.id.0, user = %self.user.name, target = %self.target.name, "mysql change request created");
                let link = self
                    .public_url
                    .as_deref()
                    .map(|u| format!(" {}/requests/{}", u.trim_end_matches('/'), r.id.0))
                    .unwrap_or_default();
                let earlier: Vec<String> = r
                    .details
                    .earlier_runs
                    .iter()
                    .map(|e| {
                        format!(
                            "{} ({}) by {}: {} row(s), {}",
                            e.target,
                            e.environment,
                            e.who,
                            e.rows.map_or("?".to_string(), |n| n.to_string()),
                            if e.success { "succeeded" } else { "failed" }
                        )
                    })
                    .collect();
                self.notes = held_notes(&r, &link);
                let estimate = r
                    .details
                    .row_estimate
                    .map(|n| format!(" The planner estimates {n:.0} row(s)."))
                    .unwrap_or_default();
                let earlier = if earlier.is_empty() {
                    String::new()
                } else {
                    format!(" Earlier runs: {}.", earlier.join("; "))
                };
                Verdict::Refuse(ErrPacket::new(
                    HELD_CODE,
                    HELD_STATE,
                    format!(
                        "airlock: held for approval as request #{} on protected target '{}'{link}; nothing was run ({}). Summary: {}.{estimate}{earlier} Re-send the same statement after approval, or CALL airlock.run({}).",
                        r.id.0,
                        self.target.name,
                        verdict.reasons().join("; "),
                        r.details.summary.trim_end_matches('.'),
                        r.id.0
                    ),
                ))
            }
            Ok(Held::StillPending(r)) => Verdict::Refuse(ErrPacket::new(
                HELD_CODE,
                HELD_STATE,
                format!("airlock: request #{} for this statement is still pending approval; nothing was run and no new request was made", r.id.0),
            )),
            Ok(Held::Approved(r)) => self.run_approved(r.id).await,
            Err(e) => {
                warn!(error = %e, "holding a mysql statement failed");
                Verdict::Refuse(ErrPacket::new(
                    INTERNAL_CODE,
                    "AL000",
                    format!("airlock could not create the change request ({e}); nothing was run"),
                ))
            }
        }
    }

    /// Blocks until request `id` is decided (then runs it, if approved),
    /// the limit passes, the client's KILL QUERY cancels the request, or the
    /// client goes away (the request is cancelled unless `airlock.on_disconnect
    /// = 'keep'`). MySQL has no message to send meanwhile: the socket's TCP
    /// keepalives keep the idle connection up.
    async fn wait_for_decision(
        &mut self,
        workflow: &Workflow,
        id: airlock_core::RequestId,
        limit: Duration,
        cancelled: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    ) -> Verdict {
        let gone = self.interrupts.gone.clone();
        let timing = WaitTiming {
            limit,
            safety_poll: self.wait_safety_poll,
            tick_every: Duration::from_secs(60),
        };
        let waited = waiting::wait_for_decision(
            workflow,
            id,
            timing,
            cancelled,
            gone.cancelled(),
            |waited| {
                info!(
                    request = id.0,
                    waited_s = waited.as_secs(),
                    "a mysql session still waits for a decision"
                )
            },
        )
        .await;
        let actor = airlock_core::Actor::new(self.user.name.clone(), self.user.groups.clone());
        let cancel_request = |note: &'static str| async move {
            match workflow.cancel(id, &actor, Some(note)).await {
                Ok(_) => format!("request #{} was cancelled", id.0),
                Err(e) => format!("request #{} could not be cancelled: {e}", id.0),
            }
        };
        match waited {
            Waited::Decided(r) => match r.status {
                RequestStatus::Approved => self.run_approved(id).await,
                RequestStatus::Rejected => refuse(&format!(
                    "request #{} was rejected by {}: {}",
                    id.0,
                    r.decided_by.as_deref().unwrap_or("a reviewer"),
                    r.decision_reason.as_deref().unwrap_or("no reason given")
                )),
                other => refuse(&format!("request #{} is {}", id.0, other.as_str())),
            },
            Waited::TimedOut => Verdict::Refuse(ErrPacket::new(
                HELD_CODE,
                HELD_STATE,
                format!(
                    "airlock: no decision on request #{} within {}; it stays pending and nothing was run. Re-send the statement after approval, or CALL airlock.run({}).",
                    id.0,
                    humantime::format_duration(limit),
                    id.0
                ),
            )),
            Waited::Cancelled => {
                let outcome = cancel_request("cancelled by the client (KILL QUERY) while waiting").await;
                Verdict::Refuse(ErrPacket::new(
                    QUERY_INTERRUPTED,
                    "70100",
                    format!("Query execution was interrupted: airlock: {outcome}; nothing was run"),
                ))
            }
            Waited::Gone => {
                if self.settings.keeps_on_disconnect() {
                    info!(request = id.0, "the mysql client went away while waiting; the request stays pending (airlock.on_disconnect = keep)");
                } else {
                    let outcome = cancel_request("the client disconnected while waiting").await;
                    info!(request = id.0, %outcome, "the mysql client went away while waiting");
                }
                refuse("the client went away")
            }
            Waited::Failed(e) => refuse(&format!("waiting on request #{}: {e}", id.0)),
        }
    }

    /// Runs approved request `id` (the stored text, never what was
    /// re-sent) and answers with its result.
    pub(super) async fn run_approved(&self, id: airlock_core::RequestId) -> Verdict {
        let Some(runner) = &self.runner else {
            return refuse("this airlock process cannot run approved changes");
        };
        let actor = airlock_core::Actor::new(self.user.name.clone(), self.user.groups.clone());
        match runner.run_change(id, &actor).await {
            Ok(report) => match report.result.error {
                None => {
                    let ok = crate::messages::OkPacket {
                        affected_rows: report.result.rows_affected.unwrap_or(0).max(0) as u64,
                        status: crate::caps::STATUS_AUTOCOMMIT,
                        info: format!("airlock: request #{} ran and committed on its own", id.0),
                        ..Default::default()
                    };
                    Verdict::Answer(vec![ok.encode_for(0, self.capabilities)])
                }
                Some(e) => Verdict::Refuse(ErrPacket::new(
                    REFUSED_CODE,
                    REFUSED_STATE,
                    format!("airlock: request #{} failed: {e}", id.0),
                )),
            },
            Err(e) => Verdict::Refuse(ErrPacket::new(
                REFUSED_CODE,
                REFUSED_STATE,
                format!(
                    "airlock: request #{} cannot run: {e}; nothing was run",
                    id.0
                ),
            )),
        }
    }
}

/// The context of a held request, one `SHOW WARNINGS` note each (what the
/// Postgres side sends as NOTICEs).
fn held_notes(r: &airlock_core::ChangeRequest, link: &str) -> Vec<String> {
    let d = &r.details;
    let mut notes = vec![format!("airlock: request #{}: {}", r.id.0, d.summary)];
    notes.push(format!(
        "airlock: risk {}{}",
        d.risk.as_str(),
        if d.risk_reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", d.risk_reasons.join("; "))
        }
    ));
    if let Some(n) = d.row_estimate {
        notes.push(format!("airlock: the planner estimates {n:.0} row(s)"));
    }
    for e in &d.earlier_runs {
        notes.push(format!(
            "airlock: earlier run on {} ({}) by {} at {}: {} row(s), {}",
            e.target,
            e.environment,
            e.who,
            e.when,
            e.rows.map_or("?".to_string(), |n| n.to_string()),
            if e.success { "succeeded" } else { "failed" }
        ));
    }
    if d.earlier_runs.is_empty() {
        notes.push("airlock: no earlier run of this statement on a dev or QA target".into());
    }
    if !link.trim().is_empty() {
        notes.push(format!("airlock: review it at{link}"));
    }
    notes
}

/// The change request for a held MySQL text.
pub fn request_details(
    user: &User,
    target: &Target,
    client_addr: &str,
    program: &str,
    sql: &str,
    verdict: &MysqlVerdict,
    modes: SqlModes,
) -> RequestDetails {
    let risk = airlock_sql::assess_risk(sql);
    let mut reasons = risk.reasons;
    reasons.extend(verdict.reasons());
    RequestDetails {
        requester: user.name.clone(),
        team: user.team.clone(),
        groups: user.groups.clone(),
        application_name: program.to_string(),
        client_addr: client_addr.to_string(),
        target: target.name.clone(),
        family: target.family.clone(),
        environment: target.environment.clone(),
        engine: Engine::Mysql,
        statement: sql.to_string(),
        params: Vec::new(),
        fingerprint: fingerprint_mysql(sql, modes),
        class: verdict.class(),
        statement_count: verdict.statements.len().max(1) as u32,
        // DDL, privileges and administration commit on their own in MySQL.
        transactional: !matches!(
            verdict.class(),
            airlock_sql::StatementClass::Ddl
                | airlock_sql::StatementClass::Privilege
                | airlock_sql::StatementClass::Admin
        ),
        tables: verdict.tables(),
        summary: airlock_sql::summarize(sql),
        ai_summary: None,
        risk: risk.level.into(),
        risk_reasons: reasons,
        row_estimate: None,
        earlier_runs: Vec::new(),
        reason: None,
        description: None,
        rollback_sql: None,
        max_rows: None,
        approvals_required: 0,
        approver_groups: Vec::new(),
        run_window: Duration::ZERO,
        created_at: airlock_core::time::Timestamp(0),
        expires_at: airlock_core::time::Timestamp(0),
    }
}
