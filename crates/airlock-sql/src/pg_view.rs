//! Postgres's own reading of a string (libpg_query, through `pg_query`):
//! the authority on statement boundaries, lexing and statement kinds
//! (SPEC §3). A classification from `sqlparser` is trusted on a Postgres
//! target only where Postgres's parser agrees with it: the same number of
//! statements, each of a kind that can be a read, no write anywhere in the
//! tree, no function that is not on the read-only allow-list. Any
//! disagreement holds the string (fail closed).
//!
//! The tree is walked generically (the protobuf tree serialised as JSON
//! values, whose object keys name the node types), so that no node kind is
//! missed by a hand-written visitor.

use crate::class::{Classification, StatementClass};
use crate::functions::is_allowed_builtin;
use serde_json::Value;

/// Statement kinds (top-level node names) that can be a read on their own.
const READ_KINDS: &[&str] = &[
    "SelectStmt",
    "VariableShowStmt",
    "VariableSetStmt",
    "TransactionStmt",
    "ExplainStmt",
    "DeclareCursorStmt",
    "FetchStmt",
    "ClosePortalStmt",
    "ListenStmt",
    "UnlistenStmt",
    "DiscardStmt",
    "LockStmt",
    "ConstraintsSetStmt",
    "PrepareStmt",
    "ExecuteStmt",
    "DeallocateStmt",
    "CopyStmt",
];

/// Node types that write wherever they appear (a CTE, a rule, EXPLAIN...).
const WRITE_NODES: &[&str] = &["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"];

/// Transaction statement kinds that are not plain transaction control:
/// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
const TWO_PHASE: &[i32] = &[
    pg_query::protobuf::TransactionStmtKind::TransStmtPrepare as i32,
    pg_query::protobuf::TransactionStmtKind::TransStmtCommitPrepared as i32,
    pg_query::protobuf::TransactionStmtKind::TransStmtRollbackPrepared as i32,
];

/// What Postgres's parser says of a string.
#[derive(Debug, Default)]
pub struct PgView {
    /// Top-level statement kinds, in order.
    pub kinds: Vec<String>,
    /// Reasons the string cannot be a read, as Postgres reads it.
    pub findings: Vec<(StatementClass, String)>,
    /// Calls of functions off the allow-list (name parts as Postgres folds
    /// them), and the reasons they gave.
    pub calls: Vec<(Vec<String>, String)>,
}

impl PgView {
    /// Whether every finding is one of `calls` (none is something else).
    pub fn only_calls(&self) -> bool {
        self.findings
            .iter()
            .all(|(_, r)| self.calls.iter().any(|(_, why)| why == r))
    }
}

/// Parses `sql` with Postgres's parser; `Err` carries its error message.
pub fn pg_view(sql: &str) -> Result<PgView, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| e.to_string())?;
    let tree = serde_json::to_value(&parsed.protobuf).map_err(|e| e.to_string())?;
    let mut view = PgView::default();
    let stmts = tree
        .get("stmts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for raw in &stmts {
        let Some(node) = raw.get("stmt").and_then(|s| s.get("node")) else {
            continue;
        };
        let kind = node
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_else(|| "unknown".to_string());
        if !READ_KINDS.contains(&kind.as_str()) {
            let class = if WRITE_NODES.contains(&kind.as_str()) {
                StatementClass::Write
            } else {
                StatementClass::Unknown
            };
            view.findings
                .push((class, format!("PostgreSQL reads a {kind} statement here")));
        }
        view.kinds.push(kind);
        walk(node, &mut view);
    }
    Ok(view)
}

fn push(view: &mut PgView, class: StatementClass, reason: String) {
    if !view.findings.iter().any(|(_, r)| *r == reason) {
        view.findings.push((class, reason));
    }
}

