//! The reconciler: settles requests left `running` or `rolling_back` whose
//! run is no longer live anywhere (its replica was killed, its task
//! panicked, its connection broke and the target could not tell at once).
//! It runs periodically on exactly one replica (the holder of the
//! `reconciler` lease in the store); every request is settled from the
//! target ([`crate::settle::look`]: the recorded backend in
//! `pg_stat_activity`, then `pg_xact_status` of the recorded transaction),
//! by a compare-and-set, and nothing is ever re-run.

use crate::runner::ChangeRunner;
use crate::settle::{self, Look};
use airlock_core::{RequestFilter, RequestId, RequestStatus, Settlement};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The lease that makes one replica the reconciler.
pub const RECONCILER_LEASE: &str = "reconciler";

/// How long a request may stay undecidable (transaction in progress while
/// its backend is gone, target unreachable) before it is marked unknown.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs until `stop`: every `interval`, if this replica holds the lease,
/// settles what can be settled. A request whose run is gone is settled on
/// the pass after the one that first saw it gone, so a replica that is just
/// recording its result wins.
pub async fn run(runner: ChangeRunner, owner: String, interval: Duration, stop: CancellationToken) {
    let ttl = interval.saturating_mul(3).max(Duration::from_secs(3));
    let mut undecided: HashMap<RequestId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let store = runner.workflow.store();
        match store
            .try_lease(RECONCILER_LEASE, &owner, runner.workflow.now(), ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                undecided.clear();
                continue;
            }
            Err(e) => {
                warn!(error = %e, "reconciler: cannot take the lease");
                continue;
            }
        }
        if let Err(e) = pass(&runner, &mut undecided).await {
            warn!(error = %e, "reconciler: listing interrupted requests failed");
        }
    }
    // Hand the lease over at once.
    let _ = runner
        .workflow
        .store()
        .try_lease(
            RECONCILER_LEASE,
            &owner,
            runner.workflow.now(),
            Duration::ZERO,
        )
        .await;
}

/// One pass over the requests left running or rolling back.
async fn pass(
    runner: &ChangeRunner,
    undecided: &mut HashMap<RequestId, Instant>,
) -> Result<(), airlock_core::WorkflowError> {
    let mut todo = Vec::new();
    let mut before = None;
    loop {
        let filter = RequestFilter {
            statuses: vec![RequestStatus::Running, RequestStatus::RollingBack],
            before,
            limit: Some(100),
            ..RequestFilter::default()
        };
        let page = runner.workflow.list(&filter).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        // Runs on other engines are their executors' to settle.
        todo.extend(page.into_iter().filter(|r| {
            r.details.engine == airlock_core::Engine::Postgres && !runner.is_running_here(r.id)
        }));
    }
    undecided.retain(|id, _| todo.iter().any(|r| r.id == *id));
    let mut looks = tokio::task::JoinSet::new();
    for request in todo {
        let runner = runner.clone();
        looks.spawn(async move {
            let look = settle::look(&runner, &request).await;
            (request, look)
        });
    }
    while let Some(joined) = looks.join_next().await {
        let Ok((request, look)) = joined else {
            continue;
        };
        let id = request.id;
        let (verdict, note) = match look {
            Look::Live => {
                info!(
                    request = id.0,
                    "reconciler: run #{id} is live upstream, left alone"
                );
                undecided.remove(&id);
                continue;
            }
            // Its replica may be recording the result right now (the
            // backend closes just before): settled only when it is still
            // running one pass later.
            Look::Settled(_, _) if undecided.insert(id, Instant::now()).is_none() => continue,
            Look::Settled(verdict, note) => (verdict, note),
            Look::Retry(note) => {
                let since = *undecided.entry(id).or_insert_with(Instant::now);
                if since.elapsed() < PATIENCE {
                    info!(request = id.0, note = %note, "reconciler: cannot settle yet, looking again");
                    continue;
                }
                (
                    Settlement::Unknown,
                    format!("{note}, still after {}s", PATIENCE.as_secs()),
                )
            }
        };
        undecided.remove(&id);
        // The run may have ended on its replica since it was listed.
        if runner.is_running_here(id) {
            continue;
        }
        match runner.workflow.recover(id, verdict, &note).await {
            Ok(r) => warn!(
                request = id.0,
                from = request.status.as_str(),
                to = r.status.as_str(),
                note = %note,
                "reconciler: settled a request whose run is gone (not re-run)"
            ),
            Err(airlock_core::WorkflowError::Refused(_)) => {
                info!(
                    request = id.0,
                    "reconciler: the request was settled elsewhere meanwhile"
                );
            }
            Err(e) => warn!(request = id.0, error = %e, "reconciler: settling the request failed"),
        }
    }
    Ok(())
}
