//! Reading and writing the protocol's basic types (pure): fixed-length
//! little-endian integers, length-encoded integers and strings,
//! NUL-terminated strings.

use bytes::{BufMut, BytesMut};

/// A payload ended before a field, or a field is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed packet: {0}")]
pub struct Malformed(pub &'static str);

/// A cursor over a payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed(what))?;
        let out = self.buf.get(self.pos..end).ok_or(Malformed(what))?;
        self.pos = end;
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.bytes(1, what)?[0])
    }

    /// A 2-byte integer.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A 4-byte integer.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-encoded integer (`None` for the NULL marker 0xFB).
    pub fn lenenc(&mut self, what: &'static str) -> Result<Option<u64>, Malformed> {
        let first = self.u8(what)?;
        let n = match first {
            0xfb => return Ok(None),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            0xff => return Err(Malformed(what)),
            v => return Ok(Some(u64::from(v))),
        };
        let b = self.bytes(n, what)?;
        let mut v = 0u64;
        for (i, byte) in b.iter().enumerate() {
            v |= u64::from(*byte) << (8 * i);
        }
        Ok(Some(v))
    }

    /// A length-encoded string.
    pub fn lenenc_bytes(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let n = self.lenenc(what)?.ok_or(Malformed(what))?;
        let n = usize::try_from(n).map_err(|_| Malformed(what))?;
        self.bytes(n, what)
    }

    /// A NUL-terminated string (the NUL is consumed); without a NUL, the rest.
    pub fn nul_bytes(&mut self) -> &'a [u8] {
        let rest = self.rest();
        match rest.iter().position(|b| *b == 0) {
            Some(i) => {
                self.pos += i + 1;
                &rest[..i]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }

    /// A NUL-terminated string that must be terminated.
    pub fn nul_terminated(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let rest = self.rest();
        let i = rest.iter().position(|b| *b == 0).ok_or(Malformed(what))?;
        self.pos += i + 1;
        Ok(&rest[..i])
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc(out: &mut BytesMut, v: u64) {
    match v {
        0..=250 => out.put_u8(v as u8),
        251..=0xffff => {
            out.put_u8(0xfc);
            out.put_u16_le(v as u16);
        }
        0x1_0000..=0xff_ffff => {
            out.put_u8(0xfd);
            out.put_uint_le(v, 3);
        }
        _ => {
            out.put_u8(0xfe);
            out.put_u64_le(v);
        }
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_bytes(out: &mut BytesMut, b: &[u8]) {
    put_lenenc(out, b.len() as u64);
    out.put_slice(b);
}

/// Appends a NUL-terminated string.
pub fn put_nul(out: &mut BytesMut, b: &[u8]) {
    out.put_slice(b);
    out.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_round_trip() {
        for v in [
            0u64,
            250,
            251,
            0xffff,
            0x1_0000,
            0xff_ffff,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = BytesMut::new();
            put_lenenc(&mut out, v);
            assert_eq!(Reader::new(&out).lenenc("v").unwrap(), Some(v));
        }
        assert_eq!(Reader::new(&[0xfb]).lenenc("v").unwrap(), None);
        assert!(Reader::new(&[0xff]).lenenc("v").is_err());
        assert!(Reader::new(&[0xfc, 1]).lenenc("v").is_err());
        assert!(Reader::new(&[5, 1, 2]).lenenc_bytes("s").is_err());
    }

    #[test]
    fn strings() {
        let mut r = Reader::new(b"abc\0def");
        assert_eq!(r.nul_bytes(), b"abc");
        assert!(r.clone().nul_terminated("x").is_err());
        assert_eq!(r.nul_bytes(), b"def");
        assert!(r.is_empty());
        assert!(Reader::new(&[]).u32("x").is_err());
    }
}
