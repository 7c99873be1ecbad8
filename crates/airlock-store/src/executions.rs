//! Executions of non-read statements, and the earlier-runs lookup.

use crate::error::{corrupt, db};
use crate::SqlStore;
use airlock_core::ports::{EarlierRunsQuery, StoreError};
use airlock_core::{EarlierRun, Execution, Timestamp};
use sqlx::{AssertSqlSafe, Row};

impl SqlStore {
    pub(crate) async fn record_execution_impl(&self, e: &Execution) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO executions (request_id, family, target, environment, fingerprint, username, class, \
             rows_affected, duration_ms, success, error, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(e.request_id.map(|r| r.0))
        .bind(e.family.as_deref())
        .bind(&e.target)
        .bind(&e.environment)
        .bind(&e.fingerprint)
        .bind(&e.user)
        .bind(e.class.as_str())
        .bind(e.rows)
        .bind(e.duration_ms)
        .bind(i64::from(e.success))
        .bind(e.error.as_deref())
        .bind(e.at.0)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    pub(crate) async fn earlier_runs_impl(
        &self,
        q: &EarlierRunsQuery,
    ) -> Result<Vec<EarlierRun>, StoreError> {
        if q.environments.is_empty() || q.limit == 0 {
            return Ok(Vec::new());
        }
        // Only placeholders are formatted into the text; every value is bound.
        let envs: Vec<String> = (0..q.environments.len())
            .map(|i| format!("${}", i + 4))
            .collect();
        let sql = format!(
            "SELECT username, at, target, environment, rows_affected, duration_ms, success FROM executions \
             WHERE family = $1 AND fingerprint = $2 AND environment IN ({}) \
             ORDER BY at DESC, id DESC LIMIT $3",
            envs.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(&q.family)
            .bind(&q.fingerprint)
            .bind(i64::from(q.limit));
        for env in &q.environments {
            query = query.bind(env);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter()
            .map(|row| {
                let success: i64 = row.try_get("success").map_err(db)?;
                Ok(EarlierRun {
                    who: row.try_get("username").map_err(db)?,
                    when: Timestamp(row.try_get("at").map_err(db)?),
                    target: row.try_get("target").map_err(db)?,
                    environment: row.try_get("environment").map_err(db)?,
                    rows: row.try_get("rows_affected").map_err(db)?,
                    duration_ms: row.try_get("duration_ms").map_err(db)?,
                    success: match success {
                        0 => false,
                        1 => true,
                        other => return Err(corrupt(format!("executions.success = {other}"))),
                    },
                })
            })
            .collect()
    }
}
