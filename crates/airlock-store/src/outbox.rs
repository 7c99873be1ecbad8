//! The notification outbox (claimed with leases) and named leases.

use crate::error::db;
use crate::{ms, Backend, SqlStore};
use airlock_core::ports::{NewOutboxMessage, OutboxClaim, OutboxMessage, StoreError, StoreEvent};
use airlock_core::{RequestId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};
use std::time::Duration;

const CLAIM_SQLITE: &str =
    "UPDATE outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox o WHERE done_at IS NULL AND available_at <= $3 \
        AND (lease_until IS NULL OR lease_until <= $3) AND ($4 IS NULL OR topic = $4) \
        AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.request_id = o.request_id \
            AND e.topic = o.topic AND e.done_at IS NULL AND e.id < o.id) \
        ORDER BY id LIMIT $5) \
     RETURNING id, topic, request_id, payload, created_at, attempts, last_error";

const CLAIM_PG: &str =
    "UPDATE outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox o WHERE done_at IS NULL AND available_at <= $3 \
        AND (lease_until IS NULL OR lease_until <= $3) AND ($4::text IS NULL OR topic = $4) \
        AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.request_id = o.request_id \
            AND e.topic = o.topic AND e.done_at IS NULL AND e.id < o.id) \
        ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) \
     RETURNING id, topic, request_id, payload, created_at, attempts, last_error";

fn message_from_row(row: &AnyRow) -> Result<OutboxMessage, StoreError> {
    let attempts: i64 = row.try_get("attempts").map_err(db)?;
    Ok(OutboxMessage {
        id: row.try_get("id").map_err(db)?,
        topic: row.try_get("topic").map_err(db)?,
        request_id: row
            .try_get::<Option<i64>, _>("request_id")
            .map_err(db)?
            .map(RequestId),
        payload: row.try_get("payload").map_err(db)?,
        created_at: Timestamp(row.try_get("created_at").map_err(db)?),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error: row.try_get("last_error").map_err(db)?,
    })
}

impl SqlStore {
    /// Inserts a message with any executor (inside a transaction or not).
    pub(crate) async fn enqueue_in<'e, E>(
        &self,
        executor: E,
        m: &NewOutboxMessage,
    ) -> Result<i64, StoreError>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = sqlx::query(
            "INSERT INTO outbox (topic, request_id, payload, created_at, available_at, attempts) \
             VALUES ($1, $2, $3, $4, $4, 0) RETURNING id",
        )
        .bind(&m.topic)
        .bind(m.request_id.map(|r| r.0))
        .bind(&m.payload)
        .bind(m.at.0)
        .fetch_one(executor)
        .await
        .map_err(db)?;
        row.try_get("id").map_err(db)
    }

    pub(crate) async fn enqueue_outbox_impl(
        &self,
        m: &NewOutboxMessage,
    ) -> Result<i64, StoreError> {
        if self.backend != Backend::Postgres {
            let id = self.enqueue_in(&self.pool, m).await?;
            self.announce(StoreEvent::Outbox);
            return Ok(id);
        }
        // The message and its NOTIFY in one transaction: other replicas are
        // told exactly when it can be claimed.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let id = self.enqueue_in(&mut *tx, m).await?;
        self.notify_in(&mut tx, StoreEvent::Outbox).await?;
        tx.commit().await.map_err(db)?;
        self.announce(StoreEvent::Outbox);
        Ok(id)
    }

    pub(crate) async fn outbox_depth_impl(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE done_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_get("n").map_err(db)
    }

    pub(crate) async fn claim_outbox_impl(
        &self,
        claim: &OutboxClaim,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_PG,
        };
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sql)
            .bind(&claim.owner)
            .bind(claim.now.plus(claim.lease).0)
            .bind(claim.now.0)
            .bind(claim.topic.as_deref())
            .bind(i64::from(claim.limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut out = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    pub(crate) async fn ack_outbox_impl(
        &self,
        id: i64,
        owner: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET done_at = $1, lease_until = NULL \
             WHERE id = $2 AND lease_owner = $3 AND done_at IS NULL",
        )
        .bind(now.0)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn retry_outbox_impl(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, available_at = $1, last_error = $2 \
             WHERE id = $3 AND lease_owner = $4 AND done_at IS NULL",
        )
        .bind(retry_at.0)
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn try_lease_impl(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let until = now.0.saturating_add(ms(ttl));
        let done = sqlx::query(
            "INSERT INTO leases (name, owner, until_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_at = excluded.until_at \
             WHERE leases.owner = excluded.owner OR leases.until_at <= $4",
        )
        .bind(name)
        .bind(owner)
        .bind(until)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}
