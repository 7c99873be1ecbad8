//! Which upstream backend a client's CancelRequest is for. Clients get the
//! upstream's real process id and a secret key of the proxy's own; a
//! CancelRequest is forwarded, with the real key, only when both match.

use crate::upstream::Endpoint;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Where one session's cancel requests go.
#[derive(Clone)]
struct Entry {
    endpoint: Endpoint,
    upstream_key: i32,
    signal: Arc<Notify>,
}

/// Live sessions by (pid, proxy key).
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<(i32, i32), Entry>>,
}

/// Removes a session from the registry when dropped.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pid: i32,
    /// The key handed to the client.
    pub key: i32,
    /// Woken when the client sends a matching CancelRequest (for proxy-side
    /// waits; the upstream backend is cancelled as well).
    pub signal: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.map.lock() {
            map.remove(&(self.pid, self.key));
        }
    }
}

impl CancelRegistry {
    /// Registers a session and returns the key to give its client.
    pub fn register(
        self: &Arc<Self>,
        pid: i32,
        upstream_key: i32,
        endpoint: Endpoint,
    ) -> Registration {
        let mut key: i32 = rand::random();
        let signal = Arc::new(Notify::new());
        if let Ok(mut map) = self.map.lock() {
            while map.contains_key(&(pid, key)) {
                key = rand::random();
            }
            map.insert(
                (pid, key),
                Entry {
                    endpoint,
                    upstream_key,
                    signal: signal.clone(),
                },
            );
        }
        Registration {
            registry: self.clone(),
            pid,
            key,
            signal,
        }
    }

    /// The upstream endpoint and real key for a CancelRequest, if it matches a session.
    pub fn lookup(&self, pid: i32, key: i32) -> Option<(Endpoint, i32)> {
        let map = self.map.lock().ok()?;
        let e = map.get(&(pid, key))?;
        // Wakes only a wait in progress; no permit is stored for later.
        e.signal.notify_waiters();
        Some((e.endpoint.clone(), e.upstream_key))
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: 5432,
            tls: None,
            tls_optional: false,
            scram: Default::default(),
        }
    }

    #[test]
    fn only_the_matching_key_finds_the_session_and_drop_forgets_it() {
        let reg = Arc::new(CancelRegistry::default());
        let r = reg.register(4242, 777, endpoint());
        assert_eq!(reg.lookup(4242, r.key).map(|(_, k)| k), Some(777));
        assert!(reg.lookup(4242, r.key.wrapping_add(1)).is_none());
        assert!(reg.lookup(4243, r.key).is_none());
        drop(r);
        assert!(reg.is_empty());
    }
}
