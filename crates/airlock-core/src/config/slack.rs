//! `[slack]`: how airlock reaches Slack (Web API base URL, tokens, the
//! interactivity mode) and where review messages go by default.

use super::{ConfigProblem, SecretReader, SecretSource};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Slack's own Web API base URL.
pub const SLACK_API_URL: &str = "https://slack.com/api";

/// How Slack delivers button clicks and modal submissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// Slack POSTs signed payloads to `/slack/interactions` (a public URL).
    Http,
    /// airlock opens a Socket Mode websocket with the app-level token.
    Socket,
}

/// A secret read from an environment variable or a file.
#[derive(Clone, Default)]
pub struct SecretRef {
    /// Environment variable holding it.
    pub env: Option<String>,
    /// File holding it (surrounding whitespace ignored).
    pub file: Option<PathBuf>,
    /// The resolved value.
    pub value: Option<String>,
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRef")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SecretRef {
    fn source(&self) -> SecretSource {
        match (&self.env, &self.file) {
            (Some(e), _) => SecretSource::Env(e.clone()),
            (None, Some(p)) => SecretSource::File(p.clone()),
            (None, None) => SecretSource::None,
        }
    }
}

/// `[slack]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// `http` (signed payloads to `/slack/interactions`) or `socket` (Socket Mode).
    pub mode: SlackMode,
    /// Web API base URL (`https://slack.com/api`; tests point it at a fake).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Environment variable with the bot token (`xoxb-…`: posts, updates, modals, DMs).
    pub bot_token_env: Option<String>,
    /// File with the bot token.
    pub bot_token_file: Option<PathBuf>,
    /// Environment variable with the signing secret that verifies HTTP interaction payloads.
    pub signing_secret_env: Option<String>,
    /// File with the signing secret.
    pub signing_secret_file: Option<PathBuf>,
    /// Environment variable with the app-level token (`xapp-…`) for Socket Mode.
    pub app_token_env: Option<String>,
    /// File with the app-level token.
    pub app_token_file: Option<PathBuf>,
    /// The bot token, resolved.
    #[serde(skip)]
    pub bot_token: SecretRef,
    /// The signing secret, resolved.
    #[serde(skip)]
    pub signing_secret: SecretRef,
    /// The app-level token, resolved.
    #[serde(skip)]
    pub app_token: SecretRef,
    /// Channel id for review messages when the policy names none.
    pub review_channel: Option<String>,
    /// Statements longer than this many characters are cut in messages (with a link).
    #[serde(default = "default_statement_max_chars")]
    pub statement_max_chars: usize,
    /// Ask "are you sure?" before an Approve of a high- or critical-risk request.
    #[serde(default = "default_confirm_high_risk")]
    pub confirm_high_risk: bool,
    /// First delay before retrying a failed delivery; doubles up to `retry_max`.
    #[serde(default = "default_retry_initial", with = "crate::duration")]
    pub retry_initial: Duration,
    /// Longest delay between delivery attempts.
    #[serde(default = "default_retry_max", with = "crate::duration")]
    pub retry_max: Duration,
    /// How often the outbox is checked for messages to deliver.
    #[serde(default = "default_poll_interval", with = "crate::duration")]
    pub poll_interval: Duration,
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("mode", &self.mode)
            .field("api_url", &self.api_url)
            .field("review_channel", &self.review_channel)
            .finish_non_exhaustive()
    }
}

