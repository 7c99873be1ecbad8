//! Reloading a running proxy's config file (SIGHUP).

use super::{signal_pid, wait_until, Proxy, ProxyConfig};
use std::time::Duration;

/// Log line of an installed reload.
const INSTALLED: &str = "config reloaded";
/// Log line of a refused reload.
const REFUSED: &str = "config reload refused; the configuration in force stays";

impl Proxy {
    /// Rewrites the config file as `config` renders (same ports) and sends
    /// SIGHUP; returns whether the reload was installed.
    pub fn reload_with(&mut self, config: ProxyConfig) -> bool {
        let text = config.to_toml(self.pg_port, self.http_port);
        self.config = config;
        self.reload_text(&text)
    }

    /// Writes `text` as the config file and sends SIGHUP; waits (30 s at
    /// most) until airlock logs the outcome, and returns whether the new
    /// file was installed (`false`: refused).
    pub fn reload_text(&self, text: &str) -> bool {
        let count = |needle: &str| self.stderr().matches(needle).count();
        let (installed, refused) = (count(INSTALLED), count(REFUSED));
        std::fs::write(&self.config_path, text).expect("rewrite config");
        signal_pid(self.pid(), "HUP");
        let logged = wait_until(Duration::from_secs(30), || {
            count(INSTALLED) > installed || count(REFUSED) > refused
        });
        assert!(
            logged,
            "no reload outcome logged; stderr:\n{}",
            self.stderr()
        );
        count(INSTALLED) > installed
    }
}
