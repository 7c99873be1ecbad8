//! Change requests: the domain types, the state machine ([`state`]), the
//! approval rules ([`approval`]) and exact re-send matching ([`matching`]).

pub mod approval;
pub mod matching;
pub mod state;

use crate::time::Timestamp;
use airlock_sql::StatementClass;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use state::RequestStatus;

/// The number of a change request (`#42`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub i64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Text that is not a request number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a request number: {0:?}")]
pub struct BadRequestId(pub String);

impl FromStr for RequestId {
    type Err = BadRequestId;
    /// Accepts `42` and `#42`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix('#').unwrap_or(t);
        match t.parse::<i64>() {
            Ok(n) if n > 0 => Ok(RequestId(n)),
            _ => Err(BadRequestId(s.to_string())),
        }
    }
}

/// The upstream database engine of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL.
    #[default]
    Postgres,
    /// MySQL / MariaDB (`engine = "mariadb"` is accepted too).
    #[serde(alias = "mariadb")]
    Mysql,
}

impl Engine {
    /// The engine's usual port.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }

    /// `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }

    /// Parses [`Engine::as_str`] output.
    pub fn parse(text: &str) -> Option<Engine> {
        match text {
            "postgres" => Some(Engine::Postgres),
            "mysql" => Some(Engine::Mysql),
            _ => None,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How risky a change looks (from the syntax tree and the earlier runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Nothing notable.
    Low,
    /// Worth a look.
    Medium,
    /// Broad or destructive.
    High,
    /// Irreversible or privilege-changing.
    Critical,
}

impl From<airlock_sql::RiskLevel> for RiskLevel {
    fn from(level: airlock_sql::RiskLevel) -> Self {
        match level {
            airlock_sql::RiskLevel::Low => RiskLevel::Low,
            airlock_sql::RiskLevel::Medium => RiskLevel::Medium,
            airlock_sql::RiskLevel::High => RiskLevel::High,
            airlock_sql::RiskLevel::Critical => RiskLevel::Critical,
        }
    }
}

impl RiskLevel {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
        }
    }

    /// Parses [`RiskLevel::as_str`] output.
    pub fn parse(text: &str) -> Option<RiskLevel> {
        [
            RiskLevel::Low,
            RiskLevel::Medium,
            RiskLevel::High,
            RiskLevel::Critical,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a statement class name (`"write"`, `"ddl"`…) as produced by
/// `StatementClass::as_str`.
pub fn parse_class(text: &str) -> Option<StatementClass> {
    use StatementClass as C;
    [
        C::Read,
        C::Write,
        C::Ddl,
        C::Privilege,
        C::Session,
        C::Transaction,
        C::Admin,
        C::Unknown,
    ]
    .into_iter()
    .find(|c| c.as_str() == text)
}

mod class_serde {
    use airlock_sql::StatementClass;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &StatementClass, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StatementClass, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_class(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown statement class {text:?}")))
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// One bound parameter of an extended-protocol statement, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Param {
    /// Declared type (a Postgres type OID from Parse, 0 when unspecified; the
    /// MySQL column type for MySQL).
    pub type_id: u32,
    /// Binary format (Postgres format code 1) rather than text.
    pub binary: bool,
    /// The value bytes; `None` is SQL NULL.
    pub value: Option<Vec<u8>>,
}

/// Bytes that are not an encoding produced by [`encode_params`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed parameter encoding: {0}")]
pub struct ParamDecodeError(pub &'static str);

const PARAMS_VERSION: u8 = 1;

/// Encodes parameters losslessly for storage and exact comparison:
/// version byte, count (u32 BE), then per parameter type (u32 BE), format
/// (u8), length (i32 BE, -1 for NULL) and the bytes.
pub fn encode_params(params: &[Param]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + params.len() * 9);
    out.push(PARAMS_VERSION);
    out.extend_from_slice(&(params.len() as u32).to_be_bytes());
    for p in params {
        out.extend_from_slice(&p.type_id.to_be_bytes());
        out.push(u8::from(p.binary));
        match &p.value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// Decodes [`encode_params`] output; an empty slice is no parameters.
pub fn decode_params(bytes: &[u8]) -> Result<Vec<Param>, ParamDecodeError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8], ParamDecodeError> {
        if rest.len() < n {
            return Err(ParamDecodeError("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let version = take(1)?[0];
    if version != PARAMS_VERSION {
        return Err(ParamDecodeError("unknown version"));
    }
    let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| ParamDecodeError("count"))?);
    let mut params = Vec::with_capacity(count.min(65_536) as usize);
    for _ in 0..count {
        let type_id =
            u32::from_be_bytes(take(4)?.try_into().map_err(|_| ParamDecodeError("type"))?);
        let binary = match take(1)?[0] {
            0 => false,
            1 => true,
            _ => return Err(ParamDecodeError("format")),
        };
        let len = i32::from_be_bytes(
            take(4)?
                .try_into()
                .map_err(|_| ParamDecodeError("length"))?,
        );
        let value = match len {
            -1 => None,
            n if n >= 0 => Some(take(n as usize)?.to_vec()),
            _ => return Err(ParamDecodeError("negative length")),
        };
        params.push(Param {
            type_id,
            binary,
            value,
        });
    }
    if !rest.is_empty() {
        return Err(ParamDecodeError("trailing bytes"));
    }
    Ok(params)
}

/// A non-read statement that ran earlier on a lower environment of the family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlierRun {
    /// The airlock user who ran it.
    pub who: String,
    /// When it ran.
    pub when: Timestamp,
    /// Target it ran on (`orders-qa`).
    pub target: String,
    /// That target's environment (`qa`).
    pub environment: String,
    /// Rows affected, when known.
    pub rows: Option<i64>,
    /// How long it took.
    pub duration_ms: i64,
    /// Whether it succeeded.
    pub success: bool,
}

/// What a run (or a rollback run) did upstream; every field is optional so a
/// [`RequestPatch`] can set some of them and leave the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Who triggered it.
    pub by: Option<String>,
    /// When it was started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Rows affected (for a tripped row guard: the rows it would have affected).
    pub rows_affected: Option<i64>,
    /// Command tag (`UPDATE 3`).
    pub command_tag: Option<String>,
    /// Upstream duration.
    pub duration_ms: Option<i64>,
    /// Error, when it failed.
    pub error: Option<String>,
    /// Upstream transaction id, recorded before COMMIT for crash recovery.
    pub upstream_xid: Option<String>,
    /// The upstream backend it runs on (`<pid>@<backend_start epoch>`),
    /// recorded before the change runs: recovery's proof that it is live.
    pub upstream_backend: Option<String>,
}

/// The upstream session of a run, recorded before the change runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSession {
    /// The transaction id (`None` for a statement run outside a transaction).
    pub xid: Option<String>,
    /// The backend (`<pid>@<backend_start epoch>`); `None` only where it
    /// could not be read (runs recorded by older versions have none).
    pub backend: Option<String>,
}

impl RunRecord {
    /// Overwrites the fields that `patch` sets.
    pub fn merge(&mut self, patch: &RunRecord) {
        fn set<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
            if let Some(v) = src {
                *dst = Some(v.clone());
            }
        }
        set(&mut self.by, &patch.by);
        set(&mut self.started_at, &patch.started_at);
        set(&mut self.finished_at, &patch.finished_at);
        set(&mut self.rows_affected, &patch.rows_affected);
        set(&mut self.command_tag, &patch.command_tag);
        set(&mut self.duration_ms, &patch.duration_ms);
        set(&mut self.error, &patch.error);
        set(&mut self.upstream_xid, &patch.upstream_xid);
        set(&mut self.upstream_backend, &patch.upstream_backend);
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == RunRecord::default()
    }
}

/// Everything known about a change request when it is created (SPEC §5),
/// including the approval rules frozen from the policy at that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDetails {
    /// The airlock user who sent the statement.
    pub requester: String,
    /// Their team.
    pub team: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// Client application name (`psql`, `DBeaver 24.1`).
    pub application_name: String,
    /// Client address (`10.1.2.3:54022`).
    pub client_addr: String,
    /// Target name (`orders-prod`).
    pub target: String,
    /// Family of the target, if any.
    pub family: Option<String>,
    /// Environment of the target.
    pub environment: String,
    /// Upstream engine.
    pub engine: Engine,
    /// The statement text to run (a script is one text), airlock comment removed.
    pub statement: String,
    /// Bound parameters (extended protocol), empty for simple queries.
    pub params: Vec<Param>,
    /// Literal-stripped fingerprint, for finding earlier runs only.
    pub fingerprint: String,
    /// Statement class (the most significant one of a script).
    #[serde(with = "class_serde")]
    pub class: StatementClass,
    /// Number of statements in the text.
    pub statement_count: u32,
    /// Whether it can run inside a transaction (false for `CREATE INDEX
    /// CONCURRENTLY`, `VACUUM`…: then the row guard and atomicity do not apply).
    pub transactional: bool,
    /// Tables touched.
    pub tables: Vec<String>,
    /// Deterministic summary from the syntax tree.
    pub summary: String,
    /// Optional AI summary (untrusted text).
    pub ai_summary: Option<String>,
    /// Risk level.
    pub risk: RiskLevel,
    /// Why that risk level.
    pub risk_reasons: Vec<String>,
    /// Planner row estimate.
    pub row_estimate: Option<f64>,
    /// Earlier runs of the same fingerprint on lower environments.
    pub earlier_runs: Vec<EarlierRun>,
    /// Why (from `airlock.reason`).
    pub reason: Option<String>,
    /// Longer description.
    pub description: Option<String>,
    /// Rollback statement, approved together with the change.
    pub rollback_sql: Option<String>,
    /// Row guard: more rows affected than this and the change is rolled back.
    pub max_rows: Option<i64>,
    /// Distinct approvers needed (frozen from the policy).
    pub approvals_required: u32,
    /// Groups whose members may approve (frozen from the policy).
    pub approver_groups: Vec<String>,
    /// How long after approval it may be run (frozen from the policy).
    #[serde(with = "duration_ms")]
    pub run_window: Duration,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires if not approved.
    pub expires_at: Timestamp,
}

impl RequestDetails {
    /// Takes the developer's reason, description, rollback and row guard
    /// from their airlock settings.
    pub fn apply_directives(&mut self, settings: &airlock_sql::Directives) {
        self.reason = settings.reason.clone();
        self.description = settings.description.clone();
        self.rollback_sql = settings.rollback.clone();
        self.max_rows = settings.max_rows_value();
    }

    /// Freezes the approval rules of `policy` into the request, and the pending
    /// expiry counted from `created_at`.
    pub fn apply_policy(&mut self, policy: &approval::ApprovalPolicy) {
        self.approvals_required = policy.approvals_required.max(1);
        self.approver_groups = policy.approver_groups.clone();
        self.run_window = policy.run_window;
        self.expires_at = self.created_at.plus(policy.pending_expiry);
        if self.max_rows.is_none() {
            self.max_rows = policy.max_rows;
        }
    }

    /// The key used to find this request again when the same statement is re-sent.
    pub fn exact_match(&self) -> matching::ExactMatch {
        matching::ExactMatch::new(
            self.engine,
            &self.target,
            &self.requester,
            &self.statement,
            &self.params,
        )
    }
}

/// A change request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Its number.
    pub id: RequestId,
    /// Where it is in its life.
    pub status: RequestStatus,
    /// What was asked, with context.
    #[serde(flatten)]
    pub details: RequestDetails,
    /// When the final approval came.
    pub approved_at: Option<Timestamp>,
    /// Latest time it may be started (approved_at + run window).
    pub run_deadline: Option<Timestamp>,
    /// Who took the deciding action (last approver, rejecter, canceller, `airlock` for expiry).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Why (a rejection reason, an expiry note…).
    pub decision_reason: Option<String>,
    /// The run of the change.
    pub run: RunRecord,
    /// The run of its rollback statement.
    pub rollback_run: RunRecord,
    /// Last change of any field.
    pub updated_at: Timestamp,
}

impl ChangeRequest {
    /// A copy for showing to people: the statement and the rollback passed
    /// through `redact` (the stored request keeps the text that runs).
    pub fn for_display(&self, redact: impl Fn(&str) -> String) -> ChangeRequest {
        let mut shown = self.clone();
        shown.details.statement = redact(&self.details.statement);
        shown.details.rollback_sql = self.details.rollback_sql.as_deref().map(&redact);
        shown
    }

