//! Delivery of request changes to Slack from the durable outbox: the
//! review message is posted once and then updated in place (rendered from
//! the request as stored, so any replica can do it and a late update never
//! shows stale state), and the requester gets a DM on approval, rejection
//! and the run's outcome.
//!
//! At-least-once: a message is acknowledged only after Slack answered ok;
//! failures are retried with exponential backoff (Slack's `Retry-After` on
//! 429 pauses all delivery); the store hands out a request's messages one
//! at a time, oldest first, so each request's messages go out in order.
//! A post is recorded as soon as Slack answers, and never repeated after
//! that; it is repeated only when no answer arrived.

use crate::api::{ApiError, SlackApi};
use crate::directory::Directory;
use crate::render::{minimal_review_message, requester_dm_for, review_message, ReviewView};
use airlock_core::ports::{ChatMessageRef, OutboxClaim, OutboxMessage};
use airlock_core::{ChangeRequest, RequestId, RequestStatus, Workflow};
use slack_morphism::prelude::SlackMessageContent;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Outbox topic of request changes (written by the store with every change).
pub const REQUEST_TOPIC: &str = "request";
/// The lease that lets one replica at a time deliver.
pub const DELIVERY_LEASE: &str = "slack-delivery";
/// Purpose under which the review message is recorded.
pub const REVIEW_PURPOSE: &str = "slack:review";

/// How the deliverer behaves.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Base URL for request links.
    pub public_url: Option<String>,
    /// Statements longer than this are cut.
    pub statement_max_chars: usize,
    /// Confirm an Approve of a high-risk request (`[slack] confirm_high_risk`).
    pub confirm_high_risk: bool,
    /// First retry delay (doubles per attempt).
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How often the outbox is looked at when no store event woke the
    /// deliverer (the safety net), and how the delivery lease is paced.
    pub poll_interval: Duration,
    /// The configuration in force: its redaction patterns and the fallback
    /// review channel (`[slack] review_channel`) follow reloads.
    pub live: airlock_core::LiveConfig,
}

/// Why one outbox message could not be delivered yet.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] airlock_core::StoreError),
    #[error(transparent)]
    Workflow(#[from] airlock_core::WorkflowError),
}

/// How long the delivery lease lasts unless renewed (every third of it):
/// a replica that dies hands delivery over after at most this.
const LEASE_TTL: Duration = Duration::from_secs(10);

/// What one drain of the outbox did.
struct Drained {
    /// Messages delivered.
    delivered: usize,
    /// Slack rate-limits: pause this long before the next call.
    pause: Option<Duration>,
    /// The soonest retry scheduled for a failed message.
    retry_in: Option<Duration>,
}

/// Delivers request changes to Slack.
#[derive(Debug, Clone)]
pub struct Deliverer {
    workflow: Workflow,
    api: SlackApi,
    directory: Arc<Directory>,
    options: DeliveryOptions,
    owner: String,
    metrics: Option<airlock_metrics::Metrics>,
}

/// The status a request change's outbox message stands for (its audit
/// event is `request.<status>`).
fn event_status(payload: &str) -> Option<RequestStatus> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let kind = v.get("kind")?.as_str()?;
    RequestStatus::parse(kind.strip_prefix(airlock_core::audit::kinds::TRANSITION_PREFIX)?)
}

/// Whether Slack's `ok: false` error is about the message's content.
fn refuses_content(code: &str) -> bool {
    matches!(
        code,
        "invalid_blocks" | "invalid_blocks_format" | "msg_too_long" | "invalid_attachments"
    )
}

/// The delay before attempt `attempts + 1`.
pub fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    initial.saturating_mul(factor).min(max)
}

impl Deliverer {
    /// A deliverer; `owner` identifies this process in leases.
    pub fn new(
        workflow: Workflow,
        api: SlackApi,
        directory: Arc<Directory>,
        options: DeliveryOptions,
        owner: String,
    ) -> Self {
        Deliverer {
            workflow,
            api,
            directory,
            options,
            owner,
            metrics: None,
        }
    }

