//! airlock domain: configuration, users, targets and the statement policy.
//!
//! This crate does no I/O beyond what its caller hands it: the binary reads
//! the config file and secret files, and passes their text in.

pub mod config;
pub mod duration;
pub mod policy;

pub use config::{ScramVerifier, SecretReader, LogFormat, 
    Config, ConfigError, ConfigProblem, Credentials, Family, SecretSource, ServerConfig, Target,
    TlsConfig, UpstreamConfig, UpstreamTlsMode, User,
};
pub use policy::{Decision, HeldStatement, RefuseUnreviewed, StatementPolicy, SQLSTATE_HELD};
