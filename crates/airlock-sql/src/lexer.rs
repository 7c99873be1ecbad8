//! Postgres's own scanner (libpg_query's `scan`, through `pg_query`): where
//! comments, strings and tokens begin and end exactly as the server reads
//! them (`\r` ends a `--` comment, nested block comments, dollar tags with
//! any byte ≥ 0x80, `E''`, `U&""`, `standard_conforming_strings` on).
//! Statement boundaries and kinds come from its parser ([`crate::pg_view`]).

use pg_query::protobuf::Token as PgToken;

/// What a scanned token is, as far as airlock needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `-- …` up to the end of the line.
    LineComment,
    /// `/* … */`, nested as Postgres nests them.
    BlockComment,
    /// Anything else (keywords, identifiers, literals, operators…).
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

/// The tokens of `sql`, or `None` when Postgres's scanner rejects the text
/// (an unterminated comment, string or quoted identifier…).
pub fn scan(sql: &str) -> Option<Vec<Token>> {
    let scanned = pg_query::scan(sql).ok()?;
    scanned
        .tokens
        .iter()
        .map(|t| {
            let kind = if t.token == PgToken::SqlComment as i32 {
                TokenKind::LineComment
            } else if t.token == PgToken::CComment as i32 {
                TokenKind::BlockComment
            } else {
                TokenKind::Other
            };
            let start = usize::try_from(t.start).ok()?;
            let end = usize::try_from(t.end).ok()?;
            (start <= end && end <= sql.len()).then_some(Token { kind, start, end })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, &str)> {
        scan(sql)
            .expect("scans")
            .into_iter()
            .map(|t| (t.kind, &sql[t.start..t.end]))
            .collect()
    }

    #[test]
    fn comments_end_where_postgres_ends_them() {
        use TokenKind::*;
        assert_eq!(
            kinds("-- a\r/* b /* nested */ */ SELECT $€$x$€$"),
            [
                (LineComment, "-- a"),
                (BlockComment, "/* b /* nested */ */"),
                (Other, "SELECT"),
                (Other, "$€$x$€$"),
            ]
        );
        assert_eq!(
            kinds("SELECT E'\\' /* not a comment */'"),
            [(Other, "SELECT"), (Other, "E'\\' /* not a comment */'")]
        );
        assert!(scan("SELECT 1 /* unterminated").is_none());
    }
}
