//! The MySQL executor: runs an approved change (or its rollback) once, on a
//! connection of its own with the target's write credentials, in a
//! transaction with the exact row guard (the affected-rows counts the
//! server reports), and records the result. A run belongs to the service:
//! it runs on its own task, so the caller going away does not interrupt it.

use crate::caps;
use crate::messages::ErrPacket;
use crate::response::{com, Response, Shape, Step, HEAD};
use crate::upstream::{self, Upstream, UpstreamSpec};
use airlock_core::request::{ChangeRequest, RequestId, RequestStatus, UpstreamSession};
use airlock_core::workflow::{RunResult, Workflow, WorkflowError};
use airlock_core::{Actor, BoxFuture, Executor, LiveConfig, RunReport, Settlement, Target};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long connecting and logging in to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Capabilities of the executor's own upstream sessions.
const RUN_CAPS: u32 = caps::PROTOCOL_41
    | caps::MULTI_STATEMENTS
    | caps::MULTI_RESULTS
    | caps::PS_MULTI_RESULTS
    | caps::TRANSACTIONS
    | caps::DEPRECATE_EOF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Change,
    Rollback,
}

/// Runs approved changes on MySQL/MariaDB targets.
#[derive(Clone)]
pub struct MysqlRunner {
    workflow: Arc<Workflow>,
    live: LiveConfig,
    runs: TaskTracker,
    inflight: Arc<Mutex<HashSet<RequestId>>>,
}

impl MysqlRunner {
    /// A runner on the targets of the configuration in force.
    pub fn new(workflow: Arc<Workflow>, live: LiveConfig) -> Self {
        Self {
            workflow,
            live,
            runs: TaskTracker::new(),
            inflight: Arc::default(),
        }
    }

    /// The configuration in force.
    pub fn live(&self) -> &LiveConfig {
        &self.live
    }

    /// The workflow service.
    pub fn workflow(&self) -> &Arc<Workflow> {
        &self.workflow
    }

    /// Whether this process runs request `id` right now.
    pub fn is_running_here(&self, id: RequestId) -> bool {
        self.inflight.lock().is_ok_and(|s| s.contains(&id))
    }

    /// Runs approved request `id` once, as `actor`.
    pub async fn run_change(
        &self,
        id: RequestId,
        actor: &Actor,
    ) -> Result<RunReport, WorkflowError> {
        let r = self.workflow.start_run(id, actor).await?;
        let sql = r.details.statement.clone();
        Ok(self.execute(r, Which::Change, sql).await)
    }

    /// Runs the approved rollback of executed request `id`, as `actor`.
    pub async fn run_rollback(
        &self,
        id: RequestId,
        actor: &Actor,
    ) -> Result<RunReport, WorkflowError> {
        let r = self.workflow.start_rollback(id, actor).await?;
        let sql = r.details.rollback_sql.clone().unwrap_or_default();
        Ok(self.execute(r, Which::Rollback, sql).await)
    }

    async fn execute(&self, request: ChangeRequest, which: Which, sql: String) -> RunReport {
        let me = self.clone();
        let id = request.id;
        if let Ok(mut s) = self.inflight.lock() {
            s.insert(id);
        }
        let task = self.runs.spawn(async move {
            let report = me.execute_inner(request, which, sql).await;
            if let Ok(mut s) = me.inflight.lock() {
                s.remove(&id);
            }
            report
        });
        match task.await {
            Ok(r) => r,
            Err(e) => {
                warn!(request = id.0, error = %e, "the mysql run task failed");
                RunReport {
                    request: None,
                    result: RunResult {
                        error: Some(format!("the run task failed: {e}")),
                        ..RunResult::default()
                    },
                }
            }
        }
    }

