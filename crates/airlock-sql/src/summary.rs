//! A deterministic one-paragraph English summary of a SQL string, from the
//! syntax tree (SPEC §5). Literal values never appear in it: they may be secrets.

use sqlparser::ast::{
    AlterTableOperation, AssignmentTarget, FromTable, ObjectName, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins,
};

use crate::fingerprint::strip_literals;
use crate::ident::{ident_name, object_name_string};
use crate::keywords::statement_class;
use crate::parse::{parse_sql, tokenize};

/// Longest rendering of a WHERE clause or column list in a summary, in characters.
const MAX_PART: usize = 200;

/// A deterministic English summary of `sql`, without literal values, e.g.
/// `"UPDATE of public.accounts: sets balance, status; filtered by WHERE (id = ?)."`.
pub fn summarize(sql: &str) -> String {
    let mut stmts = match parse_sql(sql) {
        Ok(s) => s,
        Err(_) => {
            let n = count_statements(sql);
            let s = if n == 1 { "" } else { "s" };
            return format!("{n} statement{s} that could not be parsed.");
        }
    };
    let parts: Vec<String> = stmts
        .iter_mut()
        .map(|st| {
            strip_literals(st);
            describe(st)
        })
        .collect();
    match parts.len() {
        0 => "No statements.".to_string(),
        1 => format!("{}.", parts[0]),
        n => format!("Script of {n} statements: {}.", parts.join("; ")),
    }
}

/// Statements in a text that did not parse, counted by top-level semicolons (at least 1).
pub(crate) fn count_statements(sql: &str) -> usize {
    match tokenize(sql)
        .ok()
        .and_then(crate::fallback::split_statements)
    {
        Some(chunks) => chunks.len().max(1),
        None => 1,
    }
}

/// Cut a rendering at `MAX_PART` characters.
fn cut(s: String) -> String {
    if s.chars().count() <= MAX_PART {
        return s;
    }
    let mut out: String = s.chars().take(MAX_PART).collect();
    out.push('…');
    out
}

