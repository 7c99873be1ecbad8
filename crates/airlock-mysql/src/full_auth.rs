//! `caching_sha2_password`'s full authentication towards clients: when the
//! fast path cannot vouch for a login (a user whose verifier is MySQL's
//! salted hash and who has not logged in to this process yet), the client
//! sends the password itself — in clear
//! over TLS, or encrypted with airlock's RSA key (OAEP) on a plain
//! connection — and it is checked against the verifier. A success under a
//! salted hash is remembered in memory (SHA256(SHA256(password))), so that
//! user's next logins take the fast path, as on a MySQL server.

use crate::auth;
use crate::conn::PacketConn;
use crate::login::{Refusal, LOGIN_LIMIT};
use crate::messages::auth_more;
use airlock_core::config::{Sha2Verifier, StoredHash};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OnceCell;

/// Fast-path verifiers learnt from full authentications, by user and the
/// stored hash they were checked against (a changed hash forgets them).
#[derive(Default)]
pub struct Sha2Cache(Mutex<HashMap<CacheKey, [u8; 32]>>);

/// A user and the stored hash their password was checked against.
type CacheKey = (String, Vec<u8>);

impl Sha2Cache {
    fn key(user: &str, stored: &StoredHash) -> CacheKey {
        (user.to_string(), stored.hash.clone())
    }

    /// The remembered fast verifier of `user` under `stored`.
    pub fn get(&self, user: &str, stored: &StoredHash) -> Option<[u8; 32]> {
        self.0.lock().ok()?.get(&Self::key(user, stored)).copied()
    }

    fn put(&self, user: &str, stored: &StoredHash, fast: [u8; 32]) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(Self::key(user, stored), fast);
        }
    }
}

/// airlock's RSA key for the password exchange on plain connections,
/// made on first use and kept for the life of the process (clients ask for
/// the public key on each login, so replicas need not share it). OpenSSL
/// because neither ring nor rustls decrypt RSA, and RustCrypto's `rsa`
/// carries an unfixed timing side channel in exactly this operation
/// (RUSTSEC-2023-0071).
#[derive(Default)]
pub struct RsaKey(OnceCell<Arc<openssl::rsa::Rsa<openssl::pkey::Private>>>);

impl RsaKey {
    async fn get(&self) -> Option<Arc<openssl::rsa::Rsa<openssl::pkey::Private>>> {
        self.0
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(|| openssl::rsa::Rsa::generate(2048).map(Arc::new))
                    .await
                    .map_err(|_| ())?
                    .map_err(|_| ())
            })
            .await
            .ok()
            .cloned()
    }
}

/// What full authentication needs from the listener.
#[derive(Default, Clone)]
pub struct Sha2Auth {
    /// Learnt fast verifiers.
    pub cache: Arc<Sha2Cache>,
    /// The RSA key.
    pub rsa: Arc<RsaKey>,
}

/// The outcome of a `caching_sha2_password` check.
pub struct Checked {
    /// The password was right.
    pub ok: bool,
    /// The next sequence id.
    pub seq: u8,
}

