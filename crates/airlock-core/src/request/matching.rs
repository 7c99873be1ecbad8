//! Exact re-send matching (SPEC §4.3): the same statement text — whitespace
//! and a trailing semicolon aside — with the same bound parameter values, to
//! the same target, by the same requester. Literal-stripped fingerprints are
//! never used here.

use super::{encode_params, Engine, Param};
use sha2::{Digest, Sha256};

/// Collapses every run of whitespace outside string literals, quoted
/// identifiers and comments to one space (one newline after a line comment),
/// trims the ends, and drops trailing semicolons. Literals (including Postgres `E'…'` and dollar quotes, MySQL
/// backslash escapes and backticks) are copied byte for byte, so two texts
/// that normalize alike differ only in insignificant whitespace.
///
/// Postgres texts are cut into tokens by Postgres's own scanner
/// ([`airlock_sql::lexer`]); a text it cannot scan (an unterminated string
/// or comment), and MySQL texts, by the character scanner below.
pub fn normalize_statement(engine: Engine, sql: &str) -> String {
    if engine == Engine::Postgres {
        if let Some(tokens) = airlock_sql::lexer::scan(sql) {
            return join_tokens(sql, &tokens);
        }
    }
    normalize_chars(engine, sql)
}

/// The tokens of `sql` byte for byte, one space where whitespace separated
/// two of them (a newline after a line comment), trailing semicolons dropped.
fn join_tokens(sql: &str, tokens: &[airlock_sql::lexer::Token]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    let mut after_line_comment = false;
    for t in tokens {
        let gap = sql.get(at..t.start).unwrap_or_default();
        if gap.trim().is_empty() {
            if after_line_comment {
                out.push('\n');
            } else if !gap.is_empty() && !out.is_empty() {
                out.push(' ');
            }
        } else {
            // Not expected from the scanner; kept as written.
            out.push_str(gap);
        }
        out.push_str(sql.get(t.start..t.end).unwrap_or_default());
        after_line_comment = t.kind == airlock_sql::lexer::TokenKind::LineComment;
        at = t.end;
    }
    while out.ends_with(';') || out.ends_with(' ') {
        out.pop();
    }
    out
}

/// [`normalize_statement`] by characters (MySQL, and Postgres texts its
/// scanner rejects).
fn normalize_chars(engine: Engine, sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut pending_space = false;
    // A line comment ends at a newline: that one separator stays a newline.
    let mut after_line_comment = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            pending_space = true;
            i += 1;
            continue;
        }
        if after_line_comment {
            out.push('\n');
        } else if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        after_line_comment = false;
        let prev_is_word = i > 0 && is_word(chars[i - 1]);
        let end = match c {
            '\'' => {
                let backslash = engine == Engine::Mysql
                    || (i > 0
                        && matches!(chars[i - 1], 'E' | 'e')
                        && !(i > 1 && is_word(chars[i - 2])));
                quoted_end(&chars, i, '\'', backslash)
            }
            '"' => quoted_end(&chars, i, '"', engine == Engine::Mysql),
            '`' if engine == Engine::Mysql => quoted_end(&chars, i, '`', false),
            '-' if chars.get(i + 1) == Some(&'-') => {
                after_line_comment = true;
                line_comment_end(&chars, i)
            }
            '#' if engine == Engine::Mysql => {
                after_line_comment = true;
                line_comment_end(&chars, i)
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                block_comment_end(&chars, i, engine == Engine::Postgres)
            }
            '$' if engine == Engine::Postgres && !prev_is_word => {
                dollar_quote_end(&chars, i).unwrap_or(i + 1)
            }
            _ => i + 1,
        };
        out.extend(&chars[i..end]);
        i = end;
    }
    while out.ends_with(';') || out.ends_with(' ') {
        out.pop();
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// End (exclusive) of a quoted run starting at `start`; a doubled quote stays
/// inside, and with `backslash` a backslash escapes the next character. An
/// unterminated quote runs to the end.
fn quoted_end(chars: &[char], start: usize, quote: char, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if backslash && c == '\\' {
            i += 2;
            continue;
        }
        if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// End of a `--` (or MySQL `#`) comment: the newline is left as whitespace.
fn line_comment_end(chars: &[char], start: usize) -> usize {
    chars[start..]
        .iter()
        .position(|&c| c == '\n' || c == '\r')
        .map_or(chars.len(), |p| start + p)
}

/// End of a block comment (Postgres nests them).
fn block_comment_end(chars: &[char], start: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < chars.len() {
        if chars[i] == '/' && chars[i + 1] == '*' {
            depth += 1;
            i += 2;
            continue;
        }
        if chars[i] == '*' && chars[i + 1] == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 || !nested {
                return i;
            }
            continue;
        }
        i += 1;
    }
    chars.len()
}

/// End of a Postgres dollar-quoted string (`$$…$$`, `$tag$…$tag$`) starting
/// at `start`, or `None` when the `$` does not open one.
fn dollar_quote_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start + 1;
    while j < chars.len() && chars[j] != '$' {
        let c = chars[j];
        let ok = if j == start + 1 {
            c.is_alphabetic() || c == '_'
        } else {
            c.is_alphanumeric() || c == '_'
        };
        if !ok {
            return None;
        }
        j += 1;
    }
    if j >= chars.len() {
        return None;
    }
    let tag = &chars[start..=j];
    let body = j + 1;
    let mut k = body;
    while k + tag.len() <= chars.len() {
        if chars[k..k + tag.len()] == *tag {
            return Some(k + tag.len());
        }
        k += 1;
    }
    Some(chars.len())
}

