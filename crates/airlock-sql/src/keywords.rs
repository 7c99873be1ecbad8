//! Classes from leading keywords: for statements that did not parse (a
//! better message than "unknown") and for statement kinds that are held
//! without further analysis.

use sqlparser::ast::{ObjectType, Statement};

use crate::class::StatementClass;

/// The class implied by a statement's first two words (uppercase or not).
pub(crate) fn keyword_class(first: &str, second: &str) -> StatementClass {
    use StatementClass::*;
    let first = first.to_ascii_uppercase();
    let second = second.to_ascii_uppercase();
    match first.as_str() {
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "TRUNCATE" | "COPY" | "CALL" | "UPSERT"
        | "REPLACE" => Write,
        "CREATE" | "ALTER" | "DROP" => match second.as_str() {
            "ROLE" | "USER" | "GROUP" => Privilege,
            "SYSTEM" => Admin,
            _ => Ddl,
        },
        "COMMENT" | "SECURITY" | "REFRESH" | "IMPORT" | "RENAME" => Ddl,
        "GRANT" | "REVOKE" | "REASSIGN" | "DENY" => Privilege,
        "VACUUM" | "ANALYZE" | "ANALYSE" | "CLUSTER" | "REINDEX" | "CHECKPOINT" | "LOAD"
        | "NOTIFY" | "LOCK" | "KILL" | "OPTIMIZE" | "FLUSH" | "INSTALL" => Admin,
        "SET" | "RESET" | "DISCARD" | "LISTEN" | "UNLISTEN" | "DEALLOCATE" | "USE" => Session,
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "ABORT" | "END" | "SAVEPOINT" | "RELEASE" => {
            Transaction
        }
        _ => Unknown,
    }
}

/// The first two words of a text (skipping punctuation), for keyword classification.
pub(crate) fn first_two_words(text: &str) -> (String, String) {
    let mut words = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("").to_string();
    let second = words.next().unwrap_or("").to_string();
    (first, second)
}

/// The class of a statement by kind, with a short description, for held
/// statements ("DELETE", "CREATE TABLE"…). Read-like kinds return `Read`.
pub(crate) fn statement_class(st: &Statement) -> (StatementClass, String) {
    use StatementClass::*;
    let kind = |s: &str| s.to_string();
    match st {
        Statement::Query(_) => (Read, kind("query")),
        Statement::Insert(_) => (Write, kind("INSERT")),
        Statement::Update(_) => (Write, kind("UPDATE")),
        Statement::Delete(_) => (Write, kind("DELETE")),
        Statement::Merge(_) => (Write, kind("MERGE")),
        Statement::Truncate(_) => (Write, kind("TRUNCATE")),
        Statement::Call(_) => (Write, kind("CALL")),
        Statement::RefreshMaterializedView(_) => (Write, kind("REFRESH MATERIALIZED VIEW")),
        Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::GrantRole(_)
        | Statement::RevokeRole(_)
        | Statement::Deny(_)
        | Statement::AlterDefaultPrivileges(_) => (Privilege, kind("privilege change")),
        Statement::CreateRole(_) | Statement::CreateUser(_) => (Privilege, kind("CREATE ROLE")),
        Statement::AlterRole { .. } | Statement::AlterUser(_) => (Privilege, kind("ALTER ROLE")),
        Statement::Drop {
            object_type: ObjectType::Role | ObjectType::User,
            ..
        } => (Privilege, kind("DROP ROLE")),
        Statement::Analyze(_) => (Admin, kind("ANALYZE")),
        Statement::Vacuum(_) => (Admin, kind("VACUUM")),
        Statement::Kill { .. } => (Admin, kind("KILL")),
        Statement::NOTIFY { .. } => (Admin, kind("NOTIFY")),
        Statement::Comment { .. } => (Ddl, kind("COMMENT")),
        _ => {
            // Everything else is named by its leading keywords.
            let text = st.to_string();
            let (first, second) = first_two_words(&text);
            let class = keyword_class(&first, &second);
            let what = if second.is_empty() {
                first.to_ascii_uppercase()
            } else {
                format!(
                    "{} {}",
                    first.to_ascii_uppercase(),
                    second.to_ascii_uppercase()
                )
            };
            (class, what)
        }
    }
}
