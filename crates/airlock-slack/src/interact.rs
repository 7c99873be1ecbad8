//! What a verified click or modal submission does: the same workflow calls
//! (and so the same rules and audit) as the CLI and the HTTP API. Shared by
//! HTTP interactivity and Socket Mode, which differ only in how a payload
//! is proven to come from Slack.

use crate::api::SlackApi;
use crate::directory::Directory;
use crate::render::{reject_modal, ACTION_APPROVE, ACTION_REJECT, REASON_INPUT, REJECT_MODAL};
use airlock_core::{ApprovalOutcome, RequestId, Workflow, WorkflowError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use slack_morphism::prelude::*;
use std::sync::Arc;

/// What the reject modal carries from the click to the submission.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct RejectMetadata {
    request: i64,
    channel: Option<String>,
}

/// Handles verified interaction payloads.
#[derive(Clone, Debug)]
pub struct Interactions {
    workflow: Workflow,
    api: SlackApi,
    directory: Arc<Directory>,
}

/// Who clicked, where, on what.
struct Click<'a> {
    user: &'a str,
    channel: Option<String>,
}

impl Interactions {
    /// Builds the handler.
    pub fn new(workflow: Workflow, api: SlackApi, directory: Arc<Directory>) -> Self {
        Interactions {
            workflow,
            api,
            directory,
        }
    }

    /// The workflow it acts through.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Tells `user` privately why something happened or did not (best effort, in the background).
    pub fn tell(&self, channel: Option<String>, user: &str, text: String) {
        let Some(channel) = channel else {
            tracing::info!(user, text, "no channel to answer a Slack interaction in");
            return;
        };
        let api = self.api.clone();
        let user = user.to_string();
        tokio::spawn(async move {
            if let Err(e) = api.ephemeral(&channel, &user, &text).await {
                tracing::warn!(error = %e, "could not send an ephemeral message to Slack");
            }
        });
    }

    /// Audits a refused interaction and tells the user why (when there is one to tell).
    pub async fn refuse(
        &self,
        user: Option<&str>,
        channel: Option<String>,
        request: Option<RequestId>,
        why: &str,
        detail: serde_json::Value,
    ) {
        let actor = format!("slack:{}", user.unwrap_or("?"));
        if let Err(e) = self
            .workflow
            .refuse_interaction(&actor, request, why, detail)
            .await
        {
            tracing::error!(error = %e, "could not audit a refused Slack interaction");
        }
        tracing::info!(actor, why, "Slack interaction refused");
        if let Some(user) = user {
            self.tell(
                channel,
                user,
                format!(":no_entry: airlock refused this: {why}"),
            );
        }
    }

    /// Handles one verified payload.
    pub async fn handle(&self, event: SlackInteractionEvent) {
        match event {
            SlackInteractionEvent::BlockActions(e) => self.block_actions(e).await,
            SlackInteractionEvent::ViewSubmission(e) => self.view_submission(e).await,
            other => tracing::debug!(?other, "Slack interaction ignored"),
        }
    }

    async fn block_actions(&self, e: SlackInteractionBlockActionsEvent) {
        let Some(user) = e.user.as_ref().map(|u| u.id.to_string()) else {
            self.refuse(None, None, None, "the payload names no user", json!({}))
                .await;
            return;
        };
        let channel = match &e.container {
            SlackInteractionActionContainer::Message(m) => m.channel_id.as_ref(),
            SlackInteractionActionContainer::MessageAttachment(m) => m.channel_id.as_ref(),
            SlackInteractionActionContainer::View(_) => None,
        }
        .map(|c| c.to_string())
        .or_else(|| e.channel.as_ref().map(|c| c.id.to_string()));
        let click = Click {
            user: &user,
            channel,
        };
        for action in e.actions.iter().flatten() {
            let id = action
                .value
                .as_deref()
                .and_then(|v| v.parse::<i64>().ok())
                .map(RequestId);
            match (action.action_id.as_ref(), id) {
                (ACTION_APPROVE, Some(id)) => self.approve(&click, id).await,
                (ACTION_REJECT, Some(id)) => {
                    self.ask_reason(&click, id, e.trigger_id.as_ref()).await
                }
                (ACTION_APPROVE | ACTION_REJECT, None) => {
                    self.refuse(
                        Some(&user),
                        click.channel.clone(),
                        None,
                        "the button carries no request number",
                        json!({ "action": action.action_id.to_string() }),
                    )
                    .await
                }
                _ => tracing::debug!(action = %action.action_id, "Slack action ignored"),
            }
        }
    }

