//! Runs an approved change on its own upstream connection with the target's
//! write credentials: in its own transaction (unless the statement cannot
//! run in one), with `statement_timeout` and `lock_timeout`, a row guard, and
//! the upstream transaction id handed to the caller before COMMIT so a crash
//! can be settled from `pg_xact_status` later. Result frames are collected
//! raw, to be streamed to a waiting client or summarised for the store.

use crate::frame::{self, put_typed, split_frame};
use crate::stream::MaybeTlsStream;
use crate::upstream::{self, Endpoint, UpstreamError};
use airlock_core::request::{Param, UpstreamSession};
use airlock_core::Credentials;
use bytes::{BufMut, Bytes, BytesMut};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long opening a run's (or a recovery look's) upstream session may
/// take; [`crate::settle::START_GRACE`] is longer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long past its `statement_timeout` a run waits for the target to
/// answer before it counts the connection as lost.
const SILENCE_MARGIN: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    /// Upstream database.
    pub database: String,
    /// The statement text stored in the request (one or several statements).
    pub sql: String,
    /// Bound parameters stored in the request (extended protocol when non-empty).
    pub params: Vec<Param>,
    /// `statement_timeout` for the change.
    pub statement_timeout: Option<Duration>,
    /// `lock_timeout` for the change.
    pub lock_timeout: Option<Duration>,
    /// Row guard: more rows affected rolls the change back.
    pub max_rows: Option<i64>,
    /// Run inside BEGIN/COMMIT (false for CREATE INDEX CONCURRENTLY, VACUUM...).
    pub in_transaction: bool,
    /// `application_name` upstream, e.g. `airlock:exec:#42:alice`.
    pub application_name: String,
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The statement's own response frames (RowDescription, DataRow,
    /// CommandComplete, NoticeResponse, ErrorResponse), without ReadyForQuery.
    pub frames: Vec<Bytes>,
    /// Rows affected, summed over the CommandComplete tags.
    pub rows_affected: Option<i64>,
    /// Last command tag.
    pub command_tag: Option<String>,
    /// Time spent upstream.
    pub duration: Duration,
    /// Why it did not commit; `None` when it did.
    pub error: Option<String>,
    /// Upstream transaction id (when run in a transaction).
    pub xid: Option<String>,
}

/// Why the executor could not even try.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The upstream session could not be opened.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// Network problem mid-run (outcome unknown until settled).
    #[error("connection lost during the run: {0}")]
    Io(#[from] std::io::Error),
    /// The upstream broke the protocol.
    #[error("upstream protocol: {0}")]
    Protocol(String),
    /// The caller failed to record the upstream session; nothing ran.
    #[error("recording the upstream session failed: {0}")]
    Record(String),
    /// The connection broke after the change was sent: whether it
    /// committed is known only to the target (`pg_xact_status` of `xid`).
    #[error("connection lost after the change was sent: {error}")]
    Lost {
        /// The run's transaction id, `None` outside a transaction.
        xid: Option<String>,
        /// What broke.
        error: String,
    },
}

/// One round trip's answer.
struct Answer {
    frames: Vec<Bytes>,
    error: Option<String>,
}

struct Conn {
    stream: MaybeTlsStream,
    buf: BytesMut,
}

impl Conn {
    async fn frame(&mut self) -> Result<(u8, Bytes), ExecError> {
        loop {
            if let Some(f) =
                split_frame(&mut self.buf).map_err(|e| ExecError::Protocol(e.to_string()))?
            {
                return Ok(f);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(ExecError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection",
                )));
            }
        }
    }

    /// Sends `out` and reads up to ReadyForQuery.
    async fn round_trip(&mut self, out: &[u8]) -> Result<Answer, ExecError> {
        self.stream.write_all(out).await?;
        let mut frames = Vec::new();
        let mut error = None;
        loop {
            let (tag, f) = self.frame().await?;
            match tag {
                b'Z' => return Ok(Answer { frames, error }),
                b'E' => {
                    if error.is_none() {
                        error = Some(frame::error_summary(&f));
                    }
                    frames.push(f);
                }
                // Parse/Bind completion are protocol chatter, not results.
                b'1' | b'2' => {}
                _ => frames.push(f),
            }
        }
    }

    async fn simple(&mut self, sql: &str) -> Result<Answer, ExecError> {
        let mut out = BytesMut::new();
        frame::put_query(&mut out, sql);
        self.round_trip(&out).await
    }
}

