//! airlock's state store on SQLite (embedded default) or PostgreSQL (for
//! replicas), through sqlx: change requests, approvals, executions, the
//! hash-chained audit trail and the notification outbox. Implements the
//! [`airlock_core::Store`] port.
//!
//! Concurrency: every write that appends to the audit chain — which is every
//! request status change — runs in one transaction that first takes the
//! chain's lock (SQLite: `BEGIN IMMEDIATE`, the database's single writer
//! lock; PostgreSQL: `SELECT … FOR UPDATE` on the one-row `audit_head`
//! table). Two processes on one PostgreSQL store therefore keep a single
//! chain, and each status change is a compare-and-set
//! (`UPDATE … WHERE id = ? AND status = ?`) that only one of them can win.

mod audit;
mod chat;
mod error;
mod events;
mod executions;
mod outbox;
mod requests;
mod sessions;

pub use error::ConnectError;

use airlock_core::audit::{AuditEvent, AuditHead, NewAuditEvent};
use airlock_core::ports::{
    BoxFuture, ChatMessageRef, EarlierRunsQuery, NewOutboxMessage, OutboxClaim, OutboxMessage,
    StatusChange, Store, StoreError,
};
use airlock_core::request::matching::ExactMatch;
use airlock_core::{
    Approval, ApprovalOutcome, ChangeRequest, EarlierRun, Execution, Refusal, RequestDetails,
    RequestFilter, RequestId, RequestStatus, Timestamp,
};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::{Any, Executor, SqlSafeStr, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub(crate) type Tx = Transaction<'static, Any>;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (embedded, one process).
    Sqlite,
    /// PostgreSQL (several replicas may share it).
    Postgres,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool (SQLite in-memory databases always use 1).
    pub max_connections: u32,
    /// SQLite: how long a writer waits for the write lock before failing.
    pub busy_timeout: Duration,
    /// Enqueue an outbox message (topic `request`) with every request change.
    pub request_outbox: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(30),
            request_outbox: true,
        }
    }
}

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    options: StoreOptions,
    events: std::sync::Arc<events::Events>,
}

fn migrations(backend: Backend) -> Result<Migrator, ConnectError> {
    let steps: [(i64, &str, &'static str); 5] = match backend {
        Backend::Sqlite => [
            (
                1,
                "initial",
                include_str!("../migrations/sqlite/0001_initial.sql"),
            ),
            (
                2,
                "chat",
                include_str!("../migrations/sqlite/0002_chat.sql"),
            ),
            (
                3,
                "open holds",
                include_str!("../migrations/sqlite/0003_open_holds.sql"),
            ),
            (
                4,
                "upstream backend",
                include_str!("../migrations/sqlite/0004_upstream_backend.sql"),
            ),
            (
                5,
                "client sessions",
                include_str!("../migrations/sqlite/0005_client_sessions.sql"),
            ),
        ],
        Backend::Postgres => [
            (
                1,
                "initial",
                include_str!("../migrations/postgres/0001_initial.sql"),
            ),
            (
                2,
                "chat",
                include_str!("../migrations/postgres/0002_chat.sql"),
            ),
            (
                3,
                "open holds",
                include_str!("../migrations/postgres/0003_open_holds.sql"),
            ),
            (
                4,
                "upstream backend",
                include_str!("../migrations/postgres/0004_upstream_backend.sql"),
            ),
            (
                5,
                "client sessions",
                include_str!("../migrations/postgres/0005_client_sessions.sql"),
            ),
        ],
    };
    Ok(Migrator::with_migrations(
        steps
            .into_iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    ))
}

impl SqlStore {
    /// Opens the store at `url` — `sqlite://PATH?mode=rwc` (created if
    /// missing) or `postgres://user@host/db` — and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`SqlStore::connect`] with options.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, ConnectError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(ConnectError::UnsupportedUrl(url.to_string()));
        };
        let connect_options = AnyConnectOptions::from_str(url).map_err(ConnectError::Connect)?;
        let in_memory =
            backend == Backend::Sqlite && (url.contains(":memory:") || url.contains("mode=memory"));
        let busy_ms = options.busy_timeout.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(if in_memory {
                1
            } else {
                options.max_connections.max(1)
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA busy_timeout = {busy_ms}"
                        )))
                        .await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(ConnectError::Connect)?;
        if backend == Backend::Sqlite && !in_memory {
            // Readers never block the writer; the setting is kept in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(ConnectError::Connect)?;
        }
        migrations(backend)?.run(&pool).await?;
        tracing::info!(
            backend = ?backend,
            url = %airlock_core::config::redact_url(url),
            "state store opened"
        );
        let events = std::sync::Arc::new(events::Events::new());
        if backend == Backend::Postgres {
            events.listen(url);
        }
        Ok(SqlStore {
            pool,
            backend,
            options,
            events,
        })
    }

    /// Opens the store a config's `[store]` section describes.
    pub async fn from_config(config: &airlock_core::StoreConfig) -> Result<Self, ConnectError> {
        let options = StoreOptions {
            max_connections: config.max_connections,
            ..StoreOptions::default()
        };
        Self::connect_with(config.url(), options).await
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool (for health checks).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.events.stop();
        self.pool.close().await;
    }

    /// Starts a write transaction. SQLite takes its write lock at once
    /// (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout
    /// instead of failing when a read lock would need an upgrade.
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(error::db)
    }
}

