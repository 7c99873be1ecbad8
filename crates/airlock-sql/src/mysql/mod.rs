//! Classification of MySQL/MariaDB statements, fail closed (SPEC §3): the
//! MySQL-exact lexer decides where statements end, sqlparser's MySQL
//! dialect reads each one from the text the server executes, and a
//! statement passes unreviewed only when it is provably read-only: reads
//! without locking clauses, `INTO`, or calls off the built-in allow-list;
//! transaction control that does not lift read-only mode; ordinary session
//! settings; `SHOW`, `DESCRIBE`, `EXPLAIN` of a read; `LOCK TABLES … READ`;
//! `PREPARE` of a read and `EXECUTE` of one. Anything sqlparser reads as
//! more or fewer statements than the lexer is held.

mod canonical;
mod functions;
mod rules;

pub use functions::is_read_only as is_read_only_function;

use crate::class::StatementClass;
use crate::mysql_lexer::{self, SqlModes, TokenKind};
use std::ops::Range;

/// What a statement does to the session that the proxy must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing the proxy tracks.
    None,
    /// `SET sql_mode = '…'`: lexing follows the new modes.
    SqlModes(SqlModes),
    /// `USE schema`.
    Use(String),
    /// `PREPARE name FROM '…'`, and whether that statement passes.
    Prepare {
        /// Statement name (lower case: names are case-insensitive).
        name: String,
        /// Whether `EXECUTE name` may pass.
        passes: bool,
    },
    /// `DEALLOCATE PREPARE name`.
    Deallocate(String),
}

/// The judgement of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlStatement {
    /// Its byte range in the text.
    pub range: Range<usize>,
    /// Its class.
    pub class: StatementClass,
    /// Why it is held (empty: it passes).
    pub reasons: Vec<String>,
    /// What it does to the session.
    pub effect: Effect,
    /// Tables it names.
    pub tables: Vec<String>,
}

/// The judgement of a whole text (one COM_QUERY, possibly several statements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlVerdict {
    /// Its statements.
    pub statements: Vec<MysqlStatement>,
    /// Held without statements (the lexer refused the text).
    pub refused: Option<String>,
}

impl MysqlVerdict {
    /// Whether everything in the text passes unreviewed.
    pub fn passes(&self) -> bool {
        self.refused.is_none() && self.statements.iter().all(|s| s.reasons.is_empty())
    }

    /// The most significant class.
    pub fn class(&self) -> StatementClass {
        if self.refused.is_some() {
            return StatementClass::Unknown;
        }
        self.statements
            .iter()
            .map(|s| s.class)
            .fold(StatementClass::Read, StatementClass::max)
    }

    /// Every reason to hold, in order.
    pub fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self.refused.iter().cloned().collect();
        for s in &self.statements {
            out.extend(s.reasons.iter().cloned());
        }
        out
    }

    /// Tables named anywhere.
    pub fn tables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.statements.iter().flat_map(|s| &s.tables) {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// What the session knows about SQL-level prepared statements.
pub trait PreparedNames {
    /// Whether `EXECUTE name` passes (`None`: airlock never saw it prepared).
    fn passes(&self, name: &str) -> Option<bool>;
}

impl PreparedNames for () {
    fn passes(&self, _: &str) -> Option<bool> {
        None
    }
}

/// Classifies `sql` as the server would read it under `modes`.
pub fn classify_mysql(sql: &str, modes: SqlModes, prepared: &dyn PreparedNames) -> MysqlVerdict {
    let ranges = match mysql_lexer::split(sql, modes) {
        Ok(r) => r,
        Err(e) => {
            return MysqlVerdict {
                statements: Vec::new(),
                refused: Some(format!("the statement boundaries are not certain: {e}")),
            }
        }
    };
    let mut statements = Vec::with_capacity(ranges.len());
    let mut modes = modes;
    for range in ranges {
        let text = &sql[range.clone()];
        let st = classify_one(text, modes, prepared, range);
        if let Effect::SqlModes(m) = &st.effect {
            modes = *m;
        }
        statements.push(st);
    }
    MysqlVerdict {
        statements,
        refused: None,
    }
}

/// Classifies one statement of a text.
fn classify_one(
    text: &str,
    modes: SqlModes,
    prepared: &dyn PreparedNames,
    range: Range<usize>,
) -> MysqlStatement {
    let held = |class, reason: String| MysqlStatement {
        range: range.clone(),
        class,
        reasons: vec![reason],
        effect: Effect::None,
        tables: Vec::new(),
    };
    let tokens = match mysql_lexer::scan(text, modes) {
        Ok(t) => t,
        Err(e) => return held(StatementClass::Unknown, e.to_string()),
    };
    if mysql_lexer::is_only_comments(&tokens) {
        return MysqlStatement {
            range,
            class: StatementClass::Read,
            reasons: Vec::new(),
            effect: Effect::None,
            tables: Vec::new(),
        };
    }
    let canonical = canonical::canonical(text, &tokens);
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| t.kind == TokenKind::Other)
        .take(4)
        .map(|t| text[t.start..t.end].to_ascii_uppercase())
        .collect();
    let mut out = rules::judge(&canonical, text, &tokens, &words, modes, prepared);
    out.range = range;
    out
}

mod estimate;
pub use estimate::{estimate_query_mysql, EstimateQuery};

#[cfg(test)]
mod tests;

/// A literal-stripped fingerprint of a MySQL text, for finding earlier
/// runs of the same statement (never for matching an approval): literals
/// become `?`, words are folded to lower case, comments and spacing go.
pub fn fingerprint_mysql(sql: &str, modes: SqlModes) -> String {
    use sha2::Digest;
    let Ok(tokens) = mysql_lexer::scan(sql, modes) else {
        return format!("unparsed:{}", sql.trim());
    };
    let mut norm = String::with_capacity(sql.len());
    for t in &tokens {
        let text = &sql[t.start..t.end];
        let piece = match t.kind {
            TokenKind::LineComment | TokenKind::BlockComment => continue,
            TokenKind::VersionedOpen | TokenKind::VersionedClose => continue,
            TokenKind::String => "?".to_string(),
            TokenKind::Other if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                "?".to_string()
            }
            _ => text.to_ascii_lowercase(),
        };
        if !norm.is_empty() {
            norm.push(' ');
        }
        norm.push_str(&piece);
    }
    let digest = sha2::Sha256::digest(norm.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("mysql:{hex}")
}

/// The values of a leading `/* airlock: … */` comment of a MySQL text, as
/// MySQL's lexer ends it (block comments do not nest there), and the text
/// after it (what a request stores and runs).
pub fn leading_directives_mysql(sql: &str, modes: SqlModes) -> (crate::Directives, &str) {
    let mut d = crate::Directives::default();
    let Ok(tokens) = mysql_lexer::scan(sql, modes) else {
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
                let trimmed = body.trim_start();
                let Some(content) = trimmed
                    .get(..8)
                    .filter(|h| h.eq_ignore_ascii_case("airlock:"))
                    .map(|_| &trimmed[8..])
                else {
                    break;
                };
                crate::directives::parse_directives(content, &mut d);
                rest = Some(t.end);
            }
            _ => break,
        }
    }
    match rest {
        Some(end) => (d, sql[end..].trim_start()),
        None => (d, sql),
    }
}
