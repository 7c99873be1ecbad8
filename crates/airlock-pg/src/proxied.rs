//! The proxy's own commands (`SET|SHOW|RESET airlock.*`, `CALL
//! airlock.run|rollback|cancel(N)`) over the extended protocol, as drivers
//! send them (pgJDBC, psycopg, asyncpg, node-postgres): Parse/Bind/Describe/
//! Execute, named or not, in batches with other statements.
//!
//! The upstream never sees the command. It gets a stand-in statement of
//! the same name, `SELECT '<nonce>'::text AS "<nonce>"`, so Postgres itself
//! keeps the statement and portal bookkeeping and answers ParseComplete,
//! BindComplete, CloseComplete and errors at exactly the right places. The
//! stand-in's RowDescription (from a Describe) and its one row (from an
//! Execute) carry the per-session nonce: the upstream-to-client side swaps
//! them, in order, for the command's own description and result, and drops
//! the stand-in's CommandComplete. Pure bookkeeping; no I/O.

use crate::frame::{self, put_cstr, FrameError};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most proxy statements and portals remembered per session.
const MAX_ENTRIES: usize = 64;

/// Named proxy statements and the portals bound to them.
#[derive(Default)]
pub struct ProxyStatements {
    statements: HashMap<Vec<u8>, String>,
    portals: HashMap<Vec<u8>, String>,
}

impl ProxyStatements {
    /// Remembers a Parse of a proxy command (or forgets the name when the
    /// statement is something else).
    pub fn parsed(&mut self, name: &[u8], command: Option<&str>) {
        match command {
            Some(sql) => {
                if self.statements.len() >= MAX_ENTRIES && !self.statements.contains_key(name) {
                    self.statements.clear();
                }
                self.statements.insert(name.to_vec(), sql.to_string());
            }
            None => {
                self.statements.remove(name);
            }
        }
    }

    /// Whether `statement` is a proxy command.
    pub fn is_proxy(&self, statement: &[u8]) -> bool {
        self.statements.contains_key(statement)
    }

    /// A Bind of portal to statement: the command text with its parameters
    /// in place (`None` when the statement is not a proxy command).
    pub fn bound(
        &mut self,
        portal: &[u8],
        statement: &[u8],
        params: &[Option<Vec<u8>>],
    ) -> Option<()> {
        let Some(sql) = self.statements.get(statement) else {
            self.portals.remove(portal);
            return None;
        };
        let sql = substitute(sql, params);
        if self.portals.len() >= MAX_ENTRIES && !self.portals.contains_key(portal) {
            self.portals.clear();
        }
        self.portals.insert(portal.to_vec(), sql);
        Some(())
    }

    /// An ordinary Bind (or a simple Query, for the unnamed portal) replaced
    /// the portal.
    pub fn unbound(&mut self, portal: &[u8]) {
        if !self.portals.is_empty() {
            self.portals.remove(portal);
        }
    }

    /// The command a portal runs, if it is a proxy portal.
    pub fn portal(&self, portal: &[u8]) -> Option<&str> {
        self.portals.get(portal).map(String::as_str)
    }

    /// The command of a statement, for a Describe of it.
    pub fn statement(&self, name: &[u8]) -> Option<&str> {
        self.statements.get(name).map(String::as_str)
    }

    /// Close of a statement or portal.
    pub fn closed(&mut self, kind: u8, name: &[u8]) {
        if kind == b'S' {
            self.statements.remove(name);
        } else {
            self.portals.remove(name);
        }
    }

    /// `DISCARD ALL` / `DEALLOCATE ALL`: everything is gone upstream too.
    pub fn clear(&mut self) {
        self.statements.clear();
        self.portals.clear();
    }
}

