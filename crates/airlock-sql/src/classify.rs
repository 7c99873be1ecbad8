//! Classification of parsed statements, and of whole SQL strings.

use sqlparser::ast::{
    CopySource, CopyTarget, DeclareType, DescribeAlias, LockTableMode, Reset, Set, Statement,
    TransactionAccessMode, TransactionMode, UtilityOption,
};

use crate::class::{Classification, StatementClass};
use crate::fallback;
use crate::ident::{ident_name, object_name_string};
use crate::keywords::statement_class;
use crate::parse::parse_sql;
use crate::settings::{check_setting, literal_text, SettingValue};
use crate::walk::{walk_exprs, walk_query, walk_statement, Finding, WalkOut};

/// The analysis of one statement.
#[derive(Debug)]
pub(crate) struct Verdict {
    /// Class of the statement kind.
    pub class: StatementClass,
    /// Reasons to hold it (empty when it may pass) and the tables it touches.
    pub out: WalkOut,
    /// Names it defines with `PREPARE … AS <read>`.
    pub prepares: Vec<String>,
    /// Names it runs with `EXECUTE`.
    pub executes: Vec<String>,
    /// Names it releases with `DEALLOCATE` (`*` for all).
    pub deallocates: Vec<String>,
}

impl Verdict {
    pub(crate) fn new(class: StatementClass) -> Self {
        Verdict {
            class,
            out: WalkOut::default(),
            prepares: Vec::new(),
            executes: Vec::new(),
            deallocates: Vec::new(),
        }
    }

    /// A verdict that holds with one reason.
    pub(crate) fn held(class: StatementClass, reason: String) -> Self {
        let mut v = Verdict::new(class);
        v.hold(class, reason);
        v
    }

    pub(crate) fn hold(&mut self, class: StatementClass, reason: String) {
        self.out.push(Finding {
            class,
            reason,
            call: None,
        });
    }

    /// Keeps an inner statement's finding, its reason prefixed with `context`.
    fn hold_inner(&mut self, f: Finding, context: &str) {
        self.out.push(Finding {
            reason: format!("{context}: {}", f.reason),
            ..f
        });
    }

    /// Whether every reason to hold is a call of a function off the
    /// allow-list (that a target may trust).
    pub(crate) fn held_only_for_calls(&self) -> bool {
        !self.out.findings.is_empty() && self.out.findings.iter().all(|f| f.call.is_some())
    }

    pub(crate) fn read_only(&self) -> bool {
        self.out.findings.is_empty()
    }

    /// The class reported: the kind's class if it passes, else the most
    /// significant class among the reasons to hold it.
    pub(crate) fn final_class(&self) -> StatementClass {
        if self.read_only() {
            return self.class;
        }
        self.out
            .findings
            .iter()
            .map(|f| f.class)
            .reduce(StatementClass::max)
            .unwrap_or(self.class)
    }
}

/// Classify without caching: the `sqlparser` analysis, held wherever
/// Postgres's own parser disagrees with it (see [`crate::pg_view`]).
pub fn classify(sql: &str) -> Classification {
    let mut c = match parse_sql(sql) {
        Ok(stmts) => combine(stmts.iter().map(analyze).collect()),
        Err(e) => fallback::classify_unparsed(sql, &e),
    };
    crate::pg_view::cross_check(sql, &mut c);
    c
}

/// Combine per-statement verdicts into the result for the whole string.
pub(crate) fn combine(verdicts: Vec<Verdict>) -> Classification {
    let mut c = Classification::empty();
    c.statement_count = verdicts.len();
    c.held_only_for_calls = true;
    let read_only = verdicts.iter().all(Verdict::read_only);
    c.read_only = read_only;
    let many = verdicts.len() > 1;
    let mut class: Option<StatementClass> = None;
    for (i, v) in verdicts.into_iter().enumerate() {
        if read_only || !v.read_only() {
            let fc = v.final_class();
            class = Some(class.map_or(fc, |c| c.max(fc)));
        }
        if !v.held_only_for_calls() && !v.read_only() {
            c.held_only_for_calls = false;
        }
        for f in &v.out.findings {
            if let Some(call) = &f.call {
                if !c.calls.contains(call) {
                    c.calls.push(call.clone());
                }
            }
            let reason = if many {
                format!("statement {}: {}", i + 1, f.reason)
            } else {
                f.reason.clone()
            };
            c.reasons.push(reason);
        }
        for t in v.out.tables {
            if !c.tables.contains(&t) {
                c.tables.push(t);
            }
        }
        c.prepares.extend(v.prepares);
        c.executes.extend(v.executes);
        c.deallocates.extend(v.deallocates);
    }
    c.held_only_for_calls &= !read_only;
    if !read_only && !c.held_only_for_calls {
        c.prepares.clear();
    }
    c.class = class.unwrap_or(StatementClass::Read);
    c
}

