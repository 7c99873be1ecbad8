//! What happens to a statement that is not provably read-only on a protected
//! target. This is the seam the change-request workflow plugs into: the wire
//! crates describe the held statement, the policy decides what the client sees.

use airlock_sql::StatementClass;

/// SQLSTATE for a statement held for review (class `AL`, airlock).
pub const SQLSTATE_HELD: &str = "AL001";

/// A statement the proxy will not run unreviewed.
#[derive(Debug, Clone)]
pub struct HeldStatement<'a> {
    /// The airlock user who sent it.
    pub user: &'a str,
    /// Target name (`orders-prod`).
    pub target: &'a str,
    /// Target environment.
    pub environment: &'a str,
    /// The SQL text as received (empty for messages without SQL).
    pub sql: &'a str,
    /// Its class.
    pub class: StatementClass,
    /// Why it is not read-only.
    pub reasons: &'a [String],
}

/// What the client gets instead of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer with an ERROR (never FATAL); nothing runs.
    Refuse {
        /// SQLSTATE, five characters.
        sqlstate: &'static str,
        /// Primary message.
        message: String,
        /// DETAIL field.
        detail: Option<String>,
        /// HINT field.
        hint: Option<String>,
        /// NOTICE lines sent before the error.
        notices: Vec<String>,
    },
}

/// Decides what happens to held statements.
pub trait StatementPolicy: Send + Sync {
    /// Called for every statement that may not pass unreviewed.
    fn on_held(&self, held: &HeldStatement<'_>) -> Decision;
}

/// The policy before change requests exist: refuse, say why, run nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct RefuseUnreviewed;

impl StatementPolicy for RefuseUnreviewed {
    fn on_held(&self, held: &HeldStatement<'_>) -> Decision {
        let what = if held.sql.is_empty() {
            "this message".to_string()
        } else {
            format!("this {} statement", held.class.as_str())
        };
        Decision::Refuse {
            sqlstate: SQLSTATE_HELD,
            message: format!(
                "airlock: {what} needs review before it can run on protected target \"{}\"; nothing was run",
                held.target
            ),
            detail: (!held.reasons.is_empty()).then(|| held.reasons.join("; ")),
            hint: Some(
                "Only provably read-only statements pass unreviewed on a protected target."
                    .to_string(),
            ),
            notices: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_target_and_says_nothing_ran() {
        let reasons = vec!["DELETE is a write".to_string()];
        let d = RefuseUnreviewed.on_held(&HeldStatement {
            user: "alice",
            target: "orders-prod",
            environment: "prod",
            sql: "DELETE FROM t",
            class: StatementClass::Write,
            reasons: &reasons,
        });
        let Decision::Refuse {
            sqlstate,
            message,
            detail,
            ..
        } = d;
        assert_eq!(sqlstate, "AL001");
        assert!(message.contains("orders-prod") && message.contains("nothing was run"));
        assert_eq!(detail.as_deref(), Some("DELETE is a write"));
    }
}
