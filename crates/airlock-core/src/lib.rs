//! airlock domain: configuration, users, targets, the statement policy, and
//! the change-request workflow (state machine, approval rules, audit chain,
//! ports and the workflow service).
//!
//! This crate does no I/O beyond what its caller hands it: the binary reads
//! the config file and secret files, and passes their text in; the store and
//! the clock are ports implemented elsewhere.

pub mod audit;
pub mod config;
pub mod duration;
pub mod executor;
pub mod live;
pub mod policy;
pub mod ports;
pub mod request;
pub mod time;
pub mod waiting;
pub mod workflow;

pub use audit::{
    verify_chain, AuditEvent, AuditFault, AuditHead, AuditViolation, ChainVerifier, NewAuditEvent,
};
pub use config::{
    AuditConfig, Config, ConfigError, ConfigProblem, Credentials, Family, LogFormat, PolicyConfig,
    PolicyRules, ScramVerifier, SecretReader, SecretSource, ServerConfig, StoreConfig, Target,
    TlsConfig, TrustedFunction, UpstreamConfig, UpstreamTlsMode, User,
};
pub use executor::{Executor, Executors, RunReport};
pub use live::{standing, LiveConfig, Prepared, Revocation, Snapshot};
pub use policy::{Decision, HeldStatement, RefuseUnreviewed, StatementPolicy, SQLSTATE_HELD};
pub use ports::{BoxFuture, SessionDirectory, StatusChange, Store, StoreError, TransitionObserver};
pub use request::approval::{Actor, ApprovalOutcome, ApprovalPolicy, Refusal};
pub use request::state::{Event, RequestStatus, Settlement, TransitionError};
pub use request::{
    Approval, ChangeRequest, EarlierRun, Engine, Execution, Param, RequestDetails, RequestFilter,
    RequestId, RequestPatch, RiskLevel, RunRecord, UpstreamSession,
};
pub use time::{Clock, SystemClock, Timestamp};
pub use workflow::{Held, PolicySource, RunResult, Workflow, WorkflowError};
