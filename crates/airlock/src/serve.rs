//! `airlock serve`: loads the config, opens the state store, starts the
//! listeners and the background jobs (expiry, audit head log, crash
//! recovery of interrupted runs), handles signals.

use crate::{api, config_file, http, logging, page, slack};
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
    let redactor = config.redactor().map_err(anyhow::Error::msg)?;
    let api_state =
        api::ApiState::new(workflow.clone(), config.clone(), redactor).with_runner(runner);
    let mut api = api::router(api_state.clone()).merge(page::router(api_state));
    let slack = slack::start(&config, &workflow, &shutdown).await?;
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
    if let Some(slack) = slack {
        slack.stop().await;
    }
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

/// How long an interrupted transaction that the target still reports as
/// `in progress` is waited for before the request is marked unknown.
const IN_PROGRESS_PATIENCE: Duration = Duration::from_secs(60);
/// Pause between two looks at a transaction still in progress.
const IN_PROGRESS_RETRY: Duration = Duration::from_secs(1);
/// Pause before looking again at requests whose run is live upstream.
const LIVE_RECHECK: Duration = Duration::from_secs(10);
/// A run started this recently without a recorded transaction id may be in
/// its first milliseconds on another replica (connecting, BEGIN): wait.
const START_GRACE: Duration = Duration::from_secs(10);

/// Crash recovery (SPEC §5): every request found `running` or `rolling_back`
/// at startup is settled from `pg_xact_status` of the upstream transaction id
/// the executor recorded right after BEGIN (committed → executed /
/// rolled_back, aborted → failed / rollback_failed), or marked unknown when
/// the database cannot tell (no xid recorded, still in progress after
/// [`IN_PROGRESS_PATIENCE`], unreachable). A request whose run is live
/// upstream (a session labelled `airlock:run#<id>:…` in `pg_stat_activity`:
/// another replica is running it, or the backend of a dead process has not
/// noticed yet) is left alone and looked at again every [`LIVE_RECHECK`].
/// Requests that start running after this process started are never
/// touched. Nothing is ever re-run.
async fn recover_interrupted(runner: ChangeRunner) {
    let mut todo: Vec<RequestId> = Vec::new();
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
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        todo.extend(page.iter().map(|r| r.id));
    }
    while !todo.is_empty() {
        let mut tasks = tokio::task::JoinSet::new();
        for id in todo.drain(..) {
            let runner = runner.clone();
            tasks.spawn(async move { (id, recover_one(&runner, id).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((id, Recovery::Live)) => todo.push(id),
                Ok((id, Recovery::Gone)) => info!(
                    request = id.0,
                    "crash recovery: request #{id} is no longer running (its run ended where it was live); nothing to settle"
                ),
                Ok((_, Recovery::Done)) => {}
                Err(e) => warn!(error = %e, "crash recovery: a settling task failed"),
            }
        }
        if !todo.is_empty() {
            todo.sort();
            let ids: Vec<String> = todo.iter().map(|id| format!("#{id}")).collect();
            info!(
                requests = %ids.join(", "),
                "crash recovery: runs still live upstream, looking again in {}s",
                LIVE_RECHECK.as_secs()
            );
            tokio::time::sleep(LIVE_RECHECK).await;
        }
    }
}

/// What became of one interrupted request.
enum Recovery {
    /// Settled (or settling it failed, which was logged).
    Done,
    /// No longer running or rolling back (finished by its replica).
    Gone,
    /// Its run is live upstream: look again later.
    Live,
}

/// Settles one request, waiting while its transaction is in progress.
async fn recover_one(runner: &ChangeRunner, id: RequestId) -> Recovery {
    let deadline = tokio::time::Instant::now() + IN_PROGRESS_PATIENCE;
    loop {
        let request = match runner.workflow.get(id).await {
            Ok(r) => r,
            Err(e) => {
                warn!(request = id.0, error = %e, "crash recovery: reading the request failed");
                return Recovery::Done;
            }
        };
        if !matches!(
            request.status,
            RequestStatus::Running | RequestStatus::RollingBack
        ) {
            return Recovery::Gone;
        }
        let verdict = match settle_from_upstream(runner, &request).await {
            Look::Live => return Recovery::Live,
            Look::Settled(verdict, note) => Some((verdict, note)),
            Look::Retry(note) if tokio::time::Instant::now() >= deadline => Some((
                Settlement::Unknown,
                format!("{note}, still after {}s", IN_PROGRESS_PATIENCE.as_secs()),
            )),
            Look::Retry(_) => None,
        };
        let Some((verdict, note)) = verdict else {
            tokio::time::sleep(IN_PROGRESS_RETRY).await;
            continue;
        };
        match runner.workflow.recover(id, verdict, &note).await {
            Ok(r) => warn!(
                request = id.0,
                from = request.status.as_str(),
                to = r.status.as_str(),
                note = %note,
                "crash recovery: settled a request interrupted by a restart (not re-run)"
            ),
            Err(e) => warn!(
                request = id.0,
                error = %e,
                "crash recovery: settling the request failed"
            ),
        }
        return Recovery::Done;
    }
}

/// One look at the target about an interrupted request.
enum Look {
    /// A session of the run is live upstream.
    Live,
    /// The outcome is known (or can never be).
    Settled(Settlement, String),
    /// Not yet decidable (transaction in progress, target unreachable…).
    Retry(String),
}

/// Asks the target whether the run is live and whether the recorded upstream
/// transaction committed.
async fn settle_from_upstream(
    runner: &ChangeRunner,
    request: &airlock_core::ChangeRequest,
) -> Look {
    let record = if request.status == RequestStatus::RollingBack {
        &request.rollback_run
    } else {
        &request.run
    };
    let target = runner.config.target(&request.details.target);
    let creds = target.and_then(|t| t.write_credentials.as_ref());
    let endpoint = runner.endpoints.get(&request.details.target);
    let (Some(target), Some(creds), Some(endpoint)) = (target, creds, endpoint) else {
        return Look::Settled(
            Settlement::Unknown,
            format!(
                "target {:?} or its write credentials are no longer configured",
                request.details.target
            ),
        );
    };
    let database = &target.upstream.database;
    match run_is_live(endpoint, creds, database, request.id).await {
        Ok(true) => return Look::Live,
        Ok(false) => {}
        Err(e) => {
            return Look::Retry(format!(
                "asking the target about the sessions of run #{} failed: {e}",
                request.id
            ))
        }
    }
    let Some(xid) = record.upstream_xid.as_deref() else {
        let started = record.started_at.map(|t| t.to_system());
        let recent = started
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < START_GRACE);
        if recent {
            return Look::Retry("the run has only just started".to_string());
        }
        return Look::Settled(
            Settlement::Unknown,
            "no upstream transaction id was recorded before the restart".to_string(),
        );
    };
    match airlock_pg::executor::xact_status(endpoint, creds, database, xid).await {
        Ok(Some(s)) if s == "committed" => Look::Settled(
            Settlement::Executed,
            format!("pg_xact_status({xid}) = committed"),
        ),
        Ok(Some(s)) if s == "aborted" => Look::Settled(
            Settlement::Failed,
            format!("pg_xact_status({xid}) = aborted"),
        ),
        Ok(Some(s)) if s == "in progress" => {
            Look::Retry(format!("pg_xact_status({xid}) = in progress"))
        }
        Ok(Some(s)) => Look::Settled(Settlement::Unknown, format!("pg_xact_status({xid}) = {s}")),
        Ok(None) => Look::Settled(
            Settlement::Unknown,
            format!(
                "pg_xact_status({xid}) cannot tell (too old or not a transaction of this database)"
            ),
        ),
        Err(e) => Look::Retry(format!(
            "asking the target about transaction {xid} failed: {e}"
        )),
    }
}