    async fn execute_inner(&self, request: ChangeRequest, which: Which, sql: String) -> RunReport {
        let id = request.id;
        let config = self.live.current();
        let target = config.target(&request.details.target).cloned();
        let started = Instant::now();
        let outcome = match target {
            Some(t) => self.run_on(&t, &request, which, &sql).await,
            None => Outcome::NotStarted(format!(
                "target {:?} is no longer configured",
                request.details.target
            )),
        };
        let elapsed = started.elapsed().as_millis() as i64;
        let (result, settle) = match outcome {
            Outcome::Done(mut r) => {
                r.duration_ms = elapsed;
                (r, None)
            }
            Outcome::NotStarted(e) => (
                RunResult {
                    error: Some(e),
                    duration_ms: elapsed,
                    ..RunResult::default()
                },
                None,
            ),
            Outcome::Unknown(note) => (
                RunResult {
                    error: Some(note.clone()),
                    duration_ms: elapsed,
                    ..RunResult::default()
                },
                Some(note),
            ),
            Outcome::Left(note) => {
                warn!(request = id.0, %note, "mysql run left to the reconciler");
                return RunReport {
                    request: self.workflow.get(id).await.ok(),
                    result: RunResult {
                        error: Some(note),
                        duration_ms: elapsed,
                        ..RunResult::default()
                    },
                };
            }
        };
        let recorded = match (settle, which) {
            // The connection was lost during COMMIT: nobody can tell here
            // whether it committed, so the request says so; never re-run.
            (Some(note), _) => self.workflow.recover(id, Settlement::Unknown, &note).await,
            (None, Which::Change) => self.workflow.finish_run(id, &result).await,
            (None, Which::Rollback) => self.workflow.finish_rollback(id, &result).await,
        };
        let request = match recorded {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(request = id.0, error = %e, "recording the mysql run failed");
                None
            }
        };
        info!(request = id.0, rows = ?result.rows_affected, error = ?result.error, "mysql run ended");
        RunReport { request, result }
    }

    async fn run_on(
        &self,
        target: &Target,
        request: &ChangeRequest,
        which: Which,
        sql: &str,
    ) -> Outcome {
        let Some(creds) = target.write_credentials.as_ref() else {
            return Outcome::NotStarted(format!("target {} has no write credentials", target.name));
        };
        let mut spec = UpstreamSpec::own(
            target,
            Some(creds),
            &format!("airlock:run:{}", request.id.0),
            CONNECT_TIMEOUT,
        );
        spec.capabilities = RUN_CAPS;
        spec.max_packet = 1 << 30;
        spec.attributes
            .push(("airlock_request".into(), request.id.0.to_string()));
        let mut up = match upstream::connect(&spec).await {
            Ok(u) => u,
            Err(e) => return Outcome::NotStarted(format!("connecting to {}: {e}", target.name)),
        };
        // Held only under the server's own lexing modes (the gate sees to
        // it): a run session that reads quotes otherwise does not start.
        match up.lexing_modes().await {
            Ok((session, global)) if session == global => {}
            Ok(_) => {
                return Outcome::NotStarted(format!(
                    "the write session on {} starts with a sql_mode that reads quotes or backslashes unlike the server's default (init_connect?): the change would not mean what was reviewed",
                    target.name
                ))
            }
            Err(e) => return Outcome::NotStarted(e),
        }
        let during = match which {
            Which::Change => RequestStatus::Running,
            Which::Rollback => RequestStatus::RollingBack,
        };
        let transactional = request.details.transactional;
        let xid = xid_of(request.id);
        let backend = format!(
            "{}@{}:{}",
            up.greeting.connection_id,
            target.upstream.host,
            target.upstream_port()
        );
        // Recorded before anything runs: the reconciler finds the run's
        // session and XA transaction by these.
        let session = UpstreamSession {
            xid: transactional.then(|| format!("xa:{xid}")),
            backend: Some(backend.clone()),
        };
        if let Err(e) = self
            .workflow
            .record_upstream(request.id, during, &session)
            .await
        {
            return Outcome::NotStarted(format!("recording the upstream session: {e}"));
        }
        if !transactional {
            // DDL and the like commit on their own: no XA, no row guard.
            return match run_text(&mut up, sql).await {
                Ok(ran) => Outcome::Done(result_of(&ran, None)),
                Err(e) => Outcome::Unknown(format!(
                    "the connection to {} was lost while a statement that cannot run in a transaction ran ({e}): whether it completed cannot be told",
                    target.name
                )),
            };
        }
        if let Some(e) = step(&mut up, &format!("XA START '{xid}'")).await {
            return Outcome::NotStarted(e);
        }
        let ran = match run_text(&mut up, sql).await {
            Ok(r) => r,
            // The server rolls back an active XA transaction whose
            // connection is gone.
            Err(e) => {
                return Outcome::NotStarted(format!(
                    "the connection failed while the change ran ({e}); it was not committed"
                ))
            }
        };
        let over = request
            .details
            .max_rows
            .filter(|m| ran.affected as i64 > *m);
        if ran.error.is_some() || over.is_some() {
            let _ = step(&mut up, &format!("XA END '{xid}'")).await;
            let _ = step(&mut up, &format!("XA ROLLBACK '{xid}'")).await;
            return Outcome::Done(result_of(&ran, over));
        }
        if let Some(e) = step(&mut up, &format!("XA END '{xid}'")).await {
            let _ = step(&mut up, &format!("XA ROLLBACK '{xid}'")).await;
            return Outcome::Done(failed(&ran, e));
        }
        if let Some(e) = step(&mut up, &format!("XA PREPARE '{xid}'")).await {
            let _ = step(&mut up, &format!("XA ROLLBACK '{xid}'")).await;
            return Outcome::Done(failed(&ran, e));
        }
        // Prepared: from here the change commits, now or in recovery.
        let prepared = UpstreamSession {
            xid: Some(format!("xa:{xid}:prepared")),
            backend: Some(backend),
        };
        if let Err(e) = self
            .workflow
            .record_upstream(request.id, during, &prepared)
            .await
        {
            warn!(request = request.id.0, error = %e, "recording the prepared XA transaction failed");
        }
        match up.simple_query(&format!("XA COMMIT '{xid}'")).await {
            Ok(Ok(())) => Outcome::Done(result_of(&ran, None)),
            Ok(Err(e)) => Outcome::Left(format!(
                "XA COMMIT of the prepared change failed ({}); the reconciler commits it",
                e.message
            )),
            Err(e) => Outcome::Left(format!(
                "the connection was lost during XA COMMIT ({e}); the reconciler settles the prepared change"
            )),
        }
    }
}

