//! MySQL packet framing (pure): a 3-byte little-endian payload length and a
//! sequence id, then the payload; a payload of 16 MiB - 1 or more is split
//! into maximal packets ending with a shorter (possibly empty) one.

use bytes::{BufMut, BytesMut};

/// The largest payload of one packet; a packet this long is continued.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// Header of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length.
    pub len: usize,
    /// Sequence id.
    pub seq: u8,
}

impl Header {
    /// Reads the header at the start of `buf`, if it holds 4 bytes.
    pub fn peek(buf: &[u8]) -> Option<Header> {
        if buf.len() < 4 {
            return None;
        }
        Some(Header {
            len: usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16,
            seq: buf[3],
        })
    }

    /// Whether another packet continues this payload.
    pub fn continued(&self) -> bool {
        self.len == MAX_PAYLOAD
    }
}

/// Length of the first whole packet (header included) in `buf`, if it is
/// all there.
pub fn whole_packet(buf: &[u8]) -> Option<(Header, usize)> {
    let h = Header::peek(buf)?;
    let total = 4 + h.len;
    (buf.len() >= total).then_some((h, total))
}

/// Appends `payload` framed as packets starting at sequence id `seq`;
/// returns the next sequence id.
pub fn encode(out: &mut BytesMut, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        out.reserve(4 + n);
        out.put_uint_le(n as u64, 3);
        out.put_u8(seq);
        out.put_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PAYLOAD {
            return seq;
        }
    }
}

/// One payload put back together from its packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Sequence id of its first packet.
    pub seq: u8,
    /// Sequence id of its last packet.
    pub last_seq: u8,
    /// The bytes.
    pub data: Vec<u8>,
    /// Bytes of `buf` it spanned, headers included.
    pub wire_len: usize,
}

/// Why framing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A payload is longer than the bound this side accepts.
    #[error("packet of {len} bytes is over the {limit}-byte limit")]
    TooLong {
        /// Length announced so far.
        len: usize,
        /// The bound.
        limit: usize,
    },
    /// Sequence ids of a split payload do not follow each other.
    #[error("packet sequence id {got} where {expected} was expected")]
    Sequence {
        /// Expected id.
        expected: u8,
        /// Received id.
        got: u8,
    },
}

/// Takes the first whole payload out of `buf` (joining continued packets),
/// if it is all there; refuses one longer than `limit`.
pub fn take_payload(buf: &mut BytesMut, limit: usize) -> Result<Option<Payload>, FrameError> {
    let mut at = 0;
    let mut total = 0;
    let mut first = None;
    let mut expected = 0u8;
    // First pass: check that the whole payload is buffered.
    loop {
        let Some(h) = Header::peek(&buf[at..]) else {
            return check_len(total, limit).map(|_| None);
        };
        match first {
            None => first = Some(h.seq),
            Some(_) if h.seq != expected => {
                return Err(FrameError::Sequence {
                    expected,
                    got: h.seq,
                })
            }
            Some(_) => {}
        }
        expected = h.seq.wrapping_add(1);
        total += h.len;
        check_len(total, limit)?;
        if buf.len() < at + 4 + h.len {
            return Ok(None);
        }
        at += 4 + h.len;
        if !h.continued() {
            break;
        }
    }
    let chunk = buf.split_to(at);
    let mut data = Vec::with_capacity(total);
    let mut p = 0;
    let mut last_seq = 0;
    while p < chunk.len() {
        let Some(h) = Header::peek(&chunk[p..]) else {
            break;
        };
        data.extend_from_slice(&chunk[p + 4..p + 4 + h.len]);
        last_seq = h.seq;
        p += 4 + h.len;
    }
    Ok(Some(Payload {
        seq: first.unwrap_or(0),
        last_seq,
        data,
        wire_len: at,
    }))
}

fn check_len(total: usize, limit: usize) -> Result<(), FrameError> {
    if total > limit {
        Err(FrameError::TooLong { len: total, limit })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_small_and_split() {
        let mut out = BytesMut::new();
        assert_eq!(encode(&mut out, 3, b"\x03SELECT 1"), 4);
        assert_eq!(&out[..4], &[9, 0, 0, 3]);
        let p = take_payload(&mut out, 1 << 30).unwrap().unwrap();
        assert_eq!((p.seq, p.data.as_slice()), (3, &b"\x03SELECT 1"[..]));
        assert!(out.is_empty());

        let big = vec![7u8; MAX_PAYLOAD + 10];
        let mut out = BytesMut::new();
        assert_eq!(encode(&mut out, 0, &big), 2);
        assert_eq!(out.len(), big.len() + 8);
        let p = take_payload(&mut out, 1 << 30).unwrap().unwrap();
        assert_eq!((p.seq, p.last_seq, p.data.len()), (0, 1, big.len()));

        // Exactly the maximum: followed by an empty packet.
        let exact = vec![1u8; MAX_PAYLOAD];
        let mut out = BytesMut::new();
        assert_eq!(encode(&mut out, 0, &exact), 2);
        assert_eq!(out.len(), MAX_PAYLOAD + 8);
    }

    #[test]
    fn partial_oversized_and_bad_sequence() {
        let mut out = BytesMut::new();
        encode(&mut out, 0, b"hello");
        let mut part = BytesMut::from(&out[..6]);
        assert_eq!(take_payload(&mut part, 100).unwrap(), None);
        assert_eq!(part.len(), 6, "nothing taken from a partial packet");
        let mut big = BytesMut::from(&[0xff, 0xff, 0xff, 0][..]);
        assert!(matches!(
            take_payload(&mut big, 1000),
            Err(FrameError::TooLong { .. })
        ));
        let mut bad = BytesMut::new();
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0]);
        bad.extend_from_slice(&vec![0u8; MAX_PAYLOAD]);
        bad.extend_from_slice(&[0, 0, 0, 5]);
        assert!(matches!(
            take_payload(&mut bad, 1 << 30),
            Err(FrameError::Sequence {
                expected: 1,
                got: 5
            })
        ));
    }
}