/// Checks a `caching_sha2_password` login of `user` (whose verifier is
/// `verifier`, if any) that answered `scramble` with `token`: the fast
/// path when it vouches, else full authentication.
#[allow(clippy::too_many_arguments)]
pub async fn check<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut PacketConn<S>,
    seq: u8,
    tls: bool,
    sha2: &Sha2Auth,
    user: &str,
    verifier: Option<&Sha2Verifier>,
    scramble: &[u8],
    token: &[u8],
) -> Result<Checked, Refusal> {
    // As on a MySQL server: a known fast verifier decides (a wrong scramble
    // is a wrong password, and asking for the password then would only
    // make some clients send it in clear); only a salted hash not yet
    // learnt asks for the password itself.
    let (stored, fast_key) = match verifier {
        Some(Sha2Verifier::Fast(v)) => (None, Some(*v)),
        Some(Sha2Verifier::Stored(h)) => (Some(h), sha2.cache.get(user, h)),
        None => (None, None),
    };
    let stored = match (stored, fast_key) {
        (_, Some(k)) => {
            let ok = auth::sha2_check(&k, scramble, token);
            let seq = if ok {
                conn.write_payload(seq, &auth_more(&[auth::FAST_AUTH_OK]))
                    .await?
            } else {
                seq
            };
            return Ok(Checked { ok, seq });
        }
        (Some(h), None) => h,
        (None, None) => return Ok(Checked { ok: false, seq }),
    };
    // Each answer's sequence id follows the client's packet it answers.
    conn.write_payload(seq, &auth_more(&[auth::FULL_AUTH]))
        .await?;
    let mut p = conn.read_payload(LOGIN_LIMIT).await?;
    let mut seq = p.seq.wrapping_add(1);
    let password = if tls {
        p.data
    } else if p.data == [auth::REQUEST_PUBLIC_KEY] {
        let key = sha2
            .rsa
            .get()
            .await
            .ok_or_else(|| Refusal::Broken("no RSA key for caching_sha2_password".into()))?;
        let pem = key
            .public_key_to_pem()
            .map_err(|e| Refusal::Broken(format!("RSA public key: {e}")))?;
        conn.write_payload(seq, &auth_more(&pem)).await?;
        p = conn.read_payload(LOGIN_LIMIT).await?;
        seq = p.seq.wrapping_add(1);
        let mut plain = vec![0u8; key.size() as usize];
        let n = key
            .private_decrypt(&p.data, &mut plain, openssl::rsa::Padding::PKCS1_OAEP)
            .unwrap_or(0);
        plain.truncate(n);
        xor_scramble(&mut plain, scramble);
        plain
    } else {
        // The password in clear on a plain connection: never accepted.
        return Err(Refusal::Sent {
            user: user.to_string(),
            reason: refuse_clear(conn, seq, user).await?,
        });
    };
    let password = password.strip_suffix(&[0]).unwrap_or(&password);
    let ok = stored.matches(password);
    if ok {
        sha2.cache
            .put(user, stored, auth::sha2_verifier_bytes(password));
    }
    Ok(Checked { ok, seq })
}

/// `password\0` XOR the scramble, repeated: what the client encrypted.
fn xor_scramble(data: &mut [u8], scramble: &[u8]) {
    if scramble.is_empty() {
        return;
    }
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= scramble[i % scramble.len()];
    }
}

async fn refuse_clear<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut PacketConn<S>,
    seq: u8,
    user: &str,
) -> Result<String, Refusal> {
    let err = crate::messages::ErrPacket::new(
        crate::login::ACCESS_DENIED,
        "28000",
        format!("Access denied for user '{user}': caching_sha2_password full authentication needs TLS or the RSA public-key exchange (for example --get-server-public-key), never a clear password on a plain connection"),
    );
    conn.write_payload(seq, &err.encode()).await?;
    Ok("a clear password on a plain connection".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scramble_xor_undoes_itself() {
        let scramble = b"abcdefghijklmnopqrst";
        let mut data = b"a long password over twenty bytes\0".to_vec();
        xor_scramble(&mut data, scramble);
        assert_ne!(&data[..], b"a long password over twenty bytes\0");
        xor_scramble(&mut data, scramble);
        assert_eq!(&data[..], b"a long password over twenty bytes\0");
    }

    #[tokio::test]
    async fn the_rsa_key_decrypts_what_its_public_half_encrypts() {
        let key = RsaKey::default();
        let k = key.get().await.expect("key");
        let public =
            openssl::rsa::Rsa::public_key_from_pem(&k.public_key_to_pem().unwrap()).unwrap();
        let mut sealed = vec![0u8; public.size() as usize];
        let n = public
            .public_encrypt(b"secret\0", &mut sealed, openssl::rsa::Padding::PKCS1_OAEP)
            .unwrap();
        let mut opened = vec![0u8; k.size() as usize];
        let m = k
            .private_decrypt(&sealed[..n], &mut opened, openssl::rsa::Padding::PKCS1_OAEP)
            .unwrap();
        assert_eq!(&opened[..m], b"secret\0");
        assert!(Arc::ptr_eq(&k, &key.get().await.expect("same key")));
    }
}
