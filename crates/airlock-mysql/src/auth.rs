//! Password scrambles of `mysql_native_password` and
//! `caching_sha2_password` (pure): computing them as a client and checking
//! them against a stored verifier as a server.

use sha1::{Digest, Sha1};
use sha2::Sha256;

/// `mysql_native_password`.
pub const NATIVE: &str = "mysql_native_password";
/// `caching_sha2_password`.
pub const CACHING_SHA2: &str = "caching_sha2_password";
/// MariaDB's `client_ed25519`.
pub const ED25519: &str = "client_ed25519";
/// `mysql_clear_password` (only ever over TLS).
pub const CLEAR: &str = "mysql_clear_password";

/// `caching_sha2_password`: the server accepted the fast path.
pub const FAST_AUTH_OK: u8 = 3;
/// `caching_sha2_password`: the server wants the password itself.
pub const FULL_AUTH: u8 = 4;
/// `caching_sha2_password`: the client asks for the server's RSA key.
pub const REQUEST_PUBLIC_KEY: u8 = 2;

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Constant-time equality.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `mysql_native_password`'s verifier: SHA1(SHA1(password)).
pub fn native_verifier(password: &str) -> [u8; 20] {
    Sha1::digest(Sha1::digest(password.as_bytes())).into()
}

/// `caching_sha2_password`'s verifier: SHA256(SHA256(password)).
pub fn sha2_verifier(password: &str) -> [u8; 32] {
    sha2_verifier_bytes(password.as_bytes())
}

/// [`sha2_verifier`] of a password's bytes.
pub fn sha2_verifier_bytes(password: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(password)).into()
}

/// The client's `mysql_native_password` answer to `scramble` (empty for an
/// empty password).
pub fn native_token(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha1::digest(password.as_bytes());
    let h2 = Sha1::digest(h1);
    let mut h = Sha1::new();
    h.update(&scramble[..scramble.len().min(20)]);
    h.update(h2);
    xor(&h1, &h.finalize())
}

/// Checks a `mysql_native_password` answer against SHA1(SHA1(password)).
pub fn native_check(verifier: &[u8; 20], scramble: &[u8], token: &[u8]) -> bool {
    if token.is_empty() {
        return ct_eq(verifier, &native_verifier(""));
    }
    if token.len() != 20 {
        return false;
    }
    let mut h = Sha1::new();
    h.update(&scramble[..scramble.len().min(20)]);
    h.update(verifier);
    let h1 = xor(token, &h.finalize());
    ct_eq(&Sha1::digest(&h1), verifier)
}

/// The client's `caching_sha2_password` fast-path answer (empty for an
/// empty password).
pub fn sha2_token(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha256::digest(password.as_bytes());
    let h2 = Sha256::digest(h1);
    let mut h = Sha256::new();
    h.update(h2);
    h.update(&scramble[..scramble.len().min(20)]);
    xor(&h1, &h.finalize())
}

/// Checks a `caching_sha2_password` fast-path answer against
/// SHA256(SHA256(password)).
pub fn sha2_check(verifier: &[u8; 32], scramble: &[u8], token: &[u8]) -> bool {
    if token.is_empty() {
        return ct_eq(verifier, &sha2_verifier(""));
    }
    if token.len() != 32 {
        return false;
    }
    let mut h = Sha256::new();
    h.update(verifier);
    h.update(&scramble[..scramble.len().min(20)]);
    let h1 = xor(token, &h.finalize());
    ct_eq(&Sha256::digest(&h1), verifier)
}

/// Checks a password sent in full (over TLS) against SHA256(SHA256(password)).
pub fn sha2_check_password(verifier: &[u8; 32], password: &[u8]) -> bool {
    ct_eq(
        verifier,
        Sha256::digest(Sha256::digest(password)).as_slice(),
    )
}

/// A fresh 20-byte scramble of printable, non-NUL bytes (as servers send).
pub fn new_scramble() -> [u8; 20] {
    let mut out = [0u8; 20];
    for b in out.iter_mut() {
        // 0x21..=0x7e: printable ASCII without space, never NUL or '$'-free
        // requirements of any plugin.
        *b = rand::random_range(0x21u8..=0x7e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_matches_mariadb_password_function() {
        // SELECT PASSWORD('secret') on MariaDB 10.11.
        assert_eq!(
            hex::encode_upper(native_verifier("secret")),
            "14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
    }

    #[test]
    fn tokens_check_against_verifiers() {
        let s = new_scramble();
        let v = native_verifier("pw");
        assert!(native_check(&v, &s, &native_token("pw", &s)));
        assert!(!native_check(&v, &s, &native_token("pX", &s)));
        assert!(!native_check(&v, &s, &[]));
        assert!(native_check(&native_verifier(""), &s, &[]));
        let v = sha2_verifier("pw");
        assert!(sha2_check(&v, &s, &sha2_token("pw", &s)));
        assert!(!sha2_check(&v, &new_scramble(), &sha2_token("pw", &s)));
        assert!(!sha2_check(&v, &s, &[1, 2, 3]));
        assert!(sha2_check_password(&v, b"pw"));
        assert!(!sha2_check_password(&v, b"pw2"));
    }
}
