//! The rules, statement by statement: what passes on a protected MySQL
//! target and why everything else is held.

use super::{functions, Effect, MysqlStatement, PreparedNames};
use crate::class::StatementClass;
use crate::mysql_lexer::{SqlModes, Token, TokenKind};
use sqlparser::ast::{
    ContextModifier, Expr, ObjectName, Query, Set, SetExpr, Statement, TransactionAccessMode,
    TransactionMode, Visit, Visitor,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

use StatementClass as C;

/// Character sets whose multi-byte characters can contain a backslash or
/// quote byte: under them the lexer cannot be exact, so setting one is held.
const SAFE_CHARSETS: &[&str] = &[
    "utf8", "utf8mb3", "utf8mb4", "latin1", "ascii", "binary", "default",
];

/// Session variables whose change is held, with the class it implies.
fn variable_class(name: &str) -> Option<(StatementClass, &'static str)> {
    match name {
        "transaction_read_only" | "tx_read_only" => Some((C::Privilege, "lifts read-only mode")),
        "sql_log_bin"
        | "pseudo_thread_id"
        | "pseudo_slave_mode"
        | "gtid_next"
        | "gtid_seq_no"
        | "gtid_domain_id"
        | "server_id"
        | "insert_id"
        | "last_insert_id"
        | "timestamp"
        | "skip_replication"
        | "foreign_key_checks"
        | "unique_checks"
        | "sql_safe_updates"
        | "wsrep_on"
        | "rand_seed1"
        | "rand_seed2"
        | "old_passwords"
        | "authentication_policy"
        | "session_track_system_variables"
        | "sql_select_limit" => Some((
            C::Privilege,
            "a setting reserved for administrators and replication",
        )),
        "character_set_client" | "character_set_connection" | "collation_connection" | "names" => {
            None
        }
        _ => None,
    }
}

pub(super) fn judge(
    canonical_text: &str,
    text: &str,
    tokens: &[Token],
    words: &[String],
    modes: SqlModes,
    prepared: &dyn PreparedNames,
) -> MysqlStatement {
    let pass = |class| MysqlStatement {
        range: 0..0,
        class,
        reasons: Vec::new(),
        effect: Effect::None,
        tables: Vec::new(),
    };
    let hold = |class, reason: &str| MysqlStatement {
        range: 0..0,
        class,
        reasons: vec![reason.to_string()],
        effect: Effect::None,
        tables: Vec::new(),
    };
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    // Statements sqlparser does not read as MySQL does, judged from tokens.
    match w(0) {
        "PREPARE" => return prepare(text, tokens, modes),
        "EXECUTE" if w(1) == "IMMEDIATE" => {
            return hold(
                C::Unknown,
                "EXECUTE IMMEDIATE runs a statement airlock cannot see",
            )
        }
        "EXECUTE" => {
            let name = w(1).to_ascii_lowercase();
            return match prepared.passes(&name) {
                Some(true) => pass(C::Read),
                Some(false) => hold(
                    C::Write,
                    "EXECUTE of a prepared statement that is not read-only",
                ),
                None => hold(
                    C::Unknown,
                    "EXECUTE of a statement airlock did not see prepared",
                ),
            };
        }
        "DEALLOCATE" | "DROP" if w(1) == "PREPARE" => {
            let mut st = pass(C::Session);
            st.effect = Effect::Deallocate(w(2).to_ascii_lowercase());
            return st;
        }
        "SHOW" => return show(canonical_text, tokens, text),
        "LOCK" if w(1) == "TABLE" || w(1) == "TABLES" => {
            let writes = tokens.iter().any(|t| {
                t.kind == TokenKind::Other
                    && matches!(
                        text[t.start..t.end].to_ascii_uppercase().as_str(),
                        "WRITE" | "LOW_PRIORITY"
                    )
            });
            return if writes {
                hold(C::Admin, "LOCK TABLES … WRITE")
            } else {
                pass(C::Transaction)
            };
        }
        "UNLOCK" => return pass(C::Transaction),
        "HANDLER" => return hold(C::Admin, "HANDLER reads and locks outside SQL"),
        "ANALYZE" => {
            return hold(
                C::Admin,
                "ANALYZE runs or changes statistics (MariaDB's ANALYZE <statement> executes it)",
            )
        }
        "LOAD" => return hold(C::Write, "LOAD DATA / LOAD XML writes rows"),
        "DO" => {
            return hold(
                C::Unknown,
                "DO evaluates expressions for their side effects",
            )
        }
        "XA" => return hold(C::Transaction, "XA transactions"),
        "CALL" => return hold(C::Unknown, "CALL runs a stored procedure"),
        "KILL" => return hold(C::Admin, "KILL"),
        "SET" if w(1) == "STATEMENT" => {
            return hold(
                C::Unknown,
                "SET STATEMENT … FOR runs its statement with other settings",
            )
        }
        "SET" if matches!(w(1), "PASSWORD" | "ROLE" | "DEFAULT") => {
            return hold(C::Privilege, "changes passwords or roles")
        }
        "SET" if w(1) == "GLOBAL" || w(1).starts_with("@@GLOBAL") => {
            return hold(C::Admin, "a global setting")
        }
        "FLUSH" | "RESET" | "PURGE" | "INSTALL" | "UNINSTALL" | "SHUTDOWN" | "RESTART"
        | "CHANGE" | "STOP" | "BINLOG" | "CACHE" | "OPTIMIZE" | "REPAIR" | "CHECK" | "CHECKSUM"
        | "BACKUP" => return hold(C::Admin, "server administration"),
        "START" if w(1) != "TRANSACTION" => return hold(C::Admin, "server administration"),
        "START" => {
            // sqlparser does not read `WITH CONSISTENT SNAPSHOT` (mysqldump).
            let write = tokens.iter().any(|t| {
                t.kind == TokenKind::Other && text[t.start..t.end].eq_ignore_ascii_case("WRITE")
            });
            return if write {
                hold(C::Write, "LOCK TABLES … WRITE takes write locks")
            } else {
                pass(C::Transaction)
            };
        }
        _ => {}
    }
    let parsed = match Parser::parse_sql(&MySqlDialect {}, canonical_text) {
        Ok(p) => p,
        Err(e) => return hold(C::Unknown, &format!("cannot be parsed as MySQL: {e}")),
    };
    let [statement] = parsed.as_slice() else {
        return hold(
            C::Unknown,
            &format!(
                "the parser reads {} statements where the server reads one",
                parsed.len()
            ),
        );
    };
    let mut st = statement_rules(statement);
    st.tables = tables(statement);
    st
}

/// `SHOW …`: read-only by nature; only a `WHERE`/`LIKE` with calls or
/// assignments can do anything else.
fn show(canonical_text: &str, tokens: &[Token], text: &str) -> MysqlStatement {
    let calls = tokens.windows(2).any(|p| {
        p[0].kind == TokenKind::Other
            && p[1].kind == TokenKind::Other
            && (&text[p[1].start..p[1].end] == "("
                || (&text[p[0].start..p[0].end] == ":" && &text[p[1].start..p[1].end] == "="))
    }) || tokens.first().is_some_and(|t| &text[t.start..t.end] == "(");
    let mut st = MysqlStatement {
        range: 0..0,
        class: C::Read,
        reasons: Vec::new(),
        effect: Effect::None,
        tables: Vec::new(),
    };
    if !calls {
        return st;
    }
    // With calls: they must parse and be on the allow-list.
    match Parser::parse_sql(&MySqlDialect {}, canonical_text) {
        Ok(p) if p.len() == 1 => {
            let mut f = Findings::default();
            let _ = p[0].visit(&mut f);
            st.reasons = f.reasons;
            if !st.reasons.is_empty() {
                st.class = C::Unknown;
            }
        }
        _ => {
            st.class = C::Unknown;
            st.reasons
                .push("SHOW … WHERE with function calls that cannot be checked".into());
        }
    }
    st
}

/// `PREPARE name FROM '…'`: the text is judged; `FROM @var` is held.
fn prepare(text: &str, tokens: &[Token], modes: SqlModes) -> MysqlStatement {
    let mut st = MysqlStatement {
        range: 0..0,
        class: C::Unknown,
        reasons: Vec::new(),
        effect: Effect::None,
        tables: Vec::new(),
    };
    let code: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t.kind, TokenKind::LineComment | TokenKind::BlockComment))
        .collect();
    let word = |i: usize| code.get(i).map(|t| &text[t.start..t.end]);
    let name = word(1).map(|n| n.trim_matches('`').to_ascii_lowercase());
    let from = word(2).is_some_and(|w| w.eq_ignore_ascii_case("FROM"));
    let literal = code.get(3).filter(|t| t.kind == TokenKind::String);
    let (Some(name), true, Some(lit), 4) = (name, from, literal, code.len()) else {
        st.reasons
            .push("PREPARE from anything but one string literal".into());
        return st;
    };
    let Some(inner) = unquote(&text[lit.start..lit.end], modes) else {
        st.reasons
            .push("PREPARE of a string airlock cannot read".into());
        return st;
    };
    let verdict = super::classify_mysql(&inner, modes, &());
    let passes = verdict.passes() && verdict.statements.len() == 1;
    st.effect = Effect::Prepare { name, passes };
    st.tables = verdict.tables();
    // Preparing runs nothing; what it prepares decides EXECUTE.
    st.class = C::Session;
    st
}