/// Whether a session of run `id` (application_name `airlock:run#<id>:<user>`,
/// set by the executor) is connected to the target's server right now.
async fn run_is_live(
    endpoint: &airlock_pg::upstream::Endpoint,
    creds: &airlock_core::Credentials,
    database: &str,
    id: RequestId,
) -> Result<bool, String> {
    let plan = airlock_pg::executor::ExecPlan {
        database: database.to_string(),
        sql: format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name LIKE 'airlock:run#{}:%' \
             AND datname = current_database() AND pid <> pg_backend_pid()",
            id.0
        ),
        params: Vec::new(),
        statement_timeout: Some(Duration::from_secs(10)),
        lock_timeout: None,
        max_rows: None,
        in_transaction: false,
        application_name: "airlock:recovery".to_string(),
    };
    let outcome = airlock_pg::executor::execute(endpoint, creds, &plan, |_| async { Ok(()) })
        .await
        .map_err(|e| e.to_string())?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    let count = outcome
        .frames
        .iter()
        .find(|f| f.first() == Some(&b'D'))
        .and_then(|f| first_column(f))
        .ok_or_else(|| "pg_stat_activity returned no row".to_string())?;
    count
        .trim()
        .parse::<i64>()
        .map(|n| n > 0)
        .map_err(|_| format!("unexpected count {count:?} from pg_stat_activity"))
}

/// Text of the first column of a DataRow frame.
fn first_column(frame: &[u8]) -> Option<String> {
    let body = airlock_pg::frame::body(frame);
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let value = body.get(6..6 + usize::try_from(len).ok()?)?;
    Some(String::from_utf8_lossy(value).into_owned())
}
