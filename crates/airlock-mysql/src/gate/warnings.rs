//! `SHOW WARNINGS` / `SHOW ERRORS` after a statement the proxy answered
//! itself: its error, then the held request's context.

use super::*;

/// One row of `SHOW WARNINGS`.
pub(super) struct Warning {
    pub(super) level: &'static str,
    pub(super) code: u16,
    pub(super) message: String,
}

/// `Some(errors_only)` if `payload` is `SHOW WARNINGS` or `SHOW ERRORS`
/// (one statement, any `LIMIT` ignored: the proxy's list is short).
pub(super) fn show_warnings(payload: &[u8], modes: SqlModes) -> Option<bool> {
    let sql = std::str::from_utf8(payload.get(1..)?).ok()?;
    let tokens = mysql_lexer::scan(sql, modes).ok()?;
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t.kind, TokenKind::LineComment | TokenKind::BlockComment))
        .map(|t| &sql[t.start..t.end])
        .filter(|w| *w != ";");
    if !words.next()?.eq_ignore_ascii_case("SHOW") {
        return None;
    }
    let which = words.next()?;
    let errors_only = if which.eq_ignore_ascii_case("WARNINGS") {
        false
    } else if which.eq_ignore_ascii_case("ERRORS") {
        true
    } else {
        return None;
    };
    match words.next() {
        None => Some(errors_only),
        Some(w) if w.eq_ignore_ascii_case("LIMIT") => Some(errors_only),
        Some(_) => None,
    }
}

impl ProtectedGate {
    /// `SHOW WARNINGS` after the proxy answered the last statement itself:
    /// its error, then the request's context, as the server lists them.
    pub(super) fn answer_warnings(&self, errors_only: bool) -> Verdict {
        let rows: Vec<Vec<Option<String>>> = self
            .warnings
            .iter()
            .filter(|w| !errors_only || w.level == "Error")
            .map(|w| {
                vec![
                    Some(w.level.to_string()),
                    Some(w.code.to_string()),
                    Some(w.message.clone()),
                ]
            })
            .collect();
        Verdict::Answer(crate::resultset::encode(
            &["Level", "Code", "Message"],
            &rows,
            self.capabilities,
            self.mariadb_capabilities,
        ))
    }
}
