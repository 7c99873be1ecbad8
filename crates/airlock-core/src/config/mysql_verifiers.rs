//! The MySQL password verifiers a `[[users]]` entry may carry: what the
//! proxy checks a `mysql_native_password` or `caching_sha2_password` login
//! against, without knowing the password.

use super::sha2_crypt::StoredHash;

/// `mysql_native_password`: SHA1(SHA1(password)), written as MySQL's
/// `PASSWORD()` prints it (`*` and 40 upper- or lower-case hex digits).
#[derive(Clone, PartialEq, Eq)]
pub struct NativeVerifier(pub [u8; 20]);

/// What a `caching_sha2_password` login is checked against.
#[derive(Clone, PartialEq, Eq)]
pub enum Sha2Verifier {
    /// SHA256(SHA256(password)), 64 hex digits: the fast path answers
    /// every login.
    Fast([u8; 32]),
    /// MySQL's own salted hash (`$A$005$…`, or the 140 hex digits of
    /// `HEX(authentication_string)`): the first login of a user to an
    /// airlock process sends the password itself (over TLS, or RSA-encrypted),
    /// later ones take the fast path from memory, as on a MySQL server.
    Stored(StoredHash),
}

impl NativeVerifier {
    /// Parses `*` + 40 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text
            .strip_prefix('*')
            .ok_or("must start with '*' (as MySQL's PASSWORD() prints it): generate it with `airlock passwd`")?;
        let mut out = [0u8; 20];
        decode_hex(hex, &mut out)?;
        Ok(Self(out))
    }
}

impl Sha2Verifier {
    /// Parses 64 hex digits, `$A$…`, or the hex digits of `$A$…`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$A$") {
            return StoredHash::parse(text.as_bytes()).map(Self::Stored);
        }
        if text.len() > 64 && text.starts_with("244124") {
            let bytes = hex::decode(text).map_err(|_| {
                "must be hex digits only: generate it with `airlock passwd`".to_string()
            })?;
            return StoredHash::parse(&bytes).map(Self::Stored);
        }
        let mut out = [0u8; 32];
        decode_hex(text, &mut out)?;
        Ok(Self::Fast(out))
    }
}

fn decode_hex(text: &str, out: &mut [u8]) -> Result<(), String> {
    if text.len() != out.len() * 2 {
        return Err(format!(
            "must be {} hex digits: generate it with `airlock passwd`",
            out.len() * 2
        ));
    }
    hex::decode_to_slice(text, out)
        .map_err(|_| "must be hex digits only: generate it with `airlock passwd`".to_string())
}

impl std::fmt::Debug for NativeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NativeVerifier(<redacted>)")
    }
}

impl std::fmt::Debug for Sha2Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha2Verifier(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        // PASSWORD('secret') on MariaDB.
        let v = NativeVerifier::parse("*14E65567ABDB5135D0CFD9A70B3032C179A49EE7").unwrap();
        assert_eq!(v.0[0], 0x14);
        assert!(NativeVerifier::parse("14E65567ABDB5135D0CFD9A70B3032C179A49EE7").is_err());
        assert!(NativeVerifier::parse("*14E6").is_err());
        assert!(NativeVerifier::parse("*ZZE65567ABDB5135D0CFD9A70B3032C179A49EE7").is_err());
        assert!(matches!(
            Sha2Verifier::parse(&"ab".repeat(32)),
            Ok(Sha2Verifier::Fast(_))
        ));
        let stored = "$A$005$abcdefghij0123456789".to_string() + &"x".repeat(43);
        assert!(matches!(
            Sha2Verifier::parse(&stored),
            Ok(Sha2Verifier::Stored(_))
        ));
        assert!(matches!(
            Sha2Verifier::parse(&hex::encode(&stored)),
            Ok(Sha2Verifier::Stored(_))
        ));
        assert!(Sha2Verifier::parse("$A$005$short").is_err());
        assert!(Sha2Verifier::parse(&"ab".repeat(31)).is_err());
    }
}
