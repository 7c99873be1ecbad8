//! SCRAM-SHA-256 for clients of the proxy: verifier generation (`airlock
//! passwd`) and the server side of the exchange, both on top of `pgwire`'s
//! sans-I/O SCRAM implementation. No I/O here.

use airlock_core::ScramVerifier;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pgwire::api::auth::sasl::scram::{
    gen_salted_password, ScramSecret, ScramServerAuth, ScramServerAuthWaitingForClientFinal,
};
use sha2::{Digest, Sha256};

/// Iterations used for new verifiers (Postgres's default).
pub const ITERATIONS: usize = 4096;

/// Why a SCRAM exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    /// The client's proof did not match (wrong password or unknown user).
    #[error("password authentication failed")]
    BadPassword,
    /// The client sent something that is not SCRAM.
    #[error("invalid SCRAM message: {0}")]
    Protocol(String),
    /// The configured verifier is not valid base64.
    #[error("invalid stored verifier: {0}")]
    Verifier(String),
}

/// Builds a Postgres-compatible SCRAM-SHA-256 verifier for a password.
pub fn make_verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, ITERATIONS);
    match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, ITERATIONS) {
        ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } => format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            STANDARD.encode(salt),
            STANDARD.encode(stored_key),
            STANDARD.encode(server_key)
        ),
        ScramSecret::SaltedPassword { .. } => {
            unreachable!("verifier_from_salted_password returns a verifier")
        }
    }
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, ScramError> {
    STANDARD
        .decode(part)
        .map_err(|e| ScramError::Verifier(format!("{what}: {e}")))
}

fn secret_from(v: &ScramVerifier) -> Result<ScramSecret, ScramError> {
    Ok(ScramSecret::Verifier {
        salt: decode(&v.salt_b64, "salt")?,
        iterations: v.iterations as usize,
        stored_key: decode(&v.stored_key_b64, "stored key")?,
        server_key: decode(&v.server_key_b64, "server key")?,
    })
}

/// A secret for a user that does not exist, so that the exchange looks the
/// same as for a real user (as Postgres does): the salt is derived from the
/// name and a per-process key, the keys can never match.
fn mock_secret(user: &str, process_key: &[u8; 32]) -> ScramSecret {
    let mut h = Sha256::new();
    h.update(process_key);
    h.update(user.as_bytes());
    let digest = h.finalize();
    ScramSecret::Verifier {
        salt: digest[..16].to_vec(),
        iterations: ITERATIONS,
        stored_key: vec![0; 32],
        server_key: vec![0; 32],
    }
}

/// Server side of one SCRAM exchange.
pub struct ScramExchange {
    waiting: Option<ScramServerAuthWaitingForClientFinal>,
    known_user: bool,
}

impl ScramExchange {
    /// Handles the client-first message; returns the server-first message.
    /// `verifier` is `None` for an unknown user: the exchange then runs to the
    /// end and fails like a wrong password.
    pub fn start(
        verifier: Option<&ScramVerifier>,
        user: &str,
        process_key: &[u8; 32],
        client_first: &[u8],
    ) -> Result<(Self, String), ScramError> {
        let (secret, known_user) = match verifier.map(secret_from) {
            Some(Ok(s)) => (s, true),
            Some(Err(e)) => return Err(e),
            None => (mock_secret(user, process_key), false),
        };
        let (server_first, waiting) = ScramServerAuth::new()
            .on_client_first_message_with_secret(client_first, secret)
            .map_err(|e| ScramError::Protocol(e.to_string()))?;
        Ok((
            Self {
                waiting: Some(waiting),
                known_user,
            },
            server_first,
        ))
    }

    /// Handles the client-final message; returns the server-final message.
    pub fn finish(mut self, client_final: &[u8]) -> Result<String, ScramError> {
        let waiting = self
            .waiting
            .take()
            .ok_or_else(|| ScramError::Protocol("exchange already finished".into()))?;
        match waiting.on_client_final_message(client_final) {
            Ok(server_final) if self.known_user => Ok(server_final),
            Ok(_) => Err(ScramError::BadPassword),
            Err(pgwire::error::PgWireError::InvalidPassword(_)) => Err(ScramError::BadPassword),
            Err(e) => Err(ScramError::Protocol(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn run(verifier: Option<&ScramVerifier>, password: &str) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let first = client.message().to_vec();
        let (ex, server_first) = ScramExchange::start(verifier, "alice", &[7; 32], &first)?;
        client
            .update(server_first.as_bytes())
            .map_err(|e| ScramError::Protocol(e.to_string()))?;
        let server_final = ex.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .map_err(|e| ScramError::Protocol(format!("client rejects server: {e}")))
    }

    #[test]
    fn verifier_round_trip_with_a_real_scram_client() {
        let text = make_verifier("correct horse");
        let v = ScramVerifier::parse(&text).expect("parses");
        assert!(run(Some(&v), "correct horse").is_ok());
        assert!(matches!(
            run(Some(&v), "wrong"),
            Err(ScramError::BadPassword)
        ));
    }

    #[test]
    fn unknown_user_fails_like_a_wrong_password() {
        assert!(matches!(
            run(None, "anything"),
            Err(ScramError::BadPassword)
        ));
    }

    #[test]
    fn garbage_client_first_is_a_protocol_error() {
        let v = ScramVerifier::parse(&make_verifier("x")).expect("parses");
        assert!(matches!(
            ScramExchange::start(Some(&v), "alice", &[0; 32], b"\xff\xfe garbage"),
            Err(ScramError::Protocol(_))
        ));
    }
}
