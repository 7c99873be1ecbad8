//! Store events ([`StoreEvent`]): announced to this process's subscribers
//! after each commit, and on PostgreSQL also sent with `NOTIFY` inside the
//! writing transaction (delivered on commit, dropped on rollback), so a
//! listener on every replica wakes that replica's waiters.

use crate::error::db;
use crate::{Backend, SqlStore, Tx};
use airlock_core::ports::{StoreError, StoreEvent};
use sqlx::postgres::PgListener;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// The PostgreSQL notification channel.
pub(crate) const CHANNEL: &str = "airlock_events";

/// Events buffered per subscriber before it lags (and then looks again).
const CAPACITY: usize = 1024;

/// Pause before re-connecting a listener that could not connect.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The in-process fan-out, and the PostgreSQL listener feeding it.
#[derive(Debug)]
pub(crate) struct Events {
    sender: broadcast::Sender<StoreEvent>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Events {
    pub(crate) fn new() -> Self {
        Events {
            sender: broadcast::channel(CAPACITY).0,
            listener: Mutex::new(None),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.sender.subscribe()
    }

    /// Tells this process's subscribers (none listening is fine).
    pub(crate) fn announce(&self, event: StoreEvent) {
        let _ = self.sender.send(event);
    }

    /// Starts forwarding the PostgreSQL channel of the store at `url`.
    pub(crate) fn listen(&self, url: &str) {
        let task = tokio::spawn(forward(url.to_string(), self.sender.clone()));
        if let Ok(mut slot) = self.listener.lock() {
            if let Some(old) = slot.replace(task) {
                old.abort();
            }
        }
    }

    /// Stops the listener.
    pub(crate) fn stop(&self) {
        if let Ok(mut slot) = self.listener.lock() {
            if let Some(task) = slot.take() {
                task.abort();
            }
        }
    }
}

/// Relays notifications of [`CHANNEL`] into `sender` for as long as the
/// process lives, re-connecting after a lost connection; every (re)connect
/// announces [`StoreEvent::Resync`], since notifications sent meanwhile are lost.
async fn forward(url: String, sender: broadcast::Sender<StoreEvent>) {
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "store notifications: cannot connect; waiters fall back to polling");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "store notifications: LISTEN failed");
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        let _ = sender.send(StoreEvent::Resync);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => match StoreEvent::from_payload(n.payload()) {
                    Some(event) => {
                        let _ = sender.send(event);
                    }
                    None => tracing::debug!(
                        payload = n.payload(),
                        "store notifications: unknown payload"
                    ),
                },
                // The connection was lost; the next call re-connects and listens again.
                Ok(None) => {
                    tracing::warn!("store notifications: connection lost, re-connecting");
                    let _ = sender.send(StoreEvent::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store notifications: receiving failed");
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

impl SqlStore {
    /// Sends `event` to every replica when `tx` commits (PostgreSQL only;
    /// this process's subscribers are told by [`SqlStore::announce`]).
    pub(crate) async fn notify_in(&self, tx: &mut Tx, event: StoreEvent) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        // NOTIFY takes no parameters; the payload is ours (a keyword or a number).
        let sql = format!("NOTIFY {CHANNEL}, '{}'", event.to_payload());
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Tells this process's subscribers about a committed change.
    pub(crate) fn announce(&self, event: StoreEvent) {
        self.events.announce(event);
    }
}
