//! The gate of a protected MySQL target: every command is judged before it
//! reaches the upstream. Reads pass (SPEC §3); anything else becomes a
//! change request and the client gets an ERR packet with the request number
//! (SPEC §4), or a refusal saying why — never a blind acknowledgement.

use crate::messages::ErrPacket;
use crate::relay::{plain_verdict, Gate, Verdict, NOT_SUPPORTED, UNKNOWN_COMMAND};
use crate::response::{com, Response};
use crate::session::init_db;
use airlock_core::request::{Engine, RequestDetails, RiskLevel};
use airlock_core::workflow::{Held, Workflow};
use airlock_core::{BoxFuture, Target, User};
use airlock_sql::mysql::{classify_mysql, fingerprint_mysql, Effect, MysqlVerdict, PreparedNames};
use airlock_sql::mysql_lexer::SqlModes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Error number of a statement held for approval (the range MySQL leaves
/// to third parties), SQLSTATE `AL001`.
pub const HELD_CODE: u16 = 50001;
/// SQLSTATE of a held statement.
pub const HELD_STATE: &str = "AL001";
/// Error number of a statement the proxy refuses outright.
pub const REFUSED_CODE: u16 = 50003;
/// SQLSTATE of a refusal.
pub const REFUSED_STATE: &str = "AL003";
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
    /// The session's lexing modes.
    pub modes: SqlModes,
    statements: HashMap<u32, bool>,
    names: Names,
    pending_prepare: Option<bool>,
    pending_effects: Vec<Effect>,
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
            modes,
            statements: HashMap::new(),
            names: Names(HashMap::new()),
            pending_prepare: None,
            pending_effects: Vec::new(),
        }
    }

    async fn query(&mut self, payload: &[u8]) -> Verdict {
        let Ok(sql) = std::str::from_utf8(&payload[1..]) else {
            return refuse(
                "the statement is not valid UTF-8; airlock judges only what it can read",
            );
        };
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
            return Verdict::Forward;
        }
        self.hold(sql, &verdict).await
    }

    async fn hold(&mut self, sql: &str, verdict: &MysqlVerdict) -> Verdict {
        let Some(workflow) = &self.workflow else {
            return held_without_request(verdict);
        };
        let details = request_details(
            &self.user,
            &self.target,
            &self.client_addr,
            &self.program,
            sql,
            verdict,
            self.modes,
        );
        match workflow.hold(details).await {
            Ok(Held::Created(r)) => {
                info!(request = r.id.0, user = %self.user.name, target = %self.target.name, "mysql change request created");
                let link = self
                    .public_url
                    .as_deref()
                    .map(|u| format!(" {}/requests/{}", u.trim_end_matches('/'), r.id.0))
                    .unwrap_or_default();
                Verdict::Refuse(ErrPacket::new(
                    HELD_CODE,
                    HELD_STATE,
                    format!(
                        "airlock: held for approval as request #{} on protected target '{}'{link}; nothing was run ({}). Re-send the same statement after approval.",
                        r.id.0,
                        self.target.name,
                        verdict.reasons().join("; ")
                    ),
                ))
            }
            Ok(Held::StillPending(r)) => Verdict::Refuse(ErrPacket::new(
                HELD_CODE,
                HELD_STATE,
                format!("airlock: request #{} for this statement is still pending approval; nothing was run and no new request was made", r.id.0),
            )),
            Ok(Held::Approved(r)) => Verdict::Refuse(ErrPacket::new(
                REFUSED_CODE,
                REFUSED_STATE,
                format!("airlock: request #{} is approved, but running approved changes on MySQL targets is not available yet; nothing was run", r.id.0),
            )),
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

impl Gate for ProtectedGate {
    fn judge<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            self.pending_effects.clear();
            self.pending_prepare = None;
            let Some(&kind) = payload.first() else {
                return refuse("an empty command");
            };
            match kind {
                com::QUERY => self.query(payload).await,
                com::STMT_PREPARE => {
                    let Ok(sql) = std::str::from_utf8(&payload[1..]) else {
                        return refuse("the statement is not valid UTF-8");
                    };
                    let v = classify_mysql(sql, self.modes, &self.names);
                    // Preparing runs nothing; executing is judged by this.
                    self.pending_prepare = Some(v.passes() && v.statements.len() == 1);
                    Verdict::Forward
                }
                com::STMT_EXECUTE | com::STMT_BULK_EXECUTE => {
                    let id = payload.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    match id.and_then(|id| self.statements.get(&id)) {
                        Some(true) => Verdict::Forward,
                        _ => refuse("held: this prepared statement is not provably read-only, and prepared changes cannot become requests yet; send it as a text query to create a change request"),
                    }
                }
                com::STMT_CLOSE => {
                    if let Some(b) = payload.get(1..5) {
                        self.statements.remove(&u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    }
                    Verdict::Forward
                }
                com::STMT_SEND_LONG_DATA | com::STMT_RESET | com::STMT_FETCH | com::FIELD_LIST
                | com::PING | com::STATISTICS | com::SET_OPTION => Verdict::Forward,
                com::INIT_DB => init_db(&self.target, &payload[1..]),
                com::CHANGE_USER | com::RESET_CONNECTION => Verdict::Refuse(ErrPacket::new(
                    NOT_SUPPORTED,
                    "42000",
                    "airlock: changing user or resetting a session on a protected target is not supported yet; reconnect instead",
                )),
                _ => match plain_verdict(payload) {
                    Some(v) => v,
                    None => Verdict::Refuse(ErrPacket::new(
                        UNKNOWN_COMMAND,
                        "08S01",
                        format!("airlock: command {kind:#04x} is not relayed on a protected target"),
                    )),
                },
            }
        })
    }

    fn answered(&mut self, _payload: &[u8], response: &Response) {
        if let (Some(passes), Some((id, _, _))) = (self.pending_prepare.take(), response.prepared) {
            if !response.failed {
                self.statements.insert(id, passes);
            }
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

fn risk_of(level: airlock_sql::RiskLevel) -> RiskLevel {
    match level {
        airlock_sql::RiskLevel::Low => RiskLevel::Low,
        airlock_sql::RiskLevel::Medium => RiskLevel::Medium,
        airlock_sql::RiskLevel::High => RiskLevel::High,
        airlock_sql::RiskLevel::Critical => RiskLevel::Critical,
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
        transactional: true,
        tables: verdict.tables(),
        summary: airlock_sql::summarize(sql),
        ai_summary: None,
        risk: risk_of(risk.level),
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