    /// Whether a pending request is past its expiry, or an approved one past its run deadline.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        match self.status {
            RequestStatus::Pending => now >= self.details.expires_at,
            RequestStatus::Approved => self.run_deadline.is_some_and(|d| now >= d),
            _ => false,
        }
    }

    /// Applies a patch in memory, the way the store applies it.
    pub fn apply(&mut self, patch: &RequestPatch) {
        fn set<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
            if let Some(v) = src {
                *dst = Some(v.clone());
            }
        }
        set(&mut self.approved_at, &patch.approved_at);
        set(&mut self.run_deadline, &patch.run_deadline);
        set(&mut self.decided_by, &patch.decided_by);
        set(&mut self.decided_at, &patch.decided_at);
        set(&mut self.decision_reason, &patch.decision_reason);
        self.run.merge(&patch.run);
        self.rollback_run.merge(&patch.rollback_run);
    }
}

/// Fields a status change sets on a request; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPatch {
    /// See [`ChangeRequest::approved_at`].
    pub approved_at: Option<Timestamp>,
    /// See [`ChangeRequest::run_deadline`].
    pub run_deadline: Option<Timestamp>,
    /// See [`ChangeRequest::decided_by`].
    pub decided_by: Option<String>,
    /// See [`ChangeRequest::decided_at`].
    pub decided_at: Option<Timestamp>,
    /// See [`ChangeRequest::decision_reason`].
    pub decision_reason: Option<String>,
    /// Fields of the run to set.
    pub run: RunRecord,
    /// Fields of the rollback run to set.
    pub rollback_run: RunRecord,
}

