//! Loading the config file with real environment variables and files.

use airlock_core::{Config, ConfigProblem, SecretReader};
use std::path::Path;

/// Reads secrets from the process environment and the file system.
struct ProcessSecrets;

impl SecretReader for ProcessSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Loads and validates a config file; every problem is returned.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
    let text = read(path)?;
    load_text(path, &text)
}

/// Reads a config file's text.
pub fn read(path: &Path) -> Result<String, Vec<ConfigProblem>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigProblem {
            path: "(file)".into(),
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })
}

/// Lowercase hex SHA-256 of a config file's text (audited with each reload).
pub fn sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Validates config text read from `path` (which anchors relative paths).
pub fn load_text(path: &Path, text: &str) -> Result<Config, Vec<ConfigProblem>> {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let config = Config::load(text, base, &ProcessSecrets).map_err(|e| e.problems())?;
    if let Some(tls) = &config.tls {
        for (key, file) in [
            ("tls.cert_file", &tls.cert_file),
            ("tls.key_file", &tls.key_file),
        ] {
            if let Err(e) = std::fs::metadata(file) {
                problems.push(ConfigProblem {
                    path: key.into(),
                    message: format!("{}: {e}", file.display()),
                });
            }
        }
    }
    for (i, t) in config.targets.iter().enumerate() {
        if let Some(ca) = &t.upstream.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                problems.push(ConfigProblem {
                    path: format!("targets[{i}].upstream.ca_file"),
                    message: format!("{}: {e}", ca.display()),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// Stands in for the target and Slack secrets that are not set where an
/// offline command (audit verify/head/export) runs: it only needs
/// `[store]`, whose own `url_env` stays strict.
struct LenientSecrets {
    store_env: Option<String>,
}

/// What stands for a secret an offline command never uses.
const UNUSED_SECRET: &str = "unused-by-this-command";

impl SecretReader for LenientSecrets {
    fn env(&self, name: &str) -> Option<String> {
        if self.store_env.as_deref() == Some(name) {
            return std::env::var(name).ok();
        }
        Some(
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| UNUSED_SECRET.to_string()),
        )
    }
    fn file(&self, path: &Path) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(path)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| UNUSED_SECRET.to_string()))
    }
}

/// Whether `p` is about a secret an offline command does not need: a
/// target's upstream credentials or a Slack token.
fn offline_can_ignore(p: &ConfigProblem) -> bool {
    (p.path.starts_with("targets[") && p.path.contains("credentials"))
        || (p.path.starts_with("slack.") && (p.path.ends_with("_env") || p.path.ends_with("_file")))
}

/// Loads a config for a command that only opens the state store: unset
/// upstream credentials (targets' `password_env` / `password_file`) and
/// Slack tokens are not needed there and are ignored; every other problem
/// is reported.
pub fn load_for_store(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
    match load(path) {
        Ok(c) => Ok(c),
        Err(problems) if problems.iter().all(offline_can_ignore) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                vec![ConfigProblem {
                    path: "(file)".into(),
                    message: format!("cannot read {}: {e}", path.display()),
                }]
            })?;
            let base = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let store_env = toml::from_str::<toml::Value>(&text)
                .ok()
                .and_then(|v| v.get("store")?.get("url_env")?.as_str().map(str::to_string));
            Config::load(&text, base, &LenientSecrets { store_env }).map_err(|e| e.problems())
        }
        Err(problems) => Err(problems),
    }
}
