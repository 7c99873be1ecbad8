//! Chat messages posted about requests, and the replay guard of interaction payloads.

use crate::error::db;
use crate::SqlStore;
use airlock_core::ports::{ChatMessageRef, StoreError};
use airlock_core::{RequestId, Timestamp};
use sqlx::Row;

impl SqlStore {
    pub(crate) async fn chat_message_impl(
        &self,
        request_id: RequestId,
        purpose: &str,
    ) -> Result<Option<ChatMessageRef>, StoreError> {
        let row = sqlx::query(
            "SELECT channel, ts, posted_at FROM chat_messages WHERE request_id = $1 AND purpose = $2",
        )
        .bind(request_id.0)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|row| {
            Ok(ChatMessageRef {
                request_id,
                purpose: purpose.to_string(),
                channel: row.try_get("channel").map_err(db)?,
                ts: row.try_get("ts").map_err(db)?,
                posted_at: Timestamp(row.try_get("posted_at").map_err(db)?),
            })
        })
        .transpose()
    }

    /// Inserts `m`; on an existing record for the request and purpose,
    /// `on_conflict` decides (`DO NOTHING` or `DO UPDATE …`). Rows written.
    async fn insert_chat_message(
        &self,
        m: &ChatMessageRef,
        on_conflict: &'static str,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO chat_messages (request_id, purpose, channel, ts, posted_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id, purpose) {on_conflict}"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(m.request_id.0)
            .bind(&m.purpose)
            .bind(&m.channel)
            .bind(&m.ts)
            .bind(m.posted_at.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn record_chat_message_impl(
        &self,
        m: &ChatMessageRef,
    ) -> Result<bool, StoreError> {
        Ok(self.insert_chat_message(m, "DO NOTHING").await? == 1)
    }

    pub(crate) async fn replace_chat_message_impl(
        &self,
        m: &ChatMessageRef,
    ) -> Result<(), StoreError> {
        self.insert_chat_message(
            m,
            "DO UPDATE SET channel = excluded.channel, ts = excluded.ts, posted_at = excluded.posted_at",
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn remember_nonce_impl(
        &self,
        nonce: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM interaction_nonces WHERE seen_at < $1")
            .bind(forget_before.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        let done = sqlx::query(
            "INSERT INTO interaction_nonces (nonce, seen_at) VALUES ($1, $2) \
             ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}
