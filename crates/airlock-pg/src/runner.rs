//! Runs an approved change request (or its approved rollback) exactly once:
//! the compare-and-set into `running`/`rolling_back` in the workflow, the
//! executor on the target's write connection, and the result recorded. Used
//! by the session (re-send, `CALL airlock.run`) and by the HTTP API / CLI.
//!
//! A run is owned by the service, not by whoever started it: it executes on
//! a task of its own (tracked, so shutdown waits for it), and runs to its
//! end when the developer disconnects, the caller's task is dropped or
//! panics. A connection lost after the change was sent is settled at once
//! from `pg_xact_status` of the recorded transaction.

use crate::executor::{self, ExecOutcome, ExecPlan};
use crate::settle::Look;
use crate::targets::{TargetSet, Targets};
use crate::upstream::Endpoint;
use airlock_core::request::{ChangeRequest, RequestId, RequestStatus};
use airlock_core::workflow::{RunResult, Workflow, WorkflowError};
use airlock_core::UpstreamSession;
use airlock_core::{Actor, Config, Credentials, LiveConfig, Settlement, Target};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// What a run or rollback did.
#[derive(Debug)]
pub struct Ran {
    /// The request as recorded after the run.
    pub request: Option<ChangeRequest>,
    /// Summary stored with the request.
    pub result: RunResult,
    /// The raw result frames (None when the executor could not even start).
    pub outcome: Option<ExecOutcome>,
}

/// Runs approved changes on their targets.
#[derive(Clone)]
pub struct ChangeRunner {
    /// The workflow service.
    pub workflow: Arc<Workflow>,
    /// Configuration in force (targets, policies): a run uses the generation
    /// in force when it starts.
    pub live: LiveConfig,
    /// Upstream endpoints and catalogs in force. A change may create user
    /// code, so a protected target's catalog is distrusted while a change
    /// runs and read again after it.
    pub targets: Targets,
    /// The runs in flight in this process (shutdown waits for them).
    pub runs: TaskTracker,
    /// Requests whose run this process executes right now (the reconciler
    /// leaves them alone).
    pub inflight: Arc<Mutex<HashSet<RequestId>>>,
    /// Where the runs' upstream connections are counted.
    pub metrics: airlock_metrics::Metrics,
}

/// How long a run whose connection was lost waits for the target to stop
/// reporting its transaction `in progress` before leaving it to the reconciler.
const LOST_PATIENCE: Duration = Duration::from_secs(30);
/// Pause between two looks at such a transaction.
const LOST_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
enum Which {
    Change,
    Rollback,
}

impl ChangeRunner {
    /// A runner of approved changes on `config`'s targets.
    pub fn new(
        workflow: Arc<Workflow>,
        live: LiveConfig,
        targets: Targets,
        metrics: airlock_metrics::Metrics,
    ) -> Self {
        ChangeRunner {
            workflow,
            live,
            targets,
            runs: TaskTracker::new(),
            inflight: Arc::default(),
            metrics,
        }
    }

    /// Whether this process is running request `id` right now.
    pub fn is_running_here(&self, id: RequestId) -> bool {
        self.inflight.lock().is_ok_and(|s| s.contains(&id))
    }

