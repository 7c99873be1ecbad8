//! `airlock serve`: loads the config, opens the state store, starts the
//! listeners and the background jobs (expiry, audit head log, crash
//! recovery of interrupted runs), handles signals.

use crate::{api, config_file, http, logging};
use airlock_core::{
    PolicySource, RefuseUnreviewed, RequestFilter, RequestId, RequestStatus, Settlement, Store,
    SystemClock, Workflow,
};
use airlock_pg::runner::ChangeRunner;
use airlock_pg::PgServer;
use airlock_sql::Classifier;
use airlock_store::SqlStore;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often overdue requests are expired.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the proxy until SIGTERM or SIGINT.
pub fn serve(path: &Path) -> anyhow::Result<()> {
    let config = config_file::load(path).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!("invalid config {}:\n{}", path.display(), lines.join("\n"))
    })?;
    logging::init(config.server.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        builder.worker_threads(config.server.worker_threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(Arc::new(config)))
}

async fn run(config: Arc<airlock_core::Config>) -> anyhow::Result<()> {
    let store = SqlStore::from_config(&config.store)
        .await
        .with_context(|| {
            format!(
                "opening the state store {}",
                airlock_core::config::redact_url(config.store.url())
            )
        })?;
    let store_dyn: Arc<dyn Store> = Arc::new(store.clone());
    let policies: Arc<dyn PolicySource> = config.clone();
    let workflow = Workflow::new(store_dyn, policies, Arc::new(SystemClock));

    let classifier = Arc::new(Classifier::new(config.server.classifier_cache_entries));
    let pg = PgServer::bind(config.clone(), classifier, Arc::new(RefuseUnreviewed))
        .await?
        .with_workflow(Arc::new(workflow.clone()));
    let http_listener = tokio::net::TcpListener::bind(&config.server.http_listen)
        .await
        .with_context(|| format!("listen on {}", config.server.http_listen))?;
    info!(
        postgres = %pg.local_addr()?,
        http = %http_listener.local_addr()?,
        targets = config.targets.len(),
        "airlock ready"
    );
    let shutdown = CancellationToken::new();
    let runner = pg.runner();
    let recovery_task = runner.clone().map(|r| tokio::spawn(recover_interrupted(r)));
    let api = api::router(api::ApiState::new(workflow.clone(), config.clone()).with_runner(runner));
    let http_task = tokio::spawn(http::serve(http_listener, api, shutdown.clone()));
    let pg_task = tokio::spawn(pg.run(shutdown.clone(), config.server.shutdown_grace));
    let expiry_task = tokio::spawn(expire_loop(workflow.clone(), shutdown.clone()));
    let head_task = tokio::spawn(head_log_loop(
        workflow.clone(),
        config.audit.head_log_interval,
        shutdown.clone(),
    ));

    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining"),
        _ = int.recv() => info!("SIGINT: draining"),
    }
    shutdown.cancel();
    pg_task.await.context("postgres listener task")?;
    http_task.await.context("http task")??;
    expiry_task.await.context("expiry task")?;
    head_task.await.context("audit head task")?;
    if let Some(task) = recovery_task {
        if !task.is_finished() {
            task.abort();
        }
        let _ = task.await;
    }
    log_audit_head(&workflow).await;
    store.close().await;
    info!("stopped");
    Ok(())
}

/// Expires overdue requests every few seconds (any replica may; the store's
/// compare-and-set keeps it to one winner per request).
async fn expire_loop(workflow: Workflow, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match workflow.expire_due().await {
            Ok(ids) if !ids.is_empty() => {
                let ids: Vec<String> = ids.iter().map(|id| format!("#{id}")).collect();
                info!(requests = %ids.join(", "), "expired overdue requests");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "expiring overdue requests failed"),
        }
    }
}

/// Logs the audit head at startup and then every `every`.
async fn head_log_loop(workflow: Workflow, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => log_audit_head(&workflow).await,
        }
    }
}

async fn log_audit_head(workflow: &Workflow) {
    match workflow.store().audit_head().await {
        Ok(head) => info!(
            seq = head.seq,
            hash = %head.hash,
            "audit head seq={} hash={}",
            head.seq,
            head.hash
        ),
        Err(e) => warn!(error = %e, "reading the audit head failed"),
    }
}

/// Crash recovery (SPEC §5): every request left `running` or `rolling_back`
/// by a process that stopped mid-run is settled from `pg_xact_status` of the
/// upstream transaction id recorded before its COMMIT (committed → executed /
/// rolled_back, aborted → failed / rollback_failed), or marked unknown when
/// the database cannot tell (no xid recorded, still in progress, unreachable).
/// Nothing is ever re-run.
async fn recover_interrupted(runner: ChangeRunner) {
    let mut before: Option<RequestId> = None;
    loop {
        let filter = RequestFilter {
            statuses: vec![RequestStatus::Running, RequestStatus::RollingBack],
            before,
            limit: Some(100),
            ..RequestFilter::default()
        };
        let page = match runner.workflow.list(&filter).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "crash recovery: listing interrupted requests failed");
                return;
            }
        };
        let Some(last) = page.last() else { return };
        before = Some(last.id);
        for request in &page {
            let (verdict, note) = settle_from_upstream(&runner, request).await;
            match runner.workflow.recover(request.id, verdict, &note).await {
                Ok(r) => warn!(
                    request = request.id.0,
                    from = request.status.as_str(),
                    to = r.status.as_str(),
                    note = %note,
                    "crash recovery: settled a request interrupted by a restart (not re-run)"
                ),
                Err(e) => warn!(
                    request = request.id.0,
                    error = %e,
                    "crash recovery: settling the request failed"
                ),
            }
        }
    }
}

/// Asks the target whether the recorded upstream transaction committed.
async fn settle_from_upstream(
    runner: &ChangeRunner,
    request: &airlock_core::ChangeRequest,
) -> (Settlement, String) {
    let record = if request.status == RequestStatus::RollingBack {
        &request.rollback_run
    } else {
        &request.run
    };
    let Some(xid) = record.upstream_xid.as_deref() else {
        return (
            Settlement::Unknown,
            "no upstream transaction id was recorded before the restart".to_string(),
        );
    };
    let target = runner.config.target(&request.details.target);
    let creds = target.and_then(|t| t.write_credentials.as_ref());
    let endpoint = runner.endpoints.get(&request.details.target);
    let (Some(target), Some(creds), Some(endpoint)) = (target, creds, endpoint) else {
        return (
            Settlement::Unknown,
            format!(
                "transaction {xid}: target {:?} or its write credentials are no longer configured",
                request.details.target
            ),
        );
    };
    match airlock_pg::executor::xact_status(endpoint, creds, &target.upstream.database, xid).await {
        Ok(Some(s)) if s == "committed" => (
            Settlement::Executed,
            format!("pg_xact_status({xid}) = committed"),
        ),
        Ok(Some(s)) if s == "aborted" => (
            Settlement::Failed,
            format!("pg_xact_status({xid}) = aborted"),
        ),
        Ok(Some(s)) => (Settlement::Unknown, format!("pg_xact_status({xid}) = {s}")),
        Ok(None) => (
            Settlement::Unknown,
            format!(
                "pg_xact_status({xid}) cannot tell (too old or not a transaction of this database)"
            ),
        ),
        Err(e) => (
            Settlement::Unknown,
            format!("asking the target about transaction {xid} failed: {e}"),
        ),
    }
}
