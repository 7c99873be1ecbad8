//! The planner's row estimate of a held MySQL change (SPEC §5): the read
//! that finds the same rows ([`airlock_sql::mysql::EstimateQuery`]) is
//! prepared as `EXPLAIN FORMAT=JSON …` — one statement by construction,
//! sent as a hex literal so no quoting can break out — and executed on its
//! own connection with the target's read credentials inside `START
//! TRANSACTION READ ONLY`. Nothing of the change itself ever runs, and
//! nothing derived from it touches the write credentials.

use crate::upstream::{self, Upstream, UpstreamSpec};
use airlock_core::Target;
use airlock_sql::mysql::{classify_mysql, EstimateQuery};
use airlock_sql::mysql_lexer::SqlModes;
use std::time::Duration;
use tracing::debug;

/// The rows the planner expects `query` to touch on `target`, or `None`
/// when it cannot tell (no read credentials, another `sql_mode`, an error,
/// `timeout`).
pub async fn estimate_rows(
    target: &Target,
    query: &EstimateQuery,
    modes: SqlModes,
    timeout: Duration,
) -> Option<f64> {
    let (select, limit) = match query {
        EstimateQuery::Exact(n) => return Some(*n as f64),
        EstimateQuery::Explain { select, limit } => (select, *limit),
    };
    // What the planner sees must itself be a read, judged as any other.
    if !classify_mysql(select, modes, &()).passes() {
        return None;
    }
    let rows = tokio::time::timeout(timeout, explain(target, select, modes))
        .await
        .ok()
        .flatten()?;
    Some(limit.map_or(rows, |l| rows.min(l as f64)))
}

async fn explain(target: &Target, select: &str, modes: SqlModes) -> Option<f64> {
    let creds = target.session_credentials()?;
    let spec = UpstreamSpec::own(
        target,
        Some(creds),
        "airlock:estimate",
        Duration::from_secs(5),
    );
    let mut up = match upstream::connect(&spec).await {
        Ok(u) => u,
        Err(e) => {
            debug!(error = %e, "no row estimate: cannot connect");
            return None;
        }
    };
    // The text was judged under the session's modes: another mode could
    // read it otherwise, so then there is no estimate.
    let server_modes = value(&mut up, "SELECT @@SESSION.sql_mode").await?;
    if SqlModes::from_sql_mode(&server_modes) != modes {
        debug!("no row estimate: the session's sql_mode differs");
        return None;
    }
    let explain = format!("EXPLAIN FORMAT=JSON {select}");
    let steps = [
        "START TRANSACTION READ ONLY".to_string(),
        format!(
            "SET @airlock_estimate = _utf8mb4 X'{}'",
            hex::encode(explain.as_bytes())
        ),
        "PREPARE airlock_estimate FROM @airlock_estimate".to_string(),
    ];
    for sql in &steps {
        if !ok(&mut up, sql).await {
            return None;
        }
    }
    let json = value(&mut up, "EXECUTE airlock_estimate").await;
    let _ = ok(&mut up, "DEALLOCATE PREPARE airlock_estimate").await;
    let _ = ok(&mut up, "ROLLBACK").await;
    rows_of_explain(&json?)
}

async fn ok(up: &mut Upstream, sql: &str) -> bool {
    match up.simple_query(sql).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            debug!(%sql, error = %e.message, "no row estimate");
            false
        }
        Err(e) => {
            debug!(%sql, error = %e, "no row estimate");
            false
        }
    }
}

async fn value(up: &mut Upstream, sql: &str) -> Option<String> {
    match up.query_value(sql).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            debug!(%sql, error = %e.message, "no row estimate");
            None
        }
        Err(e) => {
            debug!(%sql, error = %e, "no row estimate");
            None
        }
    }
}

/// The rows of an `EXPLAIN FORMAT=JSON` of a read: MariaDB's `rows` ×
/// `filtered` multiplied over the join, or MySQL's last
/// `rows_produced_per_join`; 0 for an impossible `WHERE`.
pub fn rows_of_explain(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let block = v.get("query_block")?;
    let tables: Vec<&serde_json::Value> = match (block.get("table"), block.get("nested_loop")) {
        (Some(t), _) => vec![t],
        (None, Some(serde_json::Value::Array(items))) => {
            items.iter().filter_map(|i| i.get("table")).collect()
        }
        _ => return None,
    };
    if tables.iter().any(|t| {
        t.get("message")
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.contains("Impossible") || m.contains("no matching row"))
    }) {
        return Some(0.0);
    }
    if let Some(last) = tables
        .last()
        .and_then(|t| number(t.get("rows_produced_per_join")))
    {
        return Some(last);
    }
    let mut rows = 1.0;
    for t in &tables {
        let r = number(t.get("rows"))?;
        let filtered = number(t.get("filtered")).unwrap_or(100.0);
        rows *= r * filtered / 100.0;
    }
    Some(rows.round())
}

/// A JSON number, or a number written as a string (MySQL's `"filtered": "10.00"`).
fn number(v: Option<&serde_json::Value>) -> Option<f64> {
    match v? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_and_mysql_plans() {
        let one = r#"{"query_block": {"select_id": 1, "nested_loop": [{"table": {"table_name": "t", "access_type": "ALL", "rows": 1000, "filtered": 10}}]}}"#;
        assert_eq!(rows_of_explain(one), Some(100.0));
        let join = r#"{"query_block": {"select_id": 1, "nested_loop": [
            {"table": {"table_name": "a", "rows": 1000, "filtered": 100}},
            {"table": {"table_name": "b", "rows": 1, "filtered": 100}}]}}"#;
        assert_eq!(rows_of_explain(join), Some(1000.0));
        let by_key = r#"{"query_block": {"select_id": 1, "table": {"table_name": "t", "access_type": "const", "rows": 1, "filtered": 100}}}"#;
        assert_eq!(rows_of_explain(by_key), Some(1.0));
        let none = r#"{"query_block": {"select_id": 1, "table": {"message": "Impossible WHERE"}}}"#;
        assert_eq!(rows_of_explain(none), Some(0.0));
        let mysql8 = r#"{"query_block": {"select_id": 1, "table": {"table_name": "t", "rows_examined_per_scan": 1000, "rows_produced_per_join": 333, "filtered": "33.33"}}}"#;
        assert_eq!(rows_of_explain(mysql8), Some(333.0));
        assert_eq!(rows_of_explain("not json"), None);
        assert_eq!(rows_of_explain(r#"{"query_block": {}}"#), None);
    }
}
