//! The audit chain in SQL: appends under the chain's lock, reads, the head.

use crate::error::{corrupt, db};
use crate::{Backend, SqlStore, Tx};
use airlock_core::audit::{seal, AuditEvent, AuditHead, NewAuditEvent};
use airlock_core::ports::{NewOutboxMessage, StoreError, StoreEvent};
use airlock_core::{RequestId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

const LOCK_HEAD_PG: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
const READ_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// Outbox topic of request changes.
pub(crate) const REQUEST_TOPIC: &str = "request";

fn event_from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        seq: row.try_get("seq").map_err(db)?,
        at: Timestamp(row.try_get("at").map_err(db)?),
        actor: row.try_get("actor").map_err(db)?,
        kind: row.try_get("kind").map_err(db)?,
        request_id: row
            .try_get::<Option<i64>, _>("request_id")
            .map_err(db)?
            .map(RequestId),
        payload: row.try_get("payload").map_err(db)?,
        prev_hash: row.try_get("prev_hash").map_err(db)?,
        hash: row.try_get("hash").map_err(db)?,
    })
}

fn head_from_row(row: &AnyRow) -> Result<AuditHead, StoreError> {
    Ok(AuditHead {
        seq: row.try_get("seq").map_err(db)?,
        hash: row.try_get("hash").map_err(db)?,
    })
}

impl SqlStore {
    /// Takes the chain's lock inside a write transaction and returns its head.
    /// Every audited write calls this first, so appends (and the status
    /// changes they record) are serialized across processes.
    pub(crate) async fn lock_head(&self, tx: &mut Tx) -> Result<AuditHead, StoreError> {
        let sql = match self.backend {
            // BEGIN IMMEDIATE already holds the database's write lock.
            Backend::Sqlite => READ_HEAD,
            Backend::Postgres => LOCK_HEAD_PG,
        };
        let row = sqlx::query(sql)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?
            .ok_or_else(|| corrupt("the audit_head row is missing"))?;
        head_from_row(&row)
    }

    /// Appends one event after `head` (which the caller locked) and moves the head.
    pub(crate) async fn append_in(
        &self,
        tx: &mut Tx,
        head: &mut AuditHead,
        event: &NewAuditEvent,
    ) -> Result<AuditEvent, StoreError> {
        let sealed = seal(head, event.clone());
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor, kind, request_id, payload, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(sealed.seq)
        .bind(sealed.at.0)
        .bind(&sealed.actor)
        .bind(&sealed.kind)
        .bind(sealed.request_id.map(|r| r.0))
        .bind(&sealed.payload)
        .bind(&sealed.prev_hash)
        .bind(&sealed.hash)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        let updated =
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3")
                .bind(sealed.seq)
                .bind(&sealed.hash)
                .bind(head.seq)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        if updated.rows_affected() != 1 {
            return Err(corrupt("the audit head moved while it was locked"));
        }
        *head = sealed.head();
        Ok(sealed)
    }

    /// Appends the event of a request change and, when configured, its outbox message.
    pub(crate) async fn log_request_change(
        &self,
        tx: &mut Tx,
        head: &mut AuditHead,
        event: &NewAuditEvent,
    ) -> Result<AuditEvent, StoreError> {
        let sealed = self.append_in(tx, head, event).await?;
        if let Some(id) = sealed.request_id {
            self.notify_in(tx, StoreEvent::Request(id)).await?;
        }
        if self.options.request_outbox {
            let message = NewOutboxMessage {
                topic: REQUEST_TOPIC.to_string(),
                request_id: sealed.request_id,
                payload: serde_json::json!({ "kind": sealed.kind, "seq": sealed.seq }).to_string(),
                at: sealed.at,
            };
            self.enqueue_in(&mut **tx, &message).await?;
        }
        Ok(sealed)
    }

    pub(crate) async fn append_audit_impl(
        &self,
        event: &NewAuditEvent,
    ) -> Result<AuditEvent, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut head = self.lock_head(&mut tx).await?;
        let sealed = self.append_in(&mut tx, &mut head, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(sealed)
    }

    pub(crate) async fn audit_events_impl(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, kind, request_id, payload, prev_hash, hash FROM audit_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    pub(crate) async fn audit_head_impl(&self) -> Result<AuditHead, StoreError> {
        let row = sqlx::query(READ_HEAD)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| corrupt("the audit_head row is missing"))?;
        head_from_row(&row)
    }
}
