//! Text result sets the proxy itself answers with (`SHOW airlock.requests`,
//! `SHOW airlock.reason`): string columns, encoded as the server would for
//! the session's capabilities (pure).

use crate::caps;
use crate::messages::{eof, OkPacket};
use crate::wire::{put_lenenc, put_lenenc_bytes};
use bytes::{BufMut, BytesMut};

/// `MYSQL_TYPE_VAR_STRING`.
const VAR_STRING: u8 = 0xfd;

fn column(name: &str, extended_metadata: bool) -> BytesMut {
    let mut out = BytesMut::with_capacity(32 + 2 * name.len());
    for part in ["def", "", "", ""] {
        put_lenenc_bytes(&mut out, part.as_bytes());
    }
    put_lenenc_bytes(&mut out, name.as_bytes());
    put_lenenc_bytes(&mut out, name.as_bytes());
    if extended_metadata {
        // MariaDB's extended type information: none.
        put_lenenc(&mut out, 0);
    }
    put_lenenc(&mut out, 0x0c);
    out.put_u16_le(45); // utf8mb4_general_ci
    out.put_u32_le(1024);
    out.put_u8(VAR_STRING);
    out.put_u16_le(0);
    out.put_u8(0);
    out.put_u16_le(0);
    out
}

/// The payloads of a result set with `columns` and `rows` (`None` is NULL),
/// for a session with `capabilities` and MariaDB's `mariadb_capabilities`.
pub fn encode(
    columns: &[&str],
    rows: &[Vec<Option<String>>],
    capabilities: u32,
    mariadb_capabilities: u32,
) -> Vec<BytesMut> {
    let extended = mariadb_capabilities & caps::MARIADB_EXTENDED_METADATA != 0;
    let deprecate_eof = capabilities & caps::DEPRECATE_EOF != 0;
    let mut out = Vec::with_capacity(columns.len() + rows.len() + 3);
    let mut count = BytesMut::new();
    put_lenenc(&mut count, columns.len() as u64);
    out.push(count);
    out.extend(columns.iter().map(|c| column(c, extended)));
    if !deprecate_eof {
        out.push(eof(0, caps::STATUS_AUTOCOMMIT));
    }
    for row in rows {
        let mut r = BytesMut::new();
        for v in row {
            match v {
                Some(s) => put_lenenc_bytes(&mut r, s.as_bytes()),
                None => r.put_u8(0xfb),
            }
        }
        out.push(r);
    }
    if deprecate_eof {
        out.push(
            OkPacket {
                status: caps::STATUS_AUTOCOMMIT,
                ..Default::default()
            }
            .encode(0xfe),
        );
    } else {
        out.push(eof(0, caps::STATUS_AUTOCOMMIT));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::{Response, Shape, Step};

    #[test]
    fn the_relay_reads_it_as_one_complete_result() {
        for caps in [0, caps::DEPRECATE_EOF] {
            let packets = encode(&["id", "status"], &[vec![Some("1".into()), None]], caps, 0);
            let mut r = Response::new(Shape::Results, caps);
            let steps: Vec<Step> = packets.iter().map(|p| r.packet(p.len(), p)).collect();
            assert_eq!(steps.last(), Some(&Step::Done));
            assert!(steps[..steps.len() - 1].iter().all(|s| *s == Step::More));
        }
    }
}