    /// Waits up to `grace` for the runs in flight; `false` when some are
    /// still running after it.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.runs.close();
        tokio::time::timeout(grace, self.runs.wait()).await.is_ok()
    }

    /// Runs approved request `id` once, as `actor`.
    pub async fn run(&self, id: RequestId, actor: &Actor) -> Result<Ran, WorkflowError> {
        let r = self.workflow.start_run(id, actor).await?;
        let sql = r.details.statement.clone();
        let transactional = r.details.transactional;
        Ok(self
            .execute(r, Which::Change, sql, transactional, actor)
            .await)
    }

    /// Runs the approved rollback of executed request `id`, as `actor`.
    pub async fn rollback(&self, id: RequestId, actor: &Actor) -> Result<Ran, WorkflowError> {
        let r = self.workflow.start_rollback(id, actor).await?;
        let sql = r.details.rollback_sql.clone().unwrap_or_default();
        let transactional = !airlock_sql::needs_own_transaction(&sql);
        Ok(self
            .execute(r, Which::Rollback, sql, transactional, actor)
            .await)
    }

    /// Executes on a task of its own, so the run ends even if the caller
    /// goes away; the caller gets the result if it is still there.
    async fn execute(
        &self,
        r: ChangeRequest,
        which: Which,
        sql: String,
        transactional: bool,
        actor: &Actor,
    ) -> Ran {
        let id = r.id;
        if let Ok(mut set) = self.inflight.lock() {
            set.insert(id);
        }
        let this = self.clone();
        let actor = actor.clone();
        let task = self.runs.spawn(async move {
            let ran = this
                .execute_owned(r, which, sql, transactional, &actor)
                .await;
            if let Ok(mut set) = this.inflight.lock() {
                set.remove(&id);
            }
            ran
        });
        match task.await {
            Ok(ran) => ran,
            Err(e) => {
                if let Ok(mut set) = self.inflight.lock() {
                    set.remove(&id);
                }
                warn!(request = id.0, error = %e, "the run's task failed; the reconciler settles the request from the target");
                Ran {
                    request: None,
                    result: RunResult {
                        error: Some(format!(
                            "the run failed inside airlock ({e}); the request is settled from the target, never re-run"
                        )),
                        ..RunResult::default()
                    },
                    outcome: None,
                }
            }
        }
    }

    async fn execute_owned(
        &self,
        r: ChangeRequest,
        which: Which,
        sql: String,
        transactional: bool,
        actor: &Actor,
    ) -> Ran {
        let id = r.id;
        let during = match which {
            Which::Change => RequestStatus::Running,
            Which::Rollback => RequestStatus::RollingBack,
        };
        // Only DML leaves the catalog as it is; DDL, DO blocks, anything
        // unknown may create user code, so reads wait for a fresh catalog.
        let may_change_catalog =
            airlock_sql::classify(&sql).class != airlock_sql::StatementClass::Write;
        let (snapshot, targets) = crate::targets::consistent(&self.live, &self.targets);
        let config = &snapshot.config;
        let catalog = targets
            .catalog(&r.details.target)
            .filter(|_| may_change_catalog);
        if let Some(c) = &catalog {
            c.change_started();
        }
        let (result, outcome) = match target_of(config, &targets, &r) {
            None => (
                RunResult {
                    error: Some(
                        "the target has no write credentials or is no longer configured".into(),
                    ),
                    ..RunResult::default()
                },
                None,
            ),
            Some(_) if sql.trim().is_empty() => (
                RunResult {
                    error: Some("no statement to run".into()),
                    ..RunResult::default()
                },
                None,
            ),
            Some((target, creds, endpoint)) => {
                let policy = config.approval_policy(target, r.details.class);
                let max_rows = match which {
                    Which::Change => r.details.max_rows.or(policy.max_rows),
                    Which::Rollback => None,
                };
                let plan = ExecPlan {
                    database: target.upstream.database.clone(),
                    sql: sql.clone(),
                    params: match which {
                        Which::Change => r.details.params.clone(),
                        Which::Rollback => Vec::new(),
                    },
                    statement_timeout: policy.statement_timeout,
                    lock_timeout: policy.lock_timeout,
                    max_rows,
                    in_transaction: transactional,
                    application_name: format!("airlock:run#{}:{}", id.0, actor.name),
                };
                let wf = self.workflow.clone();
                let _upstream_open = self.metrics.upstream_opened(&target.name);
                match executor::execute(
                    endpoint,
                    creds,
                    &plan,
                    |session: UpstreamSession| async move {
                        wf.record_upstream(id, during, &session)
                            .await
                            .map_err(|e| e.to_string())
                    },
                )
                .await
                {
                    Err(executor::ExecError::Lost { xid, error }) => {
                        if let Some(c) = &catalog {
                            c.change_ended();
                        }
                        return self
                            .settle_lost(id, &target.upstream.database, creds, endpoint, xid, error)
                            .await;
                    }
                    Ok(o) => (
                        RunResult {
                            rows_affected: o.rows_affected,
                            command_tag: o.command_tag.clone(),
                            duration_ms: o.duration.as_millis() as i64,
                            error: o.error.clone(),
                        },
                        Some(o),
                    ),
                    Err(e) => (
                        RunResult {
                            error: Some(e.to_string()),
                            ..RunResult::default()
                        },
                        None,
                    ),
                }
            }
        };
        if let Some(c) = &catalog {
            c.change_ended();
        }
        let recorded = match which {
            Which::Change => self.workflow.finish_run(id, &result).await,
            Which::Rollback => self.workflow.finish_rollback(id, &result).await,
        };
        let request = match recorded {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(request = id.0, error = %e, "recording the result failed");
                None
            }
        };
        info!(request = id.0, rows = ?result.rows_affected, error = ?result.error, rollback = matches!(which, Which::Rollback), "change request run");
        Ran {
            request,
            result,
            outcome,
        }
    }

    /// The connection broke after the change was sent: the request is
    /// settled at once from the target (`pg_xact_status` of `xid`), waiting
    /// while the target still reports the transaction in progress; outside
    /// a transaction the outcome is unknown. Still in progress after
    /// [`LOST_PATIENCE`]: left `running` for the reconciler.
    async fn settle_lost(
        &self,
        id: RequestId,
        database: &str,
        creds: &Credentials,
        endpoint: &Endpoint,
        xid: Option<String>,
        error: String,
    ) -> Ran {
        let deadline = tokio::time::Instant::now() + LOST_PATIENCE;
        let look = match xid.as_deref() {
            None => Look::Settled(
                Settlement::Unknown,
                format!(
                    "the connection was lost ({error}) while a statement ran outside a transaction"
                ),
            ),
            Some(xid) => loop {
                match crate::settle::xact_look(endpoint, creds, database, xid).await {
                    Look::Retry(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(LOST_RETRY).await;
                    }
                    other => break other,
                }
            },
        };
        let (verdict, note) = match look {
            Look::Settled(verdict, note) => (
                verdict,
                format!("connection lost during the run ({error}); {note}"),
            ),
            // Only the reconciler looks for live backends.
            Look::Live => (
                Settlement::Unknown,
                format!("connection lost during the run ({error})"),
            ),
            Look::Retry(note) => {
                warn!(request = id.0, note = %note, "a run lost its connection and the target cannot tell yet; the reconciler settles it");
                return Ran {
                    request: None,
                    result: RunResult {
                        error: Some(format!(
                            "the connection was lost during the run ({error}) and the target cannot tell yet whether it committed ({note}); the request stays running until the reconciler settles it"
                        )),
                        ..RunResult::default()
                    },
                    outcome: None,
                };
            }
        };
        let request = match self.workflow.recover(id, verdict, &note).await {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(request = id.0, error = %e, "settling a run that lost its connection failed");
                None
            }
        };
        warn!(request = id.0, verdict = ?verdict, note = %note, "a run lost its upstream connection; settled from the target");
        let result = RunResult {
            error: match verdict {
                Settlement::Executed => None,
                Settlement::Failed => Some(format!("not committed: {note}")),
                Settlement::Unknown => Some(format!("outcome unknown: {note}")),
            },
            ..RunResult::default()
        };
        Ran {
            request,
            result,
            outcome: None,
        }
    }
}

