//! Settles MySQL runs whose process died (kill -9, a lost replica): on the
//! one replica holding the `reconciler-mysql` lease, every few seconds, each
//! request left running or rolling back whose run is not in flight here is
//! looked at on its target, exactly and never re-run:
//! - its recorded connection still in the processlist: live, left alone;
//! - its XA transaction listed by `XA RECOVER` (prepared: the change ran
//!   to its end and passed the row guard): committed with `XA COMMIT` →
//!   executed;
//! - recorded prepared and no longer listed: it was committed → executed;
//! - never prepared and its connection gone: the server rolled the active
//!   XA transaction back → failed;
//! - run outside a transaction (DDL) and gone: unknown.

use crate::executor::MysqlRunner;
use crate::upstream::{self, Upstream, UpstreamSpec};
use airlock_core::request::{ChangeRequest, RequestFilter, RequestId, RequestStatus};
use airlock_core::{Engine, Settlement, Target};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The store lease only one replica holds.
pub const LEASE: &str = "reconciler-mysql";

/// How long a run that cannot be looked at stays undecided before it is
/// settled unknown.
const PATIENCE: Duration = Duration::from_secs(120);

/// What a look at a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// The run's connection is still there.
    Live,
    /// Settled so, with a note; `commit` names an XA transaction to commit first.
    Settled {
        /// The verdict.
        verdict: Settlement,
        /// Why.
        note: String,
        /// A prepared XA transaction to commit before recording `Executed`.
        commit: Option<String>,
    },
    /// Cannot tell yet.
    Retry(String),
}

/// Decides from what the target said (pure): whether the recorded
/// connection is live, the recorded XA id and phase, and the prepared ids.
pub fn decide(live: bool, recorded_xid: Option<&str>, prepared: &[String]) -> Look {
    if live {
        return Look::Live;
    }
    let Some(x) = recorded_xid.and_then(|x| x.strip_prefix("xa:")) else {
        return Look::Settled {
            verdict: Settlement::Unknown,
            note: "the statement ran outside a transaction and its connection is gone; whether it completed cannot be told".into(),
            commit: None,
        };
    };
    let (xid, was_prepared) = match x.strip_suffix(":prepared") {
        Some(id) => (id, true),
        None => (x, false),
    };
    if prepared.iter().any(|p| p == xid) {
        return Look::Settled {
            verdict: Settlement::Executed,
            note: format!("XA transaction {xid} was prepared (the change ran to its end and passed the row guard): committed by the reconciler"),
            commit: Some(xid.to_string()),
        };
    }
    if was_prepared {
        Look::Settled {
            verdict: Settlement::Executed,
            note: format!(
                "XA transaction {xid} was prepared and is no longer pending: it committed"
            ),
            commit: None,
        }
    } else {
        Look::Settled {
            verdict: Settlement::Failed,
            note: format!("XA transaction {xid} was never prepared and its connection is gone: the server rolled it back"),
            commit: None,
        }
    }
}

async fn connect(target: &Target) -> Result<Upstream, String> {
    let creds = target
        .write_credentials
        .as_ref()
        .ok_or_else(|| format!("target {} has no write credentials", target.name))?;
    let mut spec = UpstreamSpec::own(
        target,
        Some(creds),
        "airlock:reconciler",
        Duration::from_secs(10),
    );
    spec.capabilities |= crate::caps::TRANSACTIONS;
    upstream::connect(&spec).await.map_err(|e| e.to_string())
}

/// Looks at one interrupted run on its target.
pub async fn look(runner: &MysqlRunner, request: &ChangeRequest) -> Look {
    let record = if request.status == RequestStatus::RollingBack {
        &request.rollback_run
    } else {
        &request.run
    };
    let config = runner.live().current();
    let Some(target) = config.target(&request.details.target).cloned() else {
        return Look::Settled {
            verdict: Settlement::Unknown,
            note: format!(
                "target {:?} is no longer configured",
                request.details.target
            ),
            commit: None,
        };
    };
    let mut up = match connect(&target).await {
        Ok(u) => u,
        Err(e) => return Look::Retry(format!("connecting to {}: {e}", target.name)),
    };
    let thread = record
        .upstream_backend
        .as_deref()
        .and_then(|b| b.split('@').next())
        .and_then(|t| t.parse::<u64>().ok());
    let live = match thread {
        Some(t) => match up
            .query_value(&format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {t}"
            ))
            .await
        {
            Ok(Ok(v)) => v.as_deref() == Some("1"),
            Ok(Err(e)) => return Look::Retry(format!("reading the processlist: {}", e.message)),
            Err(e) => return Look::Retry(format!("reading the processlist: {e}")),
        },
        None => false,
    };
    let prepared = match up.query_rows("XA RECOVER").await {
        // formatID, gtrid_length, bqual_length, data
        Ok(Ok(rows)) => rows
            .into_iter()
            .filter_map(|r| r.get(3).cloned().flatten())
            .collect::<Vec<_>>(),
        Ok(Err(e)) => return Look::Retry(format!("XA RECOVER: {}", e.message)),
        Err(e) => return Look::Retry(format!("XA RECOVER: {e}")),
    };
    let look = decide(live, record.upstream_xid.as_deref(), &prepared);
    if let Look::Settled {
        commit: Some(xid), ..
    } = &look
    {
        match up.simple_query(&format!("XA COMMIT '{xid}'")).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Look::Retry(format!("XA COMMIT {xid}: {}", e.message)),
            Err(e) => return Look::Retry(format!("XA COMMIT {xid}: {e}")),
        }
    }
    look
}