/// Puts text parameter values into `$n` places as quoted literals (NULL
/// for a null). The command grammar takes only numbers and strings, so a
/// wrong value is refused by the command parser, never run.
fn substitute(sql: &str, params: &[Option<Vec<u8>>]) -> String {
    let mut out = String::with_capacity(sql.len());
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits > 0 {
                let n: usize = sql[i + 1..i + 1 + digits].parse().unwrap_or(0);
                if let Some(p) = n.checked_sub(1).and_then(|k| params.get(k)) {
                    match p {
                        // A request number stays a number; anything else is a string literal.
                        Some(v) if !v.is_empty() && v.iter().all(u8::is_ascii_digit) => {
                            out.push_str(&String::from_utf8_lossy(v));
                        }
                        Some(v) => {
                            let text = String::from_utf8_lossy(v);
                            out.push('\'');
                            out.push_str(&text.replace('\'', "''"));
                            out.push('\'');
                        }
                        None => out.push_str("NULL"),
                    }
                    i += 1 + digits;
                    continue;
                }
            }
        }
        let ch = sql[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The stand-in statement the upstream parses instead of a proxy command.
pub fn stand_in_sql(nonce: &str) -> String {
    format!("SELECT '{nonce}'::text AS \"{nonce}\"")
}

/// A Parse frame of `name` with the stand-in and no parameter types.
pub fn stand_in_parse(name: &[u8], nonce: &str) -> BytesMut {
    let mut body = BytesMut::new();
    put_cstr(&mut body, name);
    put_cstr(&mut body, stand_in_sql(nonce).as_bytes());
    body.put_i16(0);
    typed(b'P', &body)
}

/// A Bind of `portal` to `statement` with no parameters and text results.
pub fn stand_in_bind(portal: &[u8], statement: &[u8]) -> BytesMut {
    let mut body = BytesMut::new();
    put_cstr(&mut body, portal);
    put_cstr(&mut body, statement);
    body.put_i16(0);
    body.put_i16(0);
    body.put_i16(0);
    typed(b'B', &body)
}

/// Text parameter values of a Bind (`None` is NULL).
pub type TextParams = Vec<Option<Vec<u8>>>;

/// Portal and statement names and text parameter values of a Bind.
pub fn bind_parts(f: &[u8]) -> Result<(Vec<u8>, Vec<u8>, TextParams), FrameError> {
    let (portal, rest) = frame::cstr(frame::body(f)).ok_or(FrameError::Malformed("Bind"))?;
    let (statement, _) = frame::cstr(rest).ok_or(FrameError::Malformed("Bind"))?;
    let params = frame::bind_params(f, &[])?
        .into_iter()
        .map(|p| match (p.value, p.binary) {
            (Some(v), true) => Some(binary_as_text(&v)),
            (v, _) => v,
        })
        .collect();
    Ok((portal.to_vec(), statement.to_vec(), params))
}

/// A binary parameter of a proxy command: request numbers come as int2,
/// int4 or int8 (psycopg picks the smallest); anything else is passed as
/// its bytes (and refused by the command parser).
fn binary_as_text(v: &[u8]) -> Vec<u8> {
    match v.len() {
        2 => i16::from_be_bytes([v[0], v[1]]).to_string().into_bytes(),
        4 => i32::from_be_bytes([v[0], v[1], v[2], v[3]])
            .to_string()
            .into_bytes(),
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(v);
            i64::from_be_bytes(a).to_string().into_bytes()
        }
        _ => v.to_vec(),
    }
}

/// The description frames of a command's result (RowDescription, or NoData).
pub fn description(result: &[u8]) -> Bytes {
    let mut rest = result;
    while let Ok(Some(h)) = frame::peek_header(rest) {
        if h.tag == b'T' {
            return Bytes::copy_from_slice(&rest[..h.frame_len]);
        }
        rest = rest.get(h.frame_len..).unwrap_or(&[]);
    }
    Bytes::from_static(b"n\0\0\0\x04")
}

/// A command's result as an Execute answers: without RowDescription, NoData,
/// ParameterDescription or Parse/Bind completions (a run's frames come from
/// the executor's own extended round trip).
pub fn rows_only(result: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(result.len());
    let mut rest = result;
    while let Ok(Some(h)) = frame::peek_header(rest) {
        let Some(f) = rest.get(..h.frame_len) else {
            break;
        };
        if !matches!(h.tag, b'T' | b'n' | b't' | b'1' | b'2') {
            out.extend_from_slice(f);
        }
        rest = &rest[h.frame_len..];
    }
    out.freeze()
}

