//! Ports: what the core needs from the outside world, implemented by outer
//! crates (`airlock-store` implements [`Store`]). Futures are boxed so the
//! ports can be used as `Arc<dyn Store>`.

use crate::audit::{AuditEvent, AuditHead, NewAuditEvent};
use crate::request::approval::{ApprovalOutcome, Refusal};
use crate::request::matching::ExactMatch;
use crate::request::{
    Approval, ChangeRequest, EarlierRun, Execution, RequestDetails, RequestFilter, RequestId,
    RequestPatch, RequestStatus, UpstreamSession,
};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed, `Send` future, as every port method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request does not exist.
    #[error("request {0} not found")]
    NotFound(RequestId),
    /// The state machine does not allow this compare-and-set.
    #[error("a request cannot go from {from} to {to}")]
    InvalidTransition {
        /// Expected current status.
        from: RequestStatus,
        /// Requested new status.
        to: RequestStatus,
    },
    /// Another request is already open (pending or approved) for exactly
    /// this statement of this requester on this target.
    #[error("request {0} is already open for this statement")]
    AlreadyOpen(RequestId),
    /// A stored value cannot be read back (bad status name, bad JSON…).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database refused or failed the operation.
    #[error("store error: {0}")]
    Backend(String),
}

/// A status change, written as one compare-and-set with its audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The status the request must still be in.
    pub from: RequestStatus,
    /// The new status.
    pub to: RequestStatus,
    /// Fields to set with it.
    pub patch: RequestPatch,
    /// The audit event, appended in the same transaction.
    pub event: NewAuditEvent,
}

/// Which earlier runs to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierRunsQuery {
    /// The family.
    pub family: String,
    /// The fingerprint.
    pub fingerprint: String,
    /// The family's environments below the request's (empty: nothing is found).
    pub environments: Vec<String>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// A notification to deliver (Slack message, DM…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOutboxMessage {
    /// What kind of message (`request` for request changes; consumers pick theirs).
    pub topic: String,
    /// The request concerned.
    pub request_id: Option<RequestId>,
    /// JSON body.
    pub payload: String,
    /// When it was enqueued.
    pub at: Timestamp,
}

/// A message taken from the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Its id.
    pub id: i64,
    /// Topic.
    pub topic: String,
    /// The request concerned.
    pub request_id: Option<RequestId>,
    /// JSON body.
    pub payload: String,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// Delivery attempts so far, this one included.
    pub attempts: u32,
    /// Error of the previous attempt.
    pub last_error: Option<String>,
}

/// A claim on outbox messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxClaim {
    /// Who claims (a replica id); only it may ack or retry the messages.
    pub owner: String,
    /// Only messages of this topic (all when `None`).
    pub topic: Option<String>,
    /// Now.
    pub now: Timestamp,
    /// How long the claim holds; after that another owner may take the message.
    pub lease: Duration,
    /// At most this many messages.
    pub limit: u32,
}

/// A chat message airlock posted about a request (e.g. the Slack review
/// message, or a DM to the requester), so it is posted once and then updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessageRef {
    /// The request.
    pub request_id: RequestId,
    /// What the message is for (`slack:review`, `slack:dm:approved`…).
    pub purpose: String,
    /// Channel (or DM conversation) id.
    pub channel: String,
    /// The chat tool's message id (Slack's `ts`).
    pub ts: String,
    /// When it was posted.
    pub posted_at: Timestamp,
}

