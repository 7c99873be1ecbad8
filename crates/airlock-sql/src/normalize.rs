//! The key under which a classification may be shared by statements that
//! differ only in their literals (`WHERE aid = 12345` with a new number each
//! time, the common case on production), so that the hot read path does not
//! parse every new literal with both parsers.
//!
//! Sound only where it is provably exact, so the key exists only for a
//! deliberately small language whose lexing is the same for Postgres and
//! for this scanner: ASCII; words, numbers, standard `'strings'` (no
//! backslash, no prefix such as `E`, `U&`, `B`, `X`), and the punctuation
//! `, . ( ) = < > * + - / % : ! |` with one trailing `;`. Anything else —
//! comments, dollar quotes, quoted identifiers, `\r`, several statements —
//! has no key and is classified on its own text. Statements whose class can
//! depend on a literal's value have no key either: `set_config(…)`, `SET`,
//! `RESET`, `EXPLAIN` options (`ANALYZE 0`), `COPY` and proxy commands.

/// Literal-free key of `sql`, or `None` when sharing a verdict would not be sound.
pub(crate) fn literal_free_key(sql: &str) -> Option<String> {
    let s = sql.trim_matches(|c: char| c == ' ' || c == '\n' || c == '\t');
    let s = s.strip_suffix(';').unwrap_or(s);
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 8 * 1024 {
        return None;
    }
    let mut key = String::with_capacity(b.len());
    let mut literals = 0usize;
    let mut first_word: Option<&str> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if b.get(i) == Some(&b'\'') {
                    return None; // E'…', B'…', X'…', N'…': another literal kind.
                }
                let word = &s[start..i];
                if first_word.is_none() {
                    first_word = Some(word);
                }
                key.push_str(word);
            }
            b'0'..=b'9' => {
                if i > 0 && matches!(b[i - 1], b'.' | b'a'..=b'z' | b'A'..=b'Z' | b'_') {
                    return None;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if b.get(i)
                    .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_' || *n == b'.')
                {
                    return None; // 1e5, 123abc, 1.2.3: leave to the parsers.
                }
                key.push('?');
                literals += 1;
            }
            b'\'' => {
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'\\') => return None,
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) if c.is_ascii() && *c != b'\r' => i += 1,
                        Some(_) => return None,
                    }
                }
                key.push_str("?'");
                literals += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b' ' | b'\n' | b'\t' => {
                while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\t') {
                    i += 1;
                }
                key.push(' ');
                continue;
            }
            b',' | b'.' | b'(' | b')' | b'=' | b'<' | b'>' | b'*' | b'+' | b'-' | b'/' | b'%'
            | b':' | b'!' | b'|' => {
                key.push(c as char);
                i += 1;
            }
            _ => return None,
        }
    }
    if literals == 0 {
        return None; // Nothing to share: the exact cache serves it.
    }
    let first = first_word?.to_ascii_lowercase();
    if matches!(
        first.as_str(),
        "set" | "reset" | "explain" | "copy" | "call" | "show" | "alter" | "do"
    ) {
        return None;
    }
    if key.to_ascii_lowercase().contains("set_config") {
        return None;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_of_simple_reads_share_a_key() {
        let a = literal_free_key("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;");
        let b = literal_free_key("SELECT abalance FROM pgbench_accounts WHERE aid = 7;");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(
            literal_free_key("SELECT * FROM t WHERE v = 'it''s' AND n > 1.5"),
            literal_free_key("SELECT * FROM t WHERE v = 'x' AND n > 2")
        );
        assert_ne!(
            literal_free_key("SELECT * FROM t WHERE a = 1"),
            literal_free_key("SELECT * FROM u WHERE a = 1")
        );
    }

    #[test]
    fn anything_whose_lexing_or_class_could_differ_has_no_key() {
        for sql in [
            "SELECT 1 -- x\rDELETE FROM t",
            "SELECT $€$ , $a$ $€$; DELETE FROM accounts WHERE id = 3",
            "SELECT /* c */ 1",
            "SELECT E'\\'' , 1",
            "SELECT 'a\\' , 1",
            "SELECT \"t\".a FROM t WHERE a = 1",
            "SELECT 1; DELETE FROM t WHERE a = 1",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SET default_transaction_read_only = 0",
            "EXPLAIN (ANALYZE 0) DELETE FROM t WHERE a = 1",
            "SELECT 1e5",
            "SELECT U&'x'",
            "SELECT 'é', 1",
            "SELECT id FROM t",
        ] {
            assert_eq!(literal_free_key(sql), None, "{sql}");
        }
    }
}