/// Walks every node below `v`, noting what cannot be a read.
fn walk(v: &Value, findings: &mut PgView) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, findings)),
        Value::Object(map) => {
            for (key, inner) in map {
                match key.as_str() {
                    k if WRITE_NODES.contains(&k) => push(
                        findings,
                        StatementClass::Write,
                        format!("PostgreSQL reads a {k} in it"),
                    ),
                    "SelectStmt" => {
                        if inner.get("into_clause").is_some_and(|v| !v.is_null()) {
                            push(
                                findings,
                                StatementClass::Ddl,
                                "SELECT … INTO creates a table".to_string(),
                            );
                        }
                        if inner
                            .get("locking_clause")
                            .and_then(Value::as_array)
                            .is_some_and(|l| !l.is_empty())
                        {
                            push(
                                findings,
                                StatementClass::Write,
                                "SELECT … FOR UPDATE/SHARE locks rows".to_string(),
                            );
                        }
                    }
                    "FuncCall" => check_call(inner, findings),
                    "TransactionStmt" => {
                        let kind = inner.get("kind").and_then(Value::as_i64).unwrap_or(0);
                        if TWO_PHASE.iter().any(|k| i64::from(*k) == kind) {
                            push(
                                findings,
                                StatementClass::Transaction,
                                "two-phase commit statements are held".to_string(),
                            );
                        }
                    }
                    "CopyStmt" if inner.get("is_from").and_then(Value::as_bool) == Some(true) => {
                        push(
                            findings,
                            StatementClass::Write,
                            "COPY … FROM writes rows".to_string(),
                        )
                    }
                    "CopyStmt"
                        if inner.get("is_program").and_then(Value::as_bool) == Some(true) =>
                    {
                        push(
                            findings,
                            StatementClass::Admin,
                            "COPY … PROGRAM runs a program on the server".to_string(),
                        )
                    }
                    _ => {}
                }
                walk(inner, findings);
            }
        }
        _ => {}
    }
}

/// A function call as Postgres names it: allowed only when the bare (or
/// `pg_catalog.`) name is on the read-only allow-list.
fn check_call(call: &Value, findings: &mut PgView) {
    let parts: Vec<&str> = call
        .get("funcname")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.get("node")?.get("String")?.get("sval")?.as_str())
                .collect()
        })
        .unwrap_or_default();
    let allowed = match parts.as_slice() {
        [f] | ["pg_catalog", f] => is_allowed_builtin(f) || *f == "set_config",
        ["information_schema", f] => crate::functions::is_information_schema_function(f),
        _ => false,
    };
    if !allowed {
        let reason = format!(
            "PostgreSQL calls function {} here, which is not on the read-only allow-list",
            parts.join(".")
        );
        // `pg_catalog.` and `information_schema.` functions are Postgres's
        // own: never a trusted user function.
        let user = match parts.as_slice() {
            [_] => true,
            [schema, _] => !matches!(*schema, "pg_catalog" | "information_schema"),
            _ => false,
        };
        if user && !findings.calls.iter().any(|(_, r)| *r == reason) {
            let owned = parts.iter().map(|p| p.to_string()).collect();
            findings.calls.push((owned, reason.clone()));
        }
        push(findings, StatementClass::Write, reason);
    }
}

/// The first transaction-control statement (`BEGIN`, `COMMIT`, `ROLLBACK`,
/// savepoints…) of a script as Postgres reads it, if any: a script run in
/// airlock's own guarded transaction must not end or split it.
pub fn transaction_control(sql: &str) -> Option<String> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    parsed
        .protobuf
        .stmts
        .iter()
        .find_map(|raw| match raw.stmt.as_ref()?.node.as_ref()? {
            pg_query::NodeEnum::TransactionStmt(t) => Some(
                pg_query::protobuf::TransactionStmtKind::try_from(t.kind)
                    .map(|k| {
                        k.as_str_name()
                            .trim_start_matches("TRANS_STMT_")
                            .replace('_', " ")
                    })
                    .unwrap_or_else(|_| "transaction control".to_string()),
            ),
            _ => None,
        })
}

/// Whether both parsers read `sql` as exactly one INSERT, UPDATE, DELETE or
/// MERGE: the only text the planner row estimate may send upstream.
pub fn is_single_dml(sql: &str) -> bool {
    let Ok(view) = pg_view(sql) else {
        return false;
    };
    let pg_one_dml = matches!(
        view.kinds.as_slice(),
        [k] if WRITE_NODES.contains(&k.as_str())
    );
    pg_one_dml && matches!(crate::parse::parse_sql(sql), Ok(stmts) if stmts.len() == 1)
}

/// Holds `c` wherever Postgres's reading disagrees with it or finds what
/// cannot be a read. A string the analysis already holds keeps its class
/// and reasons, plus a note when the two parsers disagree on its shape.
/// `set_config` is left to the `sqlparser` analysis of its arguments.
pub fn cross_check(sql: &str, c: &mut Classification) {
    let view = match pg_view(sql) {
        Ok(v) => v,
        Err(e) => {
            c.held_only_for_calls = false;
            c.prepares.clear();
            hold(
                c,
                StatementClass::Unknown,
                format!("PostgreSQL's parser does not accept it ({e})"),
            );
            return;
        }
    };
    if view.kinds.len() != c.statement_count {
        c.held_only_for_calls = false;
        c.prepares.clear();
        hold(
            c,
            StatementClass::Unknown,
            format!(
                "PostgreSQL sees {} statement(s) where the analysis saw {}; held as ambiguous",
                view.kinds.len(),
                c.statement_count
            ),
        );
    }
    // Calls both parsers see; a classification held only for calls stays
    // so only if Postgres's reading finds nothing else either.
    let only_calls = view.only_calls();
    for (call, _) in &view.calls {
        if !c.calls.contains(call) {
            c.calls.push(call.clone());
        }
    }
    if c.read_only {
        let prepares = c.prepares.clone();
        let held = !view.findings.is_empty();
        for (class, reason) in view.findings {
            hold(c, class, reason);
        }
        if held && only_calls {
            c.held_only_for_calls = true;
            c.prepares = prepares;
        }
    } else if !only_calls && c.held_only_for_calls {
        c.held_only_for_calls = false;
        c.prepares.clear();
        for (class, reason) in view.findings {
            hold(c, class, reason);
        }
    }
}

