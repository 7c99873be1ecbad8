//! `KILL [QUERY | CONNECTION] n` and COM_PROCESS_KILL, answered by the
//! proxy: `n` is a connection id the client knows — the one in airlock's
//! greeting (what the mysql CLI's Ctrl-C sends) or the upstream's own
//! (`CONNECTION_ID()`). Only the user's own sessions can be killed; the
//! KILL goes to the right upstream thread on its own connection. Relaying
//! the number as is could end someone else's thread upstream.

use crate::upstream::{self, UpstreamSpec};
use airlock_core::LiveConfig;
use airlock_sql::mysql_lexer::{self, SqlModes, TokenKind};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A parsed KILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    /// `KILL QUERY`: only the running statement.
    pub query_only: bool,
    /// The id given.
    pub id: u64,
}

/// Recognises `KILL [HARD|SOFT] [QUERY|CONNECTION] [ID] n` (one statement).
pub fn parse(sql: &str, modes: SqlModes) -> Option<Kill> {
    let tokens = mysql_lexer::scan(sql, modes).ok()?;
    let words: Vec<&str> = tokens
        .iter()
        .filter(|t| !matches!(t.kind, TokenKind::LineComment | TokenKind::BlockComment))
        .map(|t| &sql[t.start..t.end])
        .filter(|w| *w != ";")
        .collect();
    let mut it = words.iter().peekable();
    if !it.next()?.eq_ignore_ascii_case("KILL") {
        return None;
    }
    let mut query_only = false;
    while let Some(w) = it.peek() {
        let upper = w.to_ascii_uppercase();
        match upper.as_str() {
            "HARD" | "SOFT" | "CONNECTION" | "ID" => {}
            "QUERY" => query_only = true,
            _ => break,
        }
        it.next();
    }
    let id = it.next()?.parse().ok()?;
    it.next().is_none().then_some(Kill { query_only, id })
}

/// One live session, as KILL needs it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its user.
    pub user: String,
    /// Its target.
    pub target: String,
    /// Its upstream thread id.
    pub upstream_thread: u32,
    /// Wakes the session if it waits for a decision (`airlock.wait`): a
    /// KILL of it cancels the request it waits on.
    pub cancel: std::sync::Arc<tokio::sync::Notify>,
}

/// The live sessions of a listener, by the connection id of airlock's greeting.
#[derive(Debug, Default)]
pub struct Registry(Mutex<HashMap<u32, Entry>>);

impl Registry {
    /// Lists a session.
    pub fn insert(&self, id: u32, entry: Entry) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id, entry);
        }
    }

    /// Forgets a session.
    pub fn remove(&self, id: u32) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&id);
        }
    }

    /// The session of `user` that `id` names (airlock's id or the upstream's).
    pub fn find(&self, user: &str, id: u64) -> Option<Entry> {
        let m = self.0.lock().ok()?;
        if let Some(e) = u32::try_from(id).ok().and_then(|i| m.get(&i)) {
            return (e.user == user).then(|| e.clone());
        }
        m.values()
            .find(|e| e.user == user && u64::from(e.upstream_thread) == id)
            .cloned()
    }
}

/// Sends the KILL to the upstream thread of `victim`; the ERR text on refusal.
pub async fn execute(live: &LiveConfig, victim: &Entry, kill: Kill) -> Result<(), String> {
    let config = live.current();
    let target = config
        .target(&victim.target)
        .ok_or_else(|| format!("target {} is gone", victim.target))?;
    let creds = target.session_credentials();
    let spec = UpstreamSpec::own(target, creds, "airlock:kill", Duration::from_secs(10));
    let mut up = upstream::connect(&spec).await.map_err(|e| e.to_string())?;
    let sql = if kill.query_only {
        format!("KILL QUERY {}", victim.upstream_thread)
    } else {
        format!("KILL {}", victim.upstream_thread)
    };
    match up.simple_query(&sql).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.message),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kill_forms() {
        let m = SqlModes::default();
        assert_eq!(
            parse("KILL 5", m),
            Some(Kill {
                query_only: false,
                id: 5
            })
        );
        assert_eq!(
            parse("kill query 12;", m),
            Some(Kill {
                query_only: true,
                id: 12
            })
        );
        assert_eq!(
            parse("KILL HARD QUERY ID 7", m),
            Some(Kill {
                query_only: true,
                id: 7
            })
        );
        assert_eq!(
            parse("/* c */ KILL CONNECTION 9", m),
            Some(Kill {
                query_only: false,
                id: 9
            })
        );
        assert_eq!(parse("KILL USER bob", m), None);
        assert_eq!(parse("KILL 5; DROP TABLE t", m), None);
        assert_eq!(parse("SELECT 1", m), None);
    }

    #[test]
    fn only_the_users_own_sessions() {
        let r = Registry::default();
        r.insert(
            100,
            Entry {
                user: "alice".into(),
                target: "t".into(),
                upstream_thread: 7,
                cancel: Default::default(),
            },
        );
        assert_eq!(r.find("alice", 100).map(|e| e.upstream_thread), Some(7));
        assert_eq!(r.find("alice", 7).map(|e| e.upstream_thread), Some(7));
        assert!(r.find("mallory", 100).is_none());
        assert!(r.find("mallory", 7).is_none());
        assert!(r.find("alice", 8).is_none());
    }
}

/// What a gate needs to answer KILL.
#[derive(Clone)]
pub struct Killer {
    /// The listener's sessions.
    pub registry: std::sync::Arc<Registry>,
    /// The configuration in force.
    pub live: LiveConfig,
    /// The session's user.
    pub user: String,
}

impl Killer {
    /// Answers a KILL of connection `kill.id`.
    pub async fn answer(&self, kill: Kill, caps: u32) -> crate::relay::Verdict {
        use crate::messages::{ErrPacket, OkPacket};
        let Some(victim) = self.registry.find(&self.user, kill.id) else {
            return crate::relay::Verdict::Refuse(ErrPacket::new(
                1094,
                "HY000",
                format!(
                    "Unknown thread id: {} (airlock kills only your own sessions)",
                    kill.id
                ),
            ));
        };
        // A session waiting for a decision runs nothing upstream: the KILL
        // is for its wait (the mysql CLI's Ctrl-C), which cancels the request.
        victim.cancel.notify_waiters();
        match execute(&self.live, &victim, kill).await {
            Ok(()) => crate::relay::Verdict::Answer(vec![OkPacket::default().encode_for(0, caps)]),
            Err(e) => crate::relay::Verdict::Refuse(ErrPacket::new(
                1105,
                "HY000",
                format!("airlock: KILL failed: {e}"),
            )),
        }
    }
}

/// The KILL a command asks for, if it is one: COM_PROCESS_KILL or a
/// `KILL …` text query.
pub fn of_command(payload: &[u8], modes: SqlModes) -> Option<Kill> {
    match *payload.first()? {
        crate::response::com::PROCESS_KILL => {
            let b = payload.get(1..5)?;
            Some(Kill {
                query_only: false,
                id: u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            })
        }
        crate::response::com::QUERY => {
            let sql = std::str::from_utf8(&payload[1..]).ok()?;
            // Cheap first look: most texts are not KILLs.
            let head = sql.trim_start().get(..4)?;
            if !head.eq_ignore_ascii_case("kill") && !sql.trim_start().starts_with("/*") {
                return None;
            }
            parse(sql, modes)
        }
        _ => None,
    }
}