/// One reviewer's approval of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The request approved.
    pub request_id: RequestId,
    /// The approving airlock user.
    pub approver: String,
    /// When.
    pub at: Timestamp,
    /// Through what (`cli`, `http`, `slack`, `web`).
    pub via: String,
    /// Optional comment.
    pub comment: Option<String>,
}

/// A non-read statement that ran on some target (any environment), recorded
/// for the "earlier runs" lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The change request it ran for, if it was one.
    pub request_id: Option<RequestId>,
    /// Family of the target.
    pub family: Option<String>,
    /// Target name.
    pub target: String,
    /// Target environment.
    pub environment: String,
    /// Literal-stripped fingerprint.
    pub fingerprint: String,
    /// The airlock user who ran it.
    pub user: String,
    /// Statement class.
    #[serde(with = "class_serde")]
    pub class: StatementClass,
    /// Rows affected, when known.
    pub rows: Option<i64>,
    /// Duration.
    pub duration_ms: i64,
    /// Whether it succeeded.
    pub success: bool,
    /// Error text on failure.
    pub error: Option<String>,
    /// When it ran.
    pub at: Timestamp,
}

/// Which requests to list; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Any of these statuses (all when empty).
    pub statuses: Vec<RequestStatus>,
    /// Only this requester's.
    pub requester: Option<String>,
    /// Only on this target.
    pub target: Option<String>,
    /// Only with a number below this (paging, newest first).
    pub before: Option<RequestId>,
    /// At most this many (the store caps it).
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_levels_map_one_to_one() {
        assert_eq!(
            RiskLevel::from(airlock_sql::RiskLevel::Critical),
            RiskLevel::Critical
        );
        assert_eq!(RiskLevel::from(airlock_sql::RiskLevel::Low), RiskLevel::Low);
    }

    #[test]
    fn request_id_parsing() {
        assert_eq!("42".parse::<RequestId>(), Ok(RequestId(42)));
        assert_eq!(" #7 ".parse::<RequestId>(), Ok(RequestId(7)));
        assert!("0".parse::<RequestId>().is_err());
        assert!("x".parse::<RequestId>().is_err());
    }

    #[test]
    fn params_round_trip_and_reject_garbage() {
        let params = vec![
            Param {
                type_id: 23,
                binary: true,
                value: Some(vec![0, 0, 0, 5]),
            },
            Param {
                type_id: 0,
                binary: false,
                value: None,
            },
            Param {
                type_id: 25,
                binary: false,
                value: Some(Vec::new()),
            },
        ];
        let bytes = encode_params(&params);
        assert_eq!(decode_params(&bytes), Ok(params));
        assert_eq!(decode_params(&[]), Ok(Vec::new()));
        assert_eq!(decode_params(&encode_params(&[])), Ok(Vec::new()));
        assert!(decode_params(&bytes[..bytes.len() - 1]).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_params(&extra).is_err());
        assert!(decode_params(&[9, 0, 0, 0, 0]).is_err());
        // A huge count with no data fails without allocating it.
        assert!(decode_params(&[1, 255, 255, 255, 255]).is_err());
    }

    #[test]
    fn names_round_trip() {
        for c in [
            "read",
            "write",
            "ddl",
            "privilege",
            "session",
            "transaction",
            "admin",
            "unknown",
        ] {
            assert_eq!(parse_class(c).map(|c| c.as_str()), Some(c));
        }
        for r in ["low", "medium", "high", "critical"] {
            assert_eq!(RiskLevel::parse(r).map(RiskLevel::as_str), Some(r));
        }
        assert_eq!(Engine::parse("mysql"), Some(Engine::Mysql));
        assert_eq!(Engine::parse("oracle"), None);
    }

    #[test]
    fn patches_merge_field_by_field() {
        let mut run = RunRecord {
            by: Some("alice".into()),
            started_at: Some(Timestamp(1)),
            ..RunRecord::default()
        };
        run.merge(&RunRecord {
            rows_affected: Some(3),
            command_tag: Some("UPDATE 3".into()),
            ..RunRecord::default()
        });
        assert_eq!(run.by.as_deref(), Some("alice"));
        assert_eq!(run.rows_affected, Some(3));
        assert!(!run.is_empty());
        assert!(RunRecord::default().is_empty());
    }
}