fn hold(c: &mut Classification, class: StatementClass, reason: String) {
    if c.read_only {
        c.read_only = false;
        c.class = class;
        c.prepares.clear();
    } else if c.reasons.is_empty() {
        c.class = class;
    }
    if !c.reasons.contains(&reason) {
        c.reasons.push(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_dollar_tags_split_as_postgres_splits_them() {
        let v =
            pg_view("UPDATE accounts SET id=id WHERE $€$ $a$ $€$ <> ''; COMMIT; DROP TABLE victim")
                .expect("parses");
        assert_eq!(v.kinds, ["UpdateStmt", "TransactionStmt", "DropStmt"]);
        let v = pg_view(
            "SELECT $€$ , $a$ $€$; DELETE FROM accounts WHERE id = 3; SELECT $€$ , $a$ , $€$",
        )
        .expect("parses");
        assert_eq!(v.kinds, ["SelectStmt", "DeleteStmt", "SelectStmt"]);
        assert!(!v.findings.is_empty());
    }

    #[test]
    fn writes_anywhere_in_the_tree_are_found() {
        for sql in [
            "WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d",
            "EXPLAIN WITH d AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT 1",
            "SELECT * FROM t FOR UPDATE",
            "SELECT 1 INTO new_table",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
            "SELECT nextval('s')",
            "SELECT public.f(1)",
            "SELECT * FROM t WHERE id = stable_bump()",
            "COPY t FROM STDIN",
            "NOTIFY chan",
            "SELECT pg_notify('c', 'x')",
            "SELECT lo_create(0)",
        ] {
            let v = pg_view(sql).expect(sql);
            assert!(!v.findings.is_empty(), "{sql} must have a finding");
        }
    }

    #[test]
    fn plain_reads_have_no_finding() {
        for sql in [
            "SELECT 1",
            "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a",
            "SELECT lower(name), count(*) FROM t GROUP BY 1",
            "SHOW search_path",
            "BEGIN; SELECT 1; COMMIT",
            "EXPLAIN SELECT * FROM t",
            "SELECT extract(year FROM now()), substring('abc' FROM 2)",
        ] {
            let v = pg_view(sql).expect(sql);
            assert!(v.findings.is_empty(), "{sql}: {:?}", v.findings);
        }
    }

    #[test]
    fn only_one_dml_statement_read_alike_by_both_parsers_may_be_estimated() {
        assert!(is_single_dml("UPDATE accounts SET a = 1 WHERE id = $1"));
        assert!(is_single_dml("DELETE FROM t WHERE id = 3;"));
        assert!(!is_single_dml(
            "UPDATE accounts SET id=id WHERE $€$ $a$ $€$ <> ''; COMMIT; DROP TABLE victim"
        ));
        assert!(!is_single_dml("UPDATE t SET a = 1; DELETE FROM t"));
        assert!(!is_single_dml("DROP TABLE t"));
        assert!(!is_single_dml("SELECT 1"));
    }

    #[test]
    fn transaction_control_in_a_script_is_found() {
        assert_eq!(
            transaction_control("UPDATE t SET a = 1; COMMIT; DELETE FROM t").as_deref(),
            Some("COMMIT")
        );
        assert_eq!(
            transaction_control("BEGIN; UPDATE t SET a = 1").as_deref(),
            Some("BEGIN")
        );
        assert_eq!(
            transaction_control("UPDATE t SET a = 1; DELETE FROM u"),
            None
        );
    }

    #[test]
    fn a_disagreement_on_the_statement_count_holds() {
        let mut c = Classification::empty();
        c.statement_count = 1;
        cross_check("SELECT 1; SELECT 2", &mut c);
        assert!(!c.read_only);
        assert!(c.reasons[0].contains("2 statement(s)"), "{:?}", c.reasons);
        let mut c = Classification::empty();
        c.statement_count = 1;
        cross_check("SELECT (", &mut c);
        assert!(!c.read_only);
    }
}
