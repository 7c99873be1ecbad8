//! The change-request state machine: every status, every event, and the one
//! table that says which event moves a request from which status to which.
//! The store makes each move a compare-and-set on the status.
//!
//! ```text
//! pending  --Approve(final)--> approved --StartRun--> running --Finish(ok)--> executed
//!    |  \--Reject--> rejected     |  \--Expire/Cancel        \--Finish(!ok)--> failed
//!    \--Expire/Cancel--> expired / cancelled                  \--Settle--> executed | failed | unknown
//! executed --StartRollback--> rolling_back --FinishRollback--> rolled_back | rollback_failed
//! unknown  --Settle(executed|failed)--> (an operator's manual verdict)
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a change request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved; may be run until its run deadline.
    Approved,
    /// Rejected by a reviewer.
    Rejected,
    /// Not approved, or not run, in time.
    Expired,
    /// Withdrawn by the requester or an admin.
    Cancelled,
    /// Being executed upstream right now.
    Running,
    /// Ran and committed.
    Executed,
    /// Ran and did not commit (error, guard tripped, timeout).
    Failed,
    /// Was running when the process died and the database could not say whether it committed.
    Unknown,
    /// Its rollback statement is being executed.
    RollingBack,
    /// Its rollback ran and committed.
    RolledBack,
    /// Its rollback did not commit.
    RollbackFailed,
}

impl RequestStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [RequestStatus; 12] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Rejected,
        RequestStatus::Expired,
        RequestStatus::Cancelled,
        RequestStatus::Running,
        RequestStatus::Executed,
        RequestStatus::Failed,
        RequestStatus::Unknown,
        RequestStatus::RollingBack,
        RequestStatus::RolledBack,
        RequestStatus::RollbackFailed,
    ];

    /// The lowercase name used in the store, the API and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Expired => "expired",
            RequestStatus::Cancelled => "cancelled",
            RequestStatus::Running => "running",
            RequestStatus::Executed => "executed",
            RequestStatus::Failed => "failed",
            RequestStatus::Unknown => "unknown",
            RequestStatus::RollingBack => "rolling_back",
            RequestStatus::RolledBack => "rolled_back",
            RequestStatus::RollbackFailed => "rollback_failed",
        }
    }

    /// Parses a name produced by [`RequestStatus::as_str`].
    pub fn parse(text: &str) -> Option<RequestStatus> {
        RequestStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Pending or approved: a decision or a run is still to come.
    pub fn is_open(self) -> bool {
        matches!(self, RequestStatus::Pending | RequestStatus::Approved)
    }

    /// No event can move a request out of this status.
    pub fn is_final(self) -> bool {
        RequestStatus::ALL
            .into_iter()
            .all(|to| !is_allowed(self, to))
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`RequestStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown request status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for RequestStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestStatus::parse(s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// How a request left `running` is settled after a crash (or by an operator from `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The upstream transaction committed.
    Executed,
    /// The upstream transaction aborted (or never started).
    Failed,
    /// The database cannot tell; never re-run automatically.
    Unknown,
}

/// Something that happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An approval was recorded; `final_approval` when it reaches the required count.
    Approve {
        /// Whether this approval completes the required number.
        final_approval: bool,
    },
    /// A reviewer rejected it.
    Reject,
    /// Its pending expiry or run window passed.
    Expire,
    /// The requester or an admin withdrew it.
    Cancel,
    /// A run was started.
    StartRun,
    /// The run ended; `ok` when it committed.
    Finish {
        /// Whether it committed.
        ok: bool,
    },
    /// Crash recovery (or an operator) settled a run whose end was not recorded.
    Settle(Settlement),
    /// Its rollback was started.
    StartRollback,
    /// The rollback ended; `ok` when it committed.
    FinishRollback {
        /// Whether it committed.
        ok: bool,
    },
}

impl Event {
    /// Verb used in messages ("approve", "run"...).
    pub fn verb(&self) -> &'static str {
        match self {
            Event::Approve { .. } => "approve",
            Event::Reject => "reject",
            Event::Expire => "expire",
            Event::Cancel => "cancel",
            Event::StartRun => "run",
            Event::Finish { .. } => "finish",
            Event::Settle(_) => "settle",
            Event::StartRollback => "roll back",
            Event::FinishRollback { .. } => "finish the rollback of",
        }
    }

    /// Every event, for exhaustive checks.
    pub const ALL: [Event; 14] = [
        Event::Approve {
            final_approval: false,
        },
        Event::Approve {
            final_approval: true,
        },
        Event::Reject,
        Event::Expire,
        Event::Cancel,
        Event::StartRun,
        Event::Finish { ok: true },
        Event::Finish { ok: false },
        Event::Settle(Settlement::Executed),
        Event::Settle(Settlement::Failed),
        Event::Settle(Settlement::Unknown),
        Event::StartRollback,
        Event::FinishRollback { ok: true },
        Event::FinishRollback { ok: false },
    ];
}