/// Rows a CommandComplete tag reports (`UPDATE 3`, `INSERT 0 5`, `DELETE 0`).
pub fn tag_rows(tag: &str) -> Option<i64> {
    let mut words = tag.split_whitespace();
    let verb = words.next()?;
    let last = tag.split_whitespace().last()?;
    match verb {
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY" | "SELECT" | "MOVE" | "FETCH" => {
            last.parse().ok()
        }
        _ => None,
    }
}

/// Rows a tag reports as written: a SELECT's rows are read, not written.
pub fn written_rows(tag: &str) -> Option<i64> {
    if tag.starts_with("SELECT") {
        None
    } else {
        tag_rows(tag)
    }
}

fn summarise(frames: &[Bytes]) -> (Option<i64>, Option<String>) {
    let mut rows: Option<i64> = None;
    let mut last_tag = None;
    for f in frames.iter().filter(|f| f.first() == Some(&b'C')) {
        let tag = frame::command_tag(f);
        if let Some(n) = written_rows(&tag) {
            rows = Some(rows.unwrap_or(0) + n);
        }
        last_tag = Some(tag);
    }
    (rows, last_tag)
}

fn put_extended(out: &mut BytesMut, sql: &str, params: &[Param]) {
    // Parse (unnamed) with the stored parameter types.
    let mut body = BytesMut::new();
    body.put_u8(0);
    body.extend_from_slice(sql.as_bytes());
    body.put_u8(0);
    body.put_i16(params.len() as i16);
    for p in params {
        body.put_u32(p.type_id);
    }
    put_typed(out, b'P', &body);
    // Bind with the stored formats and values, text results.
    body.clear();
    body.put_u8(0);
    body.put_u8(0);
    body.put_i16(params.len() as i16);
    for p in params {
        body.put_i16(i16::from(p.binary));
    }
    body.put_i16(params.len() as i16);
    for p in params {
        match &p.value {
            Some(v) => {
                body.put_i32(v.len() as i32);
                body.extend_from_slice(v);
            }
            None => body.put_i32(-1),
        }
    }
    body.put_i16(0);
    put_typed(out, b'B', &body);
    put_typed(out, b'D', b"P\0");
    put_typed(out, b'E', b"\0\0\0\0\0");
    put_typed(out, b'S', b"");
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

/// Runs `plan` once. `record` is awaited with the upstream session (its
/// backend, and in a transaction its transaction id) before the change runs,
/// so before COMMIT; if it fails, nothing runs. A connection lost after the
/// change was sent is [`ExecError::Lost`]: the caller settles it from the
/// target, never by guess.
pub async fn execute<F, Fut>(
    endpoint: &Endpoint,
    creds: &Credentials,
    plan: &ExecPlan,
    record: F,
) -> Result<ExecOutcome, ExecError>
where
    F: FnOnce(UpstreamSession) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let params = vec![
        ("user".to_string(), creds.user.clone()),
        ("database".to_string(), plan.database.clone()),
        (
            "application_name".to_string(),
            plan.application_name.clone(),
        ),
        ("client_encoding".to_string(), "UTF8".to_string()),
    ];
    let session = upstream::open(endpoint, creds, &params, CONNECT_TIMEOUT).await?;
    let mut conn = Conn {
        stream: session.stream,
        buf: session.leftover,
    };
    let mut setup = String::new();
    if let Some(t) = plan.statement_timeout {
        setup.push_str(&format!("SET statement_timeout = {};", millis(t)));
    }
    if let Some(t) = plan.lock_timeout {
        setup.push_str(&format!("SET lock_timeout = {};", millis(t)));
    }
    if plan.in_transaction {
        setup.push_str("BEGIN;");
    }
    if !setup.is_empty() {
        let a = conn.simple(&setup).await?;
        if let Some(e) = a.error {
            return Err(ExecError::Protocol(format!(
                "preparing the session failed: {e}"
            )));
        }
    }

    // The backend, and in a transaction the xid (assigned here), are
    // recorded before the change runs: after a crash, pg_stat_activity tells
    // whether exactly this backend is still at it, and pg_xact_status tells
    // committed from aborted wherever the crash happened.
    let probe = if plan.in_transaction {
        SESSION_PROBE_XACT
    } else {
        SESSION_PROBE
    };
    let answer = conn.simple(probe).await?;
    let row = answer
        .frames
        .iter()
        .find(|f| f.first() == Some(&b'D'))
        .map(|f| columns(f))
        .unwrap_or_default();
    let backend = row
        .first()
        .cloned()
        .flatten()
        .ok_or_else(|| ExecError::Protocol("the target did not name its backend".into()))?;
    let xid = row.get(1).cloned().flatten();
    if plan.in_transaction && xid.is_none() {
        return Err(ExecError::Protocol("no transaction id returned".into()));
    }
    let session = UpstreamSession {
        xid: xid.clone(),
        backend: Some(backend),
    };
    if let Err(e) = record(session).await {
        if plan.in_transaction {
            conn.simple("ROLLBACK").await?;
        }
        return Err(ExecError::Record(e));
    }
    match run_recorded(&mut conn, plan, xid.clone()).await {
        Err(ExecError::Io(e)) => Err(ExecError::Lost {
            xid,
            error: e.to_string(),
        }),
        Err(ExecError::Protocol(e)) => Err(ExecError::Lost { xid, error: e }),
        other => other,
    }
}

