//! How a held MySQL change's rows are estimated without running it. MariaDB
//! refuses `EXPLAIN UPDATE/DELETE/INSERT` inside a read-only transaction,
//! so the planner is asked about the read that finds the same rows: the
//! change's tables and `WHERE` as `SELECT 1 FROM … WHERE …`, which runs
//! with read credentials in `START TRANSACTION READ ONLY`. Only changes
//! made of plain tables, columns, literals and read-only built-ins get one.

use super::{canonical, rules};
use crate::mysql_lexer::{self, SqlModes};
use sqlparser::ast::{Delete, Expr, FromTable, Insert, SetExpr, Statement, Update, Value};

/// What to ask for a statement's row estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EstimateQuery {
    /// Known without asking: `INSERT … VALUES` of this many rows.
    Exact(u64),
    /// `EXPLAIN FORMAT=JSON` this read; at most `limit` rows (the change's
    /// own `LIMIT`).
    Explain {
        /// A read that finds the rows the change touches.
        select: String,
        /// The change's `LIMIT`.
        limit: Option<u64>,
    },
}

/// The estimate query of `sql` under `modes`, or `None` when it gets no
/// estimate (not exactly one plain INSERT, UPDATE or DELETE).
pub fn estimate_query_mysql(sql: &str, modes: SqlModes) -> Option<EstimateQuery> {
    let ranges = mysql_lexer::split(sql, modes).ok()?;
    let [range] = ranges.as_slice() else {
        return None;
    };
    let text = &sql[range.clone()];
    let tokens = mysql_lexer::scan(text, modes).ok()?;
    let statement = rules::plannable(&canonical::canonical(text, &tokens))?;
    match &statement {
        Statement::Update(u) => update(u),
        Statement::Delete(d) => delete(d),
        Statement::Insert(i) => insert(i),
        _ => None,
    }
}

fn update(u: &Update) -> Option<EstimateQuery> {
    if u.from.is_some() {
        return None;
    }
    Some(EstimateQuery::Explain {
        select: select_of(&u.table.to_string(), u.selection.as_ref()),
        limit: limit_of(u.limit.as_ref())?,
    })
}

fn delete(d: &Delete) -> Option<EstimateQuery> {
    let from = match (&d.using, &d.from) {
        (Some(using), _) => using,
        (None, FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f)) => f,
    };
    if from.is_empty() {
        return None;
    }
    let tables: Vec<String> = from.iter().map(ToString::to_string).collect();
    Some(EstimateQuery::Explain {
        select: select_of(&tables.join(", "), d.selection.as_ref()),
        limit: limit_of(d.limit.as_ref())?,
    })
}

fn insert(i: &Insert) -> Option<EstimateQuery> {
    let source = i.source.as_ref()?;
    match source.body.as_ref() {
        SetExpr::Values(v) => Some(EstimateQuery::Exact(v.rows.len() as u64)),
        _ => Some(EstimateQuery::Explain {
            select: source.to_string(),
            limit: None,
        }),
    }
}

fn select_of(from: &str, selection: Option<&Expr>) -> String {
    match selection {
        Some(w) => format!("SELECT 1 FROM {from} WHERE {w}"),
        None => format!("SELECT 1 FROM {from}"),
    }
}

/// `Some(None)` without a limit, `Some(Some(n))` for `LIMIT n`, `None` for
/// a limit that is not a plain number (no estimate then).
fn limit_of(limit: Option<&Expr>) -> Option<Option<u64>> {
    match limit {
        None => Some(None),
        Some(Expr::Value(v)) => match &v.value {
            Value::Number(n, _) => n.parse().ok().map(Some),
            _ => None,
        },
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(sql: &str) -> Option<EstimateQuery> {
        estimate_query_mysql(sql, SqlModes::default())
    }

    fn explain(select: &str, limit: Option<u64>) -> Option<EstimateQuery> {
        Some(EstimateQuery::Explain {
            select: select.to_string(),
            limit,
        })
    }

    #[test]
    fn the_read_that_finds_the_same_rows() {
        assert_eq!(
            q("UPDATE t SET v = v + 1 WHERE id < 10"),
            explain("SELECT 1 FROM t WHERE id < 10", None)
        );
        assert_eq!(
            q("UPDATE `t` SET v = 0 ORDER BY id LIMIT 5"),
            explain("SELECT 1 FROM `t`", Some(5))
        );
        assert_eq!(
            q("UPDATE a JOIN b ON a.id = b.id SET a.v = b.v WHERE b.x = 'y'"),
            explain(
                "SELECT 1 FROM a JOIN b ON a.id = b.id WHERE b.x = 'y'",
                None
            )
        );
        assert_eq!(
            q("DELETE FROM t WHERE v IS NULL LIMIT 100"),
            explain("SELECT 1 FROM t WHERE v IS NULL", Some(100))
        );
        assert_eq!(
            q("DELETE t FROM t JOIN u ON t.id = u.id WHERE u.gone = 1"),
            explain(
                "SELECT 1 FROM t JOIN u ON t.id = u.id WHERE u.gone = 1",
                None
            )
        );
        assert_eq!(
            q("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')"),
            Some(EstimateQuery::Exact(2))
        );
        assert_eq!(
            q("INSERT INTO t SELECT id, v FROM u WHERE v > 3"),
            explain("SELECT id, v FROM u WHERE v > 3", None)
        );
        // Executable comments are code: the estimate sees them.
        assert_eq!(
            q("DELETE FROM t WHERE id = 1 /*! OR id = 2 */"),
            explain("SELECT 1 FROM t WHERE id = 1 OR id = 2", None)
        );
    }

    #[test]
    fn no_estimate_for_anything_else() {
        assert_eq!(q("UPDATE t SET v = 1 LIMIT @n"), None);
        assert_eq!(q("SELECT 1"), None);
        assert_eq!(q("UPDATE t SET v = GET_LOCK('x', 1)"), None);
    }
}
