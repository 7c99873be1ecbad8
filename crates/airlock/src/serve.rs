//! `airlock serve`: loads the config, starts the listeners, handles signals.

use crate::{config_file, http, logging};
use airlock_core::RefuseUnreviewed;
use airlock_pg::PgServer;
use airlock_sql::Classifier;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

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
    let classifier = Arc::new(Classifier::new(config.server.classifier_cache_entries));
    let pg = PgServer::bind(config.clone(), classifier, Arc::new(RefuseUnreviewed)).await?;
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
    let http_task = tokio::spawn(http::serve(http_listener, shutdown.clone()));
    let pg_task = tokio::spawn(pg.run(shutdown.clone(), config.server.shutdown_grace));

    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining"),
        _ = int.recv() => info!("SIGINT: draining"),
    }
    shutdown.cancel();
    pg_task.await.context("postgres listener task")?;
    http_task.await.context("http task")??;
    info!("stopped");
    Ok(())
}