fn default_api_url() -> String {
    SLACK_API_URL.to_string()
}
fn default_confirm_high_risk() -> bool {
    true
}
fn default_statement_max_chars() -> usize {
    // Short enough that the decision fits on a phone screen; the page has the rest.
    800
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(2)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

/// A Slack conversation id: `C…`, `G…` or `D…` followed by upper-case letters and digits.
pub fn is_channel_id(s: &str) -> bool {
    s.len() >= 3
        && matches!(s.as_bytes()[0], b'C' | b'G' | b'D')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A Slack user id: `U…` or `W…` followed by upper-case letters and digits.
pub fn is_user_id(s: &str) -> bool {
    s.len() >= 3
        && matches!(s.as_bytes()[0], b'U' | b'W')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl SlackConfig {
    /// Resolves relative secret file paths against the config's folder.
    pub(super) fn anchor(&mut self, base: &Path) {
        for p in [
            &mut self.bot_token_file,
            &mut self.signing_secret_file,
            &mut self.app_token_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        self.bot_token = SecretRef {
            env: self.bot_token_env.clone(),
            file: self.bot_token_file.clone(),
            value: None,
        };
        self.signing_secret = SecretRef {
            env: self.signing_secret_env.clone(),
            file: self.signing_secret_file.clone(),
            value: None,
        };
        self.app_token = SecretRef {
            env: self.app_token_env.clone(),
            file: self.app_token_file.clone(),
            value: None,
        };
    }

    /// Checks the section without I/O; `review_channels` are the policies' channels.
    pub(super) fn validate(
        &self,
        review_channels: &[(String, String)],
        out: &mut Vec<ConfigProblem>,
    ) {
        let mut problem = |path: &str, message: String| {
            out.push(ConfigProblem {
                path: format!("slack.{path}"),
                message,
            })
        };
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            problem(
                "api_url",
                format!("must be an http(s) URL, not {:?}", self.api_url),
            );
        }
        if self.bot_token_env.is_none() && self.bot_token_file.is_none() {
            problem(
                "bot_token",
                "missing: set bot_token_env or bot_token_file (the xoxb- token)".into(),
            );
        }
        match self.mode {
            SlackMode::Http
                if self.signing_secret_env.is_none() && self.signing_secret_file.is_none() => problem(
                "signing_secret",
                "mode = \"http\" needs the signing secret: set signing_secret_env or signing_secret_file"
                    .into(),
            ),
            SlackMode::Socket if self.app_token_env.is_none() && self.app_token_file.is_none() => problem(
                "app_token",
                "mode = \"socket\" needs the app-level token: set app_token_env or app_token_file"
                    .into(),
            ),
            _ => {}
        }
        if let Some(c) = &self.review_channel {
            if !is_channel_id(c) {
                problem(
                    "review_channel",
                    format!("{c:?} is not a Slack channel id (like C0123ABCDEF)"),
                );
            }
        }
        if self.statement_max_chars < 200 {
            problem("statement_max_chars", "must be at least 200".into());
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            problem(
                "retry_initial",
                "must be longer than 0s and not longer than retry_max".into(),
            );
        }
        if self.poll_interval.is_zero() {
            problem("poll_interval", "must be longer than 0s".into());
        }
        for (path, channel) in review_channels {
            if !is_channel_id(channel) {
                out.push(ConfigProblem {
                    path: path.clone(),
                    message: format!("{channel:?} is not a Slack channel id (like C0123ABCDEF)"),
                });
            }
        }
    }

    /// Reads the tokens, reporting the ones that cannot be read.
    pub(super) fn resolve(&mut self, secrets: &dyn SecretReader, out: &mut Vec<ConfigProblem>) {
        for (key, s) in [
            ("bot_token", &mut self.bot_token),
            ("signing_secret", &mut self.signing_secret),
            ("app_token", &mut self.app_token),
        ] {
            match s.source() {
                SecretSource::None => s.value = None,
                SecretSource::Env(name) => match secrets.env(&name) {
                    Some(v) if !v.trim().is_empty() => s.value = Some(v.trim().to_string()),
                    Some(_) => out.push(ConfigProblem {
                        path: format!("slack.{key}_env"),
                        message: format!("environment variable {name} is empty"),
                    }),
                    None => out.push(ConfigProblem {
                        path: format!("slack.{key}_env"),
                        message: format!("environment variable {name} is not set"),
                    }),
                },
                SecretSource::File(path) => match secrets.file(&path) {
                    Ok(v) if !v.trim().is_empty() => s.value = Some(v.trim().to_string()),
                    Ok(_) => out.push(ConfigProblem {
                        path: format!("slack.{key}_file"),
                        message: format!("{} is empty", path.display()),
                    }),
                    Err(e) => out.push(ConfigProblem {
                        path: format!("slack.{key}_file"),
                        message: format!("cannot read {}: {e}", path.display()),
                    }),
                },
            }
        }
    }
}

/// Checks users' `slack_user_id`s: well-formed and not shared.
pub(super) fn validate_user_ids<'a>(
    ids: impl Iterator<Item = (usize, &'a str)>,
    out: &mut Vec<ConfigProblem>,
) {
    let mut seen = BTreeSet::new();
    for (i, id) in ids {
        if !is_user_id(id) {
            out.push(ConfigProblem {
                path: format!("users[{i}].slack_user_id"),
                message: format!("{id:?} is not a Slack user id (like U0123ABCDEF)"),
            });
        } else if !seen.insert(id) {
            out.push(ConfigProblem {
                path: format!("users[{i}].slack_user_id"),
                message: format!("{id} is mapped to two users"),
            });
        }
    }
}
