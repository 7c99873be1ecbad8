//! The Postgres listener: accepts connections, runs each session in its own
//! task, and drains on shutdown.

use crate::cancel::CancelRegistry;
use crate::session::{self, SessionContext, SessionError};
use crate::targets::{TargetSet, Targets};
use crate::tls;
use airlock_core::{LiveConfig, StatementPolicy};
use airlock_sql::Classifier;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS files or settings.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// Binding the listener.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// How long sessions whose upstream backends were terminated get to relay
/// Postgres's FATAL to their clients before they are closed.
const TERMINATE_WAIT: Duration = Duration::from_secs(5);

/// A configured Postgres listener.
pub struct PgServer {
    ctx: Arc<SessionContext>,
    listener: TcpListener,
}

impl PgServer {
    /// Binds the listener and prepares TLS, upstream endpoints and catalogs
    /// for the configuration in force.
    pub async fn bind(
        live: LiveConfig,
        classifier: Arc<Classifier>,
        policy: Arc<dyn StatementPolicy>,
    ) -> Result<Self, ServerError> {
        let config = live.current();
        let tls = match &config.tls {
            Some(t) => Some(tls::server_acceptor(&t.cert_file, &t.key_file)?),
            None => None,
        };
        let targets = Targets::new(TargetSet::build(&config, None).await?, live.generation());
        let refusal_budget = config.server.refused_login_audits_per_second;
        let addr = config.server.postgres_listen.clone();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let ctx = Arc::new(SessionContext {
            live,
            classifier,
            policy,
            tls,
            process_key: rand::random(),
            cancels: Arc::new(CancelRegistry::default()),
            targets,
            workflow: None,
            runner: None,
            background: TaskTracker::new(),
            metrics: airlock_metrics::Metrics::new(),
            connections: Arc::default(),
            refusals: Arc::new(crate::limits::RefusalBudget::new(refusal_budget)),
        });
        Ok(Self { ctx, listener })
    }

    /// The endpoints and catalogs in force, for a reload to build the next
    /// set from ([`TargetSet::build`]) and install it.
    pub fn targets(&self) -> Targets {
        self.ctx.targets.clone()
    }

    /// Counts sessions, bytes, statements and upstream connections in
    /// `metrics` (the process's one registry; without it they go to a
    /// private one). Call before [`PgServer::with_workflow`].
    pub fn with_metrics(mut self, metrics: airlock_metrics::Metrics) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.metrics = metrics;
        }
        self
    }

    /// Lists sessions in the replicas' shared `directory` as owned by `me`
    /// (this listener's address as other replicas reach it), so their
    /// cancel requests are passed on here; forgets what an earlier run of
    /// this replica left listed.
    pub async fn with_session_directory(
        mut self,
        directory: Arc<dyn airlock_core::SessionDirectory>,
        me: String,
    ) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            let registry = CancelRegistry::shared(directory, me);
            registry.forget_stale().await;
            ctx.cancels = Arc::new(registry);
        }
        self
    }

    /// Turns held statements into change requests through `workflow`.
    pub fn with_workflow(mut self, workflow: Arc<airlock_core::workflow::Workflow>) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.runner = Some(crate::runner::ChangeRunner::new(
                workflow.clone(),
                ctx.live.clone(),
                ctx.targets.clone(),
                ctx.metrics.clone(),
            ));
            ctx.workflow = Some(workflow);
        }
        self
    }

    /// The runner of approved requests (after [`PgServer::with_workflow`]),
    /// for the HTTP API and CLI.
    pub fn runner(&self) -> Option<crate::runner::ChangeRunner> {
        self.ctx.runner.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until `shutdown` fires, then waits up to `grace` for sessions.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let tracker = TaskTracker::new();
        let sessions = CancellationToken::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let ctx = self.ctx.clone();
                        let stop = sessions.clone();
                        tracker.spawn(async move {
                            tokio::select! {
                                r = session::handle(ctx, tcp, peer) => log_end(r, peer),
                                _ = stop.cancelled() => info!(%peer, "session closed by shutdown"),
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        drop(self.listener);
        tracker.close();
        let live = tracker.len();
        info!(
            live,
            ?grace,
            "listener closed, waiting for sessions to finish"
        );
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(
                live = tracker.len(),
                "grace period over: ending the remaining sessions with 57P01 so their drivers reconnect"
            );
            terminate_upstreams(&self.ctx).await;
            if tokio::time::timeout(TERMINATE_WAIT, tracker.wait())
                .await
                .is_err()
            {
                warn!(live = tracker.len(), "closing sessions that did not end");
                sessions.cancel();
                tracker.wait().await;
            }
        }
        // Login audit events still being written are not lost.
        self.ctx.background.close();
        self.ctx.background.wait().await;
    }
}

fn log_end(result: Result<(), SessionError>, peer: std::net::SocketAddr) {
    match result {
        Ok(()) => {}
        Err(SessionError::Refused(why)) => info!(%peer, %why, "connection refused"),
        Err(e) => debug!(%peer, error = %e, "connection ended with an error"),
    }
}

/// Ends every live session the way Postgres ends a session at an admin
/// shutdown: its upstream backend is terminated (`pg_terminate_backend`,
/// with the session's own credentials), so Postgres sends the client,
/// through the relay and at a message boundary, `FATAL 57P01
/// terminating connection due to administrator command`.
async fn terminate_upstreams(ctx: &SessionContext) {
    let (snapshot, targets) = crate::targets::consistent(&ctx.live, &ctx.targets);
    let config = &snapshot.config;
    for (name, pids) in ctx.cancels.backends_by_target() {
        let target = config.target(&name);
        let creds = target.and_then(|t| t.session_credentials());
        let endpoint = targets.endpoint(&name);
        let (Some(target), Some(creds), Some(endpoint)) = (target, creds, endpoint) else {
            continue;
        };
        let list: Vec<String> = pids.iter().map(i32::to_string).collect();
        let plan = crate::executor::ExecPlan {
            database: target.upstream.database.clone(),
            sql: format!(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(p)) FROM unnest(ARRAY[{}]::int[]) p",
                list.join(",")
            ),
            params: Vec::new(),
            statement_timeout: Some(Duration::from_secs(10)),
            lock_timeout: None,
            max_rows: None,
            in_transaction: false,
            application_name: "airlock:shutdown".to_string(),
        };
        match crate::executor::execute(endpoint, creds, &plan, |_| async { Ok(()) }).await {
            Ok(o) if o.error.is_none() => {
                info!(target = %name, sessions = pids.len(), "terminated the upstream backends of sessions left at shutdown")
            }
            Ok(o) => {
                warn!(target = %name, error = ?o.error, "terminating upstream backends at shutdown failed")
            }
            Err(e) => {
                warn!(target = %name, error = %e, "terminating upstream backends at shutdown failed")
            }
        }
    }
}