/// The backend (`<pid>@<backend_start epoch>`) of the session.
const SESSION_PROBE: &str = "SELECT pg_backend_pid()::text || '@' || \
     extract(epoch FROM backend_start)::text FROM pg_catalog.pg_stat_activity \
     WHERE pid = pg_backend_pid()";

/// [`SESSION_PROBE`] and the (newly assigned) transaction id.
const SESSION_PROBE_XACT: &str = "SELECT pg_backend_pid()::text || '@' || \
     extract(epoch FROM backend_start)::text, pg_current_xact_id()::text \
     FROM pg_catalog.pg_stat_activity WHERE pid = pg_backend_pid()";

/// Runs the change on a session whose upstream session is recorded:
/// the statement, the row guard, COMMIT or ROLLBACK.
async fn run_recorded(
    conn: &mut Conn,
    plan: &ExecPlan,
    xid: Option<String>,
) -> Result<ExecOutcome, ExecError> {
    // Rows really changed are counted from the transaction's own table
    // statistics (pg_stat_xact_user_tables), not from command tags: a write in
    // a CTE behind `SELECT count(*)`, writes inside functions and triggers,
    // and cascades all count.
    let before = if plan.in_transaction {
        written_in_transaction(conn).await?
    } else {
        None
    };
    let started = Instant::now();
    let mut out = BytesMut::new();
    if plan.params.is_empty() {
        frame::put_query(&mut out, &plan.sql);
    } else {
        put_extended(&mut out, &plan.sql, &plan.params);
    }
    // The server's statement_timeout ends the statement; a connection that
    // stays silent well past it is half-open and counts as lost.
    let answer = match plan.statement_timeout {
        Some(t) => tokio::time::timeout(t + SILENCE_MARGIN, conn.round_trip(&out))
            .await
            .map_err(|_| {
                ExecError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer from the target {}s after statement_timeout",
                        SILENCE_MARGIN.as_secs()
                    ),
                ))
            })??,
        None => conn.round_trip(&out).await?,
    };
    let (rows, tag) = summarise(&answer.frames);
    let mut outcome = ExecOutcome {
        frames: answer.frames,
        rows_affected: rows,
        command_tag: tag,
        duration: started.elapsed(),
        error: answer.error,
        xid,
    };
    if !plan.in_transaction {
        let _ = conn.simple("").await;
        return Ok(outcome);
    }
    if outcome.error.is_none() {
        if let (Some(b), Some(a)) = (before, written_in_transaction(conn).await?) {
            outcome.rows_affected = Some(a - b);
        }
        if let (Some(limit), Some(n)) = (plan.max_rows, outcome.rows_affected) {
            if n > limit {
                outcome.error = Some(format!(
                    "row guard: {n} rows affected, more than the limit of {limit}; rolled back"
                ));
            }
        }
    }
    if outcome.error.is_some() {
        conn.simple("ROLLBACK").await?;
        outcome.duration = started.elapsed();
        return Ok(outcome);
    }
    let commit = conn.simple("COMMIT").await?;
    outcome.duration = started.elapsed();
    if let Some(e) = commit.error {
        outcome.error = Some(format!("COMMIT failed: {e}"));
    } else if commit
        .frames
        .iter()
        .any(|f| f.first() == Some(&b'C') && frame::body(f).starts_with(b"ROLLBACK"))
    {
        outcome.error = Some("COMMIT rolled back".into());
    }
    let mut out = BytesMut::new();
    put_typed(&mut out, b'X', b"");
    let _ = conn.stream.write_all(&out).await;
    Ok(outcome)
}

