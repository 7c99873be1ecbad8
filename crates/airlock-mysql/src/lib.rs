//! airlock's MySQL/MariaDB wire protocol: the listener, client
//! authentication, the relay of upstream packets and the upstream
//! connections.
//!
//! The connection phase is written here rather than taken from
//! `opensrv-mysql`: that crate cannot do `caching_sha2_password`'s full
//! authentication, uses a fixed salt and drags in an older rustls; after
//! authentication the session relays the upstream's own packets.

pub mod auth;
pub mod binary_params;
pub mod caps;
pub mod conn;
pub mod ed25519;
pub mod estimate;
pub mod executor;
pub mod full_auth;
pub mod gate;
pub mod interrupt;
pub mod kill;
pub mod login;
pub mod messages;
pub mod packet;
pub mod prepared;
pub mod reconcile;
pub mod record;
pub mod relay;
pub mod response;
pub mod resultset;
pub mod server;
pub mod session;
pub mod upstream;
pub mod wire;

/// The largest command payload a client may send (a statement, a long
/// data chunk): 64 MiB, as a generous `max_allowed_packet`.
pub const MAX_COMMAND: usize = 64 * 1024 * 1024;

pub use server::MysqlServer;
