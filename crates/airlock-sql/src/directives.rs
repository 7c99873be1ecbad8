//! Session directives and proxy commands (SPEC §4): the context a developer
//! gives in the session, consumed by the proxy and never sent upstream.
//!
//! The proxy must call [`proxy_command`] (and [`leading_directives`]) before
//! classifying: `CALL airlock.run(42)` would otherwise classify as a write
//! (held), while `SET airlock.*` classifies as an ordinary session setting.

use sqlparser::tokenizer::Token;

use crate::lexer::TokenKind;
use crate::parse::tokenize;

/// A key the developer may set (`SET airlock.<key>` or `/* airlock: key=… */`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectiveKey {
    /// Why the change is needed (`reason`).
    Reason,
    /// A longer description (`description`).
    Description,
    /// A rollback statement reviewed with the change (`rollback`).
    Rollback,
    /// Block until decided, e.g. `10min`, or `off` (`wait`).
    Wait,
    /// Circuit breaker on affected rows (`max_rows`).
    MaxRows,
    /// What becomes of a request waited on when the client disconnects:
    /// `cancel` (the default) or `keep` (`on_disconnect`).
    OnDisconnect,
}

impl DirectiveKey {
    /// All keys, in documentation order.
    pub const ALL: [DirectiveKey; 6] = [
        DirectiveKey::Reason,
        DirectiveKey::Description,
        DirectiveKey::Rollback,
        DirectiveKey::Wait,
        DirectiveKey::MaxRows,
        DirectiveKey::OnDisconnect,
    ];

    /// The key's name (`"reason"`, …, `"max_rows"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            DirectiveKey::Reason => "reason",
            DirectiveKey::Description => "description",
            DirectiveKey::Rollback => "rollback",
            DirectiveKey::Wait => "wait",
            DirectiveKey::MaxRows => "max_rows",
            DirectiveKey::OnDisconnect => "on_disconnect",
        }
    }

    /// The key named `name` (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<DirectiveKey> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
    }
}

/// `on_disconnect`'s value: `Some(true)` for `keep`, `Some(false)` for
/// `cancel`, `None` for anything else.
pub fn on_disconnect_keeps(value: &str) -> Option<bool> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("keep") {
        Some(true)
    } else if v.eq_ignore_ascii_case("cancel") {
        Some(false)
    } else {
        None
    }
}

/// Values given in a leading `/* airlock: … */` comment (raw text, validated by the proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `reason=…`.
    pub reason: Option<String>,
    /// `description=…`.
    pub description: Option<String>,
    /// `rollback=…`.
    pub rollback: Option<String>,
    /// `wait=…`.
    pub wait: Option<String>,
    /// `max_rows=…`.
    pub max_rows: Option<String>,
    /// `on_disconnect=…`.
    pub on_disconnect: Option<String>,
    /// Keys that are not known (the proxy answers with an error naming them).
    pub unknown: Vec<String>,
    /// Parts that are not `key=value` (e.g. an unterminated quote).
    pub malformed: Vec<String>,
}

impl Directives {
    /// `max_rows` as a number (`None` when unset or not a number, which
    /// [`Directives::problems`] reports).
    pub fn max_rows_value(&self) -> Option<i64> {
        self.max_rows.as_deref().and_then(|v| v.trim().parse().ok())
    }

    /// Whether a waiting session's request stays pending when its client
    /// goes away (`on_disconnect = 'keep'`); cancelled otherwise.
    pub fn keeps_on_disconnect(&self) -> bool {
        self.get(DirectiveKey::OnDisconnect)
            .and_then(on_disconnect_keeps)
            .unwrap_or(false)
    }

