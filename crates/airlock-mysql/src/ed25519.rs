//! MariaDB's `client_ed25519`: an Ed25519 signature of the scramble whose
//! expanded secret key is SHA-512 of the password itself (MariaDB's
//! `crypto_sign` in `plugin/auth_ed25519`), rather than of a 32-byte seed.

use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// The 64-byte signature of `scramble` for `password`.
pub fn sign(password: &str, scramble: &[u8]) -> Vec<u8> {
    let hash: [u8; 64] = Sha512::digest(password.as_bytes()).into();
    let secret = ExpandedSecretKey::from_bytes(&hash);
    let public = VerifyingKey::from(&secret);
    raw_sign::<Sha512>(&secret, scramble, &public)
        .to_bytes()
        .to_vec()
}

/// MariaDB's stored form of the key (`PASSWORD()` under `ed25519`):
/// the public key, base64 without padding.
pub fn public_key(password: &str) -> String {
    use base64::Engine;
    let hash: [u8; 64] = Sha512::digest(password.as_bytes()).into();
    let secret = ExpandedSecretKey::from_bytes(&hash);
    let public = VerifyingKey::from(&secret);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(public.as_bytes())
}