/// The durable state: change requests, approvals, executions, the audit
/// chain and the notification outbox.
///
/// Every method that changes a request's status is a compare-and-set on the
/// status and appends its audit event in the same transaction, so two
/// replicas (or two clicks) cannot both win. Request changes made by
/// [`Store::create_request`], [`Store::record_approval`], [`Store::transition`]
/// and [`Store::expire_due`] also enqueue, in that transaction, an outbox
/// message with topic `request` and payload `{"kind": <audit kind>, "seq": <audit seq>}`
/// (unless the store was configured without it).
pub trait Store: Send + Sync {
    /// Creates a pending request and its `request.created` audit event.
    fn create_request<'a>(
        &'a self,
        details: &'a RequestDetails,
    ) -> BoxFuture<'a, Result<ChangeRequest, StoreError>>;

    /// One request.
    fn get_request(
        &self,
        id: RequestId,
    ) -> BoxFuture<'_, Result<Option<ChangeRequest>, StoreError>>;

    /// Requests matching a filter, newest first.
    fn list_requests<'a>(
        &'a self,
        filter: &'a RequestFilter,
    ) -> BoxFuture<'a, Result<Vec<ChangeRequest>, StoreError>>;

    /// The newest pending or approved request for exactly this statement,
    /// parameters, target and requester (SPEC §4.3).
    fn find_open_exact<'a>(
        &'a self,
        key: &'a ExactMatch,
    ) -> BoxFuture<'a, Result<Option<ChangeRequest>, StoreError>>;

    /// The approvals recorded for a request, oldest first.
    fn approvals(&self, id: RequestId) -> BoxFuture<'_, Result<Vec<Approval>, StoreError>>;

    /// Records an approval in one transaction: the request must still be
    /// pending and not expired, the approver must not have approved already;
    /// when the distinct approvers reach the request's `approvals_required`,
    /// the request moves pending → approved (compare-and-set) with
    /// `approved_at` and `run_deadline`. Writes `approval.recorded` (and
    /// `request.approved`) audit events. A refusal found inside the
    /// transaction (a race lost) is returned as `Ok(Err(refusal))`.
    fn record_approval<'a>(
        &'a self,
        approval: &'a Approval,
    ) -> BoxFuture<'a, Result<Result<ApprovalOutcome, Refusal>, StoreError>>;

    /// Compare-and-set of the status with the patch and the audit event in one
    /// transaction. `Ok(false)` when the request was not in `change.from`
    /// (the race was lost; nothing was written).
    fn transition<'a>(
        &'a self,
        id: RequestId,
        change: &'a StatusChange,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records the upstream session (backend, transaction id) of a request
    /// that is `running` (into `run`) or `rolling_back` (into
    /// `rollback_run`), before the change runs. `Ok(false)` when the
    /// request is not in `during`.
    fn set_upstream_session<'a>(
        &'a self,
        id: RequestId,
        during: RequestStatus,
        session: &'a UpstreamSession,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Moves every pending request past its expiry and every approved request
    /// past its run deadline to `expired`, each with its audit event. Returns
    /// the requests expired and the status each left.
    fn expire_due(
        &self,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<(RequestId, RequestStatus)>, StoreError>>;

    /// Records a non-read statement that ran on some target.
    fn record_execution<'a>(
        &'a self,
        execution: &'a Execution,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Successful and failed runs of a fingerprint in the given environments of a family.
    fn earlier_runs<'a>(
        &'a self,
        query: &'a EarlierRunsQuery,
    ) -> BoxFuture<'a, Result<Vec<EarlierRun>, StoreError>>;

    /// Appends an event to the audit chain.
    fn append_audit<'a>(
        &'a self,
        event: &'a NewAuditEvent,
    ) -> BoxFuture<'a, Result<AuditEvent, StoreError>>;

    /// Events with `seq > after_seq`, in sequence order, at most `limit`.
    fn audit_events(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<AuditEvent>, StoreError>>;

    /// The chain's current head ([`AuditHead::genesis`] when empty).
    fn audit_head(&self) -> BoxFuture<'_, Result<AuditHead, StoreError>>;

    /// Adds a message to the outbox; returns its id.
    fn enqueue_outbox<'a>(
        &'a self,
        message: &'a NewOutboxMessage,
    ) -> BoxFuture<'a, Result<i64, StoreError>>;

    /// Claims up to `limit` undelivered messages whose lease is free, oldest
    /// first; no two owners hold the same message at once. A message about a
    /// request is not claimable while an earlier message of the same topic
    /// about the same request is undelivered, so each request's messages are
    /// delivered in order.
    fn claim_outbox<'a>(
        &'a self,
        claim: &'a OutboxClaim,
    ) -> BoxFuture<'a, Result<Vec<OutboxMessage>, StoreError>>;

    /// Marks a claimed message delivered; `Ok(false)` if `owner` no longer holds it.
    fn ack_outbox<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Releases a claimed message for another attempt at `retry_at`.
    fn retry_outbox<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        error: &'a str,
        retry_at: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Takes or renews a named lease (e.g. `outbox-drainer`) until `now + ttl`;
    /// `Ok(true)` when `owner` holds it afterwards. One replica at a time.
    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        now: Timestamp,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The message posted for `purpose` about a request, if any.
    fn chat_message<'a>(
        &'a self,
        request_id: RequestId,
        purpose: &'a str,
    ) -> BoxFuture<'a, Result<Option<ChatMessageRef>, StoreError>>;

    /// Records a posted message; `Ok(false)` when one was already recorded
    /// for that request and purpose (the first one stays).
    fn record_chat_message<'a>(
        &'a self,
        message: &'a ChatMessageRef,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records a message that replaces the one posted for the same request
    /// and purpose (e.g. the review message was deleted in Slack and posted again).
    fn replace_chat_message<'a>(
        &'a self,
        message: &'a ChatMessageRef,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Remembers a one-time value (an accepted interaction payload's
    /// signature); `Ok(false)` when it was seen before, i.e. a replay. Values
    /// seen before `forget_before` are dropped.
    fn remember_nonce<'a>(
        &'a self,
        nonce: &'a str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// How many requests are in each status (for metrics).
    fn request_counts(&self) -> BoxFuture<'_, Result<Vec<(RequestStatus, i64)>, StoreError>>;

    /// Outbox messages not yet delivered (for metrics).
    fn outbox_depth(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// Changes committed to the store from now on, by this process or (on a
    /// shared store) any other: waiting sessions and the Slack deliverer
    /// wake on them instead of polling. Delivery is best effort — a
    /// [`StoreEvent::Resync`] or a lagged receiver means "look again" — so
    /// a waiter keeps a slow poll as a safety net.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;
}

