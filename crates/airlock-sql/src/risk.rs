//! Risk level and reasons of a statement (SPEC §5), and whether it must run
//! outside a transaction (SPEC §4.5).

use sqlparser::ast::{BinaryOperator, Expr, Statement, Value, ValueWithSpan};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::class::StatementClass;
use crate::fallback::{leading_words_of, split_statements};
use crate::ident::object_name_string;
use crate::keywords::{keyword_class, statement_class};
use crate::parse::{parse_sql, tokenize};

/// How risky a change is, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RiskLevel {
    /// Nothing notable (a filtered write, a read).
    #[default]
    Low,
    /// Schema changes, administration, statements outside a transaction.
    Medium,
    /// Writes to every row, privilege changes, unparsable statements.
    High,
    /// Data destruction: DROP, TRUNCATE.
    Critical,
}

impl RiskLevel {
    /// The lowercase name ("low", "medium", "high", "critical").
    pub fn as_str(&self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
        }
    }
}

impl std::fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The risk of a SQL string: the highest level among its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Risk {
    /// The highest level of any reason (`Low` when there is none).
    pub level: RiskLevel,
    /// Why, in English, without literal values ("statement 2: …" in scripts).
    pub reasons: Vec<String>,
}

impl Risk {
    fn add(&mut self, level: RiskLevel, reason: String) {
        self.level = self.level.max(level);
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// The reason given for statements that cannot run inside a transaction.
pub const NO_TRANSACTION_REASON: &str =
    "cannot run inside a transaction: row guard and atomicity do not apply";

/// Assess the risk of a SQL string from its syntax tree (keywords when it does not parse).
pub fn assess_risk(sql: &str) -> Risk {
    let mut risk = Risk::default();
    let per_statement: Vec<Vec<(RiskLevel, String)>> = match parse_sql(sql) {
        Ok(stmts) => stmts.iter().map(statement_risks).collect(),
        Err(_) => {
            // The parser's message may quote a literal: not shown.
            risk.add(
                RiskLevel::High,
                "could not be parsed, so it could not be analysed".to_string(),
            );
            chunk_words(sql)
                .iter()
                .map(|words| keyword_risks(words))
                .collect()
        }
    };
    let many = per_statement.len() > 1;
    let mut no_tx = 0;
    for (i, reasons) in per_statement.into_iter().enumerate() {
        for (level, reason) in reasons {
            if reason == NO_TRANSACTION_REASON {
                no_tx += 1;
            }
            let reason = if many {
                format!("statement {}: {reason}", i + 1)
            } else {
                reason
            };
            risk.add(level, reason);
        }
    }
    if many && no_tx > 0 {
        risk.add(
            RiskLevel::High,
            "a script with a statement that cannot run inside a transaction: \
             Postgres refuses it in one request; submit that statement alone"
                .to_string(),
        );
    }
    risk
}

/// Whether `sql` contains a statement Postgres cannot run inside a
/// transaction block (`CREATE INDEX CONCURRENTLY`, `VACUUM`, `ALTER SYSTEM`,
/// `REINDEX … CONCURRENTLY`, `CREATE/DROP DATABASE`…). Keyword based, so it
/// also answers for text sqlparser cannot parse (`VACUUM ANALYZE t`).
pub fn needs_own_transaction(sql: &str) -> bool {
    chunk_words(sql)
        .iter()
        .any(|w| words_need_own_transaction(w))
}

/// The unquoted words (uppercased) of each statement of a text; for text
/// that cannot be tokenized or split, its first two words as one statement.
fn chunk_words(sql: &str) -> Vec<Vec<String>> {
    let words_of = |chunk: &[TokenWithSpan]| -> Vec<String> {
        chunk
            .iter()
            .filter_map(|t| match &t.token {
                Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
                _ => None,
            })
            .collect()
    };
    match tokenize(sql).ok().and_then(split_statements) {
        Some(chunks) => chunks.iter().map(|c| words_of(c)).collect(),
        None => {
            let (a, b) = leading_words_of(sql);
            vec![[a, b]
                .into_iter()
                .filter(|w| !w.is_empty())
                .map(|w| w.to_ascii_uppercase())
                .collect()]
        }
    }
}

fn words_need_own_transaction(w: &[String]) -> bool {
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    let has = |x: &str| w.iter().any(|v| v == x);
    match at(0) {
        "VACUUM" => true,
        "CREATE" => {
            let (kind, next) = if at(1) == "UNIQUE" {
                (at(2), at(3))
            } else {
                (at(1), at(2))
            };
            (kind == "INDEX" && next == "CONCURRENTLY")
                || matches!(kind, "DATABASE" | "TABLESPACE" | "SUBSCRIPTION")
        }
        "DROP" => {
            (at(1) == "INDEX" && at(2) == "CONCURRENTLY")
                || matches!(at(1), "DATABASE" | "TABLESPACE" | "SUBSCRIPTION")
        }
        "ALTER" => at(1) == "SYSTEM" || (at(1) == "DATABASE" && has("SET") && has("TABLESPACE")),
        "REINDEX" => has("CONCURRENTLY") || has("DATABASE") || has("SYSTEM"),
        "CLUSTER" => w.len() == 1 || (w.len() == 2 && at(1) == "VERBOSE"),
        _ => false,
    }
}

/// Risks of a statement that did not parse, from its words.
fn keyword_risks(w: &[String]) -> Vec<(RiskLevel, String)> {
    let at = |i: usize| w.get(i).cloned().unwrap_or_default();
    let mut out = Vec::new();
    match at(0).as_str() {
        "DROP" => out.push((RiskLevel::Critical, format!("DROP {}", at(1)))),
        "TRUNCATE" => out.push((RiskLevel::Critical, "TRUNCATE removes all rows".to_string())),
        _ => match keyword_class(&at(0), &at(1)) {
            StatementClass::Privilege => {
                out.push((RiskLevel::High, format!("privilege change: {}", at(0))))
            }
            StatementClass::Ddl => out.push((RiskLevel::Medium, format!("DDL: {}", at(0)))),
            _ => {}
        },
    }
    if words_need_own_transaction(w) {
        out.push((RiskLevel::Medium, NO_TRANSACTION_REASON.to_string()));
    }
    out
}

fn is_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(_))
}

