//! The session's client character set, as far as airlock can follow it:
//! text parameters of a prepared change are written as literals only when
//! they are known to be UTF-8.

use airlock_sql::mysql_lexer::{self, SqlModes, TokenKind};

/// What `sql` does to the session's client character set: `None` if it
/// does not touch it, `Some(Some(utf8))` for `SET NAMES x`, `SET CHARACTER
/// SET x`, `SET CHARSET x` or `character_set_client = x` with a plain name,
/// `Some(None)` for anything airlock cannot follow.
pub(super) fn charset_after(sql: &str, modes: SqlModes) -> Option<Option<bool>> {
    let Ok(tokens) = mysql_lexer::scan(sql, modes) else {
        return Some(None);
    };
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t.kind, TokenKind::LineComment | TokenKind::BlockComment))
        .map(|t| {
            sql[t.start..t.end]
                .trim_matches(|c| c == '\'' || c == '"' || c == '`')
                .to_ascii_lowercase()
        })
        .collect();
    if !words.iter().any(|w| w == "set") {
        return None;
    }
    let named = |i: usize| -> Option<bool> {
        let name = words.get(i)?;
        (name != "default").then_some(matches!(name.as_str(), "utf8" | "utf8mb3" | "utf8mb4"))
    };
    let at = words.iter().position(|w| {
        w == "names" || w == "charset" || w == "character" || w.ends_with("character_set_client")
    })?;
    let name_at = match words[at].as_str() {
        "character" if words.get(at + 1).is_some_and(|w| w == "set") => at + 2,
        "character" => return Some(None),
        w if w.ends_with("character_set_client") => match words.get(at + 1).map(String::as_str) {
            Some("=") | Some(":=") => at + 2,
            _ => return Some(None),
        },
        _ => at + 1,
    };
    // One plain setting, nothing after it but COLLATE or the end.
    let rest_ok = match words.get(name_at + 1).map(String::as_str) {
        None | Some(";") => true,
        Some("collate") => {
            words.len() <= name_at + 3 || words.get(name_at + 3).is_some_and(|w| w == ";")
        }
        _ => false,
    };
    Some(named(name_at).filter(|_| rest_ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_set_changes_are_followed_or_given_up() {
        let m = SqlModes::default();
        assert_eq!(charset_after("SELECT 1", m), None);
        assert_eq!(charset_after("SET autocommit = 1", m), None);
        assert_eq!(charset_after("SET NAMES utf8mb4", m), Some(Some(true)));
        assert_eq!(
            charset_after("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'", m),
            Some(Some(true))
        );
        assert_eq!(charset_after("SET NAMES latin1", m), Some(Some(false)));
        assert_eq!(charset_after("SET CHARACTER SET utf8", m), Some(Some(true)));
        assert_eq!(
            charset_after("SET character_set_client = utf8mb4", m),
            Some(Some(true))
        );
        assert_eq!(
            charset_after("SET @@session.character_set_client = latin1", m),
            Some(Some(false))
        );
        assert_eq!(charset_after("SET NAMES DEFAULT", m), Some(None));
        assert_eq!(
            charset_after("SET NAMES utf8mb4, character_set_client = latin1", m),
            Some(None)
        );
        assert_eq!(
            charset_after("SET character_set_client = @x", m),
            Some(None)
        );
    }
}
