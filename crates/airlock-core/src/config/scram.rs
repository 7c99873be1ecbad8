//! Postgres SCRAM-SHA-256 verifiers as `airlock passwd` prints them.

use std::fmt;

/// A parsed Postgres SCRAM-SHA-256 verifier
/// (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, base64 parts).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// Salt, base64 as in the verifier.
    pub salt_b64: String,
    /// StoredKey, base64.
    pub stored_key_b64: String,
    /// ServerKey, base64.
    pub server_key_b64: String,
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramVerifier {
    /// Splits a verifier string into its parts (base64 is checked by the wire crate).
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or("must start with SCRAM-SHA-256$ (generate it with `airlock passwd`)")?;
        let (iter_salt, keys) = rest
            .split_once('$')
            .ok_or("must look like SCRAM-SHA-256$<iterations>:<salt>$<storedkey>:<serverkey>")?;
        let (iter, salt) = iter_salt
            .split_once(':')
            .ok_or("missing <iterations>:<salt>")?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or("missing <storedkey>:<serverkey>")?;
        let iterations: u32 = iter
            .parse()
            .map_err(|_| format!("iteration count {iter:?} is not a number"))?;
        if iterations < 4096 {
            return Err("iteration count must be at least 4096".into());
        }
        if salt.is_empty() || stored.is_empty() || server.is_empty() {
            return Err("salt and keys must not be empty".into());
        }
        Ok(Self {
            iterations,
            salt_b64: salt.into(),
            stored_key_b64: stored.into(),
            server_key_b64: server.into(),
        })
    }
}
