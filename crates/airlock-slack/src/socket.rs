//! Socket Mode: airlock opens a websocket to Slack with the app-level token
//! (no inbound connection, nothing public), and clicks arrive over it. The
//! socket is authenticated, so there is no signature to check; every other
//! rule is the same as over HTTP ([`Interactions`]). slack-morphism keeps
//! the connections up and reconnects with backoff when one drops.

use crate::api::Connector;
use crate::interact::Interactions;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::sync::Arc;

/// A running Socket Mode listener.
pub struct SocketMode {
    listener: SlackClientSocketModeListener<Connector>,
}

impl std::fmt::Debug for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketMode").finish_non_exhaustive()
    }
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackClient<Connector>>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let interactions = states
        .read()
        .await
        .get_user_state::<Interactions>()
        .cloned();
    match interactions {
        Some(i) => i.handle(event).await,
        None => tracing::error!("Socket Mode interaction without a handler"),
    }
    Ok(())
}

fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackClient<Connector>>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    tracing::warn!(error = %err, "Slack Socket Mode error");
    HttpStatusCode::OK
}

impl SocketMode {
    /// Opens the socket(s) with the app-level token and starts handling clicks.
    pub async fn start(
        interactions: Interactions,
        client: Arc<SlackClient<Connector>>,
        app_token: &str,
    ) -> Result<Self, SlackClientError> {
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_error)
                .with_user_state(interactions),
        );
        let callbacks =
            SlackSocketModeListenerCallbacks::new().with_interaction_events(on_interaction);
        let config = SlackClientSocketModeConfig::new()
            .with_initial_backoff_in_seconds(1)
            .with_reconnect_timeout_in_seconds(10);
        let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
        listener
            .listen_for(&SlackApiToken::new(app_token.to_string().into()))
            .await?;
        listener.start().await;
        Ok(SocketMode { listener })
    }

    /// Closes the sockets.
    pub async fn shutdown(&self) {
        self.listener.shutdown().await;
    }
}
