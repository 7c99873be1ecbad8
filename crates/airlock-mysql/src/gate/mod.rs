//! The gate of a protected MySQL target: every command is judged before it
//! reaches the upstream. Reads pass (SPEC §3); anything else becomes a
//! change request and the client gets an ERR packet with the request number
//! (SPEC §4), or a refusal saying why — never a blind acknowledgement.
//!
//! Here the session state and the judging of each command; holding,
//! waiting and running in `hold`, the proxy's own commands in `commands`,
//! `SHOW WARNINGS` in `warnings`, character-set tracking in `charset`.

mod charset;
mod commands;
mod hold;
mod warnings;

use charset::charset_after;
pub use hold::request_details;
use warnings::{show_warnings, Warning};

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
    /// The session's default schema (the target's database, or one of its
    /// `mysql_schemas`): changes are held only on the target's database.
    schema: String,
    /// The schema a COM_INIT_DB on its way switches to.
    pending_schema: Option<String>,
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

impl ProtectedGate {
    /// A gate for a session that starts under `modes`.
    pub fn new(
        target: Target,
        user: User,
        client_addr: String,
        program: String,
        modes: SqlModes,
    ) -> Self {
        let schema = target.upstream.database.clone();
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
            schema,
            pending_schema: None,
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
                    if db != &self.target.upstream.database
                        && db != &self.target.name
                        && !self.target.mysql_schemas.contains(db)
                    {
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
        self.hold(rest, &verdict, &settings).await
    }
}

/// An ERR 50002: the statement needs more input (`airlock: {why}`).
fn needs_input(why: &str) -> Verdict {
    Verdict::Refuse(ErrPacket::new(
        NEEDS_INPUT_CODE,
        NEEDS_INPUT_STATE,
        format!("airlock: {why}"),
    ))
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
            self.pending_utf8 = None;
            self.pending_schema = None;
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
                // Its payload is laid out unlike COM_STMT_EXECUTE's: judged by
                // the statement alone, never decoded as an execute.
                com::STMT_BULK_EXECUTE => match self.statements.passes(payload) {
                    true => Verdict::Forward,
                    false => refuse("held: a bulk execute of a prepared change cannot become a request; send one statement per change"),
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
                com::INIT_DB => {
                    let v = init_db(&self.target, &payload[1..]);
                    if !matches!(v, Verdict::Refuse(_)) {
                        self.pending_schema = Some(schema_named(&self.target, &payload[1..]));
                    }
                    v
                }
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
        self.schema = self.target.upstream.database.clone();
        self.modes = self.initial_modes;
        self.reset_setup.clone()
    }

    fn answered(&mut self, _payload: &[u8], response: &Response) {
        if let Some(next) = self.pending_utf8.take().filter(|_| !response.failed) {
            self.utf8 = next;
        }
        if let Some(next) = self.pending_schema.take().filter(|_| !response.failed) {
            self.schema = next;
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
                Effect::Use(db) => self.schema = schema_named(&self.target, db.as_bytes()),
                Effect::None => {}
            }
        }
    }
}

/// The schema a `USE`/COM_INIT_DB of `name` lands on (the target's name
/// means its database).
fn schema_named(target: &Target, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if name == target.name {
        target.upstream.database.clone()
    } else {
        name.into_owned()
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
        self.hold(&text, &verdict, &settings).await
    }
}