/// Milliseconds of a duration, as stored.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Timestamp as stored.
pub(crate) fn ts(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.0)
}

impl Store for SqlStore {
    fn create_request<'a>(
        &'a self,
        details: &'a RequestDetails,
    ) -> BoxFuture<'a, Result<ChangeRequest, StoreError>> {
        Box::pin(self.create_request_impl(details))
    }

    fn get_request(
        &self,
        id: RequestId,
    ) -> BoxFuture<'_, Result<Option<ChangeRequest>, StoreError>> {
        Box::pin(self.get_request_impl(id))
    }

    fn list_requests<'a>(
        &'a self,
        filter: &'a RequestFilter,
    ) -> BoxFuture<'a, Result<Vec<ChangeRequest>, StoreError>> {
        Box::pin(self.list_requests_impl(filter))
    }

    fn find_open_exact<'a>(
        &'a self,
        key: &'a ExactMatch,
    ) -> BoxFuture<'a, Result<Option<ChangeRequest>, StoreError>> {
        Box::pin(self.find_open_exact_impl(key))
    }

    fn approvals(&self, id: RequestId) -> BoxFuture<'_, Result<Vec<Approval>, StoreError>> {
        Box::pin(self.approvals_impl(id))
    }

    fn record_approval<'a>(
        &'a self,
        approval: &'a Approval,
    ) -> BoxFuture<'a, Result<Result<ApprovalOutcome, Refusal>, StoreError>> {
        Box::pin(self.record_approval_impl(approval))
    }

    fn transition<'a>(
        &'a self,
        id: RequestId,
        change: &'a StatusChange,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.transition_impl(id, change))
    }

    fn set_upstream_session<'a>(
        &'a self,
        id: RequestId,
        during: RequestStatus,
        session: &'a airlock_core::request::UpstreamSession,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.set_upstream_session_impl(id, during, session))
    }

    fn expire_due(
        &self,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<(RequestId, RequestStatus)>, StoreError>> {
        Box::pin(self.expire_due_impl(now))
    }

    fn record_execution<'a>(
        &'a self,
        execution: &'a Execution,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.record_execution_impl(execution))
    }

    fn earlier_runs<'a>(
        &'a self,
        query: &'a EarlierRunsQuery,
    ) -> BoxFuture<'a, Result<Vec<EarlierRun>, StoreError>> {
        Box::pin(self.earlier_runs_impl(query))
    }

    fn append_audit<'a>(
        &'a self,
        event: &'a NewAuditEvent,
    ) -> BoxFuture<'a, Result<AuditEvent, StoreError>> {
        Box::pin(self.append_audit_impl(event))
    }

    fn audit_events(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<AuditEvent>, StoreError>> {
        Box::pin(self.audit_events_impl(after_seq, limit))
    }

    fn audit_head(&self) -> BoxFuture<'_, Result<AuditHead, StoreError>> {
        Box::pin(self.audit_head_impl())
    }

    fn enqueue_outbox<'a>(
        &'a self,
        message: &'a NewOutboxMessage,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(self.enqueue_outbox_impl(message))
    }

    fn claim_outbox<'a>(
        &'a self,
        claim: &'a OutboxClaim,
    ) -> BoxFuture<'a, Result<Vec<OutboxMessage>, StoreError>> {
        Box::pin(self.claim_outbox_impl(claim))
    }

    fn ack_outbox<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.ack_outbox_impl(id, owner, now))
    }

    fn retry_outbox<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        error: &'a str,
        retry_at: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.retry_outbox_impl(id, owner, error, retry_at))
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        now: Timestamp,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.try_lease_impl(name, owner, now, ttl))
    }

    fn chat_message<'a>(
        &'a self,
        request_id: RequestId,
        purpose: &'a str,
    ) -> BoxFuture<'a, Result<Option<ChatMessageRef>, StoreError>> {
        Box::pin(self.chat_message_impl(request_id, purpose))
    }

    fn record_chat_message<'a>(
        &'a self,
        message: &'a ChatMessageRef,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.record_chat_message_impl(message))
    }

    fn replace_chat_message<'a>(
        &'a self,
        message: &'a ChatMessageRef,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.replace_chat_message_impl(message))
    }

    fn remember_nonce<'a>(
        &'a self,
        nonce: &'a str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.remember_nonce_impl(nonce, now, forget_before))
    }

    fn request_counts(&self) -> BoxFuture<'_, Result<Vec<(RequestStatus, i64)>, StoreError>> {
        Box::pin(self.request_counts_impl())
    }

    fn outbox_depth(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.outbox_depth_impl())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<airlock_core::ports::StoreEvent> {
        self.events.subscribe()
    }
}
