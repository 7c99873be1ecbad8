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

/// Stands in for target secrets that are not set where an offline command
/// (audit verify/head/export) runs: it only needs `[store]`.
struct LenientSecrets;

impl SecretReader for LenientSecrets {
    fn env(&self, name: &str) -> Option<String> {
        Some(std::env::var(name).unwrap_or_default())
    }
    fn file(&self, path: &Path) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(path).unwrap_or_default())
    }
}

/// Loads a config for a command that only opens the state store: unset
/// upstream credentials (targets' `password_env` / `password_file`) are not
/// needed there and are ignored; every other problem is reported.
pub fn load_for_store(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
    match load(path) {
        Ok(c) => Ok(c),
        Err(problems)
            if problems
                .iter()
                .all(|p| p.path.starts_with("targets[") && p.path.contains("credentials")) =>
        {
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
            Config::load(&text, base, &LenientSecrets).map_err(|e| e.problems())
        }
        Err(problems) => Err(problems),
    }
}