/// The XA transaction id of request `id`'s run.
pub fn xid_of(id: RequestId) -> String {
    format!("airlock-{}", id.0)
}

fn result_of(ran: &Ran, over: Option<i64>) -> RunResult {
    let rows = Some(ran.affected as i64);
    if let Some(err) = &ran.error {
        return RunResult {
            rows_affected: rows,
            error: Some(format!(
                "{} (error {}, SQLSTATE {})",
                err.message, err.code, err.sqlstate
            )),
            ..RunResult::default()
        };
    }
    if let Some(max) = over {
        return RunResult {
            rows_affected: rows,
            error: Some(format!(
                "row guard: {} rows affected, more than max_rows = {max}; rolled back",
                ran.affected
            )),
            ..RunResult::default()
        };
    }
    RunResult {
        rows_affected: rows,
        command_tag: Some(format!("OK {} rows affected", ran.affected)),
        ..RunResult::default()
    }
}

fn failed(ran: &Ran, e: String) -> RunResult {
    RunResult {
        rows_affected: Some(ran.affected as i64),
        error: Some(e),
        ..RunResult::default()
    }
}

enum Outcome {
    /// It ran to an end (committed, or rolled back with an error).
    Done(RunResult),
    /// Nothing was committed.
    NotStarted(String),
    /// Nobody can tell whether it completed.
    Unknown(String),
    /// Prepared but not known committed: left running for the reconciler.
    Left(String),
}

async fn step(up: &mut Upstream, sql: &str) -> Option<String> {
    match up.simple_query(sql).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{sql}: {} (error {})", e.message, e.code)),
        Err(e) => Some(format!("{sql}: {e}")),
    }
}

/// What running a text did.
struct Ran {
    affected: u64,
    error: Option<ErrPacket>,
}

/// Runs `sql` (possibly several statements) and sums the affected rows of
/// every OK packet; stops at the first error, as the server does.
async fn run_text(up: &mut Upstream, sql: &str) -> Result<Ran, upstream::UpstreamError> {
    let mut payload = Vec::with_capacity(sql.len() + 1);
    payload.push(com::QUERY);
    payload.extend_from_slice(sql.as_bytes());
    up.conn.write_payload(0, &payload).await?;
    let mut r = Response::new(Shape::Results, up.capabilities);
    let mut error = None;
    loop {
        let p = up.conn.read_payload(crate::MAX_COMMAND).await?;
        let head = &p.data[..p.data.len().min(HEAD)];
        if p.data.first() == Some(&0xff) && error.is_none() {
            error = Some(ErrPacket::decode(&p.data)?);
        }
        match r.packet(p.data.len(), head) {
            Step::Done => break,
            Step::More => {}
            Step::LocalInfile => {
                // Never send a file: an empty packet ends the request.
                up.conn.write_payload(p.seq.wrapping_add(1), &[]).await?;
                r.after_infile();
            }
        }
    }
    let affected = r.affected_total;
    Ok(Ran { affected, error })
}

impl Executor for MysqlRunner {
    fn run<'a>(
        &'a self,
        id: RequestId,
        actor: &'a Actor,
    ) -> BoxFuture<'a, Result<RunReport, WorkflowError>> {
        Box::pin(self.run_change(id, actor))
    }

    fn rollback<'a>(
        &'a self,
        id: RequestId,
        actor: &'a Actor,
    ) -> BoxFuture<'a, Result<RunReport, WorkflowError>> {
        Box::pin(self.run_rollback(id, actor))
    }

    fn drain(&self, grace: Duration) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            self.runs.close();
            tokio::time::timeout(grace, self.runs.wait()).await.is_ok()
        })
    }
}
