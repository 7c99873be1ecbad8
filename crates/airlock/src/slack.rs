//! Wiring of the Slack integration (`[slack]`): the outbox deliverer, and
//! either the HTTP interactivity route or the Socket Mode listener.

use airlock_core::config::{SlackConfig, SlackMode};
use airlock_core::{LiveConfig, Workflow};
use airlock_slack::{
    Deliverer, DeliveryOptions, Directory, HttpReceiver, Interactions, SlackApi, SocketMode,
};
use anyhow::Context;
use axum::Router;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The running Slack parts.
pub struct Slack {
    /// Routes to mount on the HTTP listener (HTTP interactivity).
    pub routes: Option<Router>,
    deliverer: JoinHandle<()>,
    socket: Option<SocketMode>,
}

fn secret<'a>(value: &'a Option<String>, what: &str) -> anyhow::Result<&'a str> {
    value
        .as_deref()
        .with_context(|| format!("slack: the {what} was not resolved"))
}

/// Starts the Slack integration when the config has a `[slack]` section.
pub async fn start(
    live: &LiveConfig,
    workflow: &Workflow,
    metrics: &airlock_metrics::Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Slack>> {
    let config = live.current();
    let Some(cfg) = &config.slack else {
        return Ok(None);
    };
    let api = SlackApi::new(&cfg.api_url, secret(&cfg.bot_token.value, "bot token")?)
        .context("slack: building the HTTPS client")?;
    let directory = Arc::new(Directory::new(live.clone()));
    let owner = format!(
        "{}-{}-{:08x}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "airlock".into()),
        std::process::id(),
        rand::random::<u32>()
    );
    let deliverer = Deliverer::new(
        workflow.clone(),
        api.clone(),
        directory.clone(),
        delivery_options(live, cfg),
        owner,
    )
    .with_metrics(metrics.clone());
    let deliverer = tokio::spawn(deliverer.run(shutdown.clone()));
    let interactions = Interactions::new(workflow.clone(), api.clone(), directory);
    let (routes, socket) = match cfg.mode {
        SlackMode::Http => {
            let receiver = HttpReceiver::new(
                interactions,
                secret(&cfg.signing_secret.value, "signing secret")?,
            );
            (Some(receiver.router()), None)
        }
        SlackMode::Socket => {
            let socket = SocketMode::start(
                interactions,
                api.client(),
                secret(&cfg.app_token.value, "app-level token")?,
            )
            .await
            .context("slack: opening Socket Mode")?;
            (None, Some(socket))
        }
    };
    info!(mode = ?cfg.mode, api = %cfg.api_url, "Slack integration started");
    Ok(Some(Slack {
        routes,
        deliverer,
        socket,
    }))
}

fn delivery_options(live: &LiveConfig, cfg: &SlackConfig) -> DeliveryOptions {
    DeliveryOptions {
        public_url: live.current().server.public_url.clone(),
        statement_max_chars: cfg.statement_max_chars,
        confirm_high_risk: cfg.confirm_high_risk,
        retry_initial: cfg.retry_initial,
        retry_max: cfg.retry_max,
        poll_interval: cfg.poll_interval,
        live: live.clone(),
    }
}

impl Slack {
    /// Waits for the deliverer (after shutdown fired) and closes the socket.
    pub async fn stop(self) {
        if let Some(socket) = &self.socket {
            socket.shutdown().await;
        }
        let _ = self.deliverer.await;
    }
}
