//! The gate of a protected MySQL target: every command is judged before it
//! reaches the upstream. Reads pass (SPEC §3); anything else becomes a
//! change request and the client gets an ERR packet with the request number
//! (SPEC §4), or a refusal saying why — never a blind acknowledgement.

use crate::messages::ErrPacket;
use crate::relay::{plain_verdict, Gate, Verdict, UNKNOWN_COMMAND};
use crate::response::{com, Response};
use crate::session::init_db;
use airlock_core::request::{Engine, RequestDetails};
use airlock_core::waiting::{self, WaitTiming, Waited};
use airlock_core::workflow::{Held, Workflow};
use airlock_core::RequestStatus;
use airlock_core::{BoxFuture, Target, User};
use airlock_sql::mysql::{
    classify_mysql, fingerprint_mysql, leading_directives_mysql, Effect, MysqlVerdict,
    PreparedNames,
};
use airlock_sql::mysql_lexer::{self, SqlModes, TokenKind};
use airlock_sql::{DirectiveKey, Directives, ProxyCommand};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Error number of a statement held for approval (the range MySQL leaves
/// to third parties), SQLSTATE `AL001`.
pub const HELD_CODE: u16 = 50001;
/// SQLSTATE of a held statement.
pub const HELD_STATE: &str = "AL001";
/// Error number of a statement that needs more input (a reason, a valid setting).
pub const NEEDS_INPUT_CODE: u16 = 50002;
/// SQLSTATE of that.
pub const NEEDS_INPUT_STATE: &str = "AL002";
/// Error number of a statement the proxy refuses outright.
pub const REFUSED_CODE: u16 = 50003;
/// SQLSTATE of a refusal.
pub const REFUSED_STATE: &str = "AL003";
/// The server's "Query execution was interrupted" (what a KILL QUERY gives).
pub const QUERY_INTERRUPTED: u16 = 1317;
/// Error number of the proxy's own failure.
pub const INTERNAL_CODE: u16 = 50000;

/// The statements of a session, as the gate knows them.
struct Names(HashMap<String, bool>);

impl PreparedNames for Names {
    fn passes(&self, name: &str) -> Option<bool> {
        self.0.get(name).copied()
    }
}

/// Judges the commands of one session on a protected target.
pub struct ProtectedGate {
    /// The target.
    pub target: Target,
    /// The session's user.
    pub user: User,
    /// Client address.
    pub client_addr: String,
    /// Client program (`program_name` attribute).
    pub program: String,
    /// Where held statements become requests.
    pub workflow: Option<Arc<Workflow>>,
    /// Public base URL for links.
    pub public_url: Option<String>,
    /// Runs approved changes when the requester re-sends them.
    pub runner: Option<crate::executor::MysqlRunner>,
    /// Answers KILL of the user's own sessions.
    pub killer: Option<crate::kill::Killer>,
    /// What ends a wait for a decision (KILL QUERY, the client closing).
    pub interrupts: crate::interrupt::Interrupts,
    /// The safety-net poll of a wait (`server.wait_safety_poll`).
    pub wait_safety_poll: Duration,
    /// The session's capabilities (the shape of the OK packets it gets).
    pub capabilities: u32,
    /// Its MariaDB extended capabilities (the shape of column definitions).
    pub mariadb_capabilities: u32,
    /// What the upstream session is set up with again after a reset.
    pub reset_setup: Vec<String>,
    initial_modes: SqlModes,
    /// The session's lexing modes.
    pub modes: SqlModes,
    /// The lexing modes of the server's global `sql_mode`: what the
    /// executor's session reads an approved change under.
    pub server_modes: SqlModes,
    statements: crate::prepared::Prepared,
    /// The handshake's collation, for text parameters of prepared changes.
    pub client_collation: u8,
    /// The session's text is UTF-8: from the handshake's collation, then
    /// each successful `SET NAMES` and the like (`None`: not known).
    pub utf8: Option<bool>,
    /// What the statement on its way sets it to, once it succeeds.
    pending_utf8: Option<Option<bool>>,
    names: Names,
    /// `SET @airlock_reason = …` and the other session values.
    settings: Directives,
    pending_effects: Vec<Effect>,
    /// What `SHOW WARNINGS` answers after the proxy refused or held the
    /// last statement: the error and the request's context.
    warnings: Vec<Warning>,
    /// Context notes of the request just held, for `warnings`.
    notes: Vec<String>,
}

/// One row of `SHOW WARNINGS`.
struct Warning {
    level: &'static str,
    code: u16,
    message: String,
}

impl ProtectedGate {
    /// A gate for a session that starts under `modes`.
    pub fn new(
        target: Target,
        user: User,
        client_addr: String,
        program: String,
        modes: SqlModes,
    ) -> Self {
        Self {
            target,
            user,
            client_addr,
            program,
            workflow: None,
            public_url: None,
            runner: None,
            killer: None,
            interrupts: Default::default(),
            wait_safety_poll: Duration::from_secs(5),
            capabilities: 0,
            mariadb_capabilities: 0,
            reset_setup: Vec::new(),
            initial_modes: modes,
            modes,
            server_modes: modes,
            statements: Default::default(),
            client_collation: 0,
            utf8: None,
            pending_utf8: None,
            names: Names(HashMap::new()),
            settings: Directives::default(),
            pending_effects: Vec::new(),
            warnings: Vec::new(),
            notes: Vec::new(),
        }
    }

    async fn query(&mut self, payload: &[u8]) -> Verdict {
        let Ok(sql) = std::str::from_utf8(&payload[1..]) else {
            return refuse(
                "the statement is not valid UTF-8; airlock judges only what it can read",
            );
        };
        // The proxy's own commands: exactly one statement as MySQL reads it.
        if mysql_lexer::split(sql, self.modes).is_ok_and(|r| r.len() == 1) {
            if let Some(cmd) = airlock_sql::proxy_command(sql) {
                return self.proxy_command(cmd).await;
            }
        }
        let verdict = classify_mysql(sql, self.modes, &self.names);
        if verdict.passes() {
            let changes_modes = verdict
                .statements
                .iter()
                .any(|s| matches!(s.effect, Effect::SqlModes(_)));
            if changes_modes && verdict.statements.len() > 1 {
                return refuse(
                    "a sql_mode change must be sent on its own, not in a multi-statement packet",
                );
            }
            for s in &verdict.statements {
                if let Effect::Use(db) = &s.effect {
                    if db != &self.target.upstream.database && db != &self.target.name {
                        return Verdict::Refuse(ErrPacket::new(
                            crate::login::DB_ACCESS_DENIED,
                            "42000",
                            format!("airlock: this session is on target '{}'; schema '{db}' needs its own target", self.target.name),
                        ));
                    }
                }
            }
            self.pending_effects = verdict
                .statements
                .iter()
                .map(|s| s.effect.clone())
                .collect();
            self.pending_utf8 = charset_after(sql, self.modes);
            return Verdict::Forward;
        }
        let (given, rest) = leading_directives_mysql(sql, self.modes);
        let mut settings = self.settings.clone();
        for key in DirectiveKey::ALL {
            if let Some(v) = given.get(key) {
                settings.set(key, v.to_string());
            }
        }
        settings.unknown.extend(given.unknown.iter().cloned());
        settings.malformed.extend(given.malformed.iter().cloned());
        let problems = settings.problems();
        if !problems.is_empty() {
            return Verdict::Refuse(ErrPacket::new(
                NEEDS_INPUT_CODE,
                NEEDS_INPUT_STATE,
                format!("airlock: {}; nothing was run", problems.join("; ")),
            ));
        }
        self.hold(rest, &verdict, &settings).await
    }

    async fn hold(&mut self, sql: &str, verdict: &MysqlVerdict, settings: &Directives) -> Verdict {
        let Some(workflow) = self.workflow.clone() else {
            return held_without_request(verdict);
        };
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
        details.reason = settings.reason.clone();
        details.description = settings.description.clone();
        details.rollback_sql = settings.rollback.clone();
        details.max_rows = settings
            .max_rows
            .as_deref()
            .and_then(|v| v.trim().parse().ok());
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
}

impl ProtectedGate {
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
                let keep = self
                    .settings
                    .get(DirectiveKey::OnDisconnect)
                    .and_then(airlock_sql::on_disconnect_keeps)
                    .unwrap_or(false);
                if keep {
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

    /// Answers one of the proxy's own commands (never sent upstream).
    async fn proxy_command(&mut self, cmd: ProxyCommand) -> Verdict {
        let ok = |info: String, caps: u32| {
            Verdict::Answer(vec![crate::messages::OkPacket {
                status: crate::caps::STATUS_AUTOCOMMIT,
                info,
                ..Default::default()
            }
            .encode_for(0, caps)])
        };
        let actor = airlock_core::Actor::new(self.user.name.clone(), self.user.groups.clone());
        match cmd {
            ProxyCommand::Set { key, value } => {
                let mut next = self.settings.clone();
                next.set(key, value);
                let problems = next.problems();
                if !problems.is_empty() {
                    return Verdict::Refuse(ErrPacket::new(
                        NEEDS_INPUT_CODE,
                        NEEDS_INPUT_STATE,
                        format!("airlock: {}", problems.join("; ")),
                    ));
                }
                self.settings = next;
                ok(String::new(), self.capabilities)
            }
            ProxyCommand::Reset(key) => {
                let mut next = Directives::default();
                for k in DirectiveKey::ALL.into_iter().filter(|k| *k != key) {
                    if let Some(v) = self.settings.get(k) {
                        next.set(k, v.to_string());
                    }
                }
                self.settings = next;
                ok(String::new(), self.capabilities)
            }
            ProxyCommand::Show(key) => {
                let v = self.settings.get(key).map(str::to_string);
                Verdict::Answer(crate::resultset::encode(
                    &[&format!("airlock.{}", key.as_str())],
                    &[vec![v]],
                    self.capabilities,
                    self.mariadb_capabilities,
                ))
            }
            ProxyCommand::ShowRequests => {
                let Some(workflow) = &self.workflow else {
                    return refuse("no request store");
                };
                let filter = airlock_core::request::RequestFilter {
                    statuses: vec![
                        airlock_core::RequestStatus::Pending,
                        airlock_core::RequestStatus::Approved,
                    ],
                    requester: Some(self.user.name.clone()),
                    limit: Some(100),
                    ..Default::default()
                };
                match workflow.list(&filter).await {
                    Ok(list) => {
                        let rows: Vec<Vec<Option<String>>> = list
                            .iter()
                            .map(|r| {
                                vec![
                                    Some(r.id.0.to_string()),
                                    Some(r.status.as_str().to_string()),
                                    Some(r.details.target.clone()),
                                    Some(r.details.summary.clone()),
                                ]
                            })
                            .collect();
                        Verdict::Answer(crate::resultset::encode(
                            &["id", "status", "target", "summary"],
                            &rows,
                            self.capabilities,
                            self.mariadb_capabilities,
                        ))
                    }
                    Err(e) => refuse(&format!("listing requests failed: {e}")),
                }
            }
            ProxyCommand::Run(n) => self.run_approved(airlock_core::RequestId(n as i64)).await,
            ProxyCommand::Rollback(n) => {
                let Some(runner) = &self.runner else {
                    return refuse("this airlock process cannot run rollbacks");
                };
                let id = airlock_core::RequestId(n as i64);
                match runner.run_rollback(id, &actor).await {
                    Ok(report) => match report.result.error {
                        None => ok(
                            format!("airlock: the rollback of request #{n} ran"),
                            self.capabilities,
                        ),
                        Some(e) => refuse(&format!("the rollback of request #{n} failed: {e}")),
                    },
                    Err(e) => refuse(&format!("request #{n}: {e}")),
                }
            }
            ProxyCommand::Cancel(n) => {
                let Some(workflow) = &self.workflow else {
                    return refuse("no request store");
                };
                match workflow
                    .cancel(airlock_core::RequestId(n as i64), &actor, None)
                    .await
                {
                    Ok(_) => ok(
                        format!("airlock: request #{n} cancelled"),
                        self.capabilities,
                    ),
                    Err(e) => refuse(&format!("request #{n}: {e}")),
                }
            }
            ProxyCommand::Unknown { name } => Verdict::Refuse(ErrPacket::new(
                NEEDS_INPUT_CODE,
                NEEDS_INPUT_STATE,
                format!("airlock: unknown airlock setting or command {name}"),
            )),
        }
    }

    /// Runs approved request `id` (the stored text, never what was
    /// re-sent) and answers with its result.
    async fn run_approved(&self, id: airlock_core::RequestId) -> Verdict {
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

fn refuse(why: &str) -> Verdict {
    Verdict::Refuse(ErrPacket::new(
        REFUSED_CODE,
        REFUSED_STATE,
        format!("airlock: {why}; nothing was run"),
    ))
}

fn held_without_request(verdict: &MysqlVerdict) -> Verdict {
    Verdict::Refuse(ErrPacket::new(
        HELD_CODE,
        HELD_STATE,
        format!(
            "airlock: held ({}); nothing was run",
            verdict.reasons().join("; ")
        ),
    ))
}

/// What `sql` does to the session's client character set: `None` if it
/// does not touch it, `Some(Some(utf8))` for `SET NAMES x`, `SET CHARACTER
/// SET x`, `SET CHARSET x` or `character_set_client = x` with a plain name,
/// `Some(None)` for anything airlock cannot follow.
fn charset_after(sql: &str, modes: SqlModes) -> Option<Option<bool>> {
    let Ok(tokens) = mysql_lexer::scan(sql, modes) else {
        return Some(None);
    };
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t.kind, TokenKind::LineComment | TokenKind::BlockComment))
        .map(|t| {
            sql[t.start..t.end]
                .trim_matches(|c| c == '\'' || c == '"' || c == '`')
                .to_ascii_lowercase()
        })
        .collect();
    if !words.iter().any(|w| w == "set") {
        return None;
    }
    let named = |i: usize| -> Option<bool> {
        let name = words.get(i)?;
        (name != "default").then_some(matches!(name.as_str(), "utf8" | "utf8mb3" | "utf8mb4"))
    };
    let at = words.iter().position(|w| {
        w == "names" || w == "charset" || w == "character" || w.ends_with("character_set_client")
    })?;
    let name_at = match words[at].as_str() {
        "character" if words.get(at + 1).is_some_and(|w| w == "set") => at + 2,
        "character" => return Some(None),
        w if w.ends_with("character_set_client") => match words.get(at + 1).map(String::as_str) {
            Some("=") | Some(":=") => at + 2,
            _ => return Some(None),
        },
        _ => at + 1,
    };
    // One plain setting, nothing after it but COLLATE or the end.
    let rest_ok = match words.get(name_at + 1).map(String::as_str) {
        None | Some(";") => true,
        Some("collate") => {
            words.len() <= name_at + 3 || words.get(name_at + 3).is_some_and(|w| w == ";")
        }
        _ => false,
    };
    Some(named(name_at).filter(|_| rest_ok))
}

/// `Some(errors_only)` if `payload` is `SHOW WARNINGS` or `SHOW ERRORS`
/// (one statement, any `LIMIT` ignored: the proxy's list is short).
fn show_warnings(payload: &[u8], modes: SqlModes) -> Option<bool> {
    let sql = std::str::from_utf8(payload.get(1..)?).ok()?;
    let tokens = mysql_lexer::scan(sql, modes).ok()?;
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t.kind, TokenKind::LineComment | TokenKind::BlockComment))
        .map(|t| &sql[t.start..t.end])
        .filter(|w| *w != ";");
    if !words.next()?.eq_ignore_ascii_case("SHOW") {
        return None;
    }
    let which = words.next()?;
    let errors_only = if which.eq_ignore_ascii_case("WARNINGS") {
        false
    } else if which.eq_ignore_ascii_case("ERRORS") {
        true
    } else {
        return None;
    };
    match words.next() {
        None => Some(errors_only),
        Some(w) if w.eq_ignore_ascii_case("LIMIT") => Some(errors_only),
        Some(_) => None,
    }
}

impl ProtectedGate {
    /// COM_STMT_EXECUTE: a read is relayed; a change becomes a request for
    /// the text it means (its parameters as literals), held, run on
    /// approval and re-send like any text change.
    async fn execute(&mut self, payload: &[u8]) -> Verdict {
        let utf8 = self.utf8.unwrap_or(false);
        let text = match self.statements.execute(payload, self.modes, utf8) {
            crate::prepared::Execution::Read => return Verdict::Forward,
            crate::prepared::Execution::Refused(why) => {
                return refuse(&format!(
                    "held: this prepared statement is not provably read-only and cannot become a request ({why}); send it as a text query"
                ))
            }
            crate::prepared::Execution::Change(text) => text,
        };
        let verdict = classify_mysql(&text, self.modes, &self.names);
        if verdict.passes() {
            return refuse("held: a prepared statement judged a change reads as a query once its parameters are in; send it as a text query");
        }
        let settings = self.settings.clone();
        let problems = settings.problems();
        if !problems.is_empty() {
            return Verdict::Refuse(ErrPacket::new(
                NEEDS_INPUT_CODE,
                NEEDS_INPUT_STATE,
                format!("airlock: {}; nothing was run", problems.join("; ")),
            ));
        }
        self.hold(&text, &verdict, &settings).await
    }

    /// `SHOW WARNINGS` after the proxy answered the last statement itself:
    /// its error, then the request's context, as the server lists them.
    fn answer_warnings(&self, errors_only: bool) -> Verdict {
        let rows: Vec<Vec<Option<String>>> = self
            .warnings
            .iter()
            .filter(|w| !errors_only || w.level == "Error")
            .map(|w| {
                vec![
                    Some(w.level.to_string()),
                    Some(w.code.to_string()),
                    Some(w.message.clone()),
                ]
            })
            .collect();
        Verdict::Answer(crate::resultset::encode(
            &["Level", "Code", "Message"],
            &rows,
            self.capabilities,
            self.mariadb_capabilities,
        ))
    }
}

impl Gate for ProtectedGate {
    fn judge<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            self.pending_effects.clear();
            self.pending_utf8 = None;
            self.statements.abandon();
            let Some(&kind) = payload.first() else {
                return refuse("an empty command");
            };
            if let (Some(kill), Some(killer)) = (
                crate::kill::of_command(payload, self.modes),
                self.killer.clone(),
            ) {
                return killer.answer(kill, self.capabilities).await;
            }
            match kind {
                com::QUERY => {
                    if let Some(errors_only) = show_warnings(payload, self.modes) {
                        if !self.warnings.is_empty() {
                            return self.answer_warnings(errors_only);
                        }
                    }
                    self.notes.clear();
                    let verdict = self.query(payload).await;
                    self.warnings = match &verdict {
                        Verdict::Refuse(err) => std::iter::once(Warning {
                            level: "Error",
                            code: err.code,
                            message: err.message.clone(),
                        })
                        .chain(self.notes.drain(..).map(|n| Warning {
                            level: "Note",
                            code: err.code,
                            message: n,
                        }))
                        .collect(),
                        _ => Vec::new(),
                    };
                    verdict
                }
                com::STMT_PREPARE => {
                    let Ok(sql) = std::str::from_utf8(&payload[1..]) else {
                        return refuse("the statement is not valid UTF-8");
                    };
                    let v = classify_mysql(sql, self.modes, &self.names);
                    // Preparing runs nothing; executing is judged by this.
                    self.statements
                        .preparing(sql, v.passes() && v.statements.len() == 1);
                    Verdict::Forward
                }
                com::STMT_EXECUTE => self.execute(payload).await,
                // MariaDB's array binding: one statement, many rows of
                // parameters; a change in it is refused, a read relayed.
                com::STMT_BULK_EXECUTE => match self.statements.execute(payload, self.modes, false) {
                    crate::prepared::Execution::Read => Verdict::Forward,
                    _ => refuse("held: a bulk execute of a prepared change cannot become a request; send one statement per change"),
                },
                com::STMT_CLOSE => {
                    self.statements.close(payload);
                    Verdict::Forward
                }
                com::STMT_SEND_LONG_DATA => {
                    self.statements.long_data(payload);
                    Verdict::Forward
                }
                com::STMT_RESET => {
                    self.statements.reset(payload);
                    Verdict::Forward
                }
                com::STMT_FETCH
                | com::FIELD_LIST
                | com::PING
                | com::STATISTICS
                | com::SET_OPTION => Verdict::Forward,
                com::INIT_DB => init_db(&self.target, &payload[1..]),
                // The relay sets the backstop and the label again after it.
                com::RESET_CONNECTION => Verdict::Forward,
                com::CHANGE_USER => Verdict::ChangeUser,
                _ => match plain_verdict(payload) {
                    Some(v) => v,
                    None => Verdict::Refuse(ErrPacket::new(
                        UNKNOWN_COMMAND,
                        "08S01",
                        format!(
                            "airlock: command {kind:#04x} is not relayed on a protected target"
                        ),
                    )),
                },
            }
        })
    }

    fn after_reset(&mut self) -> Vec<String> {
        self.statements.clear();
        self.names.0.clear();
        self.settings = Directives::default();
        self.pending_effects.clear();
        self.utf8 = Some(crate::binary_params::is_utf8_collation(
            self.client_collation,
        ));
        self.modes = self.initial_modes;
        self.reset_setup.clone()
    }

    fn answered(&mut self, _payload: &[u8], response: &Response) {
        if let Some(next) = self.pending_utf8.take().filter(|_| !response.failed) {
            self.utf8 = next;
        }
        if response.failed {
            self.statements.abandon();
        } else {
            self.statements
                .prepared(response.prepared.map(|(id, _, params)| (id, params)));
        }
        if response.failed {
            self.pending_effects.clear();
            return;
        }
        for e in self.pending_effects.drain(..) {
            match e {
                Effect::SqlModes(m) => self.modes = m,
                Effect::Prepare { name, passes } => {
                    self.names.0.insert(name, passes);
                }
                Effect::Deallocate(name) => {
                    self.names.0.remove(&name);
                }
                Effect::Use(_) | Effect::None => {}
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_set_changes_are_followed_or_given_up() {
        let m = SqlModes::default();
        assert_eq!(charset_after("SELECT 1", m), None);
        assert_eq!(charset_after("SET autocommit = 1", m), None);
        assert_eq!(charset_after("SET NAMES utf8mb4", m), Some(Some(true)));
        assert_eq!(
            charset_after("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'", m),
            Some(Some(true))
        );
        assert_eq!(charset_after("SET NAMES latin1", m), Some(Some(false)));
        assert_eq!(charset_after("SET CHARACTER SET utf8", m), Some(Some(true)));
        assert_eq!(
            charset_after("SET character_set_client = utf8mb4", m),
            Some(Some(true))
        );
        assert_eq!(
            charset_after("SET @@session.character_set_client = latin1", m),
            Some(Some(false))
        );
        assert_eq!(charset_after("SET NAMES DEFAULT", m), Some(None));
        assert_eq!(
            charset_after("SET NAMES utf8mb4, character_set_client = latin1", m),
            Some(None)
        );
        assert_eq!(
            charset_after("SET character_set_client = @x", m),
            Some(None)
        );
    }
}
