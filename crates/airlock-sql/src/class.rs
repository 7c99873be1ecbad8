//! The statement classes and the classification result.

/// Statement class (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementClass {
    /// A query that only reads (SELECT, VALUES, TABLE, SHOW, cursors over reads…).
    Read,
    /// Data manipulation: INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY FROM, nextval()…
    Write,
    /// Schema changes: CREATE, ALTER, DROP, COMMENT, SELECT INTO…
    Ddl,
    /// Privileges and identity: GRANT, REVOKE, roles, SET ROLE, lifting read-only mode.
    Privilege,
    /// Session settings: SET, RESET, DISCARD, LISTEN…
    Session,
    /// Transaction control: BEGIN, COMMIT, ROLLBACK, SAVEPOINT…
    Transaction,
    /// Administration: VACUUM, ANALYZE, LOCK, NOTIFY, pg_terminate_backend()…
    Admin,
    /// Could not be analysed (unparsable, unsupported syntax, anonymous code blocks).
    Unknown,
}

impl StatementClass {
    /// The lowercase name used in messages, metrics and the store ("read", "write", …).
    pub fn as_str(&self) -> &'static str {
        match self {
            StatementClass::Read => "read",
            StatementClass::Write => "write",
            StatementClass::Ddl => "ddl",
            StatementClass::Privilege => "privilege",
            StatementClass::Session => "session",
            StatementClass::Transaction => "transaction",
            StatementClass::Admin => "admin",
            StatementClass::Unknown => "unknown",
        }
    }

    /// How significant the class is when several statements are combined (higher wins).
    pub fn rank(&self) -> u8 {
        match self {
            StatementClass::Read => 0,
            StatementClass::Transaction => 1,
            StatementClass::Session => 2,
            StatementClass::Write => 3,
            StatementClass::Ddl => 4,
            StatementClass::Privilege => 5,
            StatementClass::Admin => 6,
            StatementClass::Unknown => 7,
        }
    }

    /// The more significant of two classes.
    pub fn max(self, other: StatementClass) -> StatementClass {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

impl std::fmt::Display for StatementClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of classifying one SQL string (possibly several statements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Most significant class over all statements; when some statement is held,
    /// the most significant class among the held ones.
    pub class: StatementClass,
    /// True iff the whole string may pass unreviewed on a protected target,
    /// assuming every name in `executes` is a known read.
    pub read_only: bool,
    /// Why it is not read-only (empty when `read_only`).
    pub reasons: Vec<String>,
    /// Number of statements in the string (0 for an empty or comment-only string).
    pub statement_count: usize,
    /// Names defined by SQL-level `PREPARE name AS <read>` (only recorded when `read_only`).
    pub prepares: Vec<String>,
    /// Names used by SQL-level `EXECUTE name` (the caller checks they are known reads).
    pub executes: Vec<String>,
    /// Names released by `DEALLOCATE name`; `"*"` for `DEALLOCATE ALL`.
    pub deallocates: Vec<String>,
    /// Tables touched (best effort, lowercased qualified names, first-seen order).
    pub tables: Vec<String>,
    /// Functions off the allow-list that it calls (name parts as written,
    /// folded as Postgres folds them), by either parser's reading.
    pub calls: Vec<Vec<String>>,
    /// True when it is held and every reason is one of `calls` (by both
    /// parsers' reading): a target that trusts all of them may let it pass,
    /// and then `prepares` holds what it defines.
    pub held_only_for_calls: bool,
}

impl Classification {
    /// The classification of an empty (or comment-only) string: read-only, no statements.
    pub fn empty() -> Self {
        Classification {
            class: StatementClass::Read,
            read_only: true,
            reasons: Vec::new(),
            statement_count: 0,
            prepares: Vec::new(),
            executes: Vec::new(),
            deallocates: Vec::new(),
            tables: Vec::new(),
            calls: Vec::new(),
            held_only_for_calls: false,
        }
    }
}
