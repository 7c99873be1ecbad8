//! Waiting for a decision (`airlock.wait`), the same for every wire
//! protocol: the session blocks until the request is decided, the limit
//! passes, the client cancels or goes away. Woken by the store's events (a
//! decision on any replica), with a slow poll as a safety net. Only timers
//! and the store port: the protocol's keepalives go through `tick`.

use crate::ports::StoreEvent;
use crate::request::state::RequestStatus;
use crate::request::{ChangeRequest, RequestId};
use crate::workflow::{Workflow, WorkflowError};
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    /// The request left `pending` (approved, rejected, expired, cancelled…).
    Decided(Box<ChangeRequest>),
    /// The limit passed; the request stays pending.
    TimedOut,
    /// The client cancelled (Ctrl-C, `KILL QUERY`).
    Cancelled,
    /// The client went away.
    Gone,
    /// The store failed.
    Failed(WorkflowError),
}

/// The timing of a wait.
#[derive(Debug, Clone, Copy)]
pub struct WaitTiming {
    /// The developer's `airlock.wait`.
    pub limit: Duration,
    /// The safety-net poll (`server.wait_safety_poll`).
    pub safety_poll: Duration,
    /// How often `tick` is called with the time waited so far.
    pub tick_every: Duration,
}

/// `airlock.wait`: `None` for no wait (unset, `off`, `0`), else the limit;
/// `Err` carries the text that is not a duration.
pub fn wait_limit(value: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(v) = value.map(str::trim) else {
        return Ok(None);
    };
    if v.is_empty()
        || ["off", "false", "no", "0"]
            .iter()
            .any(|o| v.eq_ignore_ascii_case(o))
    {
        return Ok(None);
    }
    match humantime::parse_duration(v) {
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) => Ok(Some(d)),
        Err(_) => Err(v.to_string()),
    }
}

/// Blocks until request `id` leaves `pending`, `timing.limit` passes,
/// `cancelled` or `gone` completes; calls `tick` every `timing.tick_every`.
pub async fn wait_for_decision<C, G, T>(
    workflow: &Workflow,
    id: RequestId,
    timing: WaitTiming,
    cancelled: C,
    gone: G,
    mut tick: T,
) -> Waited
where
    C: Future<Output = ()>,
    G: Future<Output = ()>,
    T: FnMut(Duration),
{
    let started = Instant::now();
    let deadline = started + timing.limit;
    let mut last_tick = started;
    // Subscribed before the first look, so no decision falls in between.
    let mut events = Some(workflow.store().subscribe());
    tokio::pin!(cancelled);
    tokio::pin!(gone);
    let mut look = true;
    loop {
        if look {
            match workflow.get(id).await {
                Ok(r) if r.status == RequestStatus::Pending => {}
                Ok(r) => return Waited::Decided(Box::new(r)),
                Err(e) => return Waited::Failed(e),
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Waited::TimedOut;
        }
        if now.duration_since(last_tick) >= timing.tick_every {
            last_tick = now;
            tick(started.elapsed());
        }
        let wake = deadline
            .min(last_tick + timing.tick_every)
            .min(now + timing.safety_poll);
        let event = async {
            match events.as_mut() {
                Some(rx) => Some(rx.recv().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut cancelled => return Waited::Cancelled,
            _ = &mut gone => return Waited::Gone,
            ev = event => {
                look = match ev {
                    Some(Ok(StoreEvent::Request(changed))) => changed == id,
                    Some(Ok(StoreEvent::Outbox)) => false,
                    Some(Ok(StoreEvent::Resync)) | Some(Err(RecvError::Lagged(_))) => true,
                    // The store's announcer is gone: poll from now on.
                    Some(Err(RecvError::Closed)) | None => {
                        events = None;
                        true
                    }
                };
            }
            _ = tokio::time::sleep_until(wake) => look = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_limits() {
        assert_eq!(wait_limit(None), Ok(None));
        assert_eq!(wait_limit(Some(" off ")), Ok(None));
        assert_eq!(wait_limit(Some("0")), Ok(None));
        assert_eq!(wait_limit(Some("0s")), Ok(None));
        assert_eq!(
            wait_limit(Some("10min")),
            Ok(Some(Duration::from_secs(600)))
        );
        assert_eq!(wait_limit(Some("soon")), Err("soon".to_string()));
    }
}
