//! Errors of the SQL store.

use airlock_core::StoreError;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported store URL {0:?}: use sqlite://PATH?mode=rwc or postgres://…")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot open the store: {0}")]
    Connect(#[source] sqlx::Error),
    /// The schema migrations failed.
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Maps a database error into the port's error.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A stored value that cannot be read back.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}
