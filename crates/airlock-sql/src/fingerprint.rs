//! Literal-stripped fingerprints of statements, for finding earlier runs of
//! "the same" change in lower environments (SPEC §5). Never used to match an
//! approval (SPEC §4.3).

use std::ops::ControlFlow;

use sha2::{Digest, Sha256};
use sqlparser::ast::{
    Expr, InTarget, Statement, UnaryOperator, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::parse::{parse_sql, DIALECT};
use crate::span::token_starts;

/// A normalized statement text and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The statements re-printed from the syntax tree with literals replaced by `?`
    /// and unquoted words in lower case, joined with `; `.
    pub normalized: String,
    /// Lowercase hex SHA-256 of `normalized`.
    pub hash: String,
}

/// The fingerprint of a SQL string; `None` when it does not parse.
///
/// Numbers, strings and placeholders (`$1`) become `?`, an IN list of only
/// such values becomes `IN (?)`, `-5` becomes `?`; `NULL`, `true` and `false`
/// stay. Keywords, spacing and the case of unquoted names are normalized.
pub fn fingerprint(sql: &str) -> Option<Fingerprint> {
    let mut stmts = parse_sql(sql).ok()?;
    if stmts.is_empty() {
        return None;
    }
    let printed: Vec<String> = stmts
        .iter_mut()
        .map(|st| {
            strip_literals(st);
            lowercase_unquoted(&st.to_string())
        })
        .collect();
    let normalized = printed.join("; ");
    let hash = Sha256::digest(normalized.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Fingerprint { normalized, hash })
}

/// Replace literal values in a statement by `?` (see [`fingerprint`]).
pub(crate) fn strip_literals(st: &mut Statement) {
    let _ = st.visit(&mut Stripper);
}

struct Stripper;

fn placeholder() -> Value {
    Value::Placeholder("?".to_string())
}

fn is_strippable(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Boolean(_))
}

fn is_stripped(e: &Expr) -> bool {
    matches!(e, Expr::Value(ValueWithSpan { value: Value::Placeholder(p), .. }) if p == "?")
}

impl VisitorMut for Stripper {
    type Break = ();

    fn post_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if is_strippable(&value.value) {
            value.value = placeholder();
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::In {
                target: InTarget::List(list),
                ..
            } if !list.is_empty() && list.iter().all(is_stripped) => {
                list.truncate(1);
            }
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr: inner,
            } if is_stripped(inner) => {
                *expr = (**inner).clone();
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Lower-case every unquoted word of a printed statement, keeping the rest as is.
fn lowercase_unquoted(text: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&DIALECT, text).tokenize_with_location() else {
        return text.to_string();
    };
    let starts = token_starts(text, &tokens);
    let mut out = String::with_capacity(text.len());
    for (i, t) in tokens.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let piece = &text[starts[i]..end];
        match &t.token {
            Token::Word(w) if w.quote_style.is_none() => out.push_str(&piece.to_lowercase()),
            _ => out.push_str(piece),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(sql: &str) -> Fingerprint {
        fingerprint(sql).unwrap_or_else(|| panic!("no fingerprint for {sql}"))
    }

    fn same(a: &str, b: &str) {
        assert_eq!(fp(a), fp(b), "{a} vs {b}");
    }

    fn differ(a: &str, b: &str) {
        assert_ne!(fp(a).hash, fp(b).hash, "{a} vs {b}");
    }

    #[test]
    fn literals_and_spacing_do_not_matter() {
        same(
            "UPDATE t SET a = 1 WHERE id = 5",
            "update t  set a=2 where id=7",
        );
        same(
            "UPDATE T SET a = 'x' WHERE id = 5",
            "update t set A = 'it''s' where ID = -7;",
        );
        same(
            "DELETE FROM t WHERE id IN (1, 2, 3)",
            "DELETE FROM t WHERE id IN (4)",
        );
        same(
            "SELECT * FROM t WHERE a = $1",
            "SELECT * FROM t WHERE a = 42",
        );
        same(
            "INSERT INTO t (a, b) VALUES (1, E'x\\n')",
            "insert into t (a, b) values (2, $$y$$)",
        );
        same("/* c */ SELECT 1 -- x", "SELECT 2");
        assert_eq!(
            fp("UPDATE t SET a = 1 WHERE id = 5").normalized,
            "update t set a = ? where id = ?"
        );
    }

    #[test]
    fn structure_matters() {
        differ(
            "UPDATE t SET a = 1 WHERE id = 5",
            "UPDATE t SET a = 1 WHERE id2 = 5",
        );
        differ("UPDATE t SET a = 1", "UPDATE t SET a = 1 WHERE id = 5");
        differ(
            "SELECT * FROM t WHERE a IS NULL",
            "SELECT * FROM t WHERE a = 1",
        );
        differ("UPDATE t SET a = true", "UPDATE t SET a = false");
        differ("SELECT * FROM \"T\"", "SELECT * FROM t");
        differ("SELECT 1", "SELECT 1; SELECT 1");
        differ(
            "DELETE FROM t WHERE id IN (1, 2)",
            "DELETE FROM t WHERE id IN (1, a)",
        );
    }

    #[test]
    fn scripts_and_failures() {
        let f = fp("UPDATE a SET x = 1; DELETE FROM b WHERE id = 2;");
        assert_eq!(
            f.normalized,
            "update a set x = ?; delete from b where id = ?"
        );
        assert_eq!(f.hash.len(), 64);
        assert!(f
            .hash
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(fingerprint("UPDATE t SET"), None);
        assert_eq!(fingerprint("SELECT 1 END; DELETE FROM t"), None);
        assert_eq!(fingerprint("  -- nothing"), None);
    }

    #[test]
    fn secrets_do_not_survive() {
        let f = fp("ALTER ROLE app PASSWORD 'hunter2'");
        assert!(!f.normalized.contains("hunter2"), "{}", f.normalized);
    }
}
