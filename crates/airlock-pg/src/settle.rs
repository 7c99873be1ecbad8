//! What became of a run whose process or connection went away, asked of
//! the target: is exactly the recorded backend still connected
//! (`pg_stat_activity`, by pid and start time, which a client cannot fake),
//! and did the recorded transaction commit (`pg_xact_status`)? Used by the
//! runner when its connection breaks mid-run and by the reconciler for
//! requests left `running` by a replica that is gone. Never re-runs anything.

use crate::executor::{self, ExecPlan};
use crate::runner::ChangeRunner;
use crate::upstream::Endpoint;
use airlock_core::{ChangeRequest, Credentials, RequestId, RequestStatus, Settlement};
use std::time::Duration;

/// A run started this recently without a recorded upstream session may be
/// connecting on its replica (for at most [`executor::CONNECT_TIMEOUT`]):
/// wait. Were it settled meanwhile, its replica could not record the
/// session (the compare-and-set needs `running`) and would run nothing.
pub const START_GRACE: Duration = Duration::from_secs(15);

/// One look at the target about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// The run's backend is connected: it is still running somewhere.
    Live,
    /// The outcome is known (or can never be).
    Settled(Settlement, String),
    /// Not yet decidable (transaction in progress, target unreachable…).
    Retry(String),
}

/// What `pg_xact_status(xid)` answered, as a look.
pub fn verdict_of(xid: &str, status: Option<&str>) -> Look {
    match status {
        Some("committed") => Look::Settled(
            Settlement::Executed,
            format!("pg_xact_status({xid}) = committed"),
        ),
        Some("aborted") => Look::Settled(
            Settlement::Failed,
            format!("pg_xact_status({xid}) = aborted"),
        ),
        Some("in progress") => Look::Retry(format!("pg_xact_status({xid}) = in progress")),
        Some(other) => Look::Settled(
            Settlement::Unknown,
            format!("pg_xact_status({xid}) = {other}"),
        ),
        None => Look::Settled(
            Settlement::Unknown,
            format!(
                "pg_xact_status({xid}) cannot tell (too old or not a transaction of this database)"
            ),
        ),
    }
}

/// Asks the target whether transaction `xid` committed.
pub async fn xact_look(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    xid: &str,
) -> Look {
    match executor::xact_status(endpoint, creds, database, xid).await {
        Ok(status) => verdict_of(xid, status.as_deref()),
        Err(e) => Look::Retry(format!(
            "asking the target about transaction {xid} failed: {e}"
        )),
    }
}

/// Looks at request `request` (running or rolling back) on its target.
pub async fn look(runner: &ChangeRunner, request: &ChangeRequest) -> Look {
    let record = if request.status == RequestStatus::RollingBack {
        &request.rollback_run
    } else {
        &request.run
    };
    let (snapshot, targets) = crate::targets::consistent(&runner.live, &runner.targets);
    let config = &snapshot.config;
    let target = config.target(&request.details.target);
    let creds = target.and_then(|t| t.write_credentials.as_ref());
    let endpoint = targets.endpoint(&request.details.target);
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
    let live = match record.upstream_backend.as_deref() {
        Some(backend) => backend_is_live(endpoint, creds, database, backend).await,
        // Recorded by an older airlock: its runs are known by name only.
        None if record.upstream_xid.is_some() => {
            labelled_run_is_live(endpoint, creds, database, request.id).await
        }
        None => Ok(false),
    };
    match live {
        Ok(true) => return Look::Live,
        Ok(false) => {}
        Err(e) => {
            return Look::Retry(format!(
                "asking the target about the session of run #{} failed: {e}",
                request.id
            ))
        }
    }
    match (record.upstream_xid.as_deref(), record.upstream_backend.as_deref()) {
        (Some(xid), _) => xact_look(endpoint, creds, database, xid).await,
        (None, Some(backend)) => Look::Settled(
            Settlement::Unknown,
            format!(
                "the statement ran outside a transaction on backend {backend}, which is gone; whether it completed cannot be told"
            ),
        ),
        (None, None) => {
            let started = record.started_at.map(|t| t.to_system());
            let recent = started
                .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age < START_GRACE);
            if recent {
                Look::Retry("the run has only just started".to_string())
            } else {
                Look::Settled(
                    Settlement::Unknown,
                    "no upstream session was recorded before the run was interrupted".to_string(),
                )
            }
        }
    }
}

/// `<pid>@<epoch>` into its parts, each checked to be a plain number.
fn backend_parts(backend: &str) -> Option<(&str, &str)> {
    let (pid, start) = backend.split_once('@')?;
    let number = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    (number(pid) && number(start) && !pid.contains('.')).then_some((pid, start))
}

/// Whether backend `<pid>@<backend_start epoch>` is connected right now.
async fn backend_is_live(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    backend: &str,
) -> Result<bool, String> {
    let Some((pid, start)) = backend_parts(backend) else {
        return Err(format!("not a recorded backend: {backend:?}"));
    };
    count_sessions(
        endpoint,
        creds,
        database,
        &format!(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = {pid} \
             AND extract(epoch FROM backend_start)::text = '{start}'"
        ),
    )
    .await
    .map(|n| n > 0)
}

/// Whether a session labelled as run `id` (`airlock:run#<id>:<user>`) is
/// connected: the check for runs recorded before backends were.
async fn labelled_run_is_live(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    id: RequestId,
) -> Result<bool, String> {
    count_sessions(
        endpoint,
        creds,
        database,
        &format!(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity \
             WHERE application_name LIKE 'airlock:run#{}:%' \
             AND datname = current_database() AND pid <> pg_backend_pid()",
            id.0
        ),
    )
    .await
    .map(|n| n > 0)
}

async fn count_sessions(
    endpoint: &Endpoint,
    creds: &Credentials,
    database: &str,
    sql: &str,
) -> Result<i64, String> {
    let plan = ExecPlan {
        database: database.to_string(),
        sql: sql.to_string(),
        params: Vec::new(),
        statement_timeout: Some(Duration::from_secs(10)),
        lock_timeout: None,
        max_rows: None,
        in_transaction: false,
        application_name: "airlock:recovery".to_string(),
    };
    let outcome = executor::execute(endpoint, creds, &plan, |_| async { Ok(()) })
        .await
        .map_err(|e| e.to_string())?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    let count = outcome
        .frames
        .iter()
        .find(|f| f.first() == Some(&b'D'))
        .and_then(|f| executor::first_column(f))
        .ok_or_else(|| "pg_stat_activity returned no row".to_string())?;
    count
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("unexpected count {count:?} from pg_stat_activity"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xact_status_answers_map_to_verdicts() {
        assert!(matches!(
            verdict_of("7", Some("committed")),
            Look::Settled(Settlement::Executed, _)
        ));
        assert!(matches!(
            verdict_of("7", Some("aborted")),
            Look::Settled(Settlement::Failed, _)
        ));
        assert!(matches!(
            verdict_of("7", Some("in progress")),
            Look::Retry(_)
        ));
        assert!(matches!(
            verdict_of("7", None),
            Look::Settled(Settlement::Unknown, _)
        ));
    }

    #[test]
    fn recorded_backends_are_plain_numbers() {
        assert_eq!(
            backend_parts("4242@1764690000.123456"),
            Some(("4242", "1764690000.123456"))
        );
        assert_eq!(backend_parts("4242"), None);
        assert_eq!(backend_parts("42.1@1"), None);
        assert_eq!(backend_parts("1@1'; DROP TABLE t; --"), None);
        assert_eq!(backend_parts("@1"), None);
    }
}
