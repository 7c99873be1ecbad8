//! The Slack Web API calls airlock makes, through slack-morphism, with
//! their failures sorted into what delivery needs to know: retry later,
//! wait for the rate limit, or a refusal that retrying will not fix.

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// How long one Web API call may take before it counts as unanswered.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Slack call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// HTTP 429: wait this long (Slack's `Retry-After`) before calling again.
    #[error("rate limited by Slack (retry after {0:?})")]
    RateLimited(Duration),
    /// Slack could not be reached, did not answer in time, or failed (5xx).
    #[error("Slack is unavailable: {0}")]
    Unavailable(String),
    /// Slack answered `ok: false` (bad channel, token, …).
    #[error("Slack refused the call: {0}")]
    Refused(String),
}

/// The connector type airlock uses (HTTPS, or plain HTTP for a local fake Slack).
pub type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

/// A Slack Web API client bound to a token.
#[derive(Clone)]
pub struct SlackApi {
    client: Arc<SlackClient<Connector>>,
    token: SlackApiToken,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi").finish_non_exhaustive()
    }
}

/// Builds the connector for `api_url` (https with the system's roots; plain http allowed for tests).
pub fn connector(api_url: &str) -> std::io::Result<Connector> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(SlackClientHyperConnector::with_connector(https)
        .with_slack_api_url(api_url.trim_end_matches('/')))
}

fn classify(e: SlackClientError) -> ApiError {
    match e {
        SlackClientError::RateLimitError(r) => {
            ApiError::RateLimited(r.retry_after.unwrap_or(Duration::from_secs(30)))
        }
        SlackClientError::ApiError(a) => ApiError::Refused(a.code),
        SlackClientError::HttpError(h) if h.status_code.is_client_error() => {
            ApiError::Refused(format!("HTTP {}", h.status_code))
        }
        other => ApiError::Unavailable(other.to_string().lines().next().unwrap_or("").to_string()),
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, SlackClientError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(classify),
        Err(_) => Err(ApiError::Unavailable(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

impl SlackApi {
    /// A client for `api_url` with the bot token.
    pub fn new(api_url: &str, bot_token: &str) -> std::io::Result<Self> {
        Ok(SlackApi {
            client: Arc::new(SlackClient::new(connector(api_url)?)),
            token: SlackApiToken::new(bot_token.to_string().into()),
        })
    }

    /// The slack-morphism client (Socket Mode uses it too).
    pub fn client(&self) -> Arc<SlackClient<Connector>> {
        self.client.clone()
    }

    /// `chat.postMessage`; returns the channel and the message `ts`.
    pub async fn post(
        &self,
        channel: &str,
        content: SlackMessageContent,
    ) -> Result<(String, String), ApiError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatPostMessageRequest::new(channel.to_string().into(), content)
            .with_unfurl_links(false)
            .with_unfurl_media(false);
        let res = timed(session.chat_post_message(&req)).await?;
        Ok((res.channel.to_string(), res.ts.to_string()))
    }

    /// `chat.update` of a message airlock posted.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        content: SlackMessageContent,
    ) -> Result<(), ApiError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatUpdateRequest::new(
            channel.to_string().into(),
            content,
            ts.to_string().into(),
        );
        timed(session.chat_update(&req)).await.map(|_| ())
    }

    /// `chat.postEphemeral`: a message only `user` sees in `channel`.
    pub async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), ApiError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatPostEphemeralRequest::new(
            channel.to_string().into(),
            user.to_string().into(),
            SlackMessageContent::new().with_text(text.to_string()),
        );
        timed(session.chat_post_ephemeral(&req)).await.map(|_| ())
    }

    /// `views.open` with a click's trigger id.
    pub async fn open_view(&self, trigger_id: &str, view: SlackView) -> Result<(), ApiError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiViewsOpenRequest::new(trigger_id.to_string().into(), view);
        timed(session.views_open(&req)).await.map(|_| ())
    }

    /// `conversations.open` of a DM with `user`; returns its channel id.
    pub async fn open_dm(&self, user: &str) -> Result<String, ApiError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiConversationsOpenRequest::new().with_users(vec![user.to_string().into()]);
        let res = timed(session.conversations_open(&req)).await?;
        Ok(res.channel.id.to_string())
    }
}