    /// Counts delivery errors in `metrics`.
    pub fn with_metrics(mut self, metrics: airlock_metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn link(&self, id: RequestId) -> Option<String> {
        self.options
            .public_url
            .as_deref()
            .map(|u| format!("{}/requests/{}", u.trim_end_matches('/'), id.0))
    }

    /// Runs until `stop` is cancelled. Only the holder of the delivery lease
    /// delivers; it drains the outbox when a store change wakes it (a queued
    /// message comes with one, on any replica), when a scheduled retry is
    /// due, when it takes the lease over, and every `poll_interval` as a
    /// safety net. Between those it only renews the lease.
    pub async fn run(self, stop: CancellationToken) {
        let store = self.workflow.store().clone();
        let mut events = Some(store.subscribe());
        let mut leader = false;
        let mut woken = true;
        let mut next_poll = tokio::time::Instant::now();
        let mut next_retry: Option<tokio::time::Instant> = None;
        loop {
            let now = tokio::time::Instant::now();
            match store
                .try_lease(DELIVERY_LEASE, &self.owner, self.workflow.now(), LEASE_TTL)
                .await
            {
                Ok(true) => {
                    if !leader {
                        woken = true; // took the lease over: catch up at once
                    }
                    leader = true;
                }
                Ok(false) => leader = false,
                Err(e) => {
                    leader = false;
                    tracing::error!(error = %e, "Slack delivery: cannot take the lease");
                }
            }
            let retry_due = next_retry.is_some_and(|t| t <= now);
            if leader && (woken || retry_due || next_poll <= now) {
                woken = false;
                next_poll = now + self.options.poll_interval;
                if retry_due {
                    next_retry = None;
                }
                match self.drain_once().await {
                    Ok(drained) => {
                        if let Some(after) = drained.retry_in {
                            let at = tokio::time::Instant::now() + after;
                            next_retry = Some(next_retry.map_or(at, |t| t.min(at)));
                        }
                        if let Some(pause) = drained.pause {
                            tokio::select! {
                                _ = stop.cancelled() => break,
                                _ = tokio::time::sleep(pause) => {}
                            }
                            woken = true;
                            continue;
                        }
                        if drained.delivered > 0 {
                            woken = true; // there may be more
                            continue;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "Slack delivery: the store failed"),
                }
            }
            let mut wake = now + LEASE_TTL / 3;
            if leader {
                wake = wake.min(next_poll);
                if let Some(t) = next_retry {
                    wake = wake.min(t);
                }
            }
            let event = async {
                match events.as_mut() {
                    Some(rx) => Some(rx.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                ev = event => match ev {
                    Some(Err(tokio::sync::broadcast::error::RecvError::Closed)) => events = None,
                    _ => woken = true,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        // Let another replica take over at once.
        let _ = store
            .try_lease(
                DELIVERY_LEASE,
                &self.owner,
                self.workflow.now(),
                Duration::ZERO,
            )
            .await;
    }

    /// Claims and delivers one batch.
    async fn drain_once(&self) -> Result<Drained, airlock_core::StoreError> {
        let store = self.workflow.store();
        let now = self.workflow.now();
        let batch = store
            .claim_outbox(&OutboxClaim {
                owner: self.owner.clone(),
                topic: Some(REQUEST_TOPIC.into()),
                now,
                lease: Duration::from_secs(60),
                limit: 20,
            })
            .await?;
        let mut delivered = 0;
        let mut pause: Option<Duration> = None;
        let mut retry_in: Option<Duration> = None;
        // Consecutive changes of one request: one chat.update, of the latest state.
        let last_of_request: std::collections::HashMap<Option<RequestId>, i64> =
            batch.iter().map(|m| (m.request_id, m.id)).collect();
        for m in batch {
            let update_review = last_of_request.get(&m.request_id) == Some(&m.id);
            if let Some(p) = pause {
                // Rate-limited: hand the rest back for after the pause.
                let at = self.workflow.now().plus(p);
                store
                    .retry_outbox(m.id, &self.owner, "waiting for Slack's rate limit", at)
                    .await?;
                continue;
            }
            match self.deliver(&m, update_review).await {
                Ok(()) => {
                    store
                        .ack_outbox(m.id, &self.owner, self.workflow.now())
                        .await?;
                    delivered += 1;
                }
                // Slack answered, and said no: sending the same again would
                // be refused again (SPEC §6). Logged and counted, not retried.
                Err(DeliveryError::Api(ApiError::Refused(code))) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.slack_error("refused");
                    }
                    tracing::error!(
                        message = m.id,
                        request = ?m.request_id.map(|r| r.0),
                        error = %code,
                        "Slack refused a message; it is not retried"
                    );
                    store
                        .ack_outbox(m.id, &self.owner, self.workflow.now())
                        .await?;
                }
                Err(e) => {
                    if let Some(m) = &self.metrics {
                        m.slack_error(match &e {
                            DeliveryError::Api(ApiError::RateLimited(_)) => "rate_limited",
                            DeliveryError::Api(_) => "api",
                            DeliveryError::Store(_) | DeliveryError::Workflow(_) => "store",
                        });
                    }
                    let delay = match &e {
                        DeliveryError::Api(ApiError::RateLimited(after)) => {
                            pause = Some(*after);
                            *after
                        }
                        _ => backoff(
                            m.attempts,
                            self.options.retry_initial,
                            self.options.retry_max,
                        ),
                    };
                    tracing::warn!(
                        message = m.id,
                        request = ?m.request_id.map(|r| r.0),
                        attempts = m.attempts,
                        retry_in = ?delay,
                        error = %e,
                        "Slack delivery failed; will retry"
                    );
                    let at = self.workflow.now().plus(delay);
                    store
                        .retry_outbox(m.id, &self.owner, &e.to_string(), at)
                        .await?;
                    retry_in = Some(retry_in.map_or(delay, |r| r.min(delay)));
                }
            }
        }
        Ok(Drained {
            delivered,
            pause,
            retry_in,
        })
    }

    /// Delivers one outbox message: the review message brought up to date
    /// (unless a later message of the batch will), and the DM the event it
    /// stands for calls for.
    async fn deliver(&self, m: &OutboxMessage, update_review: bool) -> Result<(), DeliveryError> {
        let Some(id) = m.request_id else {
            return Ok(());
        };
        let request = match self.workflow.get(id).await {
            Ok(r) => r,
            Err(airlock_core::WorkflowError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let approvals = self.workflow.approvals(id).await?;
        if update_review {
            self.sync_review(&request, &approvals).await?;
        }
        match event_status(&m.payload) {
            Some(status) => self.notify_requester(&request, status, &approvals).await,
            None => Ok(()),
        }
    }

    /// Posts the review message if it was never posted, else updates it to the current state.
    async fn sync_review(
        &self,
        request: &ChangeRequest,
        approvals: &[airlock_core::Approval],
    ) -> Result<(), DeliveryError> {
        let store = self.workflow.store();
        let link = self.link(request.id);
        let redactor = self.options.live.snapshot().redactor.clone();
        let content = review_message(ReviewView {
            request,
            approvals,
            link: link.as_deref(),
            statement_max_chars: self.options.statement_max_chars,
            confirm_high_risk: self.options.confirm_high_risk,
            redactor: &redactor,
        });
        let posted = store.chat_message(request.id, REVIEW_PURPOSE).await?;
        let confirm = self.options.confirm_high_risk;
        let minimal = |why: &str| minimal_review_message(request, link.as_deref(), why, confirm);
        match posted {
            Some(p) => match self
                .with_fallback(
                    request,
                    minimal,
                    |c| self.api.update(&p.channel, &p.ts, c),
                    content.clone(),
                )
                .await
            {
                Err(ApiError::Refused(code)) if code == "message_not_found" => {
                    // Deleted in Slack: post it again, where it was, and follow the new one.
                    tracing::warn!(
                        request = request.id.0,
                        "the review message was deleted in Slack; posting it again"
                    );
                    let (channel, ts) = self.api.post(&p.channel, content).await?;
                    self.workflow
                        .store()
                        .replace_chat_message(&ChatMessageRef {
                            request_id: request.id,
                            purpose: REVIEW_PURPOSE.to_string(),
                            channel,
                            ts,
                            posted_at: self.workflow.now(),
                        })
                        .await
                        .map_err(DeliveryError::from)
                }
                other => Ok(other?),
            },
            None => {
                let Some(channel) = self.workflow.review_channel(request).or_else(|| {
                    let config = self.options.live.current();
                    config.slack.as_ref().and_then(|s| s.review_channel.clone())
                }) else {
                    tracing::error!(
                        request = request.id.0,
                        target = request.details.target,
                        "no Slack review channel for this target; nothing posted"
                    );
                    return Ok(());
                };
                let (channel, ts) = self
                    .with_fallback(request, minimal, |c| self.api.post(&channel, c), content)
                    .await?;
                self.record(request.id, REVIEW_PURPOSE, channel, ts).await
            }
        }
    }

    /// Sends `content` with `send`; when Slack refuses it for its content
    /// (`invalid_blocks` and the like, despite airlock's own limits), sends
    /// the minimal message instead, so reviewers hear of the request; the
    /// error is logged and counted.
    async fn with_fallback<T, F, Fut>(
        &self,
        request: &ChangeRequest,
        minimal: impl Fn(&str) -> SlackMessageContent,
        send: F,
        content: SlackMessageContent,
    ) -> Result<T, ApiError>
    where
        F: Fn(SlackMessageContent) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        match send(content).await {
            Err(ApiError::Refused(code)) if refuses_content(&code) => {
                tracing::error!(
                    request = request.id.0,
                    error = %code,
                    "Slack refused the review message; sending the minimal one"
                );
                if let Some(m) = &self.metrics {
                    m.slack_error("fallback");
                }
                send(minimal(&code)).await
            }
            other => other,
        }
    }

    async fn record(
        &self,
        id: RequestId,
        purpose: &str,
        channel: String,
        ts: String,
    ) -> Result<(), DeliveryError> {
        let message = ChatMessageRef {
            request_id: id,
            purpose: purpose.to_string(),
            channel,
            ts,
            posted_at: self.workflow.now(),
        };
        self.workflow.store().record_chat_message(&message).await?;
        Ok(())
    }

    /// The requester's DM for the request's current state, once.
    async fn notify_requester(
        &self,
        request: &ChangeRequest,
        status: RequestStatus,
        approvals: &[airlock_core::Approval],
    ) -> Result<(), DeliveryError> {
        let Some((kind, text)) = requester_dm_for(request, status, approvals) else {
            return Ok(());
        };
        let Some(user) = self.directory.slack_id(&request.details.requester) else {
            return Ok(());
        };
        let purpose = format!("slack:dm:{kind}");
        let store = self.workflow.store();
        if store.chat_message(request.id, &purpose).await?.is_some() {
            return Ok(());
        }
        let dm = self.api.open_dm(&user).await?;
        let content = slack_morphism::prelude::SlackMessageContent::new().with_text(text);
        let (channel, ts) = self.api.post(&dm, content).await?;
        self.record(request.id, &purpose, channel, ts).await
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let i = Duration::from_secs(2);
        let m = Duration::from_secs(60);
        let got: Vec<u64> = (1..=8).map(|a| backoff(a, i, m).as_secs()).collect();
        assert_eq!(got, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0, i, m), i);
        assert_eq!(backoff(u32::MAX, i, m), m);
    }
}
