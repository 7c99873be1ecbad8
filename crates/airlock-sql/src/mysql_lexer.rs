//! MySQL's and MariaDB's lexical rules: where comments, strings, quoted
//! identifiers and statements begin and end exactly as the server reads
//! them. Written by hand because no crate scans like the server does:
//! sqlparser's tokenizer drops versioned comments (`/*!50001 … */`,
//! MariaDB's `/*M!100100 … */`), whose content the server *executes*, and
//! knows neither `NO_BACKSLASH_ESCAPES` nor `ANSI_QUOTES`.
//!
//! Rules (MySQL 8 `sql_lex.cc`, MariaDB `sql_lex.cc`):
//! - `#` comments and `-- ` comments run to the end of the line; `--` is a
//!   comment only when followed by whitespace, a control character or the
//!   end of the text (`1--1` is `1 - -1`).
//! - `/* … */` does not nest, except inside an executable comment. `/*!`
//!   and `/*M!`, with an optional version of five or six digits, open an
//!   executable comment: its content is code, and its `*/` closes it.
//!   Airlock treats that code as always run (whatever version the digits
//!   name, and `/*M!` on MySQL too), which can only make it hold more; a
//!   `;` or another executable comment inside one is refused rather than
//!   guessed at.
//! - A `;` with no statement before it is refused, as the server refuses it.
//!
//! `tests/mysql_lexer_server.rs` checks these rules against a real server:
//! wherever the server finds N statements, this lexer finds N or refuses.
//! - `'…'` and `"…"` are strings (`"` is an identifier under `ANSI_QUOTES`),
//!   with doubled quotes and, unless `NO_BACKSLASH_ESCAPES`, backslash
//!   escapes; `` `…` `` is an identifier with doubled backticks only.
//! - Anything unterminated is an error, as on the server.

use std::ops::Range;

/// The `sql_mode` flags that change lexing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqlModes {
    /// `NO_BACKSLASH_ESCAPES`: a backslash in a string is an ordinary character.
    pub no_backslash_escapes: bool,
    /// `ANSI_QUOTES`: `"…"` quotes an identifier, not a string.
    pub ansi_quotes: bool,
}

impl SqlModes {
    /// The flags of a `sql_mode` value (`'STRICT_TRANS_TABLES,ANSI_QUOTES'`;
    /// `ANSI` implies `ANSI_QUOTES`).
    pub fn from_sql_mode(mode: &str) -> Self {
        let mut m = SqlModes::default();
        for flag in mode.split(',').map(|f| f.trim().to_ascii_uppercase()) {
            match flag.as_str() {
                "NO_BACKSLASH_ESCAPES" => m.no_backslash_escapes = true,
                "ANSI_QUOTES" | "ANSI" => m.ansi_quotes = true,
                _ => {}
            }
        }
        m
    }
}

/// What a token is, as far as airlock needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `# …` or `-- …` up to the end of the line.
    LineComment,
    /// `/* … */` (also optimizer hints `/*+ … */`).
    BlockComment,
    /// `/*!`, `/*!50001`, `/*M!`, `/*M!100100`: the start of code the server runs.
    VersionedOpen,
    /// The `*/` that ends an executable comment.
    VersionedClose,
    /// A string literal with its quotes.
    String,
    /// A quoted identifier with its quotes.
    QuotedIdentifier,
    /// `;`, which ends a statement.
    Semicolon,
    /// A word (keyword, identifier, number) or one punctuation character.
    Other,
}

/// One token: its kind and byte range in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Kind.
    pub kind: TokenKind,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just after it.
    pub end: usize,
}

/// Why the text cannot be scanned (the server refuses it too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    /// A string or quoted identifier has no closing quote.
    #[error("unterminated quoted text starting at byte {0}")]
    UnterminatedQuote(usize),
    /// A `/*` comment has no `*/`.
    #[error("unterminated comment starting at byte {0}")]
    UnterminatedComment(usize),
    /// An executable comment `/*! …` has no `*/`.
    #[error("unterminated executable comment starting at byte {0}")]
    UnterminatedVersioned(usize),
    /// An executable comment opened inside another (the server refuses it).
    #[error("executable comment nested in another at byte {0}")]
    NestedVersioned(usize),
    /// A `;` inside an executable comment: where the statement ends depends
    /// on the server's version, so airlock does not guess.
    #[error("statement end inside an executable comment at byte {0}")]
    SemicolonInVersioned(usize),
    /// A `*/` inside a string, identifier or comment within an executable
    /// comment: a server that skips the comment (a version above its own)
    /// ends it there, one that runs it does not, so airlock does not guess.
    #[error("a '*/' inside a quoted or commented part of an executable comment at byte {0}")]
    CloseInVersioned(usize),
    /// A `;` with no statement before it (the server refuses `;;` and a leading `;`).
    #[error("empty statement before the ';' at byte {0}")]
    EmptyStatement(usize),
}