    /// Everything wrong with these directives, each naming the key and why:
    /// unknown keys, parts that are not `key=value`, and values of the wrong
    /// kind (`max_rows=abc`). A directive is never silently ignored.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown
            .iter()
            .map(|k| {
                format!("unknown key {k:?} (known: reason, description, rollback, wait, max_rows, on_disconnect)")
            })
            .collect();
        out.extend(
            self.malformed
                .iter()
                .map(|m| format!("not key=value: {m:?}")),
        );
        if let Some(v) = &self.max_rows {
            if v.trim().parse::<u64>().is_err() {
                out.push(format!(
                    "max_rows must be a whole number of rows, not {v:?}"
                ));
            }
        }
        if let Some(v) = &self.on_disconnect {
            if on_disconnect_keeps(v).is_none() {
                out.push(format!(
                    "on_disconnect must be 'cancel' or 'keep', not {v:?}"
                ));
            }
        }
        out
    }

    /// The value of a key.
    pub fn get(&self, key: DirectiveKey) -> Option<&str> {
        match key {
            DirectiveKey::Reason => self.reason.as_deref(),
            DirectiveKey::Description => self.description.as_deref(),
            DirectiveKey::Rollback => self.rollback.as_deref(),
            DirectiveKey::Wait => self.wait.as_deref(),
            DirectiveKey::MaxRows => self.max_rows.as_deref(),
            DirectiveKey::OnDisconnect => self.on_disconnect.as_deref(),
        }
    }

    /// Set a key's value.
    pub fn set(&mut self, key: DirectiveKey, value: String) {
        let slot = match key {
            DirectiveKey::Reason => &mut self.reason,
            DirectiveKey::Description => &mut self.description,
            DirectiveKey::Rollback => &mut self.rollback,
            DirectiveKey::Wait => &mut self.wait,
            DirectiveKey::MaxRows => &mut self.max_rows,
            DirectiveKey::OnDisconnect => &mut self.on_disconnect,
        };
        *slot = Some(value);
    }

    /// True when nothing was given (no values, no unknown or malformed parts).
    pub fn is_empty(&self) -> bool {
        *self == Directives::default()
    }
}

/// Parse leading `/* airlock: key=value; … */` comments; returns the
/// directives and the SQL after them (`sql` itself when there are none).
///
/// Keys are separated by `;` when the next part looks like `key=`, so a
/// `rollback=UPDATE t SET a = 1; DELETE …` keeps its own semicolons; a value
/// in double quotes (`""` for a quote) may contain anything but `*/`.
/// Leading `--` comments and whitespace before the block are skipped; a block
/// comment that does not start with `airlock:` ends the directives.
pub fn leading_directives(sql: &str) -> (Directives, &str) {
    let mut d = Directives::default();
    // Comments as Postgres's scanner ends them (`\r` ends a `--` comment,
    // block comments nest); a text it cannot scan has no directives (and is
    // not a statement Postgres would run).
    let Some(tokens) = crate::lexer::scan(sql) else {
        return (d, sql);
    };
    let mut rest = None;
    for t in tokens {
        match t.kind {
            TokenKind::LineComment => continue,
            TokenKind::BlockComment => {
                let body = sql
                    .get(t.start + 2..t.end.saturating_sub(2))
                    .unwrap_or_default();
                let Some(content) = strip_prefix_ci(body.trim_start(), "airlock:") else {
                    break;
                };
                parse_directives(content, &mut d);
                rest = Some(t.end);
            }
            TokenKind::Other => break,
        }
    }
    match rest {
        Some(end) => (d, sql[end..].trim_start()),
        None => (d, sql),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Does `s` start (after spaces) with `identifier =`?
fn starts_with_key(s: &str) -> bool {
    let s = s.trim_start();
    let n = s
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
        .count();
    n > 0 && s[n..].trim_start().starts_with('=') && !s[n..].trim_start().starts_with("==")
}

pub(crate) fn parse_directives(content: &str, d: &mut Directives) {
    let mut s = content;
    loop {
        s = s.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if s.is_empty() {
            return;
        }
        let Some(eq) = s.find('=') else {
            d.malformed.push(s.trim().to_string());
            return;
        };
        let mut key = s[..eq].trim();
        if let Some(i) = key.rfind(';') {
            d.malformed.push(key[..i].trim().to_string());
            key = key[i + 1..].trim();
        }
        let after = s[eq + 1..].trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match quoted_value(q) {
                Some((v, used)) => {
                    let tail = &q[used..];
                    let t = tail.trim_start();
                    if !(t.is_empty() || t.starts_with(';')) {
                        d.malformed
                            .push(format!("{key}: text after the closing quote"));
                    }
                    let cut = t.find(';').map_or(tail.len(), |i| tail.len() - t.len() + i);
                    (v, &tail[cut..])
                }
                None => {
                    d.malformed.push(format!("{key}: unterminated quote"));
                    return;
                }
            }
        } else {
            // Up to the next `;` that starts another `key=`.
            let mut end = after.len();
            for (i, _) in after.match_indices(';') {
                if starts_with_key(&after[i + 1..]) {
                    end = i;
                    break;
                }
            }
            let v = after[..end].trim().trim_end_matches(';').trim_end();
            (v.to_string(), &after[end..])
        };
        let key_name = key.strip_prefix("airlock.").unwrap_or(key);
        match DirectiveKey::from_name(key_name) {
            Some(k) => d.set(k, value),
            None if key.is_empty() => d.malformed.push(format!("={value}")),
            None => d.unknown.push(key.to_string()),
        }
        s = next;
    }
}

/// A double-quoted value (after its opening quote): its text and the bytes used.
fn quoted_value(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if chars.peek().is_some_and(|&(_, n)| n == '"') {
                chars.next();
                out.push('"');
            } else {
                return Some((out, i + 1));
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// A command for the proxy itself, recognised in a whole Query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyCommand {
    /// `SET airlock.<key> = value` / `TO value`, MySQL `SET @airlock_<key> = value`.
    Set {
        /// Which key.
        key: DirectiveKey,
        /// The value, unquoted (`''` unescaped), as written for numbers and bare words.
        value: String,
    },
    /// `RESET airlock.<key>` (also `SET airlock.<key> = DEFAULT`).
    Reset(DirectiveKey),
    /// `SHOW airlock.<key>`.
    Show(DirectiveKey),
    /// `SHOW airlock.requests`: the caller's open requests.
    ShowRequests,
    /// `CALL airlock.run(N)`.
    Run(u64),
    /// `CALL airlock.rollback(N)`.
    Rollback(u64),
    /// `CALL airlock.cancel(N)`.
    Cancel(u64),
    /// An `airlock.*` name that is not known (e.g. `SET airlock.reasn = …`,
    /// `CALL airlock.approve(1)`): answer with an error naming it.
    Unknown {
        /// The name as given, e.g. `airlock.reasn`.
        name: String,
    },
}

fn word(t: &Token) -> Option<&str> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(&w.value),
        _ => None,
    }
}

