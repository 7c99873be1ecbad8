//! Redaction of password literals in statement text (SPEC §6): every
//! rendering of a statement (Slack, web, CLI, logs) goes through this.

use sqlparser::tokenizer::Token;

use crate::parse::tokenize;
use crate::span::token_starts;

/// What replaces a redacted literal.
pub const REDACTED: &str = "'***'";

/// What replaces text matched by a configured sensitive pattern.
pub const REDACTED_MATCH: &str = "***";

/// Password literals plus the operator's own sensitive patterns (regular
/// expressions, e.g. card numbers or API keys), redacted together in every
/// rendering of a statement.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    patterns: Vec<regex::Regex>,
}

impl Redactor {
    /// A redactor with these extra patterns; the error names the first one that does not compile.
    pub fn new<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<Self, (usize, regex::Error)> {
        let patterns = patterns
            .into_iter()
            .enumerate()
            .map(|(i, p)| regex::Regex::new(p.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Redactor { patterns })
    }

    /// `sql` with password literals and every pattern match replaced.
    pub fn redact(&self, sql: &str) -> String {
        let mut out = redact(sql);
        for p in &self.patterns {
            if let std::borrow::Cow::Owned(replaced) = p.replace_all(&out, REDACTED_MATCH) {
                out = replaced;
            }
        }
        out
    }
}

/// `sql` with password literals replaced by `'***'`, the rest byte-identical.
///
/// Covers `PASSWORD 'x'` (`ALTER ROLE`, `CREATE USER … WITH [ENCRYPTED] PASSWORD`),
/// MySQL `IDENTIFIED BY 'x'` / `IDENTIFIED WITH plugin BY 'x'`,
/// `SET PASSWORD [FOR u] = 'x'` and `PASSWORD('x')`, for any string literal
/// form (`'…'`, `E'…'`, `$$…$$`, `"…"`). Works on tokens, so unparsable text
/// is redacted too; text that cannot even be tokenized is cut after the
/// first password keyword (fail closed).
pub fn redact(sql: &str) -> String {
    let Ok(tokens) = tokenize(sql) else {
        return redact_untokenizable(sql);
    };
    let starts = token_starts(sql, &tokens);
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let word = |k: usize, w: &str| {
        significant.get(k).is_some_and(|&i| {
            matches!(&tokens[i].token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
        })
    };
    let mut redact_idx: Vec<usize> = Vec::new();
    let mut k = 0;
    while k < significant.len() {
        let trigger = word(k, "password") || (word(k, "identified") && !word(k + 1, "externally"));
        if !trigger {
            k += 1;
            continue;
        }
        // Look ahead a few tokens for the literal: past `=`, `(`, `BY`, `WITH plugin`,
        // `FOR user@host =`, `PASSWORD`; stop at `;`.
        let mut j = k + 1;
        let mut after_for = false;
        let limit = k + 12;
        while j < significant.len() && j <= limit {
            let t = &tokens[significant[j]].token;
            if *t == Token::SemiColon || word(j, "null") {
                break;
            }
            if word(j, "for") {
                after_for = true;
            } else if after_for {
                if *t == Token::Eq {
                    after_for = false;
                }
            } else if is_string(t) {
                redact_idx.push(significant[j]);
                break;
            }
            j += 1;
        }
        k += 1;
    }
    if redact_idx.is_empty() {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len());
    let mut pos = 0;
    for i in redact_idx {
        let end = starts.get(i + 1).copied().unwrap_or(sql.len());
        if starts[i] < pos {
            continue;
        }
        out.push_str(&sql[pos..starts[i]]);
        out.push_str(REDACTED);
        pos = end;
    }
    out.push_str(&sql[pos..]);
    out
}

fn is_string(t: &Token) -> bool {
    match t {
        Token::Word(w) => w.quote_style == Some('"') || w.quote_style == Some('`'),
        Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::EscapedStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_) => true,
        _ => false,
    }
}

/// Text the tokenizer rejects (an unterminated quote…): keep it up to and
/// including the first password keyword, then `'***'`.
fn redact_untokenizable(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let at = ["password", "identified"]
        .iter()
        .filter_map(|k| lower.find(k).map(|i| i + k.len()))
        .min();
    match at {
        Some(i) => format!("{} {REDACTED}", &sql[..i]),
        None => sql.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn is(sql: &str, want: &str) {
        assert_eq!(redact(sql), want, "{sql}");
    }

    #[test]
    fn passwords() {
        is(
            "ALTER ROLE app PASSWORD 'hunter2'",
            "ALTER ROLE app PASSWORD '***'",
        );
        is(
            "CREATE USER x WITH PASSWORD 'y' VALID UNTIL '2030-01-01'",
            "CREATE USER x WITH PASSWORD '***' VALID UNTIL '2030-01-01'",
        );
        is(
            "alter user x encrypted password 'y';",
            "alter user x encrypted password '***';",
        );
        is(
            "CREATE USER 'u'@'h' IDENTIFIED BY 'y'",
            "CREATE USER 'u'@'h' IDENTIFIED BY '***'",
        );
        is(
            "ALTER USER u IDENTIFIED WITH mysql_native_password BY \"y\"",
            "ALTER USER u IDENTIFIED WITH mysql_native_password BY '***'",
        );
        is("SET PASSWORD = 'y'", "SET PASSWORD = '***'");
        is(
            "SET PASSWORD FOR 'u'@'%' = PASSWORD('y')",
            "SET PASSWORD FOR 'u'@'%' = PASSWORD('***')",
        );
        is(
            "ALTER ROLE app PASSWORD NULL",
            "ALTER ROLE app PASSWORD NULL",
        );
    }

    #[test]
    fn tricky_quoting() {
        is(
            "ALTER ROLE app PASSWORD 'it''s'  -- keep\n; SELECT 'it''s'",
            "ALTER ROLE app PASSWORD '***'  -- keep\n; SELECT 'it''s'",
        );
        is(
            "ALTER ROLE app PASSWORD E'a\\'b'",
            "ALTER ROLE app PASSWORD '***'",
        );
        is(
            "ALTER ROLE app PASSWORD $x$a'b$x$ LOGIN",
            "ALTER ROLE app PASSWORD '***' LOGIN",
        );
        is(
            "ALTER ROLE app /* c */ PASSWORD\n\t'é'",
            "ALTER ROLE app /* c */ PASSWORD\n\t'***'",
        );
        is(
            "SELECT 'password' AS p, \"Password\" FROM t WHERE a = 'b'",
            "SELECT 'password' AS p, \"Password\" FROM t WHERE a = 'b'",
        );
        is(
            "ALTER ROLE a PASSWORD 'x'; ALTER ROLE b PASSWORD 'y'",
            "ALTER ROLE a PASSWORD '***'; ALTER ROLE b PASSWORD '***'",
        );
    }

    #[test]
    fn unparsable_and_untokenizable() {
        is(
            "ALTER ROLE app WITH LOGIN GARBAGE PASSWORD 'x' (",
            "ALTER ROLE app WITH LOGIN GARBAGE PASSWORD '***' (",
        );
        is(
            "ALTER ROLE app PASSWORD 'unterminated",
            "ALTER ROLE app PASSWORD '***'",
        );
        is("SELECT 'unterminated", "SELECT 'unterminated");
    }
}

#[cfg(test)]
mod redactor_tests {
    use super::Redactor;

    #[test]
    fn patterns_and_passwords_are_redacted_together() {
        let r = Redactor::new([r"\b4[0-9]{15}\b", r"(?i)api_key=[a-z0-9]+"]).expect("valid");
        let out = r.redact(
            "UPDATE cards SET n = '4242424242424242', note = 'api_key=abc123' WHERE id = 1; ALTER ROLE x PASSWORD 'hunter2'",
        );
        assert!(!out.contains("4242424242424242"), "{out}");
        assert!(!out.contains("abc123"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("UPDATE cards SET n = '***'"), "{out}");
        assert_eq!(Redactor::default().redact("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let err = Redactor::new(["ok", "(unclosed"]).expect_err("invalid");
        assert_eq!(err.0, 1);
    }
}