/// Rows inserted, updated and deleted so far in the open transaction, over
/// all user tables; `None` when the statistics cannot be read (the caller
/// then keeps the command tags' count).
async fn written_in_transaction(conn: &mut Conn) -> Result<Option<i64>, ExecError> {
    let answer = conn
        .simple(
            "SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint \
             FROM pg_catalog.pg_stat_xact_user_tables",
        )
        .await?;
    if answer.error.is_some() {
        return Ok(None);
    }
    Ok(answer
        .frames
        .iter()
        .find(|f| f.first() == Some(&b'D'))
        .and_then(|f| first_column(f))
        .and_then(|v| v.parse().ok()))
}

/// Every column of a DataRow frame as text (`None` for NULL).
fn columns(f: &[u8]) -> Vec<Option<String>> {
    let b = frame::body(f);
    let Some(n) = b.get(0..2).map(|n| u16::from_be_bytes([n[0], n[1]])) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(usize::from(n));
    let mut at = 2usize;
    for _ in 0..n {
        let Some(len) = b
            .get(at..at + 4)
            .and_then(|l| l.try_into().ok())
            .map(i32::from_be_bytes)
        else {
            break;
        };
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let Some(v) = usize::try_from(len).ok().and_then(|l| b.get(at..at + l)) else {
            break;
        };
        at += v.len();
        out.push(Some(String::from_utf8_lossy(v).into_owned()));
    }
    out
}

/// Text of the first column of a DataRow frame.
pub fn first_column(f: &[u8]) -> Option<String> {
    columns(f).into_iter().next().flatten()
}

/// Asks the upstream whether a transaction committed (crash recovery):
/// `Some("committed" | "aborted" | "in progress")`, `None` when it cannot tell.
pub async fn xact_status(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    xid: &str,
) -> Result<Option<String>, ExecError> {
    if !xid.bytes().all(|c| c.is_ascii_digit()) || xid.is_empty() {
        return Err(ExecError::Protocol(format!(
            "not a transaction id: {xid:?}"
        )));
    }
    let params = vec![
        ("user".to_string(), creds.user.clone()),
        ("database".to_string(), database.to_string()),
        (
            "application_name".to_string(),
            "airlock:recovery".to_string(),
        ),
    ];
    let session = upstream::open(endpoint, creds, &params, CONNECT_TIMEOUT).await?;
    let mut conn = Conn {
        stream: session.stream,
        buf: session.leftover,
    };
    let a = conn
        .simple(&format!("SELECT pg_xact_status('{xid}'::xid8)"))
        .await?;
    if a.error.is_some() {
        return Ok(None);
    }
    Ok(a.frames
        .iter()
        .find(|f| f.first() == Some(&b'D'))
        .and_then(|f| first_column(f)))
}

