//! The executor port: runs an approved change (or its rollback) once on its
//! target's engine. Each wire crate implements it for its own protocol; the
//! HTTP API, the CLI and the sessions of other protocols reach it through
//! [`Executors`], which picks the one for the request's engine.

use crate::ports::BoxFuture;
use crate::request::approval::Actor;
use crate::request::{ChangeRequest, Engine, RequestId};
use crate::workflow::{RunResult, Workflow, WorkflowError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What a run or rollback did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The request as recorded after the run (`None` when it could not be read back).
    pub request: Option<ChangeRequest>,
    /// Its result.
    pub result: RunResult,
}

/// Runs approved changes on one engine's targets.
pub trait Executor: Send + Sync {
    /// Runs approved request `id` once, as `actor`.
    fn run<'a>(
        &'a self,
        id: RequestId,
        actor: &'a Actor,
    ) -> BoxFuture<'a, Result<RunReport, WorkflowError>>;

    /// Runs the approved rollback of executed request `id`, as `actor`.
    fn rollback<'a>(
        &'a self,
        id: RequestId,
        actor: &'a Actor,
    ) -> BoxFuture<'a, Result<RunReport, WorkflowError>>;

    /// Waits up to `grace` for the runs in flight; `false` when some remain.
    fn drain(&self, grace: Duration) -> BoxFuture<'_, bool>;
}

/// The executors of this process, by engine.
#[derive(Clone)]
pub struct Executors {
    workflow: Arc<Workflow>,
    by_engine: HashMap<Engine, Arc<dyn Executor>>,
}

impl Executors {
    /// No executors yet.
    pub fn new(workflow: Arc<Workflow>) -> Self {
        Self {
            workflow,
            by_engine: HashMap::new(),
        }
    }

    /// Adds the executor of `engine` (builder style).
    pub fn with(mut self, engine: Engine, executor: Arc<dyn Executor>) -> Self {
        self.by_engine.insert(engine, executor);
        self
    }

    async fn pick(&self, id: RequestId) -> Result<Arc<dyn Executor>, WorkflowError> {
        let request = self.workflow.get(id).await?;
        let engine = request.details.engine;
        self.by_engine
            .get(&engine)
            .cloned()
            .ok_or(WorkflowError::NoExecutor(engine))
    }

    /// Runs approved request `id` on its engine.
    pub async fn run(&self, id: RequestId, actor: &Actor) -> Result<RunReport, WorkflowError> {
        self.pick(id).await?.run(id, actor).await
    }

    /// Runs the rollback of executed request `id` on its engine.
    pub async fn rollback(&self, id: RequestId, actor: &Actor) -> Result<RunReport, WorkflowError> {
        self.pick(id).await?.rollback(id, actor).await
    }

    /// Waits up to `grace` for every engine's runs; `false` when some remain.
    pub async fn drain(&self, grace: Duration) -> bool {
        let mut all = true;
        for e in self.by_engine.values() {
            all &= e.drain(grace).await;
        }
        all
    }
}
