//! `airlock serve`: loads the config, opens the state store, starts the
//! listeners and the background jobs (expiry, audit head log, the
//! reconciler of interrupted runs), handles signals (SIGTERM/SIGINT drain,
//! SIGHUP reloads the config).

use crate::{api, config_file, health, http, logging, page, reload, slack};
use airlock_core::{LiveConfig, PolicySource, RefuseUnreviewed, Store, SystemClock, Workflow};
use airlock_metrics::{MeteredStore, Metrics};
use airlock_pg::PgServer;
use airlock_sql::Classifier;
use airlock_store::SqlStore;
use anyhow::Context;
use std::path::{Path, PathBuf};
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
    let live = LiveConfig::new(config)
        .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))?;
    runtime.block_on(run(live, path.to_path_buf()))
}

async fn run(live: LiveConfig, path: PathBuf) -> anyhow::Result<()> {
    // First, so a SIGHUP during startup (`systemctl reload`) does not kill
    // the process; it is acted on once serving.
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let config = live.current();
    let store = SqlStore::from_config(&config.store)
        .await
        .with_context(|| {
            format!(
                "opening the state store {}",
                airlock_core::config::redact_url(config.store.url())
            )
        })?;
    let metrics = Metrics::new();
    let store_dyn: Arc<dyn Store> =
        Arc::new(MeteredStore::new(Arc::new(store.clone()), metrics.clone()));
    let policies: Arc<dyn PolicySource> = Arc::new(live.clone());
    let workflow = Workflow::new(store_dyn.clone(), policies, Arc::new(SystemClock))
        .with_observer(Arc::new(metrics.clone()));

    let classifier = Arc::new(Classifier::new(config.server.classifier_cache_entries));
    let pg = PgServer::bind(live.clone(), classifier.clone(), Arc::new(RefuseUnreviewed))
        .await?
        .with_metrics(metrics.clone())
        .with_workflow(Arc::new(workflow.clone()));
    let pg = if store.backend() == airlock_store::Backend::Postgres {
        // Replicas share the store: cancel requests find their session's replica.
        let me = match &config.server.advertise_address {
            Some(a) => a.clone(),
            None => pg.local_addr()?.to_string(),
        };
        pg.with_session_directory(Arc::new(store.clone()), me).await
    } else {
        pg
    };
    let health = health::router(health::HealthState {
        store: store_dyn,
        metrics: metrics.clone(),
        classifier,
        live: live.clone(),
    });
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
    let owner = format!(
        "{}-{}-{:08x}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "airlock".into()),
        std::process::id(),
        rand::random::<u32>()
    );
    let reconcile_task = runner.clone().map(|r| {
        tokio::spawn(airlock_pg::reconcile::run(
            r,
            owner.clone(),
            config.server.reconcile_interval,
            shutdown.clone(),
        ))
    });
    let mysql = match &config.server.mysql_listen {
        Some(addr) => {
            let server = airlock_mysql::MysqlServer::bind(live.clone(), addr)
                .await
                .with_context(|| format!("listen on {addr}"))?
                .with_workflow(Arc::new(workflow.clone()));
            info!(mysql = %server.local_addr()?, "mysql listener ready");
            Some(server)
        }
        None => None,
    };
    // The API and CLI run approved changes through the executor of each
    // request's engine.
    let mut executors = airlock_core::Executors::new(Arc::new(workflow.clone()));
    if let Some(r) = &runner {
        executors = executors.with(airlock_core::Engine::Postgres, Arc::new(r.clone()));
    }
    let mut mysql_reconcile = None;
    if let Some(r) = mysql.as_ref().and_then(|m| m.runner()) {
        mysql_reconcile = Some(tokio::spawn(airlock_mysql::reconcile::run(
            r.clone(),
            owner.clone(),
            config.server.reconcile_interval,
            shutdown.clone(),
        )));
        executors = executors.with(airlock_core::Engine::Mysql, Arc::new(r));
    }
    let mysql = mysql
        .map(|server| tokio::spawn(server.run(shutdown.clone(), config.server.shutdown_grace)));
    let api_state =
        api::ApiState::new(workflow.clone(), live.clone()).with_runner(Some(executors.clone()));
    let mut api = api::router(api_state.clone())
        .merge(page::router(api_state))
        .merge(health);
    let slack = slack::start(&live, &workflow, &metrics, &shutdown).await?;
    let reloader = reload::Reloader {
        path,
        live: live.clone(),
        targets: pg.targets(),
        workflow: workflow.clone(),
    };
    if let Some(routes) = slack.as_ref().and_then(|s| s.routes.clone()) {
        api = api.merge(routes);
    }
    let http_task = tokio::spawn(http::serve(http_listener, api, shutdown.clone()));
    let pg_task = tokio::spawn(pg.run(shutdown.clone(), config.server.shutdown_grace));
    let expiry_task = tokio::spawn(expire_loop(workflow.clone(), shutdown.clone()));
    let head_task = tokio::spawn(head_log_loop(
        workflow.clone(),
        config.audit.head_log_interval,
        shutdown.clone(),
    ));

    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: draining"); break }
            _ = int.recv() => { info!("SIGINT: draining"); break }
            _ = hup.recv() => {
                info!(file = %reloader.path.display(), "SIGHUP: reloading the config");
                reloader.reload().await;
            }
        }
    }
    shutdown.cancel();
    pg_task.await.context("postgres listener task")?;
    if let Some(task) = mysql {
        task.await.context("mysql listener task")?;
    }
    http_task.await.context("http task")??;
    expiry_task.await.context("expiry task")?;
    head_task.await.context("audit head task")?;
    if let Some(slack) = slack {
        slack.stop().await;
    }
    if let Some(task) = reconcile_task {
        let _ = task.await;
    }
    if let Some(task) = mysql_reconcile {
        let _ = task.await;
    }
    {
        // Runs belong to the service: they finish within the grace.
        if !executors.drain(config.server.run_grace).await {
            warn!("grace period over with changes still running; the reconciler of another replica (or of the next start) settles them from the target");
        }
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