/// Swaps owed to the client, in the order of the upstream's answers, each
/// tagged with the ReadyForQuery group its message belongs to.
#[derive(Default)]
pub struct Swaps {
    queue: Mutex<VecDeque<(u64, Bytes)>>,
    len: AtomicUsize,
}

impl Swaps {
    /// Owes `frames` in place of the next nonce-carrying frame of `group`.
    pub fn push(&self, group: u64, frames: Bytes) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back((group, frames));
            self.len.store(q.len(), Ordering::Release);
        }
    }

    /// Whether any swap is owed (the relay then looks at T, D and C frames).
    pub fn pending(&self) -> bool {
        self.len.load(Ordering::Acquire) > 0
    }

    /// The frames for the next stand-in frame of `group`; entries of earlier
    /// groups (skipped by Postgres after an error) are dropped.
    pub fn next(&self, group: u64) -> Option<Bytes> {
        let mut q = self.queue.lock().ok()?;
        while q.front().is_some_and(|(g, _)| *g < group) {
            q.pop_front();
        }
        let out = if q.front().is_some_and(|(g, _)| *g == group) {
            q.pop_front().map(|(_, f)| f)
        } else {
            None
        };
        self.len.store(q.len(), Ordering::Release);
        out
    }

    /// At the ReadyForQuery ending `group`: what it did not answer is void.
    pub fn ended(&self, group: u64) {
        if !self.pending() {
            return;
        }
        if let Ok(mut q) = self.queue.lock() {
            while q.front().is_some_and(|(g, _)| *g <= group) {
                q.pop_front();
            }
            self.len.store(q.len(), Ordering::Release);
        }
    }
}

/// A typed frame with the given body.
fn typed(tag: u8, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    frame::put_typed(&mut out, tag, body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_literals_and_names_are_tracked() {
        let mut p = ProxyStatements::default();
        p.parsed(b"s1", Some("CALL airlock.run($1)"));
        assert!(p.is_proxy(b"s1"));
        p.bound(b"", b"s1", &[Some(b"42".to_vec())]);
        assert_eq!(p.portal(b""), Some("CALL airlock.run(42)"));
        p.bound(b"", b"other", &[]);
        assert_eq!(p.portal(b""), None);
        p.bound(b"", b"s1", &[Some(b"42".to_vec())]);
        p.unbound(b"");
        assert_eq!(
            p.portal(b""),
            None,
            "a later Bind of another statement replaces it"
        );
        p.parsed(b"s1", None);
        assert!(!p.is_proxy(b"s1"));
        assert_eq!(
            substitute("SET airlock.reason = $1", &[Some(b"it's".to_vec())]),
            "SET airlock.reason = 'it''s'"
        );
    }

    #[test]
    fn binds_decode_text_and_binary_parameters() {
        let mut body = BytesMut::new();
        put_cstr(&mut body, b"p");
        put_cstr(&mut body, b"s");
        body.put_i16(1);
        body.put_i16(1);
        body.put_i16(1);
        body.put_i32(4);
        body.put_i32(7);
        body.put_i16(0);
        let f = typed(b'B', &body);
        let (portal, stmt, params) = bind_parts(&f).expect("bind");
        assert_eq!((portal.as_slice(), stmt.as_slice()), (&b"p"[..], &b"s"[..]));
        assert_eq!(params, vec![Some(b"7".to_vec())]);
        assert!(bind_parts(&typed(b'B', b"p\0")).is_err());
    }

    #[test]
    fn results_split_into_description_and_rows() {
        let mut r = BytesMut::new();
        frame::put_row_description(&mut r, &["id"]);
        frame::put_data_row(&mut r, &[Some("1")]);
        frame::put_command_complete(&mut r, "SHOW");
        assert_eq!(description(&r)[0], b'T');
        assert_eq!(rows_only(&r)[0], b'D');
        let mut set = BytesMut::new();
        frame::put_command_complete(&mut set, "SET");
        assert_eq!(&description(&set)[..], b"n\0\0\0\x04");
    }
}
