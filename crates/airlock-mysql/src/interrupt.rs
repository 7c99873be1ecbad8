//! What interrupts a session's wait for a decision (`airlock.wait`): the
//! client's `KILL QUERY` from another connection (the mysql CLI's Ctrl-C)
//! and the client going away.

use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The interrupts of one client session, shared by its gate, its relay and
/// the listener's KILL registry.
#[derive(Debug, Clone, Default)]
pub struct Interrupts {
    /// Woken (`notify_waiters`) by a KILL of the session.
    pub cancel: Arc<Notify>,
    /// Cancelled when the client closes while a command is being judged.
    pub gone: CancellationToken,
}
