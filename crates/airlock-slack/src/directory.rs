//! Who is who: Slack user ids mapped to airlock users (`slack_user_id` in
//! the config), read from the configuration in force, so a reload that
//! removes a user or changes their groups applies to the next click.

use airlock_core::{Actor, Config, LiveConfig};

/// The mapping between Slack users and airlock users.
#[derive(Debug, Clone)]
pub struct Directory {
    live: LiveConfig,
}

impl Directory {
    /// Reads the mapping from the configuration in force at each lookup.
    pub fn new(live: LiveConfig) -> Self {
        Directory { live }
    }

    /// A fixed mapping from one configuration (tests, tools).
    pub fn from_config(config: &Config) -> Result<Self, String> {
        Ok(Directory {
            live: LiveConfig::new(config.clone())?,
        })
    }

    /// The airlock user a Slack user acts as.
    pub fn actor(&self, slack_user_id: &str) -> Option<Actor> {
        self.live
            .current()
            .user_by_slack_id(slack_user_id)
            .map(|u| Actor::new(u.name.clone(), u.groups.clone()))
    }

    /// The Slack user id of an airlock user.
    pub fn slack_id(&self, user: &str) -> Option<String> {
        self.live.current().user(user)?.slack_user_id.clone()
    }
}
