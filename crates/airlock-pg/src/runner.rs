//! Runs an approved change request (or its approved rollback) exactly once:
//! the compare-and-set into `running`/`rolling_back` in the workflow, the
//! executor on the target's write connection, and the result recorded. Used
//! by the session (re-send, `CALL airlock.run`) and by the HTTP API / CLI.

use crate::executor::{self, ExecOutcome, ExecPlan};
use crate::upstream::Endpoint;
use airlock_core::request::{ChangeRequest, RequestId, RequestStatus};
use airlock_core::workflow::{RunResult, Workflow, WorkflowError};
use airlock_core::{Actor, Config, Credentials, Target};
use std::collections::HashMap;
use std::sync::Arc;
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
    /// Configuration (targets, policies).
    pub config: Arc<Config>,
    /// Upstream endpoints by target name.
    pub endpoints: Arc<HashMap<String, Endpoint>>,
    /// Protected targets' catalogs: a change may create user code, so each
    /// is distrusted while a change runs and read again after it.
    pub catalogs: Arc<HashMap<String, Arc<crate::catalog::CatalogCell>>>,
}

enum Which {
    Change,
    Rollback,
}

impl ChangeRunner {
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

    fn target_of(&self, r: &ChangeRequest) -> Option<(&Target, &Credentials, &Endpoint)> {
        let target = self.config.target(&r.details.target)?;
        let creds = target.write_credentials.as_ref()?;
        let endpoint = self.endpoints.get(&target.name)?;
        Some((target, creds, endpoint))
    }

    async fn execute(
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
        let catalog = self
            .catalogs
            .get(&r.details.target)
            .filter(|_| may_change_catalog)
            .cloned();
        if let Some(c) = &catalog {
            c.change_started();
        }
        let (result, outcome) = match self.target_of(&r) {
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
                let policy = self.config.approval_policy(target, r.details.class);
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
                match executor::execute(endpoint, creds, &plan, |xid| async move {
                    wf.record_xid(id, during, &xid)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                {
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
}