/// What a re-sent statement must equal to match an open request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactMatch {
    /// Target name.
    pub target: String,
    /// The requester.
    pub requester: String,
    /// [`normalize_statement`] of the text.
    pub normalized: String,
    /// The bound parameters.
    pub params: Vec<Param>,
    /// SHA-256 (hex) over engine, normalized text and encoded parameters: the
    /// indexed column the store looks up; candidates are then compared in full.
    pub key: String,
}

impl ExactMatch {
    /// Builds the match for a statement sent by `requester` to `target`.
    pub fn new(
        engine: Engine,
        target: &str,
        requester: &str,
        statement: &str,
        params: &[Param],
    ) -> Self {
        let normalized = normalize_statement(engine, statement);
        let mut h = Sha256::new();
        h.update(engine.as_str().as_bytes());
        h.update([0u8]);
        h.update((normalized.len() as u64).to_be_bytes());
        h.update(normalized.as_bytes());
        h.update(encode_params(params));
        ExactMatch {
            target: target.to_string(),
            requester: requester.to_string(),
            normalized,
            params: params.to_vec(),
            key: hex::encode(h.finalize()),
        }
    }

    /// Whether a stored request is the same statement (full comparison, not just the key).
    pub fn matches(&self, request: &super::ChangeRequest) -> bool {
        let d = &request.details;
        d.target == self.target
            && d.requester == self.requester
            && d.params == self.params
            && normalize_statement(d.engine, &d.statement) == self.normalized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(s: &str) -> String {
        normalize_statement(Engine::Postgres, s)
    }

    #[test]
    fn whitespace_and_trailing_semicolons_do_not_count() {
        assert_eq!(
            pg("  UPDATE t\n   SET x = 1\r\n WHERE id = 2 ;\n"),
            "UPDATE t SET x = 1 WHERE id = 2"
        );
        assert_eq!(
            pg("UPDATE t SET x = 1 WHERE id = 2"),
            "UPDATE t SET x = 1 WHERE id = 2"
        );
        assert_eq!(pg("select 1;;"), "select 1");
    }

    #[test]
    fn literals_are_kept_byte_for_byte() {
        assert_ne!(pg("UPDATE t SET x = 'a  b'"), pg("UPDATE t SET x = 'a b'"));
        assert_eq!(pg("UPDATE t SET x = 'a  b'"), "UPDATE t SET x = 'a  b'");
        assert_eq!(pg("SELECT 'it''s   ok'  ,  1"), "SELECT 'it''s   ok' , 1");
        assert_eq!(pg("SELECT E'a\\'  b'   x"), "SELECT E'a\\'  b' x");
        // In a standard Postgres string a backslash is literal: the string ends at the quote.
        assert_eq!(pg("SELECT 'a\\'   ,   'b  c'"), "SELECT 'a\\' , 'b  c'");
        assert_eq!(
            pg("SELECT $$a   b$$   ,  $x$ $$  $x$"),
            "SELECT $$a   b$$ , $x$ $$  $x$"
        );
        assert_eq!(
            pg("SELECT \"my   col\"  FROM t"),
            "SELECT \"my   col\" FROM t"
        );
        assert_eq!(pg("SELECT $1,   $2"), "SELECT $1, $2");
    }

    #[test]
    fn comments_are_kept() {
        assert_eq!(pg("SELECT 1 -- a   b\r\n  , 2"), "SELECT 1 -- a   b\n, 2");
        assert_eq!(
            pg("SELECT /* a /* b */  c */   1"),
            "SELECT /* a /* b */  c */ 1"
        );
        assert_ne!(pg("SELECT 1 -- x\n, 2"), pg("SELECT 1 -- x , 2"));
    }

    #[test]
    fn postgres_literals_end_where_postgres_ends_them() {
        // Any byte >= 0x80 may be in a dollar tag: the spaces are inside it.
        assert_ne!(
            pg("UPDATE t SET x = $€$a  b$€$"),
            pg("UPDATE t SET x = $€$a b$€$")
        );
        // `\r` ends a `--` comment: what follows is the statement.
        assert_eq!(pg("SELECT 1 -- c\r  ,   2"), "SELECT 1 -- c\n, 2");
        // An unterminated text falls back to the character scanner.
        assert_eq!(pg("SELECT  'open"), "SELECT 'open");
    }

    #[test]
    fn mysql_quoting() {
        let my = |s: &str| normalize_statement(Engine::Mysql, s);
        assert_eq!(
            my("UPDATE `t  1`   SET x = 'a\\'  b'"),
            "UPDATE `t  1` SET x = 'a\\'  b'"
        );
        assert_eq!(
            my("SELECT \"a  b\"   # c   d\n  , 1"),
            "SELECT \"a  b\" # c   d\n, 1"
        );
    }

    #[test]
    fn match_keys() {
        let p = |v: &str| Param {
            type_id: 0,
            binary: false,
            value: Some(v.as_bytes().to_vec()),
        };
        let a = ExactMatch::new(
            Engine::Postgres,
            "orders-prod",
            "alice",
            "UPDATE t SET x = $1",
            &[p("1")],
        );
        let b = ExactMatch::new(
            Engine::Postgres,
            "orders-prod",
            "alice",
            "UPDATE t  SET x = $1;",
            &[p("1")],
        );
        let c = ExactMatch::new(
            Engine::Postgres,
            "orders-prod",
            "alice",
            "UPDATE t SET x = $1",
            &[p("2")],
        );
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, c.key);
        assert_eq!(a.key.len(), 64);
    }
}
