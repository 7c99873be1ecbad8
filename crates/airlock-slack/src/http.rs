//! Slack's HTTP interactivity: `POST /slack/interactions`. A payload is
//! acted on only when its v0 signature verifies with the signing secret
//! (constant-time compare), its timestamp is within 5 minutes, and it was
//! not accepted before (the signature is remembered in the store, so a
//! replay is refused on every replica). Every refusal is audited.

use crate::interact::Interactions;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use slack_morphism::prelude::*;
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};
use std::sync::Arc;
use std::time::Duration;

/// The path Slack's interactivity request URL must point at.
pub const INTERACTIONS_PATH: &str = "/slack/interactions";

/// How long accepted signatures are remembered: longer than the 5-minute
/// window in both directions, so a replay is always caught.
const NONCE_MEMORY: Duration = Duration::from_secs(15 * 60);

/// Unverified payloads audited one by one per minute; beyond that they are
/// counted and audited as one summary event, so a flood of forged posts
/// cannot flood the audit trail.
const UNVERIFIED_AUDITS_PER_MINUTE: u32 = 30;

/// Paces the auditing of unverified payloads (a fixed one-minute window).
#[derive(Debug, Default)]
pub struct AuditPacer {
    window_start_ms: i64,
    audited: u32,
    suppressed: u32,
}

impl AuditPacer {
    /// Whether the payload refused at `now_ms` is audited on its own; when a
    /// new window starts, also how many were only counted in the last one.
    pub fn admit(&mut self, now_ms: i64) -> (bool, u32) {
        let mut carried = 0;
        if now_ms - self.window_start_ms >= 60_000 {
            carried = self.suppressed;
            *self = AuditPacer {
                window_start_ms: now_ms,
                ..AuditPacer::default()
            };
        }
        if self.audited < UNVERIFIED_AUDITS_PER_MINUTE {
            self.audited += 1;
            (true, carried)
        } else {
            self.suppressed += 1;
            (false, carried)
        }
    }
}

/// The HTTP receiver's state.
#[derive(Clone)]
pub struct HttpReceiver {
    interactions: Interactions,
    verifier: SlackEventSignatureVerifier,
    pacer: Arc<std::sync::Mutex<AuditPacer>>,
}

impl std::fmt::Debug for HttpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpReceiver").finish_non_exhaustive()
    }
}

/// The claimed user and channel of a payload that is not (yet) trusted.
fn claimed(
    body: &str,
) -> (
    Option<SlackInteractionEvent>,
    Option<String>,
    Option<String>,
) {
    let payload = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned());
    let Some(payload) = payload else {
        return (None, None, None);
    };
    let raw: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
    let user = raw
        .pointer("/user/id")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let channel = raw
        .pointer("/container/channel_id")
        .or_else(|| raw.pointer("/channel/id"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    (serde_json::from_value(raw).ok(), user, channel)
}

impl HttpReceiver {
    /// A receiver that verifies with `signing_secret`.
    pub fn new(interactions: Interactions, signing_secret: &str) -> Self {
        HttpReceiver {
            interactions,
            verifier: SlackEventSignatureVerifier::new(&SlackSigningSecret::new(
                signing_secret.to_string(),
            )),
            pacer: Arc::default(),
        }
    }

    /// The axum routes (mounted on airlock's HTTP listener).
    pub fn router(self) -> Router {
        Router::new()
            .route(INTERACTIONS_PATH, post(receive))
            .with_state(Arc::new(self))
    }

    async fn refuse_unverified(
        &self,
        claimed_user: Option<&str>,
        why: &str,
    ) -> (StatusCode, String) {
        // Nothing from an unverified payload is trusted: no message is sent
        // on its behalf; the claimed sender is only recorded.
        let actor = format!("slack-unverified:{}", claimed_user.unwrap_or("?"));
        let workflow = self.interactions.workflow();
        let (audit, carried) = match self.pacer.lock() {
            Ok(mut p) => p.admit(workflow.now().0),
            Err(_) => (true, 0),
        };
        if carried > 0 {
            let why =
                format!("{carried} more unverified payload(s) refused in the previous minute");
            if let Err(e) = workflow
                .refuse_interaction(
                    "slack-unverified:*",
                    None,
                    &why,
                    json!({ "count": carried }),
                )
                .await
            {
                tracing::error!(error = %e, "could not audit refused Slack payloads");
            }
        }
        if audit {
            if let Err(e) = workflow
                .refuse_interaction(&actor, None, why, json!({}))
                .await
            {
                tracing::error!(error = %e, "could not audit a refused Slack payload");
            }
        }
        tracing::warn!(actor, why, audited = audit, "Slack payload refused");
        (StatusCode::UNAUTHORIZED, format!("refused: {why}\n"))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    State(rx): State<Arc<HttpReceiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let body = String::from_utf8_lossy(&body).into_owned();
    let (event, user, channel) = claimed(&body);
    let (Some(ts), Some(signature)) = (
        header(
            &headers,
            SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP,
        ),
        header(
            &headers,
            SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER,
        ),
    ) else {
        return rx
            .refuse_unverified(user.as_deref(), "the payload is not signed")
            .await;
    };
    match rx.verifier.verify(signature, &body, ts) {
        Ok(()) => {}
        Err(SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_)) => {
            // The signature is Slack's (it is checked first), the click is old:
            // the user is real, so they are told.
            rx.interactions
                .refuse(
                    user.as_deref(),
                    channel,
                    None,
                    "the click arrived more than 5 minutes after it was made; click again",
                    json!({ "timestamp": ts }),
                )
                .await;
            return (
                StatusCode::UNAUTHORIZED,
                "refused: timestamp outside the 5-minute window\n".into(),
            );
        }
        Err(_) => {
            return rx
                .refuse_unverified(user.as_deref(), "the signature does not verify")
                .await
        }
    }
    let workflow = rx.interactions.workflow();
    let now = workflow.now();
    let forget = airlock_core::Timestamp(now.0 - NONCE_MEMORY.as_millis() as i64);
    match workflow
        .store()
        .remember_nonce(signature, now, forget)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            rx.interactions
                .refuse(
                    user.as_deref(),
                    channel,
                    None,
                    "this click was already processed (replayed payload)",
                    json!({ "timestamp": ts }),
                )
                .await;
            return (
                StatusCode::UNAUTHORIZED,
                "refused: replayed payload\n".into(),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "replay check failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store is unavailable\n".into(),
            );
        }
    }
    let Some(event) = event else {
        rx.interactions
            .refuse(
                user.as_deref(),
                channel,
                None,
                "the payload is not an interaction airlock understands",
                json!({}),
            )
            .await;
        return (StatusCode::BAD_REQUEST, "unreadable payload\n".into());
    };
    rx.interactions.handle(event).await;
    (StatusCode::OK, String::new())
}

#[cfg(test)]
mod tests {
    use super::{AuditPacer, UNVERIFIED_AUDITS_PER_MINUTE};

    #[test]
    fn a_flood_is_audited_as_a_count() {
        let mut p = AuditPacer::default();
        let t0 = 1_000_000;
        let admitted = (0..100).filter(|i| p.admit(t0 + i).0).count();
        assert_eq!(admitted as u32, UNVERIFIED_AUDITS_PER_MINUTE);
        // The next window admits again and carries the count of the last one.
        assert_eq!(
            p.admit(t0 + 60_000),
            (true, 100 - UNVERIFIED_AUDITS_PER_MINUTE)
        );
        assert_eq!(p.admit(t0 + 60_001), (true, 0));
    }
}