fn is_word(t: Option<&Token>, w: &str) -> bool {
    t.and_then(word).is_some_and(|x| x.eq_ignore_ascii_case(w))
}

/// The name of an `airlock.<name>` part, lower-cased (quoted names as written).
fn airlock_name(toks: &[&Token]) -> Option<String> {
    let (a, dot, name) = (toks.first()?, toks.get(1)?, toks.get(2)?);
    let is_airlock = match a {
        Token::Word(w) if w.quote_style.is_none() => w.value.eq_ignore_ascii_case("airlock"),
        Token::Word(w) => w.value == "airlock",
        _ => false,
    };
    if !is_airlock || **dot != Token::Period {
        return None;
    }
    match name {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

/// Recognise a proxy command: the whole string must be exactly one command
/// (comments, whitespace and trailing `;` aside); anything else, including
/// `SET airlock.reason = 'x'; DELETE FROM t`, is `None`.
pub fn proxy_command(sql: &str) -> Option<ProxyCommand> {
    // Every proxy command names airlock: most texts need no tokenizing
    // (this runs for every simple Query on a protected target).
    if !sql
        .as_bytes()
        .windows(7)
        .any(|w| w.eq_ignore_ascii_case(b"airlock"))
    {
        return None;
    }
    let tokens = tokenize(sql).ok()?;
    let mut toks: Vec<&Token> = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    while toks.last() == Some(&&Token::SemiColon) {
        toks.pop();
    }
    if toks.contains(&&Token::SemiColon) {
        return None;
    }
    let first = toks.first()?;
    if is_word(Some(first), "set") {
        let mut rest = &toks[1..];
        if is_word(rest.first().copied(), "session") || is_word(rest.first().copied(), "local") {
            rest = &rest[1..];
        }
        // MySQL: SET @airlock_reason = '…'
        if let [Token::AtSign, Token::Word(w), tail @ ..] = rest {
            let lower = w.value.to_ascii_lowercase();
            let key = lower.strip_prefix("airlock_")?;
            let value = set_value(tail)?;
            return Some(match DirectiveKey::from_name(key) {
                Some(key) => set_or_reset(key, value),
                None => ProxyCommand::Unknown {
                    name: format!("@{}", w.value),
                },
            });
        }
        // Tokenizers may also read `@airlock_reason` as one word.
        if let [Token::Word(w), tail @ ..] = rest {
            if let Some(key) = w.value.to_ascii_lowercase().strip_prefix("@airlock_") {
                let value = set_value(tail)?;
                return Some(match DirectiveKey::from_name(key) {
                    Some(key) => set_or_reset(key, value),
                    None => ProxyCommand::Unknown {
                        name: w.value.clone(),
                    },
                });
            }
        }
        let name = airlock_name(rest)?;
        let value = set_value(&rest[3..])?;
        return Some(match DirectiveKey::from_name(&name) {
            Some(key) => set_or_reset(key, value),
            None => unknown(&name),
        });
    }
    if is_word(Some(first), "reset") {
        let name = airlock_name(&toks[1..])?;
        if toks.len() != 4 {
            return None;
        }
        return Some(match DirectiveKey::from_name(&name) {
            Some(key) => ProxyCommand::Reset(key),
            None => unknown(&name),
        });
    }
    if is_word(Some(first), "show") {
        let name = airlock_name(&toks[1..])?;
        if toks.len() != 4 {
            return None;
        }
        if name == "requests" {
            return Some(ProxyCommand::ShowRequests);
        }
        return Some(match DirectiveKey::from_name(&name) {
            Some(key) => ProxyCommand::Show(key),
            None => unknown(&name),
        });
    }
    if is_word(Some(first), "call") {
        let name = airlock_name(&toks[1..])?;
        let id = match &toks[4..] {
            [Token::LParen, Token::Number(n, false), Token::RParen] => n.parse::<u64>().ok(),
            [Token::LParen, Token::SingleQuotedString(n), Token::RParen] => n.trim().parse().ok(),
            _ => None,
        };
        let Some(id) = id else {
            // `CALL airlock.run()` or `CALL airlock.run('x')`: known name, bad arguments.
            return Some(unknown(&format!("{name}(…)")));
        };
        return Some(match name.as_str() {
            "run" => ProxyCommand::Run(id),
            "rollback" => ProxyCommand::Rollback(id),
            "cancel" => ProxyCommand::Cancel(id),
            _ => unknown(&name),
        });
    }
    None
}

fn unknown(name: &str) -> ProxyCommand {
    ProxyCommand::Unknown {
        name: format!("airlock.{name}"),
    }
}

fn set_or_reset(key: DirectiveKey, value: Option<String>) -> ProxyCommand {
    match value {
        Some(value) => ProxyCommand::Set { key, value },
        None => ProxyCommand::Reset(key),
    }
}

/// The value of a SET after the name: `= v` / `TO v` (`:=` for MySQL).
/// `Some(None)` for `DEFAULT`; `None` when it is not a single simple value.
fn set_value(toks: &[&Token]) -> Option<Option<String>> {
    let (op, rest) = toks.split_first()?;
    let op_ok = matches!(op, Token::Eq | Token::Assignment) || is_word(Some(op), "to");
    if !op_ok {
        return None;
    }
    match rest {
        [Token::SingleQuotedString(s)] | [Token::EscapedStringLiteral(s)] => Some(Some(s.clone())),
        [Token::DollarQuotedString(s)] => Some(Some(s.value.clone())),
        [Token::Number(n, false)] => Some(Some(n.clone())),
        [Token::Minus, Token::Number(n, false)] => Some(Some(format!("-{n}"))),
        [Token::Word(w)] if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("default") => {
            Some(None)
        }
        [Token::Word(w)] => Some(Some(w.value.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_directives_are_problems_that_name_the_key() {
        let (d, _) = leading_directives("/* airlock: max_rows=abc; reasn=x */ DELETE FROM t");
        let p = d.problems();
        assert!(
            p.iter()
                .any(|m| m.contains("max_rows") && m.contains("abc")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("reasn")), "{p:?}");
        let (d, _) = leading_directives("/* airlock: max_rows=5; reason=ok */ DELETE FROM t");
        assert!(d.problems().is_empty());
    }
    use DirectiveKey::*;

    fn set(key: DirectiveKey, value: &str) -> Option<ProxyCommand> {
        Some(ProxyCommand::Set {
            key,
            value: value.to_string(),
        })
    }

    #[test]
    fn directives_basic() {
        let sql = "/* airlock: reason=Fix the thing; max_rows=100; wait=10min; \
                   rollback=UPDATE t SET a = 1 WHERE id = 5; description=Ticket 42 */\n\
                   UPDATE t SET a = 2 WHERE id = 5";
        let (d, rest) = leading_directives(sql);
        assert_eq!(rest, "UPDATE t SET a = 2 WHERE id = 5");
        assert_eq!(d.reason.as_deref(), Some("Fix the thing"));
        assert_eq!(d.max_rows.as_deref(), Some("100"));
        assert_eq!(d.wait.as_deref(), Some("10min"));
        assert_eq!(
            d.rollback.as_deref(),
            Some("UPDATE t SET a = 1 WHERE id = 5")
        );
        assert_eq!(d.description.as_deref(), Some("Ticket 42"));
        assert!(d.unknown.is_empty() && d.malformed.is_empty());
        assert_eq!(d.get(Reason), Some("Fix the thing"));
    }

    #[test]
    fn directives_edge_cases() {
        // No directives: the text is returned untouched.
        for sql in [
            "UPDATE t SET a = 1",
            "/* just a comment */ UPDATE t SET a = 1",
            "/* airlock: reason=x",
            "",
        ] {
            let (d, rest) = leading_directives(sql);
            assert!(d.is_empty(), "{sql}");
            assert_eq!(rest, sql);
        }
        // Semicolons inside a value that are not followed by `key=`.
        let (d, rest) = leading_directives(
            "/*AIRLOCK: rollback=UPDATE a SET x = 1; UPDATE b SET y = 2;reason = two */ DELETE FROM c",
        );
        assert_eq!(
            d.rollback.as_deref(),
            Some("UPDATE a SET x = 1; UPDATE b SET y = 2")
        );
        assert_eq!(d.reason.as_deref(), Some("two"));
        assert_eq!(rest, "DELETE FROM c");
        // Quoted values, with `;`, `key=` and doubled quotes inside.
        let (d, _) =
            leading_directives(r#"/* airlock: reason="a; b=c ""q"""; wait=off; */ SELECT 1"#);
        assert_eq!(d.reason.as_deref(), Some(r#"a; b=c "q""#));
        assert_eq!(d.wait.as_deref(), Some("off"));
        // Unknown keys and malformed parts are reported, not ignored.
        let (d, _) = leading_directives("/* airlock: junk; reasn=x; max_rows=5 */ SELECT 1");
        assert_eq!(d.unknown, ["reasn"]);
        assert_eq!(d.max_rows.as_deref(), Some("5"));
        assert_eq!(d.malformed, ["junk"]);
        let (d, _) = leading_directives(r#"/* airlock: reason="open */ SELECT 1"#);
        assert_eq!(d.malformed, ["reason: unterminated quote"]);
        // Leading line comments, several blocks, nested comments.
        let (d, rest) = leading_directives(
            "-- hi\n/* airlock: reason=a /* nested */ b */ /* airlock: wait=1s */ SELECT 1",
        );
        assert_eq!(d.reason.as_deref(), Some("a /* nested */ b"));
        assert_eq!(d.wait.as_deref(), Some("1s"));
        assert_eq!(rest, "SELECT 1");
        // Only a leading comment counts.
        let sql = "SELECT 1 /* airlock: reason=x */";
        assert_eq!(leading_directives(sql), (Directives::default(), sql));
        // Comments end where Postgres ends them: `\r` ends a `--` comment
        // (the block after it is a directive), and a block inside a line
        // comment is no directive.
        let (d, rest) = leading_directives("-- note\r/* airlock: max_rows=5 */ DELETE FROM t");
        assert_eq!(d.max_rows.as_deref(), Some("5"));
        assert_eq!(rest, "DELETE FROM t");
        let sql = "-- /* airlock: max_rows=5 */\nDELETE FROM t";
        assert_eq!(leading_directives(sql), (Directives::default(), sql));
        // A text Postgres cannot scan has none.
        let sql = "/* airlock: reason=x */ SELECT 'open";
        assert_eq!(leading_directives(sql), (Directives::default(), sql));
    }

    #[test]
    fn set_commands() {
        assert_eq!(
            proxy_command("SET airlock.reason = 'Fix it''s bug'"),
            set(Reason, "Fix it's bug")
        );
        assert_eq!(
            proxy_command("set AIRLOCK.Reason to 'x';  "),
            set(Reason, "x")
        );
        assert_eq!(
            proxy_command("SET airlock.max_rows = 100;"),
            set(MaxRows, "100")
        );
        assert_eq!(proxy_command("SET airlock.wait TO off"), set(Wait, "off"));
        assert_eq!(
            proxy_command("SET airlock.wait = '10min'"),
            set(Wait, "10min")
        );
        assert_eq!(
            proxy_command("SET SESSION airlock.description = E'a\\nb'"),
            set(Description, "a\nb")
        );
        assert_eq!(
            proxy_command("SET airlock.rollback = 'UPDATE t SET a = ''x''; DELETE FROM u'"),
            set(Rollback, "UPDATE t SET a = 'x'; DELETE FROM u")
        );
        assert_eq!(
            proxy_command("SET airlock.wait = DEFAULT"),
            Some(ProxyCommand::Reset(Wait))
        );
        assert_eq!(
            proxy_command("/* c */ SET airlock.reason = 'x' -- c"),
            set(Reason, "x")
        );
        assert_eq!(
            proxy_command("SET airlock.reasn = 'x'"),
            Some(ProxyCommand::Unknown {
                name: "airlock.reasn".into()
            })
        );
        assert_eq!(
            proxy_command("SET @airlock_reason = 'why'"),
            set(Reason, "why")
        );
        assert_eq!(
            proxy_command("SET @AIRLOCK_MAX_ROWS := 5"),
            set(MaxRows, "5")
        );
        assert_eq!(
            proxy_command("SET @airlock_foo = 1"),
            Some(ProxyCommand::Unknown {
                name: "@airlock_foo".into()
            })
        );
    }

    #[test]
    fn other_commands() {
        assert_eq!(
            proxy_command("RESET airlock.reason"),
            Some(ProxyCommand::Reset(Reason))
        );
        assert_eq!(
            proxy_command("SHOW airlock.max_rows;"),
            Some(ProxyCommand::Show(MaxRows))
        );
        assert_eq!(
            proxy_command("show airlock.requests"),
            Some(ProxyCommand::ShowRequests)
        );
        assert_eq!(
            proxy_command("CALL airlock.run(42)"),
            Some(ProxyCommand::Run(42))
        );
        assert_eq!(
            proxy_command("call AIRLOCK.ROLLBACK( 7 ) ;"),
            Some(ProxyCommand::Rollback(7))
        );
        assert_eq!(
            proxy_command("CALL airlock.cancel(3)"),
            Some(ProxyCommand::Cancel(3))
        );
        assert_eq!(
            proxy_command("CALL airlock.approve(3)"),
            Some(ProxyCommand::Unknown {
                name: "airlock.approve".into()
            })
        );
        assert!(matches!(
            proxy_command("CALL airlock.run(-1)"),
            Some(ProxyCommand::Unknown { .. })
        ));
        assert!(matches!(
            proxy_command("SHOW airlock.secret"),
            Some(ProxyCommand::Unknown { .. })
        ));
    }

    #[test]
    fn not_commands() {
        for sql in [
            "SET airlock.reason = 'x'; DELETE FROM t",
            "SET airlock.reason = 'x'; SET airlock.wait = off",
            "CALL airlock.run(42); DROP TABLE t",
            "SHOW airlock.requests; SELECT 1",
            "SET airlock.reason = 'x' || (SELECT pg_sleep(1))",
            "SET airlock.reason = now()",
            "SET search_path = public",
            "SET other.reason = 'x'",
            "SHOW search_path",
            "CALL other.run(1)",
            "CALL airlock_run(1)",
            "SELECT 'SET airlock.reason = x'",
            "RESET airlock.reason extra",
            "SET airlock.reason = 'unterminated",
            "",
        ] {
            assert_eq!(proxy_command(sql), None, "{sql}");
        }
    }

    #[test]
    fn classifier_view() {
        // SET airlock.* is a harmless session setting for the classifier; CALL is
        // held as a write — the proxy intercepts both before classifying.
        let c = crate::classify("SET airlock.reason = 'x'");
        assert!(c.read_only, "{c:?}");
        let c = crate::classify("CALL airlock.run(42)");
        assert!(!c.read_only);
        let c = crate::classify("SET airlock.reason = 'x'; DELETE FROM t");
        assert!(!c.read_only);
    }
}