/// The value of a MySQL string literal.
fn unquote(lit: &str, modes: SqlModes) -> Option<String> {
    let quote = lit.chars().next()?;
    let body = lit.get(1..lit.len().checked_sub(1)?)?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            // A doubled quote.
            chars.next();
            out.push(quote);
        } else if c == '\\' && !modes.no_backslash_escapes {
            let e = chars.next()?;
            if matches!(e, '%' | '_') {
                // `\%` and `\_` keep the backslash (LIKE patterns).
                out.push('\\');
            }
            out.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '0' => '\0',
                'b' => '\u{8}',
                'Z' => '\u{1a}',
                other => other,
            });
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn statement_rules(statement: &Statement) -> MysqlStatement {
    let mut st = MysqlStatement {
        range: 0..0,
        class: C::Read,
        reasons: Vec::new(),
        effect: Effect::None,
        tables: Vec::new(),
    };
    let hold = |st: &mut MysqlStatement, class, reason: String| {
        st.class = st.class.max(class);
        st.reasons.push(reason);
    };
    match statement {
        Statement::Query(q) => query_rules(q, &mut st),
        Statement::Explain {
            analyze,
            statement: inner,
            ..
        } => {
            let mut inner_st = statement_rules(inner);
            if !matches!(**inner, Statement::Query(_)) {
                hold(
                    &mut inner_st,
                    C::Unknown,
                    "EXPLAIN of a statement that is not a read".into(),
                );
            }
            if *analyze && !inner_st.reasons.is_empty() {
                hold(
                    &mut inner_st,
                    C::Unknown,
                    "EXPLAIN ANALYZE runs its statement".into(),
                );
            }
            st = inner_st;
        }
        Statement::ExplainTable { .. } => {}
        Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowCollation { .. }
        | Statement::ShowFunctions { .. } => {
            let mut f = Findings::default();
            let _ = statement.visit(&mut f);
            for r in f.reasons {
                hold(&mut st, C::Unknown, r);
            }
        }
        Statement::Use(u) => {
            st.class = C::Session;
            st.effect = Effect::Use(use_name(&u.to_string()));
        }
        Statement::StartTransaction { modes: tmodes, .. } => {
            st.class = C::Transaction;
            if lifts_read_only(tmodes) {
                hold(
                    &mut st,
                    C::Privilege,
                    "START TRANSACTION READ WRITE lifts read-only mode".into(),
                );
            }
        }
        Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => st.class = C::Transaction,
        Statement::Set(set) => set_rules(set, &mut st),
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => hold(&mut st, C::Write, "changes rows".into()),
        Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::CreateUser(_)
        | Statement::AlterUser(_)
        | Statement::CreateRole(_) => hold(&mut st, C::Privilege, "changes privileges".into()),
        other => {
            let class = if other
                .to_string()
                .to_ascii_uppercase()
                .starts_with(['C', 'A', 'D', 'R', 'T'])
            {
                C::Ddl
            } else {
                C::Unknown
            };
            hold(&mut st, class, "not a read".into());
        }
    }
    st
}

