//! The text sqlparser is given for a MySQL statement: exactly what the
//! server executes, in a form sqlparser reads the same way. Comments become
//! a space, executable-comment markers are removed (their content is
//! code), a `--` that MySQL reads as two minus signs gets a space between
//! them, and `"…"` identifiers under `ANSI_QUOTES` become `` `…` ``.

use crate::mysql_lexer::{Token, TokenKind};

/// Rewrites `sql` (one statement) from its tokens.
pub fn canonical(sql: &str, tokens: &[Token]) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut at = tokens.first().map_or(0, |t| t.start);
    let mut prev: Option<&Token> = None;
    for t in tokens {
        out.push_str(&sql[at..t.start]);
        let text = &sql[t.start..t.end];
        match t.kind {
            TokenKind::LineComment | TokenKind::BlockComment => out.push(' '),
            TokenKind::VersionedOpen | TokenKind::VersionedClose => out.push(' '),
            TokenKind::QuotedIdentifier if text.starts_with('"') => {
                out.push('`');
                for c in text[1..text.len() - 1].replace("\"\"", "\"").chars() {
                    if c == '`' {
                        out.push('`');
                    }
                    out.push(c);
                }
                out.push('`');
            }
            TokenKind::Other
                if text == "-"
                    && prev.is_some_and(|p| {
                        p.kind == TokenKind::Other
                            && p.end == t.start
                            && &sql[p.start..p.end] == "-"
                    }) =>
            {
                out.push_str(" -");
            }
            _ => out.push_str(text),
        }
        at = t.end;
        prev = Some(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql_lexer::{scan, SqlModes};

    fn canon(sql: &str, m: SqlModes) -> String {
        canonical(sql, &scan(sql, m).unwrap())
    }

    #[test]
    fn executed_text() {
        let m = SqlModes::default();
        assert_eq!(canon("SELECT 1--1", m), "SELECT 1- -1");
        assert_eq!(canon("SELECT 1 -- c\n, 2", m), "SELECT 1  \n, 2");
        assert_eq!(canon("SELECT 1 # c\n, 2", m), "SELECT 1  \n, 2");
        assert_eq!(
            canon("SELECT * FROM t /*!50000 INTO OUTFILE '/tmp/x' */", m),
            "SELECT * FROM t   INTO OUTFILE '/tmp/x'  "
        );
        assert_eq!(canon("SELECT/**/1", m), "SELECT 1");
        let ansi = SqlModes {
            ansi_quotes: true,
            ..Default::default()
        };
        assert_eq!(
            canon("SELECT \"a\"\"b`\" FROM t", ansi),
            "SELECT `a\"b``` FROM t"
        );
    }
}