fn names(names: &[ObjectName]) -> String {
    names
        .iter()
        .map(object_name_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn factor_name(f: &TableFactor) -> String {
    match f {
        TableFactor::Table { name, .. } => object_name_string(name),
        _ => "a derived table".to_string(),
    }
}

fn tables_of(ts: &[TableWithJoins]) -> String {
    ts.iter()
        .map(|t| factor_name(&t.relation))
        .collect::<Vec<_>>()
        .join(", ")
}

fn where_part(selection: &Option<sqlparser::ast::Expr>) -> Option<String> {
    selection
        .as_ref()
        .map(|e| format!("filtered by WHERE ({})", cut(e.to_string())))
}

/// One statement, already stripped of literals, without the final period.
fn describe(st: &Statement) -> String {
    match st {
        Statement::Update(u) => {
            let table = factor_name(&u.table.relation);
            let cols: Vec<String> = u
                .assignments
                .iter()
                .map(|a| match &a.target {
                    AssignmentTarget::ColumnName(n) => object_name_string(n),
                    AssignmentTarget::Tuple(ns) => format!("({})", names(ns)),
                })
                .collect();
            let sets = format!("sets {}", cut(cols.join(", ")));
            match where_part(&u.selection) {
                Some(w) => format!("UPDATE of {table}: {sets}; {w}"),
                None => format!("UPDATE of {table} without a WHERE clause (all rows): {sets}"),
            }
        }
        Statement::Delete(d) => {
            let from = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => tables_of(t),
            };
            let table = if d.tables.is_empty() {
                from
            } else {
                names(&d.tables)
            };
            match where_part(&d.selection) {
                Some(w) => format!("DELETE from {table}: {w}"),
                None => format!("DELETE from {table} without a WHERE clause (all rows)"),
            }
        }
        Statement::Insert(i) => {
            let table = match &i.table {
                TableObject::TableName(n) => object_name_string(n),
                other => other.to_string(),
            };
            let what = match i.source.as_deref().map(|q| q.body.as_ref()) {
                Some(SetExpr::Values(v)) => {
                    let n = v.rows.len();
                    format!("{n} row{} of values", if n == 1 { "" } else { "s" })
                }
                Some(_) => "rows from a query".to_string(),
                None => "default values".to_string(),
            };
            let upsert = if i.on.is_some() {
                ", with ON CONFLICT"
            } else {
                ""
            };
            format!("INSERT into {table} ({what}){upsert}")
        }
        Statement::Merge(_) => "MERGE".to_string(),
        Statement::Query(_) => "SELECT".to_string(),
        Statement::Truncate(t) => {
            let ts: Vec<String> = t
                .table_names
                .iter()
                .map(|t| object_name_string(&t.name))
                .collect();
            format!("TRUNCATE of {} (all rows)", ts.join(", "))
        }
        Statement::Drop {
            object_type,
            names: ns,
            cascade,
            ..
        } => format!(
            "DROP {object_type} {}{}",
            names(ns),
            if *cascade { " CASCADE" } else { "" }
        ),
        Statement::CreateIndex(ci) => {
            let cols: Vec<String> = ci.columns.iter().map(|c| c.to_string()).collect();
            format!(
                "CREATE {}INDEX {}{}ON {} ({})",
                if ci.unique { "UNIQUE " } else { "" },
                if ci.concurrently { "CONCURRENTLY " } else { "" },
                ci.name
                    .as_ref()
                    .map(|n| format!("{} ", object_name_string(n)))
                    .unwrap_or_default(),
                object_name_string(&ci.table_name),
                cut(cols.join(", "))
            )
        }
        Statement::CreateTable(ct) => {
            let name = object_name_string(&ct.name);
            if ct.query.is_some() {
                format!("CREATE TABLE {name} from a query")
            } else {
                let n = ct.columns.len();
                format!(
                    "CREATE TABLE {name} ({n} column{})",
                    if n == 1 { "" } else { "s" }
                )
            }
        }
        Statement::AlterTable(at) => {
            let ops: Vec<String> = at.operations.iter().map(describe_alter_op).collect();
            format!(
                "ALTER TABLE {}: {}",
                object_name_string(&at.name),
                cut(ops.join(", "))
            )
        }
        Statement::CreateView(v) => format!("CREATE VIEW {}", object_name_string(&v.name)),
        Statement::AlterRole { name, .. } => format!("ALTER ROLE {}", ident_name(name)),
        Statement::CreateRole(r) => format!("CREATE ROLE {}", names(&r.names)),
        Statement::Grant(_) | Statement::GrantRole(_) => "GRANT".to_string(),
        Statement::Revoke(_) | Statement::RevokeRole(_) => "REVOKE".to_string(),
        Statement::Explain { statement, .. } => format!("EXPLAIN of {}", describe(statement)),
        other => {
            let (_, kind) = statement_class(other);
            if kind == "query" {
                "SELECT".to_string()
            } else {
                kind
            }
        }
    }
}

fn describe_alter_op(op: &AlterTableOperation) -> String {
    match op {
        AlterTableOperation::AddColumn { column_def, .. } => {
            format!("adds column {}", ident_name(&column_def.name))
        }
        AlterTableOperation::DropColumn { column_names, .. } => format!(
            "drops column {}",
            column_names
                .iter()
                .map(ident_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => format!(
            "renames column {} to {}",
            ident_name(old_column_name),
            ident_name(new_column_name)
        ),
        AlterTableOperation::AlterColumn { column_name, .. } => {
            format!("alters column {}", ident_name(column_name))
        }
        AlterTableOperation::AddConstraint { .. } => "adds a constraint".to_string(),
        AlterTableOperation::DropConstraint { .. } => "drops a constraint".to_string(),
        AlterTableOperation::RenameTable { .. } => "renames the table".to_string(),
        other => {
            // The operation's leading words (literals are already stripped).
            let text = other.to_string();
            let words: Vec<&str> = text.split_whitespace().take(3).collect();
            words.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn is(sql: &str, want: &str) {
        assert_eq!(summarize(sql), want, "{sql}");
    }

    #[test]
    fn dml() {
        is(
            "UPDATE public.accounts SET balance = 0, status = 'closed' WHERE id = 42",
            "UPDATE of public.accounts: sets balance, status; filtered by WHERE (id = ?).",
        );
        is(
            "update T set A = 1",
            "UPDATE of t without a WHERE clause (all rows): sets a.",
        );
        is(
            "DELETE FROM orders",
            "DELETE from orders without a WHERE clause (all rows).",
        );
        is(
            "DELETE FROM orders WHERE customer = 'bob' AND total > 100",
            "DELETE from orders: filtered by WHERE (customer = ? AND total > ?).",
        );
        is(
            "INSERT INTO b (x) VALUES (1), (2)",
            "INSERT into b (2 rows of values).",
        );
        is(
            "INSERT INTO b SELECT * FROM a ON CONFLICT DO NOTHING",
            "INSERT into b (rows from a query), with ON CONFLICT.",
        );
        is("TRUNCATE a, b", "TRUNCATE of a, b (all rows).");
    }

    #[test]
    fn ddl() {
        is("DROP TABLE audit_log", "DROP TABLE audit_log.");
        is(
            "drop table if exists a, B cascade",
            "DROP TABLE a, b CASCADE.",
        );
        is(
            "CREATE INDEX CONCURRENTLY idx ON t (col)",
            "CREATE INDEX CONCURRENTLY idx ON t (col).",
        );
        is(
            "CREATE UNIQUE INDEX ON t (lower(email))",
            "CREATE UNIQUE INDEX ON t (lower(email)).",
        );
        is(
            "ALTER TABLE t ADD COLUMN c int DEFAULT 5, DROP COLUMN d",
            "ALTER TABLE t: adds column c, drops column d.",
        );
        is(
            "CREATE TABLE x (a int, b text)",
            "CREATE TABLE x (2 columns).",
        );
        is("VACUUM t", "VACUUM.");
        is("GRANT SELECT ON t TO bob", "GRANT.");
    }

    #[test]
    fn scripts_and_failures() {
        is(
            "UPDATE a SET x = 1 WHERE y = 2; INSERT INTO b VALUES (1); SELECT 1",
            "Script of 3 statements: UPDATE of a: sets x; filtered by WHERE (y = ?); \
             INSERT into b (1 row of values); SELECT.",
        );
        is("UPDATE t SET", "1 statement that could not be parsed.");
        is(
            "VACUUM ANALYZE t; DO $$ BEGIN END $$; SELECT 1",
            "3 statements that could not be parsed.",
        );
        is("-- nothing", "No statements.");
    }

    #[test]
    fn never_shows_literals() {
        for sql in [
            "UPDATE users SET password = 'hunter2' WHERE name = 'bob'",
            "ALTER ROLE app PASSWORD 'hunter2'",
            "CREATE ROLE app LOGIN PASSWORD 'hunter2'",
            "ALTER TABLE t ALTER COLUMN c SET DEFAULT 'hunter2'",
            "DELETE FROM t WHERE s IN ('hunter2', 'x')",
            "CREATE INDEX i ON t (c) WHERE c <> 'hunter2'",
            "EXPLAIN UPDATE t SET a = 'hunter2'",
        ] {
            let s = summarize(sql);
            assert!(!s.contains("hunter2"), "{sql} -> {s}");
        }
    }
}
