//! The Postgres side of airlock: listener, TLS negotiation, client
//! authentication (SCRAM-SHA-256), upstream sessions, and the raw-frame relay
//! that holds what is not provably read-only on protected targets.

pub mod appname;
pub mod cancel;
pub mod catalog;
pub mod executor;
pub mod frame;
pub mod gate;
pub mod holding;
pub mod limits;
pub mod metered;
pub mod plain;
pub mod proxied;
pub mod reconcile;
pub mod record;
pub mod relay;
pub mod runner;
pub mod scram;
pub mod scram_client;
pub mod server;
pub mod session;
pub mod settle;
pub mod splice;
pub mod standing;
pub mod stream;
pub mod targets;
pub mod tls;
pub mod upstream;

pub use scram::make_verifier;
pub use server::{PgServer, ServerError};
