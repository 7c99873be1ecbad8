//! `application_name` as each side must see it. Upstream, every session is
//! labelled with the developer (`airlock:<user>:<app>`, SPEC §2), also after
//! the client's own `SET application_name`, which is rewritten to carry the
//! label. The client sees exactly the value it set: in the startup
//! ParameterStatus, in later ParameterStatus reports, and in the row of
//! `SHOW application_name`.
//!
//! Pure: the relays call it on frames they already hold whole.

use crate::frame::{begin, cstr, finish, put_cstr};
use bytes::{BufMut, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Longest `application_name` Postgres keeps (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;
/// Labels remembered for their exact client value (a session sets few).
const MAX_KNOWN: usize = 16;
const NAME: &[u8] = b"application_name";

/// One session's `application_name` mapping, shared by both relay directions.
pub struct AppName {
    prefix: String,
    /// (label sent upstream, value the client set), newest last.
    known: Mutex<VecDeque<(Vec<u8>, Vec<u8>)>>,
    /// `SHOW application_name` statements sent whose RowDescription is still to come.
    show_pending: AtomicU32,
    /// Named prepared statements that are `SHOW application_name` (a driver
    /// such as asyncpg re-executes them with Bind alone, without a new
    /// RowDescription).
    show_statements: Mutex<Vec<Vec<u8>>>,
    /// Binds of those statements whose row is still to come.
    show_bound: AtomicU32,
}

impl AppName {
    /// The mapping for `user`'s session.
    pub fn new(user: &str) -> Self {
        Self {
            prefix: format!("airlock:{user}:"),
            known: Mutex::new(VecDeque::new()),
            show_pending: AtomicU32::new(0),
            show_statements: Mutex::new(Vec::new()),
            show_bound: AtomicU32::new(0),
        }
    }

    /// The upstream label for a value the client set (empty: `unknown`),
    /// cut to what Postgres keeps, on a char boundary; remembered so that the
    /// client later sees `client_value` exactly.
    pub fn label(&self, client_value: &str) -> String {
        let app = if client_value.is_empty() {
            "unknown"
        } else {
            client_value
        };
        let mut label = format!("{}{app}", self.prefix);
        while label.len() > MAX_NAME {
            label.pop();
        }
        if let Ok(mut known) = self.known.lock() {
            known.retain(|(l, _)| l != label.as_bytes());
            if known.len() >= MAX_KNOWN {
                known.pop_front();
            }
            known.push_back((label.clone().into_bytes(), client_value.as_bytes().to_vec()));
        }
        label
    }

    /// What the client must see for a value the upstream reports; `None`
    /// when the value is not one of this session's labels.
    pub fn client_value(&self, upstream: &[u8]) -> Option<Vec<u8>> {
        if let Ok(known) = self.known.lock() {
            if let Some((_, v)) = known.iter().rev().find(|(l, _)| l == upstream) {
                return Some(v.clone());
            }
        }
        upstream
            .strip_prefix(self.prefix.as_bytes())
            .map(<[u8]>::to_vec)
    }

    /// A ParameterStatus frame reporting this session's label, rewritten to
    /// the client's value; `None` for any other frame.
    pub fn parameter_status(&self, frame: &[u8]) -> Option<BytesMut> {
        let body = frame.get(5..)?;
        let (name, rest) = cstr(body)?;
        if name != NAME {
            return None;
        }
        let (value, _) = cstr(rest)?;
        let shown = self.client_value(value)?;
        let mut out = BytesMut::with_capacity(frame.len());
        let at = begin(&mut out, b'S');
        put_cstr(&mut out, NAME);
        put_cstr(&mut out, &shown);
        finish(&mut out, at);
        Some(out)
    }

    /// A Parse: like [`AppName::client_sql`], and a named `SHOW
    /// application_name` is remembered for its later Binds.
    pub fn client_parse(&self, name: &[u8], sql: &[u8]) -> Option<String> {
        let before = self.show_pending.load(Ordering::Relaxed);
        let rewritten = self.client_sql(sql);
        let is_show = self.show_pending.load(Ordering::Relaxed) != before;
        if let Ok(mut names) = self.show_statements.lock() {
            names.retain(|n| n != name);
            if is_show && !name.is_empty() {
                if names.len() >= MAX_KNOWN {
                    names.remove(0);
                }
                names.push(name.to_vec());
            }
        }
        rewritten
    }

    /// A Bind of `statement`: notes a remembered `SHOW application_name`.
    pub fn client_bind(&self, statement: &[u8]) {
        if statement.is_empty() {
            return;
        }
        let known = self
            .show_statements
            .lock()
            .is_ok_and(|names| names.iter().any(|n| n == statement));
        if known {
            self.show_bound.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Client SQL about `application_name`: a plain `SET application_name`
    /// comes back rewritten to set the label; a `SHOW application_name` is
    /// noted so that its row can be rewritten. Anything else: `None`.
    pub fn client_sql(&self, sql: &[u8]) -> Option<String> {
        let tokens = tokens(sql)?;
        match tokens.as_slice() {
            [Token::Word(show), name] if eq(show, "show") && is_name(name) => {
                self.show_pending.fetch_add(1, Ordering::Relaxed);
                None
            }
            [Token::Word(set), rest @ ..] if eq(set, "set") => {
                let (scope, rest) = match rest {
                    [Token::Word(s), rest @ ..] if eq(s, "session") || eq(s, "local") => {
                        (Some(s.as_str()), rest)
                    }
                    _ => (None, rest),
                };
                let [name, op, value] = rest else {
                    return None;
                };
                let op_ok =
                    matches!(op, Token::Equals) || matches!(op, Token::Word(w) if eq(w, "to"));
                if !is_name(name) || !op_ok {
                    return None;
                }
                let value = match value {
                    Token::Str(v) => v.clone(),
                    Token::Word(w) if !eq(w, "default") => w.to_ascii_lowercase(),
                    _ => return None,
                };
                let label = self.label(&value);
                let scope = scope.map(|s| format!("{} ", s.to_ascii_uppercase()));
                Some(format!(
                    "SET {}application_name TO '{}'",
                    scope.unwrap_or_default(),
                    label.replace('\'', "''")
                ))
            }
            _ => None,
        }
    }
}

/// Rewrites the row of a `SHOW application_name` on its way to the client.
#[derive(Default)]
pub struct ShowRows {
    active: bool,
}

impl ShowRows {
    /// Whether the relay must hand this frame type over whole.
    pub fn wants(&self, app: &AppName, tag: u8) -> bool {
        matches!(tag, b'S' | b'T')
            || (self.active && matches!(tag, b'D' | b'C' | b'E'))
            || (tag == b'D' && app.show_bound.load(Ordering::Relaxed) > 0)
    }

    /// Looks at one complete upstream frame; a replacement when it must change.
    pub fn on_frame(&mut self, app: &AppName, tag: u8, frame: &[u8]) -> Option<BytesMut> {
        match tag {
            b'S' => app.parameter_status(frame),
            b'T' => {
                self.active = is_single_name_column(frame)
                    && app
                        .show_pending
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok();
                None
            }
            b'D' if self.active || app.show_bound.load(Ordering::Relaxed) > 0 => {
                let bound = !self.active;
                self.active = false;
                let body = frame.get(5..)?;
                if body.get(..2)? != [0, 1] {
                    return None;
                }
                let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
                let value = body.get(6..6 + usize::try_from(len).ok()?)?;
                let shown = app.client_value(value)?;
                if bound {
                    // The row of a re-executed named SHOW (one text column
                    // holding this session's label).
                    let _ =
                        app.show_bound
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            });
                }
                let mut out = BytesMut::with_capacity(frame.len());
                let at = begin(&mut out, b'D');
                out.put_i16(1);
                out.put_i32(shown.len() as i32);
                out.extend_from_slice(&shown);
                finish(&mut out, at);
                Some(out)
            }
            b'C' | b'E' => {
                self.active = false;
                None
            }
            _ => None,
        }
    }
}

/// Whether a RowDescription has one column named `application_name`.
fn is_single_name_column(frame: &[u8]) -> bool {
    let Some(body) = frame.get(5..) else {
        return false;
    };
    if body.get(..2) != Some(&[0, 1]) {
        return false;
    }
    matches!(body.get(2..).and_then(cstr), Some((n, _)) if n == NAME)
}

/// A Parse frame with its SQL replaced, everything else kept.
pub fn replace_parse_sql(frame: &[u8], sql: &str) -> Option<BytesMut> {
    let body = frame.get(5..)?;
    let (name, rest) = cstr(body)?;
    let (_, tail) = cstr(rest)?;
    let mut out = BytesMut::with_capacity(frame.len() + sql.len());
    let at = begin(&mut out, b'P');
    put_cstr(&mut out, name);
    put_cstr(&mut out, sql.as_bytes());
    out.extend_from_slice(tail);
    finish(&mut out, at);
    Some(out)
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Str(String),
    Equals,
}

fn eq(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

fn is_name(t: &Token) -> bool {
    match t {
        Token::Word(w) => eq(w, "application_name"),
        Token::Quoted(q) => q == "application_name",
        _ => false,
    }
}

/// A deliberately narrow tokenizer for the two statement shapes above:
/// words, `"identifiers"`, standard `'strings'` (with `''`), `=`, one
/// trailing `;`. Anything else (comments, escapes, other punctuation) gives
/// `None`, and the statement is left as the client sent it.
fn tokens(sql: &[u8]) -> Option<Vec<Token>> {
    let s = std::str::from_utf8(sql).ok()?;
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let s = s.strip_suffix(';').unwrap_or(s);
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_ascii_whitespace() => {}
            '=' => out.push(Token::Equals),
            '\'' | '"' => {
                let mut v = String::new();
                loop {
                    match chars.next() {
                        Some((_, q)) if q == c => {
                            if chars.peek().is_some_and(|&(_, n)| n == c) {
                                chars.next();
                                v.push(c);
                            } else {
                                break;
                            }
                        }
                        Some((_, '\\')) if c == '\'' => return None,
                        Some((_, ch)) => v.push(ch),
                        None => return None,
                    }
                }
                out.push(if c == '\'' {
                    Token::Str(v)
                } else {
                    Token::Quoted(v)
                });
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        end = j + n.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(s[i..end].to_string()));
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(value: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        let at = begin(&mut b, b'S');
        put_cstr(&mut b, NAME);
        put_cstr(&mut b, value.as_bytes());
        finish(&mut b, at);
        b.to_vec()
    }

    #[test]
    fn startup_label_maps_back_to_the_exact_client_value() {
        let app = AppName::new("alice");
        assert_eq!(app.label("psql"), "airlock:alice:psql");
        assert_eq!(app.label(""), "airlock:alice:unknown");
        let shown = app
            .parameter_status(&status("airlock:alice:unknown"))
            .expect("ours");
        assert_eq!(shown.to_vec(), status(""));
        let shown = app
            .parameter_status(&status("airlock:alice:psql"))
            .expect("ours");
        assert_eq!(shown.to_vec(), status("psql"));
        // Not our label (set by other means): relayed as is.
        assert!(app.parameter_status(&status("bob")).is_none());
        let long = "é".repeat(40);
        let label = app.label(&long);
        assert!(label.len() <= 63);
        assert_eq!(app.client_value(label.as_bytes()), Some(long.into_bytes()));
    }

    #[test]
    fn set_is_rewritten_to_carry_the_label_and_show_is_noted() {
        let app = AppName::new("alice");
        assert_eq!(
            app.client_sql(b"SET application_name = 'airlock:bob:psql';")
                .as_deref(),
            Some("SET application_name TO 'airlock:alice:airlock:bob:psql'")
        );
        assert_eq!(
            app.client_sql(b"set local \"application_name\" to it''s")
                .as_deref(),
            None,
            "unbalanced quote is left alone"
        );
        assert_eq!(
            app.client_sql(b"set local \"application_name\" to 'it''s'")
                .as_deref(),
            Some("SET LOCAL application_name TO 'airlock:alice:it''s'")
        );
        assert_eq!(
            app.client_sql(b"SET application_name TO MyApp").as_deref(),
            Some("SET application_name TO 'airlock:alice:myapp'")
        );
        assert!(app.client_sql(b"SET application_name TO DEFAULT").is_none());
        assert!(app.client_sql(b"SET search_path = 'x'").is_none());
        assert!(app.client_sql(b"SELECT 1").is_none());
        assert!(app.client_sql(b"SHOW application_name").is_none());
        assert_eq!(app.show_pending.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_row_of_show_application_name_is_rewritten_once() {
        let app = AppName::new("alice");
        app.label("myapp");
        let mut rows = ShowRows::default();
        let mut t = BytesMut::new();
        crate::frame::put_row_description(&mut t, &["application_name"]);
        let mut d = BytesMut::new();
        crate::frame::put_data_row(&mut d, &[Some("airlock:alice:myapp")]);
        // Without a SHOW sent, the same shape (a SELECT of the column) is untouched.
        assert!(rows.on_frame(&app, b'T', &t).is_none());
        assert!(!rows.wants(&app, b'D'));
        app.client_sql(b"show application_name;");
        rows.on_frame(&app, b'T', &t);
        assert!(rows.wants(&app, b'D'));
        let out = rows.on_frame(&app, b'D', &d).expect("rewritten");
        let mut want = BytesMut::new();
        crate::frame::put_data_row(&mut want, &[Some("myapp")]);
        assert_eq!(out, want);
        assert!(!rows.wants(&app, b'D'));
        // A named SHOW re-executed with Bind alone (asyncpg): no RowDescription.
        app.client_parse(b"__stmt_1", b"SHOW application_name");
        rows.on_frame(&app, b'T', &t);
        assert!(rows.on_frame(&app, b'D', &d).is_some());
        app.client_bind(b"__stmt_1");
        assert!(rows.wants(&app, b'D'));
        assert_eq!(rows.on_frame(&app, b'D', &d).expect("rewritten"), want);
        assert!(!rows.wants(&app, b'D'));
    }

    #[test]
    fn parse_sql_is_replaced_keeping_name_and_types() {
        let mut p = BytesMut::new();
        let at = begin(&mut p, b'P');
        put_cstr(&mut p, b"s1");
        put_cstr(&mut p, b"SET application_name = 'x'");
        p.put_i16(1);
        p.put_u32(25);
        finish(&mut p, at);
        let out = replace_parse_sql(&p, "SET application_name TO 'y'").expect("parse");
        let (name, sql) = crate::frame::parse_message(&out).expect("valid");
        assert_eq!(name, b"s1");
        assert_eq!(sql, b"SET application_name TO 'y'");
        assert_eq!(crate::frame::parse_types(&out).expect("types"), vec![25]);
    }
}
