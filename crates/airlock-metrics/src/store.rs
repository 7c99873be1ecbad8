//! [`MeteredStore`]: a [`Store`] that times every operation of the store
//! it wraps (`airlock_store_operation_seconds{op}`) and counts failures.

use crate::Metrics;
use airlock_core::audit::{AuditEvent, AuditHead, NewAuditEvent};
use airlock_core::ports::{
    BoxFuture, ChatMessageRef, EarlierRunsQuery, NewOutboxMessage, OutboxClaim, OutboxMessage,
    StatusChange, Store, StoreError, StoreEvent,
};
use airlock_core::request::matching::ExactMatch;
use airlock_core::{
    Approval, ApprovalOutcome, ChangeRequest, EarlierRun, Execution, Refusal, RequestDetails,
    RequestFilter, RequestId, RequestStatus, Timestamp, UpstreamSession,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times every call to `inner`.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Metrics) -> Self {
        MeteredStore { inner, metrics }
    }
}

impl Store for MeteredStore {
    fn create_request<'a>(
        &'a self,
        details: &'a RequestDetails,
    ) -> BoxFuture<'a, Result<ChangeRequest, StoreError>> {
        let started = Instant::now();
        let call = self.inner.create_request(details);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("create_request", started.elapsed(), out.is_err());
            out
        })
    }

    fn get_request(
        &self,
        id: RequestId,
    ) -> BoxFuture<'_, Result<Option<ChangeRequest>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.get_request(id);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("get_request", started.elapsed(), out.is_err());
            out
        })
    }

    fn list_requests<'a>(
        &'a self,
        filter: &'a RequestFilter,
    ) -> BoxFuture<'a, Result<Vec<ChangeRequest>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.list_requests(filter);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("list_requests", started.elapsed(), out.is_err());
            out
        })
    }

    fn find_open_exact<'a>(
        &'a self,
        key: &'a ExactMatch,
    ) -> BoxFuture<'a, Result<Option<ChangeRequest>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.find_open_exact(key);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("find_open_exact", started.elapsed(), out.is_err());
            out
        })
    }

    fn approvals(&self, id: RequestId) -> BoxFuture<'_, Result<Vec<Approval>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.approvals(id);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("approvals", started.elapsed(), out.is_err());
            out
        })
    }

    fn record_approval<'a>(
        &'a self,
        approval: &'a Approval,
    ) -> BoxFuture<'a, Result<Result<ApprovalOutcome, Refusal>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.record_approval(approval);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("record_approval", started.elapsed(), out.is_err());
            out
        })
    }

    fn transition<'a>(
        &'a self,
        id: RequestId,
        change: &'a StatusChange,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let started = Instant::now();
        let call = self.inner.transition(id, change);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("transition", started.elapsed(), out.is_err());
            out
        })
    }

    fn set_upstream_session<'a>(
        &'a self,
        id: RequestId,
        during: RequestStatus,
        session: &'a UpstreamSession,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let started = Instant::now();
        let call = self.inner.set_upstream_session(id, during, session);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("set_upstream_session", started.elapsed(), out.is_err());
            out
        })
    }

    fn expire_due(
        &self,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<(RequestId, RequestStatus)>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.expire_due(now);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("expire_due", started.elapsed(), out.is_err());
            out
        })
    }

    fn record_execution<'a>(
        &'a self,
        execution: &'a Execution,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let started = Instant::now();
        let call = self.inner.record_execution(execution);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("record_execution", started.elapsed(), out.is_err());
            out
        })
    }

    fn earlier_runs<'a>(
        &'a self,
        query: &'a EarlierRunsQuery,
    ) -> BoxFuture<'a, Result<Vec<EarlierRun>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.earlier_runs(query);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("earlier_runs", started.elapsed(), out.is_err());
            out
        })
    }

    fn append_audit<'a>(
        &'a self,
        event: &'a NewAuditEvent,
    ) -> BoxFuture<'a, Result<AuditEvent, StoreError>> {
        let started = Instant::now();
        let call = self.inner.append_audit(event);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("append_audit", started.elapsed(), out.is_err());
            out
        })
    }

    fn audit_events(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<AuditEvent>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.audit_events(after_seq, limit);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("audit_events", started.elapsed(), out.is_err());
            out
        })
    }

    fn audit_head(&self) -> BoxFuture<'_, Result<AuditHead, StoreError>> {
        let started = Instant::now();
        let call = self.inner.audit_head();
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("audit_head", started.elapsed(), out.is_err());
            out
        })
    }

    fn enqueue_outbox<'a>(
        &'a self,
        message: &'a NewOutboxMessage,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        let started = Instant::now();
        let call = self.inner.enqueue_outbox(message);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("enqueue_outbox", started.elapsed(), out.is_err());
            out
        })
    }

    fn claim_outbox<'a>(
        &'a self,
        claim: &'a OutboxClaim,
    ) -> BoxFuture<'a, Result<Vec<OutboxMessage>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.claim_outbox(claim);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("claim_outbox", started.elapsed(), out.is_err());
            out
        })
    }

    fn ack_outbox<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let started = Instant::now();
        let call = self.inner.ack_outbox(id, owner, now);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("ack_outbox", started.elapsed(), out.is_err());
            out
        })
    }

    fn retry_outbox<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        error: &'a str,
        retry_at: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let started = Instant::now();
        let call = self.inner.retry_outbox(id, owner, error, retry_at);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("retry_outbox", started.elapsed(), out.is_err());
            out
        })
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        now: Timestamp,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let started = Instant::now();
        let call = self.inner.try_lease(name, owner, now, ttl);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("try_lease", started.elapsed(), out.is_err());
            out
        })
    }

    fn chat_message<'a>(
        &'a self,
        request_id: RequestId,
        purpose: &'a str,
    ) -> BoxFuture<'a, Result<Option<ChatMessageRef>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.chat_message(request_id, purpose);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("chat_message", started.elapsed(), out.is_err());
            out
        })
    }

    fn record_chat_message<'a>(
        &'a self,
        message: &'a ChatMessageRef,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let started = Instant::now();
        let call = self.inner.record_chat_message(message);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("record_chat_message", started.elapsed(), out.is_err());
            out
        })
    }

    fn replace_chat_message<'a>(
        &'a self,
        message: &'a ChatMessageRef,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let started = Instant::now();
        let call = self.inner.replace_chat_message(message);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("replace_chat_message", started.elapsed(), out.is_err());
            out
        })
    }

    fn remember_nonce<'a>(
        &'a self,
        nonce: &'a str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let started = Instant::now();
        let call = self.inner.remember_nonce(nonce, now, forget_before);
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("remember_nonce", started.elapsed(), out.is_err());
            out
        })
    }

    fn request_counts(&self) -> BoxFuture<'_, Result<Vec<(RequestStatus, i64)>, StoreError>> {
        let started = Instant::now();
        let call = self.inner.request_counts();
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("request_counts", started.elapsed(), out.is_err());
            out
        })
    }

    fn outbox_depth(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        let started = Instant::now();
        let call = self.inner.outbox_depth();
        Box::pin(async move {
            let out = call.await;
            self.metrics
                .store_op("outbox_depth", started.elapsed(), out.is_err());
            out
        })
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.inner.subscribe()
    }
}