/// The target of a request with its write credentials and endpoint, in
/// the generation `config`/`targets`.
fn target_of<'a>(
    config: &'a Config,
    targets: &'a TargetSet,
    r: &ChangeRequest,
) -> Option<(&'a Target, &'a Credentials, &'a Endpoint)> {
    let target = config.target(&r.details.target)?;
    let creds = target.write_credentials.as_ref()?;
    let endpoint = targets.endpoint(&target.name)?;
    Some((target, creds, endpoint))
}

impl airlock_core::Executor for ChangeRunner {
    fn run<'a>(
        &'a self,
        id: RequestId,
        actor: &'a Actor,
    ) -> airlock_core::BoxFuture<'a, Result<airlock_core::RunReport, WorkflowError>> {
        Box::pin(async move {
            let ran = ChangeRunner::run(self, id, actor).await?;
            Ok(airlock_core::RunReport {
                request: ran.request,
                result: ran.result,
            })
        })
    }

    fn rollback<'a>(
        &'a self,
        id: RequestId,
        actor: &'a Actor,
    ) -> airlock_core::BoxFuture<'a, Result<airlock_core::RunReport, WorkflowError>> {
        Box::pin(async move {
            let ran = ChangeRunner::rollback(self, id, actor).await?;
            Ok(airlock_core::RunReport {
                request: ran.request,
                result: ran.result,
            })
        })
    }

    fn drain(&self, grace: Duration) -> airlock_core::BoxFuture<'_, bool> {
        Box::pin(ChangeRunner::drain(self, grace))
    }
}
