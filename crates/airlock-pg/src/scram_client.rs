//! SCRAM-SHA-256 towards upstreams (RFC 5802/7677, as Postgres does it:
//! no channel binding, empty user name), with the salted password cached per
//! (password, salt, iterations). PBKDF2 with Postgres's 4096 iterations is
//! the costliest step of opening an upstream session, and its result only
//! changes when the role's password does; `postgres-protocol`'s client has no
//! way to reuse it, hence this small client. No I/O here.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

/// Most salted passwords kept (one per upstream role and password, normally).
const MAX_CACHED: usize = 256;
/// Largest iteration count accepted from an upstream (Postgres allows up to i32::MAX; a
/// hostile upstream could ask for hours of PBKDF2).
const MAX_ITERATIONS: u32 = 1_000_000;

/// Why the upstream's SCRAM exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ScramClientError {
    /// The server's message is not what SCRAM allows.
    #[error("invalid SCRAM server message: {0}")]
    Protocol(String),
    /// The server could not prove it knows the password.
    #[error("the upstream's SCRAM server signature does not match")]
    BadServerSignature,
}

/// (SHA-256 of the password, salt, iterations).
type CacheKey = ([u8; 32], Vec<u8>, u32);

/// Salted passwords by [`CacheKey`].
#[derive(Default)]
pub struct SaltedPasswords {
    map: Mutex<HashMap<CacheKey, [u8; 32]>>,
}

impl SaltedPasswords {
    /// The salted password, from the cache or computed (and kept).
    fn get(&self, password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
        let key = (
            <[u8; 32]>::from(Sha256::digest(password.as_bytes())),
            salt.to_vec(),
            iterations,
        );
        if let Some(hit) = self.map.lock().ok().and_then(|m| m.get(&key).copied()) {
            return hit;
        }
        let salted = pgwire::api::auth::sasl::scram::gen_salted_password(
            password,
            salt,
            iterations as usize,
        );
        let mut out = [0u8; 32];
        if salted.len() == 32 {
            out.copy_from_slice(&salted);
        }
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_CACHED {
                m.clear();
            }
            m.insert(key, out);
        }
        out
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One client-side exchange.
pub struct ScramClient {
    nonce: String,
    client_first_bare: String,
    server_signature: Option<[u8; 32]>,
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

impl ScramClient {
    /// Starts an exchange; the returned client-first message goes into
    /// SASLInitialResponse.
    pub fn start() -> (Self, String) {
        let nonce = STANDARD.encode(rand::random::<[u8; 18]>());
        let client_first_bare = format!("n=,r={nonce}");
        let first = format!("n,,{client_first_bare}");
        (
            Self {
                nonce,
                client_first_bare,
                server_signature: None,
            },
            first,
        )
    }

    /// Answers the server-first message with the client-final message.
    pub fn client_final(
        &mut self,
        server_first: &[u8],
        password: &str,
        cache: &SaltedPasswords,
    ) -> Result<String, ScramClientError> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| ScramClientError::Protocol("not UTF-8".into()))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(ScramClientError::Protocol(
                "server-first lacks r, s or i".into(),
            ));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramClientError::Protocol(
                "server nonce does not extend ours".into(),
            ));
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| ScramClientError::Protocol("salt is not base64".into()))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|&i| (1..=MAX_ITERATIONS).contains(&i))
            .ok_or_else(|| ScramClientError::Protocol(format!("iteration count {iterations}")))?;
        let salted = cache.get(password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks the server-final message (`v=<signature>`).
    pub fn verify_final(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramClientError::Protocol("not UTF-8".into()))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramClientError::Protocol(format!("server error {e}")));
        }
        let sig = text
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or_else(|| ScramClientError::Protocol("server-final lacks v".into()))?;
        match &self.server_signature {
            // Constant time is not needed here: the server proves itself to us.
            Some(expected) if expected.as_slice() == sig.as_slice() => Ok(()),
            _ => Err(ScramClientError::BadServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays Postgres's server side with a verifier made from `password`.
    fn server_round(password: &str, cache: &SaltedPasswords) -> Result<(), ScramClientError> {
        let salt = b"0123456789abcdef".to_vec();
        let salted = pgwire::api::auth::sasl::scram::gen_salted_password("secret", &salt, 4096);
        let (client_key, server_key) = (hmac(&salted, b"Client Key"), hmac(&salted, b"Server Key"));
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let (mut c, first) = ScramClient::start();
        let client_nonce = first.rsplit("r=").next().unwrap_or_default().to_string();
        let server_first = format!("r={client_nonce}SERVER,s={},i=4096", STANDARD.encode(&salt));
        let fin = c.client_final(server_first.as_bytes(), password, cache)?;
        let (without_proof, proof_b64) = fin.rsplit_once(",p=").unwrap_or_default();
        let auth_message = format!("n=,r={client_nonce},{server_first},{without_proof}");
        let sig = hmac(&stored, auth_message.as_bytes());
        let proof = STANDARD.decode(proof_b64).unwrap_or_default();
        let recovered: Vec<u8> = proof.iter().zip(sig.iter()).map(|(p, s)| p ^ s).collect();
        let recovered_stored: [u8; 32] = Sha256::digest(&recovered).into();
        if recovered_stored != stored {
            return Err(ScramClientError::BadServerSignature);
        }
        let server_sig = hmac(&server_key, auth_message.as_bytes());
        c.verify_final(format!("v={}", STANDARD.encode(server_sig)).as_bytes())
    }

    #[test]
    fn proves_the_password_and_checks_the_server_with_one_pbkdf2_per_salt() {
        let cache = SaltedPasswords::default();
        assert!(server_round("secret", &cache).is_ok());
        assert!(server_round("secret", &cache).is_ok());
        assert_eq!(
            cache.len(),
            1,
            "the second exchange reused the salted password"
        );
        assert!(server_round("wrong", &cache).is_err());
    }

    #[test]
    fn hostile_server_messages_are_refused() {
        let cache = SaltedPasswords::default();
        let (mut c, _) = ScramClient::start();
        assert!(c
            .client_final(b"r=other,s=AAAA,i=4096", "p", &cache)
            .is_err());
        let (mut c, first) = ScramClient::start();
        let n = first.rsplit("r=").next().unwrap_or_default().to_string();
        let huge = format!("r={n}x,s=AAAA,i=2000000000");
        assert!(c.client_final(huge.as_bytes(), "p", &cache).is_err());
        assert!(c.verify_final(b"v=AAAA").is_err());
    }
}