/// A WHERE clause that is trivially true: `true`, `1 = 1`, `'a' = 'a'`.
fn always_true(e: &Expr) -> bool {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::Boolean(true),
            ..
        }) => true,
        Expr::Nested(inner) => always_true(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            is_literal(left)
                && left == right
                && !matches!(
                    **left,
                    Expr::Value(ValueWithSpan {
                        value: Value::Null,
                        ..
                    })
                )
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => always_true(left) || always_true(right),
        _ => false,
    }
}

fn unfiltered(level: &mut Vec<(RiskLevel, String)>, what: &str, table: &str, sel: &Option<Expr>) {
    match sel {
        None => level.push((
            RiskLevel::High,
            format!("{what} of {table} without a WHERE clause: every row is affected"),
        )),
        Some(e) if always_true(e) => level.push((
            RiskLevel::High,
            format!("{what} of {table} with a WHERE clause that is always true"),
        )),
        Some(_) => {}
    }
}

fn statement_risks(st: &Statement) -> Vec<(RiskLevel, String)> {
    let mut out = Vec::new();
    match st {
        Statement::Update(u) => {
            let table = match &u.table.relation {
                sqlparser::ast::TableFactor::Table { name, .. } => object_name_string(name),
                _ => "a derived table".to_string(),
            };
            unfiltered(&mut out, "UPDATE", &table, &u.selection);
        }
        Statement::Delete(d) => {
            let tables = match &d.from {
                sqlparser::ast::FromTable::WithFromKeyword(t)
                | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
            };
            let table = tables
                .iter()
                .map(|t| match &t.relation {
                    sqlparser::ast::TableFactor::Table { name, .. } => object_name_string(name),
                    _ => "a derived table".to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            unfiltered(&mut out, "DELETE", &table, &d.selection);
        }
        Statement::Drop {
            object_type, names, ..
        } => {
            let names: Vec<String> = names.iter().map(object_name_string).collect();
            out.push((
                RiskLevel::Critical,
                format!("DROP {object_type} {}", names.join(", ")),
            ));
        }
        Statement::Truncate(t) => {
            let names: Vec<String> = t
                .table_names
                .iter()
                .map(|t| object_name_string(&t.name))
                .collect();
            out.push((
                RiskLevel::Critical,
                format!("TRUNCATE removes all rows of {}", names.join(", ")),
            ));
        }
        _ => {
            let (class, kind) = statement_class(st);
            match class {
                StatementClass::Ddl => out.push((RiskLevel::Medium, format!("DDL: {kind}"))),
                StatementClass::Privilege => {
                    out.push((RiskLevel::High, format!("privilege change: {kind}")))
                }
                StatementClass::Admin if kind == "ALTER SYSTEM" => out.push((
                    RiskLevel::High,
                    "changes the server configuration (ALTER SYSTEM)".to_string(),
                )),
                StatementClass::Admin => {
                    out.push((RiskLevel::Medium, format!("administrative command: {kind}")))
                }
                StatementClass::Unknown => out.push((
                    RiskLevel::Medium,
                    format!("statement kind not analysed: {kind}"),
                )),
                _ => {}
            }
        }
    }
    let text = st.to_string();
    if let Ok(tokens) = tokenize(&text) {
        let words: Vec<String> = tokens
            .iter()
            .filter_map(|t| match &t.token {
                Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
                _ => None,
            })
            .collect();
        if words_need_own_transaction(&words) {
            out.push((RiskLevel::Medium, NO_TRANSACTION_REASON.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use RiskLevel::*;

    #[track_caller]
    fn level(sql: &str, want: RiskLevel) -> Risk {
        let r = assess_risk(sql);
        assert_eq!(r.level, want, "{sql}: {:?}", r.reasons);
        r
    }

    #[test]
    fn levels() {
        assert!(level("SELECT 1", Low).reasons.is_empty());
        level("UPDATE t SET a = 1 WHERE id = 5", Low);
        level("INSERT INTO t VALUES (1)", Low);
        let r = level("UPDATE t SET a = 1", High);
        assert_eq!(
            r.reasons,
            ["UPDATE of t without a WHERE clause: every row is affected"]
        );
        level("DELETE FROM t", High);
        level("DELETE FROM t WHERE 1 = 1", High);
        level("DELETE FROM t WHERE true OR id = 4", High);
        level("DELETE FROM t WHERE id = id", Low);
        assert_eq!(
            level("DROP TABLE audit_log", Critical).reasons,
            ["DROP TABLE audit_log"]
        );
        level("TRUNCATE t", Critical);
        level(
            "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now()",
            Medium,
        );
        level("CREATE TABLE x (a int)", Medium);
        level("GRANT SELECT ON t TO bob", High);
        level("REVOKE SELECT ON t FROM bob", High);
        level("ALTER ROLE app PASSWORD 'x'", High);
        level("CREATE ROLE app", High);
        level("ALTER SYSTEM SET work_mem = '1GB'", High);
        level("UPDATE t SET", High);
        level("DO $$ BEGIN END $$", High);
    }

    #[test]
    fn no_transaction() {
        for sql in [
            "CREATE INDEX CONCURRENTLY idx ON t (col)",
            "create unique index concurrently on t (c)",
            "VACUUM t",
            "VACUUM ANALYZE t",
            "vacuum (verbose, analyze) t",
            "ALTER SYSTEM SET work_mem = '1GB'",
            "REINDEX INDEX CONCURRENTLY i",
            "REINDEX DATABASE d",
            "CREATE DATABASE d",
            "DROP DATABASE d",
            "DROP INDEX CONCURRENTLY i",
            "/* x */ CLUSTER",
            "SELECT 1; VACUUM",
        ] {
            assert!(needs_own_transaction(sql), "{sql}");
        }
        for sql in [
            "CREATE INDEX idx ON t (col)",
            "UPDATE t SET a = 1",
            "SELECT 'VACUUM'",
            "REINDEX TABLE t",
            "CLUSTER t USING i",
            "-- VACUUM\nSELECT 1",
            "",
        ] {
            assert!(!needs_own_transaction(sql), "{sql}");
        }
        let r = level("CREATE INDEX CONCURRENTLY idx ON t (col)", Medium);
        assert!(
            r.reasons.iter().any(|r| r == NO_TRANSACTION_REASON),
            "{r:?}"
        );
        let r = level("VACUUM ANALYZE t", High);
        assert!(
            r.reasons.iter().any(|r| r == NO_TRANSACTION_REASON),
            "{r:?}"
        );
        let r = level("UPDATE t SET a = 1 WHERE id = 2; VACUUM t", High);
        assert!(
            r.reasons
                .iter()
                .any(|r| r == &format!("statement 2: {NO_TRANSACTION_REASON}")),
            "{r:?}"
        );
    }

    #[test]
    fn scripts_and_unparsable() {
        let r = level("UPDATE a SET x = 1 WHERE id = 1; DELETE FROM b", High);
        assert_eq!(
            r.reasons,
            ["statement 2: DELETE of b without a WHERE clause: every row is affected"]
        );
        let r = level(
            "DROP TABLE x CASCADE CONSTRAINTS PLEASE; SELECT 1",
            Critical,
        );
        assert!(
            r.reasons.iter().any(|r| r.contains("could not be parsed")),
            "{r:?}"
        );
        assert_eq!(Critical.as_str(), "critical");
        assert!(Low < Medium && Medium < High && High < Critical);
    }

    #[test]
    fn reasons_hide_literals() {
        for sql in [
            "ALTER ROLE app PASSWORD 'hunter2'",
            "DELETE FROM t WHERE 'hunter2' = 'hunter2'",
            "ALTER ROLE app PASSWORD 'hunter2' garbage",
            "SELECT 'hunter2' 'x' 'y'",
        ] {
            let r = assess_risk(sql);
            assert!(
                !r.reasons.iter().any(|x| x.contains("hunter2")),
                "{sql}: {r:?}"
            );
        }
    }
}