    async fn unmapped(&self, click: &Click<'_>, id: RequestId) {
        self.refuse(
            Some(click.user),
            click.channel.clone(),
            Some(id),
            "your Slack account is not mapped to an airlock user (ask an admin to set slack_user_id)",
            json!({ "slack_user": click.user }),
        )
        .await;
    }

    fn explain(&self, click: &Click<'_>, id: RequestId, action: &str, e: WorkflowError) {
        let text = match e {
            WorkflowError::Refused(r) => format!(":no_entry: You cannot {action} #{}: {r}", id.0),
            WorkflowError::NotFound(_) => format!(":no_entry: Request #{} does not exist", id.0),
            other => {
                tracing::error!(error = %other, request = id.0, "a Slack decision failed");
                format!(
                    ":warning: airlock could not record your decision on #{}; try again or use the CLI",
                    id.0
                )
            }
        };
        self.tell(click.channel.clone(), click.user, text);
    }

    async fn approve(&self, click: &Click<'_>, id: RequestId) {
        let Some(actor) = self.directory.actor(click.user) else {
            return self.unmapped(click, id).await;
        };
        match self.workflow.approve(id, &actor, "slack", None).await {
            Ok(ApprovalOutcome::Approved { .. }) => self.tell(
                click.channel.clone(),
                click.user,
                format!(":white_check_mark: You approved #{}; it is approved.", id.0),
            ),
            Ok(ApprovalOutcome::Recorded { have, need }) => self.tell(
                click.channel.clone(),
                click.user,
                format!(
                    ":white_check_mark: Your approval of #{} is recorded ({have} of {need}).",
                    id.0
                ),
            ),
            Err(e) => self.explain(click, id, "approve", e),
        }
    }

    async fn ask_reason(&self, click: &Click<'_>, id: RequestId, trigger_id: &str) {
        let Some(actor) = self.directory.actor(click.user) else {
            return self.unmapped(click, id).await;
        };
        let request = match self.workflow.may_reject(id, &actor).await {
            Ok(r) => r,
            Err(e) => return self.explain(click, id, "reject", e),
        };
        let metadata = RejectMetadata {
            request: id.0,
            channel: click.channel.clone(),
        };
        let metadata = serde_json::to_string(&metadata).unwrap_or_default();
        // Opened right here, in the click's handling: the trigger id expires within 3 s.
        if let Err(e) = self
            .api
            .open_view(trigger_id, reject_modal(&request, metadata))
            .await
        {
            tracing::warn!(error = %e, "could not open the reject modal");
            self.tell(
                click.channel.clone(),
                click.user,
                format!(
                    ":warning: Slack did not open the reason dialog for #{}; click Reject again",
                    id.0
                ),
            );
        }
    }

    async fn view_submission(&self, e: SlackInteractionViewSubmissionEvent) {
        let SlackView::Modal(modal) = &e.view.view else {
            return;
        };
        if modal.callback_id.as_ref().map(|c| c.as_ref()) != Some(REJECT_MODAL) {
            return;
        }
        let user = e.user.id.to_string();
        let metadata: Option<RejectMetadata> = modal
            .private_metadata
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok());
        let Some(metadata) = metadata else {
            self.refuse(
                Some(&user),
                None,
                None,
                "the reject dialog lost its request number",
                json!({}),
            )
            .await;
            return;
        };
        let id = RequestId(metadata.request);
        let click = Click {
            user: &user,
            channel: metadata.channel,
        };
        let reason = e
            .view
            .state_params
            .state
            .as_ref()
            .and_then(|s| s.values.get(&REASON_INPUT.into()))
            .and_then(|b| b.get(&REASON_INPUT.into()))
            .and_then(|v| v.value.clone())
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let Some(reason) = reason else {
            self.tell(
                click.channel.clone(),
                click.user,
                format!(
                    ":no_entry: #{} was not rejected: a reason is required",
                    id.0
                ),
            );
            return;
        };
        let Some(actor) = self.directory.actor(click.user) else {
            return self.unmapped(&click, id).await;
        };
        match self.workflow.reject(id, &actor, &reason).await {
            Ok(_) => self.tell(
                click.channel.clone(),
                click.user,
                format!(":no_entry: You rejected #{}.", id.0),
            ),
            Err(e) => self.explain(&click, id, "reject", e),
        }
    }
}
