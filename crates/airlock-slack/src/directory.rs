//! Who is who: Slack user ids mapped to airlock users (`slack_user_id` in the config).

use airlock_core::{Actor, Config};
use std::collections::HashMap;

/// The mapping between Slack users and airlock users, built from the config.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    by_slack: HashMap<String, Actor>,
    slack_of: HashMap<String, String>,
}

impl Directory {
    /// Reads the mapping from the users of the config.
    pub fn from_config(config: &Config) -> Self {
        let mut d = Directory::default();
        for u in &config.users {
            if let Some(id) = &u.slack_user_id {
                d.by_slack
                    .insert(id.clone(), Actor::new(u.name.clone(), u.groups.clone()));
                d.slack_of.insert(u.name.clone(), id.clone());
            }
        }
        d
    }

    /// The airlock user a Slack user acts as.
    pub fn actor(&self, slack_user_id: &str) -> Option<&Actor> {
        self.by_slack.get(slack_user_id)
    }

    /// The Slack user id of an airlock user.
    pub fn slack_id(&self, user: &str) -> Option<&str> {
        self.slack_of.get(user).map(String::as_str)
    }
}
