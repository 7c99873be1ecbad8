//! Which upstream backend a client's CancelRequest is for. Clients get the
//! upstream's real process id and a secret key of the proxy's own; a
//! CancelRequest is forwarded, with the real key, only when both match.
//!
//! With replicas, each session is also listed in the shared store's
//! [`SessionDirectory`] with this replica's address; a CancelRequest for a
//! session this replica does not own is passed on, as the same 16 bytes, to
//! the replica that does (which forwards it upstream).

use crate::upstream::Endpoint;
use airlock_core::SessionDirectory;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tracing::{info, warn};

/// The CancelRequest code (1234 << 16 | 5678).
const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// Where one session's cancel requests go.
#[derive(Clone)]
struct Entry {
    target: String,
    endpoint: Endpoint,
    upstream_key: i32,
    signal: Arc<Notify>,
}

/// Live sessions by (pid, proxy key).
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<(i32, i32), Entry>>,
    shared: Option<Shared>,
}

/// The replicas' shared directory and this replica's address in it.
#[derive(Clone)]
struct Shared {
    directory: Arc<dyn SessionDirectory>,
    me: String,
}

/// How long passing a CancelRequest on to another replica may take.
const PASS_ON_TIMEOUT: Duration = Duration::from_secs(5);

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
        if let (Some(shared), Ok(rt)) = (
            self.registry.shared.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            let (pid, key) = (self.pid, self.key);
            rt.spawn(async move {
                if let Err(e) = shared.directory.forget_session(pid, key, &shared.me).await {
                    warn!(pid, error = %e, "forgetting a session in the shared directory failed");
                }
            });
        }
    }
}

impl CancelRegistry {
    /// A registry that also lists its sessions in `directory` as owned by
    /// `me` (the address other replicas reach this one's listener at).
    pub fn shared(directory: Arc<dyn SessionDirectory>, me: String) -> Self {
        CancelRegistry {
            map: Mutex::default(),
            shared: Some(Shared { directory, me }),
        }
    }

    /// Forgets the sessions an earlier run of this replica left listed.
    pub async fn forget_stale(&self) {
        if let Some(shared) = &self.shared {
            match shared.directory.forget_owner(&shared.me).await {
                Ok(n) if n > 0 => {
                    info!(sessions = n, owner = %shared.me, "forgot sessions an earlier run of this replica left listed")
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "cleaning the shared session directory failed"),
            }
        }
    }

    /// Passes a CancelRequest for a session this replica does not own to
    /// the replica that does; `false` when no other replica owns it.
    pub async fn pass_on(&self, pid: i32, key: i32) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let owner = match shared.directory.session_owner(pid, key).await {
            Ok(Some(owner)) if owner != shared.me => owner,
            Ok(_) => return false,
            Err(e) => {
                warn!(pid, error = %e, "looking up a session in the shared directory failed");
                return false;
            }
        };
        let sent = tokio::time::timeout(PASS_ON_TIMEOUT, async {
            let mut s = tokio::net::TcpStream::connect(owner.as_str()).await?;
            let mut packet = Vec::with_capacity(16);
            packet.extend_from_slice(&16i32.to_be_bytes());
            packet.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
            packet.extend_from_slice(&pid.to_be_bytes());
            packet.extend_from_slice(&key.to_be_bytes());
            s.write_all(&packet).await?;
            // The owner closes the connection once it forwarded the cancel.
            let mut sink = [0u8; 16];
            let _ = s.read(&mut sink).await;
            Ok::<(), std::io::Error>(())
        })
        .await;
        match sent {
            Ok(Ok(())) => {
                info!(pid, %owner, "cancel request passed on to the replica that owns the session");
                true
            }
            Ok(Err(e)) => {
                warn!(pid, %owner, error = %e, "passing a cancel request on failed");
                false
            }
            Err(_) => {
                warn!(pid, %owner, "passing a cancel request on timed out");
                false
            }
        }
    }

    /// Registers a session and returns the key to give its client.
    pub fn register(
        self: &Arc<Self>,
        target: &str,
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
                    target: target.to_string(),
                    endpoint,
                    upstream_key,
                    signal: signal.clone(),
                },
            );
        }
        if let (Some(shared), Ok(rt)) = (self.shared.clone(), tokio::runtime::Handle::try_current())
        {
            rt.spawn(async move {
                let now = airlock_core::Clock::now(&airlock_core::SystemClock);
                if let Err(e) = shared.directory.register_session(pid, key, &shared.me, now).await {
                    warn!(pid, error = %e, "listing a session in the shared directory failed; a cancel sent to another replica will not reach it");
                }
            });
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

    /// The upstream backends of the live sessions, by target name.
    pub fn backends_by_target(&self) -> HashMap<String, Vec<i32>> {
        let mut out: HashMap<String, Vec<i32>> = HashMap::new();
        if let Ok(map) = self.map.lock() {
            for ((pid, _), e) in map.iter() {
                out.entry(e.target.clone()).or_default().push(*pid);
            }
        }
        out
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
        let r = reg.register("t", 4242, 777, endpoint());
        assert_eq!(reg.backends_by_target().get("t"), Some(&vec![4242]));
        assert_eq!(reg.lookup(4242, r.key).map(|(_, k)| k), Some(777));
        assert!(reg.lookup(4242, r.key.wrapping_add(1)).is_none());
        assert!(reg.lookup(4243, r.key).is_none());
        drop(r);
        assert!(reg.is_empty());
    }
}