/// The tokens of `sql` (whitespace skipped) under `modes`.
pub fn scan(sql: &str, modes: SqlModes) -> Result<Vec<Token>, LexError> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Start of the executable comment we are inside, if any.
    let mut versioned: Option<usize> = None;
    let mut push = |kind, start, end| out.push(Token { kind, start, end });
    // Inside an executable comment that a server may skip (one with a
    // version, or MariaDB's `/*M!`, which MySQL skips), no token may hide
    // a `*/`.
    let mut skippable = false;
    let check = |skippable: bool, start: usize, end: usize| {
        if skippable && find(&b[..end], start + 1, b"*/").is_some() {
            Err(LexError::CloseInVersioned(start))
        } else {
            Ok(())
        }
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                let end = line_end(b, i);
                check(skippable, i, end)?;
                push(TokenKind::LineComment, i, end);
                i = end;
            }
            b'-' if next == Some(b'-') && b.get(i + 2).is_none_or(|&d| starts_dash_comment(d)) => {
                let end = line_end(b, i);
                check(skippable, i, end)?;
                push(TokenKind::LineComment, i, end);
                i = end;
            }
            b'*' if next == Some(b'/') && versioned.is_some() => {
                push(TokenKind::VersionedClose, i, i + 2);
                versioned = None;
                i += 2;
            }
            b'/' if next == Some(b'*') => {
                let marker = match (b.get(i + 2), b.get(i + 3)) {
                    (Some(b'!'), _) => Some(i + 3),
                    (Some(b'M'), Some(b'!')) => Some(i + 4),
                    _ => None,
                };
                match marker {
                    Some(_) if versioned.is_some() => return Err(LexError::NestedVersioned(i)),
                    Some(after) => {
                        // Five or six digits are a version; fewer are code.
                        let mut digits = 0;
                        while digits < 6 && b.get(after + digits).is_some_and(u8::is_ascii_digit) {
                            digits += 1;
                        }
                        let end = if digits >= 5 { after + digits } else { after };
                        skippable = digits >= 5 || b.get(i + 2) == Some(&b'M');
                        push(TokenKind::VersionedOpen, i, end);
                        versioned = Some(i);
                        i = end;
                    }
                    _ => {
                        // Not nested: the first `*/` ends it.
                        let end = find(b, i + 2, b"*/")
                            .map(|p| p + 2)
                            .ok_or(LexError::UnterminatedComment(i))?;
                        if skippable {
                            // Its `*/` would end the executable comment on a
                            // server that skips it.
                            return Err(LexError::CloseInVersioned(i));
                        }
                        push(TokenKind::BlockComment, i, end);
                        i = end;
                    }
                }
            }
            b'\'' => {
                let end = quoted_end(b, i, b'\'', !modes.no_backslash_escapes)?;
                check(skippable, i, end)?;
                push(TokenKind::String, i, end);
                i = end;
            }
            b'"' if modes.ansi_quotes => {
                let end = quoted_end(b, i, b'"', false)?;
                check(skippable, i, end)?;
                push(TokenKind::QuotedIdentifier, i, end);
                i = end;
            }
            b'"' => {
                let end = quoted_end(b, i, b'"', !modes.no_backslash_escapes)?;
                check(skippable, i, end)?;
                push(TokenKind::String, i, end);
                i = end;
            }
            b'`' => {
                let end = quoted_end(b, i, b'`', false)?;
                check(skippable, i, end)?;
                push(TokenKind::QuotedIdentifier, i, end);
                i = end;
            }
            b';' if versioned.is_some() => return Err(LexError::SemicolonInVersioned(i)),
            b';' => {
                push(TokenKind::Semicolon, i, i + 1);
                i += 1;
            }
            _ if is_word_byte(c) => {
                let mut end = i + 1;
                while end < b.len() && is_word_byte(b[end]) {
                    end += 1;
                }
                push(TokenKind::Other, i, end);
                i = end;
            }
            _ => {
                // One character (a multi-byte one whole).
                let len = sql[i..].chars().next().map_or(1, char::len_utf8);
                push(TokenKind::Other, i, i + len);
                i += len;
            }
        }
    }
    match versioned {
        Some(start) => Err(LexError::UnterminatedVersioned(start)),
        None => Ok(out),
    }
}