/// Which replica owns which client session (backend key → the replica's
/// address), so a CancelRequest that reaches another replica is forwarded to
/// the owner (SPEC §10). Implemented by a store that replicas share.
pub trait SessionDirectory: Send + Sync {
    /// Records that session `(pid, key)` lives on replica `owner`.
    fn register_session<'a>(
        &'a self,
        pid: i32,
        key: i32,
        owner: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets session `(pid, key)` of `owner`.
    fn forget_session<'a>(
        &'a self,
        pid: i32,
        key: i32,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The replica that owns session `(pid, key)`, if any.
    fn session_owner(
        &self,
        pid: i32,
        key: i32,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>>;

    /// Forgets every session of `owner` (a replica starting again at the
    /// same address); returns how many.
    fn forget_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// Told of every status change the workflow makes (metrics). Called after
/// the change is committed; must not block.
pub trait TransitionObserver: Send + Sync {
    /// `request` (its new status in `request.status`) left `from` at `now`.
    fn transition(&self, request: &ChangeRequest, from: RequestStatus, now: Timestamp);
}

/// A change committed to the store, as announced to [`Store::subscribe`]rs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// A request was created or changed (status, approvals, run record).
    Request(RequestId),
    /// An outbox message was queued.
    Outbox,
    /// Changes may have been missed (the store's notification connection
    /// was re-established): every waiter looks again.
    Resync,
}

impl StoreEvent {
    /// The text sent over a shared store's notification channel.
    pub fn to_payload(self) -> String {
        match self {
            StoreEvent::Request(id) => format!("request:{}", id.0),
            StoreEvent::Outbox => "outbox".to_string(),
            StoreEvent::Resync => "resync".to_string(),
        }
    }

    /// Parses [`StoreEvent::to_payload`]'s text; `None` for anything else.
    pub fn from_payload(text: &str) -> Option<StoreEvent> {
        match text {
            "outbox" => Some(StoreEvent::Outbox),
            "resync" => Some(StoreEvent::Resync),
            _ => text
                .strip_prefix("request:")
                .and_then(|n| n.parse::<i64>().ok())
                .map(|n| StoreEvent::Request(RequestId(n))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_payloads_round_trip() {
        for e in [
            StoreEvent::Request(RequestId(42)),
            StoreEvent::Outbox,
            StoreEvent::Resync,
        ] {
            assert_eq!(StoreEvent::from_payload(&e.to_payload()), Some(e));
        }
        assert_eq!(StoreEvent::from_payload("request:x"), None);
        assert_eq!(StoreEvent::from_payload(""), None);
    }
}