/// Runs until `stop`, one pass every `interval` while holding the lease.
pub async fn run(runner: MysqlRunner, owner: String, interval: Duration, stop: CancellationToken) {
    let ttl = interval.saturating_mul(3).max(Duration::from_secs(3));
    let mut undecided: HashMap<RequestId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let workflow = runner.workflow().clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match workflow
            .store()
            .try_lease(LEASE, &owner, workflow.now(), ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                undecided.clear();
                continue;
            }
            Err(e) => {
                warn!(error = %e, "mysql reconciler: cannot take the lease");
                continue;
            }
        }
        let filter = RequestFilter {
            statuses: vec![RequestStatus::Running, RequestStatus::RollingBack],
            limit: Some(100),
            ..RequestFilter::default()
        };
        let todo: Vec<ChangeRequest> = match workflow.list(&filter).await {
            Ok(list) => list
                .into_iter()
                .filter(|r| r.details.engine == Engine::Mysql && !runner.is_running_here(r.id))
                .collect(),
            Err(e) => {
                warn!(error = %e, "mysql reconciler: listing requests failed");
                continue;
            }
        };
        undecided.retain(|id, _| todo.iter().any(|r| r.id == *id));
        for request in todo {
            let id = request.id;
            let (verdict, note) = match look(&runner, &request).await {
                Look::Live => {
                    undecided.remove(&id);
                    continue;
                }
                Look::Settled { verdict, note, .. } => (verdict, note),
                Look::Retry(note) => {
                    let since = *undecided.entry(id).or_insert_with(Instant::now);
                    if since.elapsed() < PATIENCE {
                        info!(request = id.0, %note, "mysql reconciler: cannot settle yet");
                        continue;
                    }
                    (
                        Settlement::Unknown,
                        format!("{note}, still after {}s", PATIENCE.as_secs()),
                    )
                }
            };
            undecided.remove(&id);
            if runner.is_running_here(id) {
                continue;
            }
            match workflow.recover(id, verdict, &note).await {
                Ok(r) => {
                    warn!(request = id.0, to = r.status.as_str(), %note, "mysql reconciler: settled a run whose process is gone (not re-run)")
                }
                Err(e) => {
                    info!(request = id.0, error = %e, "mysql reconciler: settled elsewhere meanwhile")
                }
            }
        }
    }
    let _ = workflow
        .store()
        .try_lease(LEASE, &owner, workflow.now(), Duration::ZERO)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_exact() {
        assert_eq!(decide(true, Some("xa:airlock-1"), &[]), Look::Live);
        let ids = vec!["airlock-1".to_string()];
        assert!(matches!(
            decide(false, Some("xa:airlock-1"), &ids),
            Look::Settled {
                verdict: Settlement::Executed,
                commit: Some(_),
                ..
            }
        ));
        assert!(matches!(
            decide(false, Some("xa:airlock-1:prepared"), &[]),
            Look::Settled {
                verdict: Settlement::Executed,
                commit: None,
                ..
            }
        ));
        assert!(matches!(
            decide(false, Some("xa:airlock-1"), &[]),
            Look::Settled {
                verdict: Settlement::Failed,
                ..
            }
        ));
        assert!(matches!(
            decide(false, None, &[]),
            Look::Settled {
                verdict: Settlement::Unknown,
                ..
            }
        ));
        // Another request's prepared transaction is not this one.
        assert!(matches!(
            decide(false, Some("xa:airlock-1"), &["airlock-12".to_string()]),
            Look::Settled {
                verdict: Settlement::Failed,
                ..
            }
        ));
    }
}
