//! SQL analysis for airlock: decides whether a SQL string is provably
//! read-only on a protected PostgreSQL target (SPEC §3). Pure: no I/O.
//!
//! Fail closed: a string passes only when every statement in it is of a kind
//! known to be read-only, every function it calls is on the read-only
//! allow-list, and nothing in it (CTEs, sub-queries, EXPLAIN ANALYZE,
//! PREPARE) writes. Anything that does not parse is held.
//!
//! Assumptions the proxy must keep true: the text is what Postgres receives
//! (valid UTF-8), `standard_conforming_strings` is on and the client encoding
//! is ASCII-safe (changes to either are held here), and the upstream session
//! is read-only as a backstop.

mod cache;
pub mod catalog;
mod class;
mod classify;
mod directives;
mod fallback;
mod fingerprint;
mod functions;
mod functions_pg15;
mod ident;
mod keywords;
pub mod lexer;
pub mod mysql;
pub mod mysql_lexer;
mod normalize;
mod parse;
pub mod pg_view;
mod redact;
mod risk;
mod settings;
mod span;
mod summary;
mod walk;

pub use cache::{CacheStats, Classifier};
pub use catalog::CatalogRisks;
pub use class::{Classification, StatementClass};
pub use classify::classify;
pub use directives::{
    leading_directives, on_disconnect_keeps, proxy_command, DirectiveKey, Directives, ProxyCommand,
};
pub use fingerprint::{fingerprint, Fingerprint};
pub use functions::is_allowed_builtin;
pub use redact::{redact, Redactor, REDACTED, REDACTED_MATCH};
pub use risk::{assess_risk, needs_own_transaction, Risk, RiskLevel, NO_TRANSACTION_REASON};
pub use settings::is_read_only_setting_change;
pub use summary::summarize;