/// Whether EXPLAIN options ask to run the statement (`ANALYZE`, `ANALYZE true`…).
/// Anything but an explicit false value counts as analyzing (fail closed).
fn options_analyze(options: &Option<Vec<UtilityOption>>) -> bool {
    let Some(options) = options else { return false };
    options.iter().any(|o| {
        if !o.name.value.eq_ignore_ascii_case("analyze")
            && !o.name.value.eq_ignore_ascii_case("analyse")
        {
            return false;
        }
        match &o.arg {
            None => true,
            Some(arg) => !matches!(
                literal_text(arg).map(|s| s.to_ascii_lowercase()).as_deref(),
                Some("false" | "off" | "0" | "no" | "f" | "n")
            ),
        }
    })
}

fn has_read_write(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

fn check_set(v: &mut Verdict, name: &str, value: &SettingValue) {
    if let Some((class, reason)) = check_setting(name, value) {
        v.hold(class, reason);
    } else if *value == SettingValue::Unknown {
        // Postgres only accepts literals and bare words in SET.
        v.hold(
            StatementClass::Unknown,
            format!("SET {name} to something other than a literal"),
        );
    }
}

/// Analyze one parsed statement.
pub(crate) fn analyze(st: &Statement) -> Verdict {
    use StatementClass::*;
    match st {
        Statement::Query(q) => {
            let mut v = Verdict::new(Read);
            walk_query(q, &mut v.out);
            v
        }
        Statement::Explain {
            describe_alias: DescribeAlias::Explain,
            analyze: analyze_flag,
            options,
            statement,
            ..
        } => {
            let inner = analyze(statement);
            if *analyze_flag || options_analyze(options) {
                let mut v = Verdict::new(inner.class);
                for f in inner.out.findings {
                    v.hold_inner(f, "EXPLAIN ANALYZE runs it");
                }
                v.out.tables = inner.out.tables;
                v.executes = inner.executes;
                v
            } else {
                // Plain EXPLAIN does not run the statement, but planning it
                // evaluates STABLE/IMMUTABLE functions (and EXPLAIN EXECUTE
                // its arguments): every finding of the inner statement stays.
                let mut v = Verdict::new(Read);
                for f in inner.out.findings {
                    v.hold_inner(f, "EXPLAIN plans it, and planning can run code");
                }
                v.out.tables = inner.out.tables;
                v.executes = inner.executes;
                v
            }
        }
        Statement::Prepare {
            name, statement, ..
        } => {
            let inner = analyze(statement);
            let mut v = Verdict::new(inner.class);
            let pname = ident_name(name);
            if inner.read_only() || inner.held_only_for_calls() {
                // Kept when only calls hold it: a target that trusts them
                // knows the statement as a read.
                v.prepares.push(pname.clone());
            }
            for f in inner.out.findings {
                v.hold_inner(f, &format!("PREPARE {pname}"));
            }
            v.out.tables = inner.out.tables;
            v
        }
        Statement::Execute {
            name,
            parameters,
            immediate,
            into,
            using,
            output,
            ..
        } => {
            let mut v = Verdict::new(Read);
            match name {
                Some(n) if !*immediate && into.is_empty() && using.is_empty() && !*output => {
                    v.executes.push(object_name_string(n));
                    walk_exprs(parameters, &mut v.out);
                }
                _ => v.hold(Unknown, "EXECUTE form that is not PostgreSQL's".to_string()),
            }
            v
        }
        Statement::Deallocate { name, .. } => {
            let mut v = Verdict::new(Session);
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                v.deallocates.push("*".to_string());
            } else {
                v.deallocates.push(ident_name(name));
            }
            v
        }
        Statement::Declare { stmts, .. } => {
            let mut v = Verdict::new(Read);
            for d in stmts {
                match (&d.declare_type, &d.assignment, &d.for_query) {
                    (Some(DeclareType::Cursor), None, Some(q)) => walk_query(q, &mut v.out),
                    _ => v.hold(
                        Unknown,
                        "DECLARE of something other than a cursor over a query".to_string(),
                    ),
                }
            }
            v
        }
        Statement::Fetch { into, .. } => {
            if into.is_some() {
                Verdict::held(Unknown, "FETCH … INTO is not PostgreSQL".to_string())
            } else {
                Verdict::new(Read)
            }
        }
        Statement::Close { .. } => Verdict::new(Read),
        Statement::Copy {
            source, to, target, ..
        } => {
            let mut v = Verdict::new(Read);
            match source {
                CopySource::Table { table_name, .. } => {
                    v.out.tables.push(object_name_string(table_name))
                }
                CopySource::Query(q) => walk_query(q, &mut v.out),
            }
            if !*to {
                v.class = Write;
                v.hold(Write, "COPY … FROM writes rows into a table".to_string());
            } else {
                match target {
                    CopyTarget::Stdout => {}
                    CopyTarget::File { .. } => {
                        v.class = Admin;
                        v.hold(Admin, "COPY … TO a file writes on the server".to_string());
                    }
                    CopyTarget::Program { .. } => {
                        v.class = Admin;
                        v.hold(
                            Admin,
                            "COPY … TO PROGRAM runs a program on the server".to_string(),
                        );
                    }
                    CopyTarget::Stdin => {
                        v.hold(Unknown, "COPY … TO STDIN is not valid".to_string());
                    }
                }
            }
            v
        }
        Statement::StartTransaction {
            modes,
            statements,
            exception,
            ..
        } => {
            let mut v = Verdict::new(Transaction);
            if !statements.is_empty() || exception.is_some() {
                v.hold(Unknown, "procedural BEGIN … END block".to_string());
            }
            if has_read_write(modes) {
                v.hold(
                    Privilege,
                    "a READ WRITE transaction would lift read-only mode".to_string(),
                );
            }
            v
        }
        Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => Verdict::new(Transaction),
        Statement::Set(set) => analyze_set(set),
        Statement::Reset(r) => {
            let mut v = Verdict::new(Session);
            match &r.reset {
                Reset::ALL => v.hold(
                    Privilege,
                    "RESET ALL would reset default_transaction_read_only and the role".to_string(),
                ),
                Reset::SessionAuthorization => v.hold(
                    Privilege,
                    "RESET SESSION AUTHORIZATION changes the session's identity".to_string(),
                ),
                Reset::ConfigurationParameter(name) => {
                    check_set(&mut v, &object_name_string(name), &SettingValue::Default)
                }
            }
            v
        }
        Statement::ShowVariable { variable } => {
            let airlock = variable.first().is_some_and(|i| ident_name(i) == "airlock");
            Verdict::new(if airlock { Session } else { Read })
        }
        Statement::ShowFunctions { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowProcessList { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowObjects(_)
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => Verdict::new(Read),
        Statement::Discard { object_type } => {
            let mut v = Verdict::new(Session);
            // DISCARD ALL deallocates every prepared statement.
            if matches!(object_type, sqlparser::ast::DiscardObject::ALL) {
                v.deallocates.push("*".to_string());
            }
            v
        }
        Statement::LISTEN { .. } | Statement::UNLISTEN { .. } => Verdict::new(Session),
        Statement::Lock(lock) => {
            let mut v = Verdict::new(Read);
            for t in &lock.tables {
                v.out.tables.push(object_name_string(&t.name));
            }
            if lock.lock_mode != Some(LockTableMode::AccessShare) {
                v.class = Admin;
                let mode = match &lock.lock_mode {
                    Some(m) => m.to_string(),
                    None => "ACCESS EXCLUSIVE".to_string(),
                };
                v.hold(
                    Admin,
                    format!("LOCK … IN {mode} MODE blocks other sessions"),
                );
            }
            v
        }
        _ => {
            // Everything else is held: writes, DDL, privileges, administration,
            // and any statement kind not known to be read-only.
            let (class, what) = statement_class(st);
            let class = if class == Read || class == Transaction {
                Unknown
            } else {
                class
            };
            let reason = match class {
                Write => format!("{what} modifies data"),
                Ddl => format!("{what} changes the schema"),
                Privilege => format!("{what} changes privileges or roles"),
                Admin => format!("{what} is an administrative command"),
                Session => format!("{what} is not an allowed session command"),
                _ => format!("{what} is not known to be read-only"),
            };
            let mut v = Verdict::held(class, reason);
            walk_statement(st, &mut v.out);
            v
        }
    }
}

fn analyze_set(set: &Set) -> Verdict {
    use StatementClass::*;
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let mut v = Verdict::new(Session);
            check_set(
                &mut v,
                &object_name_string(variable),
                &SettingValue::from_exprs(values),
            );
            v
        }
        Set::MultipleAssignments { assignments } => {
            let mut v = Verdict::new(Session);
            for a in assignments {
                let value = SettingValue::from_exprs(std::slice::from_ref(&a.value));
                check_set(&mut v, &object_name_string(&a.name), &value);
            }
            v
        }
        Set::ParenthesizedAssignments { .. } | Set::SetSessionParam(_) => {
            Verdict::held(Unknown, "SET form that is not PostgreSQL's".to_string())
        }
        Set::SetSessionAuthorization(_) => Verdict::held(
            Privilege,
            "SET SESSION AUTHORIZATION changes the session's identity".to_string(),
        ),
        Set::SetRole { .. } => Verdict::held(
            Privilege,
            "SET ROLE changes the session's identity".to_string(),
        ),
        Set::SetTimeZone { .. } | Set::SetNamesDefault {} => Verdict::new(Session),
        Set::SetNames { charset_name, .. } => {
            let mut v = Verdict::new(Session);
            check_set(
                &mut v,
                "client_encoding",
                &SettingValue::Values(vec![charset_name.value.clone()]),
            );
            v
        }
        Set::SetTransaction { modes, session, .. } => {
            let mut v = Verdict::new(if *session { Session } else { Transaction });
            if has_read_write(modes) {
                v.hold(
                    Privilege,
                    "READ WRITE transaction characteristics would lift read-only mode".to_string(),
                );
            }
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(sql: &str, class: StatementClass) {
        let c = classify(sql);
        assert!(!c.read_only, "{sql}: {c:?}");
        assert!(!c.reasons.is_empty(), "{sql}: {c:?}");
        assert_eq!(c.class, class, "{sql}: {c:?}");
    }

    fn passes(sql: &str, class: StatementClass) {
        let c = classify(sql);
        assert!(c.read_only, "{sql}: {c:?}");
        assert!(c.reasons.is_empty(), "{sql}: {c:?}");
        assert_eq!(c.class, class, "{sql}: {c:?}");
    }

    #[test]
    fn empty_and_comments() {
        for sql in ["", "   ", "-- x", "/* x */", ";", " ; ; "] {
            let c = classify(sql);
            assert_eq!(c, Classification::empty(), "{sql:?}");
        }
    }

    #[test]
    fn class_aggregation() {
        passes("SELECT 1", StatementClass::Read);
        passes("BEGIN; SELECT 1; COMMIT", StatementClass::Transaction);
        passes(
            "SET search_path = public; SELECT 1",
            StatementClass::Session,
        );
        held("SELECT 1; DELETE FROM t", StatementClass::Write);
        held(
            "DELETE FROM t; GRANT SELECT ON t TO u",
            StatementClass::Privilege,
        );
        held("BEGIN; CREATE TABLE t (a int); COMMIT", StatementClass::Ddl);
        let c = classify("SELECT 1; DELETE FROM t; SELECT 2");
        assert_eq!(c.statement_count, 3);
        assert_eq!(
            c.reasons,
            vec!["statement 2: DELETE modifies data".to_string()]
        );
    }

    #[test]
    fn prepared_statements() {
        let c = classify("PREPARE P1 (int) AS SELECT * FROM t WHERE id = $1");
        assert!(c.read_only);
        assert_eq!(c.prepares, vec!["p1"]);
        let c = classify("PREPARE p2 AS DELETE FROM t");
        assert!(!c.read_only);
        assert!(c.prepares.is_empty());
        assert_eq!(c.class, StatementClass::Write);
        let c = classify("PREPARE p3 AS SELECT 1; DELETE FROM t");
        assert!(
            c.prepares.is_empty(),
            "prepares only recorded when read-only"
        );
        let c = classify("EXECUTE \"Mixed\"(1); execute Plain");
        assert!(c.read_only);
        assert_eq!(c.executes, vec!["Mixed", "plain"]);
        let c = classify("DEALLOCATE p1; DEALLOCATE PREPARE \"P2\"; DEALLOCATE ALL");
        assert_eq!(c.deallocates, vec!["p1", "P2", "*"]);
        assert!(c.read_only);
        held("EXECUTE p(nextval('s'))", StatementClass::Write);
    }

    #[test]
    fn tables() {
        let c = classify(
            "WITH x AS (SELECT * FROM a.b) SELECT * FROM x JOIN \"C\".d ON true, generate_series(1, 2) g WHERE EXISTS (SELECT 1 FROM E)",
        );
        assert_eq!(c.tables, vec!["a.b", "C.d", "e"]);
        let c = classify("DELETE FROM t1 USING t2 WHERE t1.id = t2.id");
        assert_eq!(c.tables, vec!["t1", "t2"]);
        let c = classify("COPY s.t TO STDOUT; LOCK TABLE u IN ACCESS SHARE MODE");
        assert_eq!(c.tables, vec!["s.t", "u"]);
    }

    #[test]
    fn explain() {
        // Planning evaluates STABLE/IMMUTABLE functions and EXECUTE's
        // arguments: plain EXPLAIN keeps every finding of its statement.
        held("EXPLAIN DELETE FROM t", StatementClass::Write);
        held("EXPLAIN (ANALYZE off) DELETE FROM t", StatementClass::Write);
        held(
            "EXPLAIN SELECT * FROM t WHERE id = stable_bump()",
            StatementClass::Write,
        );
        held("EXPLAIN EXECUTE p(nextval('s'))", StatementClass::Write);
        passes("EXPLAIN SELECT * FROM t WHERE id = 1", StatementClass::Read);
        passes(
            "EXPLAIN (COSTS off) SELECT lower(name) FROM t",
            StatementClass::Read,
        );
        passes("EXPLAIN ANALYZE SELECT 1", StatementClass::Read);
        held("EXPLAIN ANALYZE DELETE FROM t", StatementClass::Write);
        held("EXPLAIN (ANALYZE) DELETE FROM t", StatementClass::Write);
        held("EXPLAIN (ANALYZE yes) DELETE FROM t", StatementClass::Write);
        held("EXPLAIN (ANALYZE x) DELETE FROM t", StatementClass::Write);
        let c = classify("EXPLAIN ANALYZE EXECUTE p");
        assert!(c.read_only);
        assert_eq!(c.executes, vec!["p"]);
    }

    #[test]
    fn sqlparser_quirks_fail_closed() {
        // sqlparser's own loop stops at a bare END and would drop the DELETE.
        held("SELECT 1 END; DELETE FROM t", StatementClass::Unknown);
        // Rewrites that let harmless unparsable forms pass…
        passes("MOVE FORWARD 3 IN c", StatementClass::Read);
        passes("TABLE t", StatementClass::Read);
        passes(
            "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
            StatementClass::Transaction,
        );
        passes(
            "SET TRANSACTION NOT DEFERRABLE",
            StatementClass::Transaction,
        );
        passes(
            "SELECT 1 FROM pg_class c WHERE c.relkind OPERATOR(pg_catalog.=) ANY (array['r'])",
            StatementClass::Read,
        );
        // …never make anything else pass.
        held("MOVE NEXT FROM c; DO $$ $$", StatementClass::Unknown);
        held("TABLE t; DO $$ $$", StatementClass::Unknown);
        held("BEGIN READ WRITE, DEFERRABLE", StatementClass::Privilege);
        held(
            "SELECT 1 FROM t WHERE a OPERATOR(public.=) ANY (array[1])",
            StatementClass::Unknown,
        );
        held("SELECT * FROM t FOR NO KEY UPDATE", StatementClass::Write);
        held("SELECT * FROM t FOR KEY SHARE", StatementClass::Write);
        held(
            "SELECT c.relkind OPERATOR(pg_catalog.=) ANY (array[nextval('s')]) FROM pg_class c",
            StatementClass::Write,
        );
    }

    #[test]
    fn fallback_classes() {
        held("DO $$ BEGIN END $$", StatementClass::Unknown);
        held("VACUUM ANALYZE t", StatementClass::Admin);
        held("ALTER SYSTEM SET work_mem = '1GB'", StatementClass::Admin);
        held("garbage", StatementClass::Unknown);
        held("SELECT 'unterminated", StatementClass::Unknown);
    }

    #[test]
    fn set_values_must_be_literals() {
        held("SET work_mem = lower('X')", StatementClass::Unknown);
        passes("SET work_mem = '4MB'", StatementClass::Session);
        passes("SET extra_float_digits = -1", StatementClass::Session);
        passes("SET search_path TO DEFAULT", StatementClass::Session);
    }

    #[test]
    fn set_config() {
        passes(
            "SELECT pg_catalog.set_config('search_path', '', false)",
            StatementClass::Read,
        );
        passes(
            "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'",
            StatementClass::Read,
        );
        held(
            "SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'transaction_read_only'",
            StatementClass::Privilege,
        );
        held(
            "SELECT set_config('search_path', 'x', false, 1)",
            StatementClass::Session,
        );
        held(
            "SELECT set_config(setting_name => 'x', new_value => 'y', is_local => false)",
            StatementClass::Session,
        );
    }
}