/// An event that cannot happen to a request in its current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a request that is {from}", .event.verb())]
pub struct TransitionError {
    /// The status the request is in.
    pub from: RequestStatus,
    /// What was attempted.
    pub event: Event,
}

/// The transition table: the status `event` moves a request in status `from` to.
pub fn transition(from: RequestStatus, event: Event) -> Result<RequestStatus, TransitionError> {
    use RequestStatus as S;
    let to = match (from, event) {
        (S::Pending, Event::Approve { final_approval }) => {
            if final_approval {
                S::Approved
            } else {
                S::Pending
            }
        }
        (S::Pending, Event::Reject) => S::Rejected,
        (S::Pending | S::Approved, Event::Expire) => S::Expired,
        (S::Pending | S::Approved, Event::Cancel) => S::Cancelled,
        (S::Approved, Event::StartRun) => S::Running,
        (S::Running, Event::Finish { ok: true }) => S::Executed,
        (S::Running, Event::Finish { ok: false }) => S::Failed,
        (S::Running, Event::Settle(Settlement::Executed)) => S::Executed,
        (S::Running, Event::Settle(Settlement::Failed)) => S::Failed,
        (S::Running, Event::Settle(Settlement::Unknown)) => S::Unknown,
        (S::Unknown, Event::Settle(Settlement::Executed)) => S::Executed,
        (S::Unknown, Event::Settle(Settlement::Failed)) => S::Failed,
        (S::Executed, Event::StartRollback) => S::RollingBack,
        (S::RollingBack, Event::FinishRollback { ok: true }) => S::RolledBack,
        (S::RollingBack, Event::FinishRollback { ok: false }) => S::RollbackFailed,
        _ => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

/// Whether some event moves a request from `from` to a different status `to`;
/// the store refuses any other compare-and-set.
pub fn is_allowed(from: RequestStatus, to: RequestStatus) -> bool {
    from != to
        && Event::ALL
            .into_iter()
            .any(|e| transition(from, e) == Ok(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestStatus as S;

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
        }
        assert!("approve".parse::<S>().is_err());
    }

    #[test]
    fn the_documented_paths() {
        assert_eq!(
            transition(
                S::Pending,
                Event::Approve {
                    final_approval: false
                }
            ),
            Ok(S::Pending)
        );
        assert_eq!(
            transition(
                S::Pending,
                Event::Approve {
                    final_approval: true
                }
            ),
            Ok(S::Approved)
        );
        assert_eq!(transition(S::Approved, Event::StartRun), Ok(S::Running));
        assert_eq!(
            transition(S::Running, Event::Finish { ok: true }),
            Ok(S::Executed)
        );
        assert_eq!(
            transition(S::Running, Event::Finish { ok: false }),
            Ok(S::Failed)
        );
        assert_eq!(
            transition(S::Executed, Event::StartRollback),
            Ok(S::RollingBack)
        );
        assert_eq!(
            transition(S::RollingBack, Event::FinishRollback { ok: true }),
            Ok(S::RolledBack)
        );
        assert_eq!(
            transition(S::RollingBack, Event::FinishRollback { ok: false }),
            Ok(S::RollbackFailed)
        );
        assert_eq!(
            transition(S::Running, Event::Settle(Settlement::Unknown)),
            Ok(S::Unknown)
        );
        assert_eq!(
            transition(S::Unknown, Event::Settle(Settlement::Executed)),
            Ok(S::Executed)
        );
    }

    #[test]
    fn nothing_runs_twice_or_without_approval() {
        for from in S::ALL {
            let started = transition(from, Event::StartRun);
            assert_eq!(started.is_ok(), from == S::Approved, "{from}");
        }
        assert!(transition(S::Unknown, Event::StartRun).is_err());
        assert!(transition(S::Failed, Event::StartRun).is_err());
        assert!(transition(S::Unknown, Event::Settle(Settlement::Unknown)).is_err());
        // A rollback only follows a committed change.
        for from in S::ALL {
            assert_eq!(
                transition(from, Event::StartRollback).is_ok(),
                from == S::Executed
            );
        }
    }

    #[test]
    fn decisions_only_on_open_requests() {
        for from in S::ALL {
            assert_eq!(transition(from, Event::Reject).is_ok(), from == S::Pending);
            assert_eq!(transition(from, Event::Cancel).is_ok(), from.is_open());
            assert_eq!(transition(from, Event::Expire).is_ok(), from.is_open());
        }
    }

    #[test]
    fn final_statuses() {
        let finals: Vec<S> = S::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            vec![
                S::Rejected,
                S::Expired,
                S::Cancelled,
                S::Failed,
                S::RolledBack,
                S::RollbackFailed
            ]
        );
        assert!(is_allowed(S::Pending, S::Approved));
        assert!(!is_allowed(S::Pending, S::Pending));
        assert!(!is_allowed(S::Pending, S::Running));
    }

    #[test]
    fn error_message_names_the_action() {
        let e = transition(S::Executed, Event::StartRun).expect_err("refused");
        assert_eq!(e.to_string(), "cannot run a request that is executed");
    }
}
