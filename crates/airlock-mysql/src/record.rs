//! Recording what developers change on unprotected family targets (dev,
//! QA), so a later request for the same statement on a protected target
//! shows these earlier runs to its reviewers. The observation is sent to a
//! background writer; the session never waits for the store.

use crate::response::Response;
use airlock_core::request::Execution;
use airlock_core::workflow::Workflow;
use airlock_core::Target;
use airlock_sql::mysql::{classify_mysql, fingerprint_mysql};
use airlock_sql::mysql_lexer::SqlModes;
use airlock_sql::StatementClass;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::warn;

/// Observations waiting for the writer; more are dropped (and logged).
const QUEUE: usize = 1024;

/// One statement seen on its way upstream.
struct Pending {
    sql: String,
    class: StatementClass,
    started: Instant,
}

/// Records the non-read statements of one session.
pub struct Recorder {
    target: Target,
    user: String,
    tx: mpsc::Sender<Execution>,
    pending: Option<Pending>,
    now: Arc<Workflow>,
}

impl Recorder {
    /// A recorder writing through `workflow` (starts its writer task).
    pub fn start(workflow: Arc<Workflow>, target: Target, user: String) -> Self {
        let (tx, mut rx) = mpsc::channel::<Execution>(QUEUE);
        let writer = workflow.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Err(err) = writer.record_execution(&e).await {
                    warn!(target = %e.target, error = %err, "recording a mysql execution failed");
                }
            }
        });
        Self {
            target,
            user,
            tx,
            pending: None,
            now: workflow,
        }
    }

    /// Notes a COM_QUERY text before it is relayed.
    pub fn before(&mut self, sql: &str) {
        let verdict = classify_mysql(sql, SqlModes::default(), &());
        self.pending = (!verdict.passes()).then(|| Pending {
            sql: sql.to_string(),
            class: verdict.class(),
            started: Instant::now(),
        });
    }

    /// Records the noted statement with the upstream's answer.
    pub fn after(&mut self, response: &Response) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let e = Execution {
            request_id: None,
            family: self.target.family.clone(),
            target: self.target.name.clone(),
            environment: self.target.environment.clone(),
            fingerprint: fingerprint_mysql(&p.sql, SqlModes::default()),
            user: self.user.clone(),
            class: p.class,
            rows: Some(response.affected_total as i64),
            duration_ms: p.started.elapsed().as_millis() as i64,
            success: !response.failed,
            error: response.failed.then(|| "the statement failed".to_string()),
            at: self.now.now(),
        };
        if self.tx.try_send(e).is_err() {
            warn!(target = %self.target.name, "mysql execution recorder is behind: an execution was not recorded");
        }
    }
}
