//! Byte offsets of tokens in the text they came from.

use sqlparser::tokenizer::TokenWithSpan;

/// The byte offset in `sql` where each token starts (the tokenizer counts
/// lines by `\n` and columns by characters, both from 1).
pub(crate) fn token_starts(sql: &str, tokens: &[TokenWithSpan]) -> Vec<usize> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut chars = sql.char_indices().peekable();
    let (mut line, mut col) = (1u64, 1u64);
    for t in tokens {
        let want = (t.span.start.line, t.span.start.column);
        if want.0 == 0 {
            // No location (a synthesized token): at the current position.
            out.push(chars.peek().map_or(sql.len(), |&(i, _)| i));
            continue;
        }
        while (line, col) < want {
            match chars.next() {
                Some((_, '\n')) => {
                    line += 1;
                    col = 1;
                }
                Some(_) => col += 1,
                None => break,
            }
        }
        out.push(chars.peek().map_or(sql.len(), |&(i, _)| i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::tokenize;

    #[test]
    fn offsets_match_text() {
        let sql = "SELECT 'é''x',\n  \"ü\" FROM t";
        let tokens = tokenize(sql).unwrap();
        let starts = token_starts(sql, &tokens);
        let texts: Vec<&str> = starts.windows(2).map(|w| &sql[w[0]..w[1]]).collect();
        assert_eq!(
            texts,
            ["SELECT", " ", "'é''x'", ",", "\n", " ", " ", "\"ü\"", " ", "FROM", " "]
        );
        assert_eq!(&sql[*starts.last().unwrap()..], "t");
    }
}
