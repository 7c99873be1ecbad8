//! The [`SessionDirectory`] on the shared store: client sessions by backend
//! key, with the replica that owns each.

use crate::error::db;
use crate::SqlStore;
use airlock_core::ports::{BoxFuture, SessionDirectory, StoreError};
use airlock_core::Timestamp;
use sqlx::Row;

impl SessionDirectory for SqlStore {
    fn register_session<'a>(
        &'a self,
        pid: i32,
        key: i32,
        owner: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO client_sessions (pid, secret, owner, registered_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (pid, secret) DO UPDATE SET owner = excluded.owner, registered_at = excluded.registered_at",
            )
            .bind(pid)
            .bind(key)
            .bind(owner)
            .bind(now.0)
            .execute(self.pool())
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn forget_session<'a>(
        &'a self,
        pid: i32,
        key: i32,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "DELETE FROM client_sessions WHERE pid = $1 AND secret = $2 AND owner = $3",
            )
            .bind(pid)
            .bind(key)
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn session_owner(
        &self,
        pid: i32,
        key: i32,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let row =
                sqlx::query("SELECT owner FROM client_sessions WHERE pid = $1 AND secret = $2")
                    .bind(pid)
                    .bind(key)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db)?;
            row.map(|r| r.try_get::<String, _>("owner").map_err(db))
                .transpose()
        })
    }

    fn forget_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM client_sessions WHERE owner = $1")
                .bind(owner)
                .execute(self.pool())
                .await
                .map_err(db)?;
            Ok(done.rows_affected())
        })
    }
}
