//! MySQL's stored `caching_sha2_password` hash, `$A$005$<salt><hash>`:
//! SHA-256-crypt (Drepper's algorithm) with a 20-byte salt and 5000 rounds
//! per "005". Written here because the crypt crates follow the standard's
//! 16-byte salt limit, which MySQL's own hashes exceed.

use sha2::{Digest, Sha256};

/// Salt length MySQL uses.
pub const SALT_LEN: usize = 20;
/// The crypt alphabet.
const B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A parsed `$A$<rounds/1000, 3 hex digits>$<20-byte salt><43-char hash>`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    /// Rounds (a multiple of 1000).
    pub rounds: u32,
    /// The salt's bytes.
    pub salt: Vec<u8>,
    /// The 43 encoded characters.
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredHash(<redacted>)")
    }
}

impl StoredHash {
    /// Parses MySQL's `authentication_string` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let rest = bytes
            .strip_prefix(b"$A$")
            .ok_or("a caching_sha2_password hash starts with $A$")?;
        let (count, rest) = (rest.get(..3).ok_or("too short")?, &rest[3..]);
        let count = std::str::from_utf8(count)
            .ok()
            .and_then(|c| u32::from_str_radix(c, 16).ok())
            .filter(|c| (1..=0xfff).contains(c))
            .ok_or("the round count after $A$ must be 3 hex digits")?;
        let rest = rest.strip_prefix(b"$").ok_or("a $ after the round count")?;
        if rest.len() != SALT_LEN + 43 {
            return Err(format!(
                "{SALT_LEN} bytes of salt and 43 of hash after $A$xxx$, not {}",
                rest.len()
            ));
        }
        Ok(Self {
            rounds: count * 1000,
            salt: rest[..SALT_LEN].to_vec(),
            hash: rest[SALT_LEN..].to_vec(),
        })
    }

    /// Whether `password` hashes to this.
    pub fn matches(&self, password: &[u8]) -> bool {
        let computed = encode(&crypt(password, &self.salt, self.rounds));
        computed.len() == self.hash.len()
            && computed
                .iter()
                .zip(&self.hash)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The stored form of `password` with `salt` (what `airlock passwd` prints).
    pub fn make(password: &[u8], salt: &[u8; SALT_LEN], rounds: u32) -> Vec<u8> {
        let mut out = format!("$A${:03X}$", rounds / 1000).into_bytes();
        out.extend_from_slice(salt);
        out.extend_from_slice(&encode(&crypt(password, salt, rounds)));
        out
    }
}

/// The alphabet a salt may be drawn from (printable; no `$`, `"` or `\\`).
pub const SALT_ALPHABET: &[u8; 64] = B64;

/// Appends `source` repeated to `len` bytes.
fn repeated(source: &[u8], len: usize) -> Vec<u8> {
    source.iter().copied().cycle().take(len).collect()
}

/// SHA-256-crypt's 32-byte result.
fn crypt(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    let b: [u8; 32] = Sha256::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize()
        .into();
    let mut a = Sha256::new().chain_update(password).chain_update(salt);
    a.update(repeated(&b, password.len()));
    let mut n = password.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(b);
        } else {
            a.update(password);
        }
        n >>= 1;
    }
    let a: [u8; 32] = a.finalize().into();
    let mut dp = Sha256::new();
    for _ in 0..password.len() {
        dp.update(password);
    }
    let p = repeated(&dp.finalize(), password.len());
    let mut ds = Sha256::new();
    for _ in 0..16 + usize::from(a[0]) {
        ds.update(salt);
    }
    let s = repeated(&ds.finalize(), salt.len());
    let mut c = a;
    for i in 0..rounds {
        let mut h = Sha256::new();
        if i % 2 == 1 {
            h.update(&p);
        } else {
            h.update(c);
        }
        if i % 3 != 0 {
            h.update(&s);
        }
        if i % 7 != 0 {
            h.update(&p);
        }
        if i % 2 == 1 {
            h.update(c);
        } else {
            h.update(&p);
        }
        c = h.finalize().into();
    }
    c
}

/// The crypt encoding of a SHA-256-crypt result (43 characters).
fn encode(c: &[u8; 32]) -> Vec<u8> {
    const ORDER: [(usize, usize, usize); 10] = [
        (0, 10, 20),
        (21, 1, 11),
        (12, 22, 2),
        (3, 13, 23),
        (24, 4, 14),
        (15, 25, 5),
        (6, 16, 26),
        (27, 7, 17),
        (18, 28, 8),
        (9, 19, 29),
    ];
    let mut out = Vec::with_capacity(43);
    let mut push = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
        for _ in 0..n {
            out.push(B64[(w & 0x3f) as usize]);
            w >>= 6;
        }
    };
    for (x, y, z) in ORDER {
        push(c[x], c[y], c[z], 4);
    }
    push(0, c[31], c[30], 3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `foobar` as MySQL 8 stores it (a vector from TiDB's tests of its
    /// MySQL-compatible authentication).
    const FOOBAR: &str = "24412430303524031A69251C34295C4B35167C7F1E5A7B63091349503974624D34504B5A424679354856336868686F52485A736E4A733368786E427575516C73446469496537";

    #[test]
    fn mysqls_own_hash_verifies() {
        let stored = StoredHash::parse(&hex::decode(FOOBAR).unwrap()).unwrap();
        assert_eq!(stored.rounds, 5000);
        assert!(stored.matches(b"foobar"));
        assert!(!stored.matches(b"not_foobar"));
        assert!(!stored.matches(b""));
    }

    #[test]
    fn made_hashes_round_trip_and_bad_ones_are_refused() {
        let salt = *b"abcdefghij0123456789";
        let made = StoredHash::make(b"s3cret", &salt, 5000);
        assert!(made.starts_with(b"$A$005$"));
        assert_eq!(made.len(), 7 + 20 + 43);
        let stored = StoredHash::parse(&made).unwrap();
        assert!(stored.matches(b"s3cret"));
        assert!(!stored.matches(b"s3cre"));
        assert!(StoredHash::parse(b"$A$005$short").is_err());
        assert!(StoredHash::parse(b"$5$rounds=5000$abc").is_err());
        assert!(StoredHash::parse(
            b"$A$ZZZ$01234567890123456789012345678901234567890123456789012345678901"
        )
        .is_err());
    }
}
