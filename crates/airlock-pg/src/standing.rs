//! Whether a session may go on after a configuration reload: checked at
//! the start of every statement (Query, Parse, Bind, Execute, FunctionCall), so a
//! user removed or moved out of the target's groups is stopped at their
//! next statement, and watched while idle, so a removed target's sessions
//! end at once. The check itself is an atomic load until a reload happens.

use crate::relay::RelayError;
use airlock_core::{LiveConfig, Revocation, Snapshot};
use std::sync::Arc;
use tokio::sync::watch;

/// A session's standing under the configuration in force.
pub struct Standing {
    rx: Option<watch::Receiver<Arc<Snapshot>>>,
    user: String,
    target: String,
}

impl Standing {
    /// The standing of `user`'s session on `target`, logged in under
    /// generation `since`: a reload during the login counts as unseen.
    pub fn new(live: &LiveConfig, user: &str, target: &str, since: u64) -> Self {
        let mut rx = live.subscribe();
        if rx.borrow().generation != since {
            rx.mark_changed();
        }
        Standing {
            rx: Some(rx),
            user: user.to_string(),
            target: target.to_string(),
        }
    }

    /// A standing no reload changes (relays driven by tests).
    pub fn fixed() -> Self {
        Standing {
            rx: None,
            user: String::new(),
            target: String::new(),
        }
    }

    /// At the start of a statement: fails when a reload since the last
    /// check removed the session's user, access or target.
    pub fn admit(&mut self) -> Result<(), RelayError> {
        let Some(rx) = &mut self.rx else {
            return Ok(());
        };
        if !rx.has_changed().unwrap_or(false) {
            return Ok(());
        }
        let snapshot = rx.borrow_and_update().clone();
        airlock_core::standing(&snapshot.config, &self.user, &self.target)
            .map_err(RelayError::Revoked)
    }
}

/// Resolves when `target` is not in the configuration in force (at once
/// when a reload during the login removed it; never, without reloads).
pub async fn target_removed(live: &LiveConfig, target: &str) -> Revocation {
    let mut rx = live.subscribe();
    rx.mark_changed();
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if rx.borrow_and_update().config.target(target).is_none() {
            return Revocation::TargetRemoved {
                target: target.to_string(),
            };
        }
    }
}