/// The planner's estimate of the rows a single DML statement touches.
///
/// The text comes from a statement nobody has approved yet, so it must not
/// be able to do anything but be planned: the caller sends only a string
/// that both parsers read as exactly one DML statement; it goes over the
/// extended protocol (Postgres refuses a Parse with more than one command, so
/// a `COMMIT; DROP …` smuggled past a lexer cannot run), with the bound
/// parameters as they came, inside `BEGIN READ ONLY` … `ROLLBACK` with a short
/// `statement_timeout` and `lock_timeout`. `None` whenever it cannot tell;
/// never an error, and bounded by `timeout`, since it only adds context.
pub async fn estimate_rows(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    sql: &str,
    params: &[Param],
    timeout: Duration,
) -> Option<f64> {
    if !airlock_sql::pg_view::is_single_dml(sql) {
        return None;
    }
    tokio::time::timeout(
        timeout,
        estimate_inner(endpoint, creds, database, sql, params, timeout),
    )
    .await
    .ok()
    .flatten()
}

async fn estimate_inner(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    sql: &str,
    params: &[Param],
    timeout: Duration,
) -> Option<f64> {
    let startup = vec![
        ("user".to_string(), creds.user.clone()),
        ("database".to_string(), database.to_string()),
        (
            "application_name".to_string(),
            "airlock:estimate".to_string(),
        ),
        ("client_encoding".to_string(), "UTF8".to_string()),
        (
            "options".to_string(),
            "-c default_transaction_read_only=on".to_string(),
        ),
    ];
    let session = upstream::open(endpoint, creds, &startup, timeout)
        .await
        .ok()?;
    let mut conn = Conn {
        stream: session.stream,
        buf: session.leftover,
    };
    let limit = timeout.as_millis().max(1);
    let begin = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {limit}; SET LOCAL lock_timeout = {}",
        (limit / 2).max(1)
    );
    let began = conn.simple(&begin).await.ok()?;
    if began.error.is_some() {
        return None;
    }
    let mut out = BytesMut::new();
    put_extended(&mut out, &format!("EXPLAIN (FORMAT JSON) {sql}"), params);
    let answer = conn.round_trip(&out).await.ok()?;
    let _ = conn.simple("ROLLBACK").await;
    if answer.error.is_some() {
        return None;
    }
    let json = answer
        .frames
        .iter()
        .find(|f| f.first() == Some(&b'D'))
        .and_then(|f| first_column(f))?;
    plan_rows(&json)
}

/// Rows from `EXPLAIN (FORMAT JSON)`: a ModifyTable node reports 0, so its
/// input's estimate is the rows the change touches.
pub fn plan_rows(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let plan = v.get(0)?.get("Plan")?;
    let rows = plan.get("Plan Rows")?.as_f64()?;
    if plan.get("Node Type").and_then(|t| t.as_str()) == Some("ModifyTable") {
        if let Some(child) = plan.get("Plans").and_then(|p| p.get(0)) {
            return child.get("Plan Rows")?.as_f64();
        }
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rows_looks_under_modify_table() {
        let update = r#"[{"Plan": {"Node Type": "ModifyTable", "Plan Rows": 0, "Plans": [{"Node Type": "Seq Scan", "Plan Rows": 423}]}}]"#;
        assert_eq!(plan_rows(update), Some(423.0));
        assert_eq!(
            plan_rows(r#"[{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 7}}]"#),
            Some(7.0)
        );
        assert_eq!(plan_rows("not json"), None);
    }

    #[test]
    fn command_tags_give_row_counts() {
        assert_eq!(tag_rows("UPDATE 3"), Some(3));
        assert_eq!(tag_rows("INSERT 0 5"), Some(5));
        assert_eq!(tag_rows("DELETE 0"), Some(0));
        assert_eq!(tag_rows("CREATE TABLE"), None);
        assert_eq!(written_rows("SELECT 5"), None);
        assert_eq!(written_rows("UPDATE 5"), Some(5));
    }
}