/// The statements of `sql`: byte ranges between `;` tokens (outside
/// strings and comments), trimmed of whitespace; a trailing `;` ends the
/// last one. Comments stay with the statement they are in (a piece of only
/// comments is a statement: the server answers it with an OK).
pub fn split(sql: &str, modes: SqlModes) -> Result<Vec<Range<usize>>, LexError> {
    let tokens = scan(sql, modes)?;
    let mut out = Vec::new();
    let mut first: Option<usize> = None;
    let mut last = 0;
    for t in &tokens {
        if t.kind == TokenKind::Semicolon {
            match first.take() {
                Some(start) => out.push(start..last),
                None => return Err(LexError::EmptyStatement(t.start)),
            }
        } else {
            first.get_or_insert(t.start);
            last = t.end;
        }
    }
    if let Some(start) = first {
        out.push(start..last);
    }
    Ok(out)
}

/// Whether a statement's tokens are only comments (nothing to run).
pub fn is_only_comments(tokens: &[Token]) -> bool {
    tokens
        .iter()
        .all(|t| matches!(t.kind, TokenKind::LineComment | TokenKind::BlockComment))
}

/// `--` starts a comment when followed by whitespace or a control character.
fn starts_dash_comment(d: u8) -> bool {
    d.is_ascii_whitespace() || d.is_ascii_control()
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Offset of the `\n` ending the line that starts at `from` (or the end).
fn line_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| from + p)
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Offset just after the closing `quote` of text opened at `start`.
fn quoted_end(b: &[u8], start: usize, quote: u8, backslash: bool) -> Result<usize, LexError> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            c if c == quote => {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    Err(LexError::UnterminatedQuote(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds(sql: &str, modes: SqlModes) -> Vec<(TokenKind, &str)> {
        scan(sql, modes)
            .expect("scans")
            .into_iter()
            .map(|t| (t.kind, &sql[t.start..t.end]))
            .collect()
    }

    fn statements(sql: &str) -> Vec<&str> {
        split(sql, SqlModes::default())
            .expect("splits")
            .into_iter()
            .map(|r| &sql[r])
            .collect()
    }

    #[test]
    fn dash_dash_is_a_comment_only_before_whitespace() {
        let m = SqlModes::default();
        assert_eq!(
            kinds("SELECT 1--1", m),
            [
                (Other, "SELECT"),
                (Other, "1"),
                (Other, "-"),
                (Other, "-"),
                (Other, "1")
            ]
        );
        assert_eq!(
            kinds("SELECT 1-- ; DELETE\nFROM t", m),
            [
                (Other, "SELECT"),
                (Other, "1"),
                (LineComment, "-- ; DELETE"),
                (Other, "FROM"),
                (Other, "t")
            ]
        );
        assert_eq!(kinds("SELECT 1 --", m).last(), Some(&(LineComment, "--")));
        assert_eq!(
            kinds("SELECT 1 --\tx", m).last(),
            Some(&(LineComment, "--\tx"))
        );
        assert_eq!(kinds("# c ; d\nSELECT", m)[0], (LineComment, "# c ; d"));
    }

    #[test]
    fn versioned_comments_are_code() {
        let m = SqlModes::default();
        assert_eq!(
            kinds("SELECT 1 /*!50000 + 2 */ /*!/* c */ - t */", m),
            [
                (Other, "SELECT"),
                (Other, "1"),
                (VersionedOpen, "/*!50000"),
                (Other, "+"),
                (Other, "2"),
                (VersionedClose, "*/"),
                (VersionedOpen, "/*!"),
                (BlockComment, "/* c */"),
                (Other, "-"),
                (Other, "t"),
                (VersionedClose, "*/"),
            ]
        );
        // Fewer than five digits are code, not a version.
        assert_eq!(
            kinds("/*!1 */", m)[..2],
            [(VersionedOpen, "/*!"), (Other, "1")]
        );
        assert!(matches!(
            scan("/*!99999 SELECT '*/ DELETE FROM t /*!99999 ' */", m),
            Err(LexError::CloseInVersioned(_))
        ));
        // Without a version every server runs it: no ambiguity.
        assert!(scan("SELECT 1 /*! /* x */ + '*/' */", m).is_ok());
        assert!(matches!(
            scan("/*!99999 SELECT 1 -- */ \n */", m),
            Err(LexError::CloseInVersioned(_))
        ));
        assert!(matches!(
            scan("/*!99999 SELECT 1 /* x */ */", m),
            Err(LexError::CloseInVersioned(_))
        ));
        assert_eq!(
            scan("SELECT 1 /*!50000 ; DROP TABLE t */", m),
            Err(LexError::SemicolonInVersioned(18))
        );
        assert_eq!(
            scan("SELECT /*!50000 /*!50000 1 */ */", m),
            Err(LexError::NestedVersioned(16))
        );
        assert_eq!(
            kinds("/*+ hint ; */ SELECT", m),
            [(BlockComment, "/*+ hint ; */"), (Other, "SELECT")]
        );
        // Not nested: the first */ ends a comment.
        assert_eq!(
            kinds("/* a /* b */ c", m),
            [(BlockComment, "/* a /* b */"), (Other, "c")]
        );
        assert_eq!(
            scan("SELECT /*! 1", m),
            Err(LexError::UnterminatedVersioned(7))
        );
        assert_eq!(
            scan("SELECT /* 1", m),
            Err(LexError::UnterminatedComment(7))
        );
    }

    #[test]
    fn strings_follow_backslash_escapes_and_ansi_quotes() {
        let m = SqlModes::default();
        assert_eq!(
            statements(r"SELECT 'a\'; DELETE FROM t; -- '; SELECT 2"),
            [r"SELECT 'a\'; DELETE FROM t; -- '", "SELECT 2"]
        );
        let nbe = SqlModes::from_sql_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES");
        assert!(nbe.no_backslash_escapes && !nbe.ansi_quotes);
        let r: Vec<&str> = split(r"SELECT 'a\'; DELETE FROM t; -- '", nbe)
            .expect("splits")
            .into_iter()
            .map(|r| &r"SELECT 'a\'; DELETE FROM t; -- '"[r])
            .collect();
        assert_eq!(r, [r"SELECT 'a\'", "DELETE FROM t", "-- '"]);
        assert_eq!(
            kinds(r#"SELECT "a;b", 'it''s', `x``;y`"#, m),
            [
                (Other, "SELECT"),
                (String, r#""a;b""#),
                (Other, ","),
                (String, "'it''s'"),
                (Other, ","),
                (QuotedIdentifier, "`x``;y`")
            ]
        );
        let ansi = SqlModes::from_sql_mode("ansi");
        // `"a\"`: an identifier under ANSI_QUOTES, an unterminated string otherwise.
        assert_eq!(kinds(r#""a\""#, ansi), [(QuotedIdentifier, r#""a\""#)]);
        assert_eq!(scan(r#""a\""#, m), Err(LexError::UnterminatedQuote(0)));
        assert_eq!(scan("`a", m), Err(LexError::UnterminatedQuote(0)));
    }

    #[test]
    fn split_refuses_empty_statements_and_keeps_comments() {
        assert_eq!(
            statements(" SELECT 1 ; /* c */ UPDATE t SET a = 1 ; "),
            ["SELECT 1", "/* c */ UPDATE t SET a = 1"]
        );
        assert_eq!(statements("SELECT 1; -- c"), ["SELECT 1", "-- c"]);
        for empty in ["SELECT 1;;SELECT 2", ";SELECT 1"] {
            assert!(matches!(
                split(empty, SqlModes::default()),
                Err(LexError::EmptyStatement(_))
            ));
        }
        let only = scan("/* x */ -- y", SqlModes::default()).expect("scans");
        assert!(is_only_comments(&only));
        assert!(statements("").is_empty());
        assert_eq!(
            statements("SELECT 'é;'; SELECT 2"),
            ["SELECT 'é;'", "SELECT 2"]
        );
    }
}