fn use_name(rendered: &str) -> String {
    rendered
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim()
        .trim_matches('`')
        .to_string()
}

fn lifts_read_only(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

fn query_rules(q: &Query, st: &mut MysqlStatement) {
    let mut f = Findings::default();
    let _ = q.visit(&mut f);
    for r in f.reasons {
        st.class = st.class.max(f.class);
        st.reasons.push(r);
    }
}

fn set_rules(set: &Set, st: &mut MysqlStatement) {
    st.class = C::Session;
    let mut assignments: Vec<(Option<&ContextModifier>, &ObjectName, &Expr)> = Vec::new();
    match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => {
            for v in values {
                assignments.push((scope.as_ref(), variable, v));
            }
        }
        Set::MultipleAssignments { assignments: list } => {
            for a in list {
                assignments.push((a.scope.as_ref(), &a.name, &a.value));
            }
        }
        Set::SetTransaction { modes, .. } => {
            if lifts_read_only(modes) {
                st.class = C::Privilege;
                st.reasons
                    .push("SET TRANSACTION READ WRITE lifts read-only mode".into());
            }
            return;
        }
        Set::SetNames { charset_name, .. } => {
            let cs = charset_name.value.to_ascii_lowercase();
            if !SAFE_CHARSETS.contains(&cs.as_str()) {
                st.class = C::Unknown;
                st.reasons.push(format!(
                    "character set {cs} is not one airlock can lex exactly"
                ));
            }
            return;
        }
        Set::SetNamesDefault {} | Set::SetTimeZone { .. } => return,
        _ => {
            st.class = C::Privilege;
            st.reasons.push("changes the role or authorization".into());
            return;
        }
    }
    for (scope, name, value) in assignments {
        let raw = name.to_string();
        let lower = raw.to_ascii_lowercase();
        if matches!(scope, Some(ContextModifier::Global)) || lower.starts_with("@@global.") {
            st.class = st.class.max(C::Admin);
            st.reasons.push(format!("{raw} is a global setting"));
            continue;
        }
        let mut f = Findings::default();
        let _ = value.visit(&mut f);
        st.reasons.extend(f.reasons);
        if lower.starts_with('@') && !lower.starts_with("@@") {
            continue; // A user variable: only its value's calls matter.
        }
        let var = lower
            .trim_start_matches("@@")
            .trim_start_matches("session.")
            .trim_start_matches("local.")
            .to_string();
        if let Some((class, why)) = variable_class(&var) {
            st.class = st.class.max(class);
            st.reasons.push(format!("{var}: {why}"));
            continue;
        }
        match var.as_str() {
            "sql_mode" => match literal_text(value) {
                Some(mode) => st.effect = Effect::SqlModes(SqlModes::from_sql_mode(&mode)),
                None => {
                    st.class = C::Unknown;
                    st.reasons
                        .push("sql_mode set to an expression airlock cannot follow".into());
                }
            },
            "character_set_client" | "character_set_connection" | "collation_connection" => {
                let cs = literal_text(value).unwrap_or_default().to_ascii_lowercase();
                let base = cs.split('_').next().unwrap_or("").to_string();
                if !SAFE_CHARSETS.contains(&base.as_str()) {
                    st.class = C::Unknown;
                    st.reasons.push(format!(
                        "{var} = {cs}: not a character set airlock can lex exactly"
                    ));
                }
            }
            _ => {}
        }
    }
    if !st.reasons.is_empty() && st.class == C::Session {
        st.class = C::Unknown;
    }
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => {
            let s = v.value.to_string();
            Some(s.trim_matches('\'').trim_matches('"').to_string())
        }
        Expr::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

fn tables(statement: &Statement) -> Vec<String> {
    struct Rel(Vec<String>);
    impl Visitor for Rel {
        type Break = ();
        fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
            let name = r.to_string().replace('`', "");
            if !self.0.contains(&name) {
                self.0.push(name);
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Rel(Vec::new());
    let _ = statement.visit(&mut v);
    v.0
}

/// The statement of `canonical_text` if the planner may be asked about
/// it: exactly one INSERT, UPDATE or DELETE in which nothing but tables,
/// columns, literals and read-only built-ins appear — no call, locking
/// read, `INTO` or nested statement that planning could evaluate.
pub(crate) fn plannable(canonical_text: &str) -> Option<Statement> {
    let mut parsed = Parser::parse_sql(&MySqlDialect {}, canonical_text).ok()?;
    if parsed.len() != 1 {
        return None;
    }
    let statement = parsed.pop()?;
    if !matches!(
        statement,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
    ) {
        return None;
    }
    let mut f = Findings {
        top_is_allowed: true,
        ..Findings::default()
    };
    let _ = statement.visit(&mut f);
    f.reasons.is_empty().then_some(statement)
}

/// Everything in a tree that is not read-only.
struct Findings {
    reasons: Vec<String>,
    class: StatementClass,
    /// The tree's own top statement is not "nested" (a DML asked about).
    top_is_allowed: bool,
}

impl Default for Findings {
    fn default() -> Self {
        Self {
            reasons: Vec::new(),
            class: C::Read,
            top_is_allowed: false,
        }
    }
}

impl Visitor for Findings {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if !q.locks.is_empty() {
            self.reasons
                .push("a locking read (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE)".into());
            self.class = self.class.max(C::Write);
        }
        if let SetExpr::Select(s) = q.body.as_ref() {
            if s.into.is_some() {
                self.reasons.push("SELECT … INTO".into());
                self.class = self.class.max(C::Write);
            }
        }
        if !matches!(
            q.body.as_ref(),
            SetExpr::Select(_)
                | SetExpr::SetOperation { .. }
                | SetExpr::Query(_)
                | SetExpr::Values(_)
                | SetExpr::Table(_)
        ) {
            self.reasons
                .push("a query with a data-changing part".into());
            self.class = self.class.max(C::Write);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if std::mem::take(&mut self.top_is_allowed) {
            return ControlFlow::Continue(());
        }
        if !matches!(s, Statement::Query(_)) {
            // Nested statements inside a query (none are reads).
            self.reasons.push("a statement nested in a query".into());
            self.class = self.class.max(C::Unknown);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = e {
            let parts = &f.name.0;
            let name = f.name.to_string();
            if parts.len() != 1 || !functions::is_read_only(&name.replace('`', "")) {
                self.reasons
                    .push(format!("calls {name}(), which is not a read-only built-in"));
                self.class = self.class.max(C::Write);
            }
        }
        ControlFlow::Continue(())
    }
}
