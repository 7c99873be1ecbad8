//! Pure Postgres v3 framing and the few message bodies the proxy must read or
//! write itself. No I/O.
//!
//! Written by hand on purpose: the relay forwards raw frames and decodes only
//! the messages that carry SQL, and neither `pgwire`'s codec (no FunctionCall,
//! lossy text, size caps) nor `postgres-protocol` (no server-side encoders)
//! can split frames without decoding them. Upstream startup messages use
//! `postgres-protocol`'s encoders instead (see `upstream.rs`).

use bytes::{BufMut, Bytes, BytesMut};

/// Protocol version 3.0 as sent in a StartupMessage.
pub const PROTOCOL_3_0: i32 = 196_608;
/// CancelRequest code.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Postgres's own cap on a startup packet.
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// Postgres's own cap on one protocol message (`PQ_LARGE_MESSAGE_LIMIT`, 1 GB - 1).
pub const MAX_MESSAGE: usize = 0x3fff_ffff;

/// A framing or decoding problem in bytes received from a peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A length field outside what Postgres itself accepts.
    #[error("invalid message length {0}")]
    BadLength(i64),
    /// A message body that does not match its type.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// A startup packet with an unsupported protocol version.
    #[error("unsupported frontend protocol {0}.{1}")]
    UnsupportedProtocol(u16, u16),
}

/// Header of a typed message found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type byte.
    pub tag: u8,
    /// Total frame length including the type byte and length field.
    pub frame_len: usize,
}

/// Reads the header of the typed message at the start of `buf`, if 5 bytes are there.
pub fn peek_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 || len as usize > MAX_MESSAGE {
        return Err(FrameError::BadLength(len.into()));
    }
    Ok(Some(Header {
        tag: buf[0],
        frame_len: len as usize + 1,
    }))
}

/// Splits one complete typed frame off the front of `buf`.
pub fn split_frame(buf: &mut BytesMut) -> Result<Option<(u8, Bytes)>, FrameError> {
    match peek_header(buf)? {
        Some(h) if buf.len() >= h.frame_len => {
            Ok(Some((h.tag, buf.split_to(h.frame_len).freeze())))
        }
        _ => Ok(None),
    }
}

/// The first packet a client sends (untyped: length + code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// A StartupMessage with its parameters, in order.
    Startup {
        /// Minor protocol version requested (major is 3).
        minor: u16,
        /// Parameters (`user`, `database`, `options`, ... and `_pq_.` options).
        params: Vec<(String, String)>,
    },
    /// A CancelRequest for a backend.
    Cancel {
        /// Process id the client was given.
        pid: i32,
        /// Secret key the client was given.
        key: i32,
    },
    /// SSLRequest or GSSENCRequest arriving where it is not allowed.
    Negotiation,
}

/// Length of the untyped packet at the start of `buf`, if known.
pub fn startup_packet_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP_PACKET {
        return Err(FrameError::BadLength(len.into()));
    }
    Ok(Some(len as usize))
}

/// Decodes a complete untyped startup packet (length included).
pub fn parse_startup(packet: &[u8]) -> Result<StartupPacket, FrameError> {
    if packet.len() < 8 {
        return Err(FrameError::Malformed("startup"));
    }
    let code = i32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    match code {
        CANCEL_REQUEST_CODE => {
            if packet.len() != 16 {
                return Err(FrameError::Malformed("CancelRequest"));
            }
            let pid = i32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
            let key = i32::from_be_bytes([packet[12], packet[13], packet[14], packet[15]]);
            Ok(StartupPacket::Cancel { pid, key })
        }
        80_877_103 | 80_877_104 => Ok(StartupPacket::Negotiation),
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(FrameError::UnsupportedProtocol(major, minor));
            }
            let mut params = Vec::new();
            let mut body = &packet[8..];
            loop {
                let (key, rest) = cstr(body).ok_or(FrameError::Malformed("startup"))?;
                if key.is_empty() {
                    if !rest.is_empty() {
                        return Err(FrameError::Malformed("startup"));
                    }
                    break;
                }
                let (value, rest) = cstr(rest).ok_or(FrameError::Malformed("startup"))?;
                params.push((utf8(key)?, utf8(value)?));
                body = rest;
            }
            Ok(StartupPacket::Startup { minor, params })
        }
    }
}

fn utf8(b: &[u8]) -> Result<String, FrameError> {
    String::from_utf8(b.to_vec()).map_err(|_| FrameError::Malformed("startup (not UTF-8)"))
}

/// Splits a NUL-terminated string off the front of `b`.
pub fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = b.iter().position(|&c| c == 0)?;
    Some((&b[..nul], &b[nul + 1..]))
}

/// Body of a typed frame (after type byte and length).
pub fn body(frame: &[u8]) -> &[u8] {
    frame.get(5..).unwrap_or(&[])
}

/// Decodes a Query ('Q') frame into its SQL text.
pub fn query_sql(frame: &[u8]) -> Result<&[u8], FrameError> {
    cstr(body(frame))
        .map(|(s, _)| s)
        .ok_or(FrameError::Malformed("Query"))
}

/// Decodes a Parse ('P') frame into (statement name, SQL text).
pub fn parse_message(frame: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let (name, rest) = cstr(body(frame)).ok_or(FrameError::Malformed("Parse"))?;
    let (sql, _) = cstr(rest).ok_or(FrameError::Malformed("Parse"))?;
    Ok((name, sql))
}

/// Decodes the statement name a Bind ('B') frame refers to.
pub fn bind_statement(frame: &[u8]) -> Result<&[u8], FrameError> {
    let (_portal, rest) = cstr(body(frame)).ok_or(FrameError::Malformed("Bind"))?;
    let (stmt, _) = cstr(rest).ok_or(FrameError::Malformed("Bind"))?;
    Ok(stmt)
}

/// Parameter type OIDs declared by a Parse ('P') frame.
pub fn parse_types(frame: &[u8]) -> Result<Vec<u32>, FrameError> {
    const E: FrameError = FrameError::Malformed("Parse");
    let (_, rest) = cstr(body(frame)).ok_or(E)?;
    let (_, rest) = cstr(rest).ok_or(E)?;
    let n = u16::from_be_bytes([*rest.first().ok_or(E)?, *rest.get(1).ok_or(E)?]) as usize;
    let mut types = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        let b = rest.get(2 + i * 4..6 + i * 4).ok_or(E)?;
        types.push(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    }
    Ok(types)
}

/// The parameters of a Bind ('B') frame, typed with the Parse's declared OIDs.
pub fn bind_params(
    frame: &[u8],
    types: &[u32],
) -> Result<Vec<airlock_core::request::Param>, FrameError> {
    const E: FrameError = FrameError::Malformed("Bind");
    let (_, rest) = cstr(body(frame)).ok_or(E)?;
    let (_, mut rest) = cstr(rest).ok_or(E)?;
    let take16 = |r: &mut &[u8]| -> Result<i16, FrameError> {
        let v = i16::from_be_bytes([*r.first().ok_or(E)?, *r.get(1).ok_or(E)?]);
        *r = &r[2..];
        Ok(v)
    };
    let nformats = take16(&mut rest)?.max(0) as usize;
    let mut formats = Vec::with_capacity(nformats.min(1024));
    for _ in 0..nformats {
        formats.push(take16(&mut rest)? == 1);
    }
    let nparams = take16(&mut rest)?.max(0) as usize;
    let mut params = Vec::with_capacity(nparams.min(1024));
    for i in 0..nparams {
        let len_bytes = rest.get(..4).ok_or(E)?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        rest = &rest[4..];
        let value = if len < 0 {
            None
        } else {
            let v = rest.get(..len as usize).ok_or(E)?;
            rest = &rest[len as usize..];
            Some(v.to_vec())
        };
        let binary = match formats.len() {
            0 => false,
            1 => formats[0],
            _ => *formats.get(i).ok_or(E)?,
        };
        params.push(airlock_core::request::Param {
            type_id: types.get(i).copied().unwrap_or(0),
            binary,
            value,
        });
    }
    Ok(params)
}

/// The portal name of an Execute ('E') frame.
pub fn execute_portal(frame: &[u8]) -> Result<&[u8], FrameError> {
    cstr(body(frame))
        .map(|(portal, _)| portal)
        .ok_or(FrameError::Malformed("Execute"))
}

/// Decodes a Close ('C') frame into (kind `S` or `P`, name).
pub fn close_target(frame: &[u8]) -> Result<(u8, &[u8]), FrameError> {
    let b = body(frame);
    let (&kind, rest) = b.split_first().ok_or(FrameError::Malformed("Close"))?;
    let (name, _) = cstr(rest).ok_or(FrameError::Malformed("Close"))?;
    Ok((kind, name))
}

/// A decoded FunctionCall ('F') message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall<'a> {
    /// OID of the function.
    pub oid: u32,
    /// Arguments: (is_binary, value or NULL).
    pub args: Vec<(bool, Option<&'a [u8]>)>,
}

impl FunctionCall<'_> {
    /// Argument `i` as an integer, in either format.
    pub fn int_arg(&self, i: usize) -> Option<i64> {
        match self.args.get(i)? {
            (true, Some(v)) if v.len() == 4 => {
                Some(i32::from_be_bytes([v[0], v[1], v[2], v[3]]).into())
            }
            (true, Some(v)) if v.len() == 8 => Some(i64::from_be_bytes([
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
            ])),
            (false, Some(v)) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Decodes a FunctionCall ('F') frame.
pub fn function_call(frame: &[u8]) -> Result<FunctionCall<'_>, FrameError> {
    const E: FrameError = FrameError::Malformed("FunctionCall");
    let b = body(frame);
    let take = |b: &mut &[u8], n: usize| -> Result<usize, FrameError> {
        let v = match n {
            2 => i16::from_be_bytes([*b.first().ok_or(E)?, *b.get(1).ok_or(E)?]) as i64,
            _ => {
                let s = b.get(..4).ok_or(E)?;
                i32::from_be_bytes([s[0], s[1], s[2], s[3]]) as i64
            }
        };
        *b = &b[n..];
        Ok(v as u64 as usize)
    };
    let mut rest = b;
    let oid = take(&mut rest, 4)? as u32;
    let nformats = take(&mut rest, 2)? & 0xffff;
    let mut formats = Vec::with_capacity(nformats.min(64));
    for _ in 0..nformats {
        formats.push(take(&mut rest, 2)? & 0xffff == 1);
    }
    let nargs = take(&mut rest, 2)? & 0xffff;
    let mut args = Vec::with_capacity(nargs.min(64));
    for i in 0..nargs {
        let binary = match formats.len() {
            0 => false,
            1 => formats[0],
            _ => *formats.get(i).ok_or(E)?,
        };
        let len = take(&mut rest, 4)? as u32 as i32;
        if len < 0 {
            args.push((binary, None));
        } else {
            let v = rest.get(..len as usize).ok_or(E)?;
            rest = &rest[len as usize..];
            args.push((binary, Some(v)));
        }
    }
    Ok(FunctionCall { oid, args })
}

/// Transaction status byte of a ReadyForQuery ('Z') frame.
pub fn ready_status(frame: &[u8]) -> Option<u8> {
    body(frame).first().copied()
}

/// Decodes a BackendKeyData ('K') frame into (pid, key).
pub fn backend_key(frame: &[u8]) -> Result<(i32, i32), FrameError> {
    let b = body(frame);
    if b.len() != 8 {
        return Err(FrameError::Malformed("BackendKeyData"));
    }
    Ok((
        i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// Finds the value of one field (`C` for SQLSTATE, `M` for message ...) in an
/// ErrorResponse or NoticeResponse frame.
pub fn error_field(frame: &[u8], field: u8) -> Option<&[u8]> {
    let mut b = body(frame);
    while let Some((&code, rest)) = b.split_first() {
        if code == 0 {
            return None;
        }
        let (value, rest) = cstr(rest)?;
        if code == field {
            return Some(value);
        }
        b = rest;
    }
    None
}

/// One field of an ErrorResponse/NoticeResponse as text (empty when absent).
pub fn error_text(frame: &[u8], field: u8) -> String {
    error_field(frame, field)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// `SQLSTATE: message` of an ErrorResponse frame.
pub fn error_summary(frame: &[u8]) -> String {
    format!("{}: {}", error_text(frame, b'C'), error_text(frame, b'M'))
}

/// The tag of a CommandComplete ('C') frame (`UPDATE 3`).
pub fn command_tag(frame: &[u8]) -> String {
    cstr(body(frame))
        .map(|(t, _)| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default()
}

/// Decodes a SASLInitialResponse body into (mechanism, client-first data).
pub fn sasl_initial(frame: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let (mech, rest) = cstr(body(frame)).ok_or(FrameError::Malformed("SASLInitialResponse"))?;
    if rest.len() < 4 {
        return Err(FrameError::Malformed("SASLInitialResponse"));
    }
    let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let data = &rest[4..];
    if len < 0 || len as usize != data.len() {
        return Err(FrameError::Malformed("SASLInitialResponse"));
    }
    Ok((mech, data))
}

/// Starts a typed frame; finish it with [`finish`].
pub(crate) fn begin(buf: &mut BytesMut, tag: u8) -> usize {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_i32(0);
    at
}

/// Patches the length of a frame started with [`begin`].
pub(crate) fn finish(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a NUL-terminated string (NULs inside are dropped).
pub(crate) fn put_cstr(buf: &mut BytesMut, s: &[u8]) {
    // A NUL inside would end the field early; Postgres strings cannot hold one.
    buf.extend(s.iter().copied().filter(|&c| c != 0));
    buf.put_u8(0);
}

/// Appends a typed frame with the given body.
pub(crate) fn put_typed(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(body.len() as i32 + 4);
    out.extend_from_slice(body);
}

/// Severity and fields of an ErrorResponse or NoticeResponse the proxy writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<'a> {
    /// `ERROR`, `FATAL`, `NOTICE`...
    pub severity: &'a str,
    /// Five-character SQLSTATE.
    pub code: &'a str,
    /// Primary message.
    pub message: &'a str,
    /// DETAIL.
    pub detail: Option<&'a str>,
    /// HINT.
    pub hint: Option<&'a str>,
}

/// Appends an ErrorResponse ('E') or NoticeResponse ('N') frame.
pub fn put_report(buf: &mut BytesMut, tag: u8, r: &Report<'_>) {
    let at = begin(buf, tag);
    for (code, value) in [
        (b'S', Some(r.severity)),
        (b'V', Some(r.severity)),
        (b'C', Some(r.code)),
        (b'M', Some(r.message)),
        (b'D', r.detail),
        (b'H', r.hint),
    ] {
        if let Some(v) = value {
            buf.put_u8(code);
            put_cstr(buf, v.as_bytes());
        }
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// Appends an ErrorResponse.
pub fn put_error(buf: &mut BytesMut, r: &Report<'_>) {
    put_report(buf, b'E', r);
}

/// Appends an Authentication message with the given code and payload.
pub fn put_auth(buf: &mut BytesMut, code: i32, payload: &[u8]) {
    let at = begin(buf, b'R');
    buf.put_i32(code);
    buf.extend_from_slice(payload);
    finish(buf, at);
}

/// Appends AuthenticationSASL listing `SCRAM-SHA-256`.
pub fn put_auth_sasl(buf: &mut BytesMut) {
    put_auth(buf, 10, b"SCRAM-SHA-256\0\0");
}

/// Appends BackendKeyData.
pub fn put_backend_key(buf: &mut BytesMut, pid: i32, key: i32) {
    let at = begin(buf, b'K');
    buf.put_i32(pid);
    buf.put_i32(key);
    finish(buf, at);
}

/// Appends NegotiateProtocolVersion ('v').
pub fn put_negotiate_protocol(buf: &mut BytesMut, minor: i32, unsupported: &[&str]) {
    let at = begin(buf, b'v');
    buf.put_i32(minor);
    buf.put_i32(unsupported.len() as i32);
    for o in unsupported {
        put_cstr(buf, o.as_bytes());
    }
    finish(buf, at);
}

/// Appends a simple Query.
pub fn put_query(buf: &mut BytesMut, sql: &str) {
    let at = begin(buf, b'Q');
    put_cstr(buf, sql.as_bytes());
    finish(buf, at);
}

/// Appends a Bind of the unnamed portal to a named statement, no parameters.
pub fn put_bind(buf: &mut BytesMut, statement: &str) {
    let at = begin(buf, b'B');
    put_cstr(buf, b"");
    put_cstr(buf, statement.as_bytes());
    buf.put_i16(0);
    buf.put_i16(0);
    buf.put_i16(0);
    finish(buf, at);
}

/// Appends a RowDescription of text columns.
pub fn put_row_description(buf: &mut BytesMut, columns: &[&str]) {
    let at = begin(buf, b'T');
    buf.put_i16(columns.len() as i16);
    for c in columns {
        put_cstr(buf, c.as_bytes());
        buf.put_i32(0); // table oid
        buf.put_i16(0); // column number
        buf.put_u32(25); // text
        buf.put_i16(-1);
        buf.put_i32(-1);
        buf.put_i16(0); // text format
    }
    finish(buf, at);
}

/// Appends a DataRow of text values (`None` is NULL).
pub fn put_data_row(buf: &mut BytesMut, values: &[Option<&str>]) {
    let at = begin(buf, b'D');
    buf.put_i16(values.len() as i16);
    for v in values {
        match v {
            Some(v) => {
                buf.put_i32(v.len() as i32);
                buf.extend_from_slice(v.as_bytes());
            }
            None => buf.put_i32(-1),
        }
    }
    finish(buf, at);
}

/// Appends a CommandComplete with `tag`.
pub fn put_command_complete(buf: &mut BytesMut, tag: &str) {
    let at = begin(buf, b'C');
    put_cstr(buf, tag.as_bytes());
    finish(buf, at);
}

/// Appends a NOTICE-level NoticeResponse.
pub fn put_notice(buf: &mut BytesMut, message: &str) {
    put_report(
        buf,
        b'N',
        &Report {
            severity: "NOTICE",
            code: "00000",
            message,
            detail: None,
            hint: None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(tag: u8, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn splits_complete_frames_only() {
        let mut buf = typed(b'Q', b"select 1\0");
        buf.extend_from_slice(&typed(b'S', b"")[..3]);
        let (tag, frame) = split_frame(&mut buf).expect("ok").expect("frame");
        assert_eq!(tag, b'Q');
        assert_eq!(query_sql(&frame).expect("sql"), b"select 1");
        assert_eq!(split_frame(&mut buf).expect("ok"), None);
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn rejects_absurd_lengths() {
        let mut b = BytesMut::new();
        b.put_u8(b'Q');
        b.put_u32(0x8000_0000);
        assert!(matches!(peek_header(&b), Err(FrameError::BadLength(_))));
        let mut b = BytesMut::new();
        b.put_u8(b'Q');
        b.put_i32(3);
        assert!(peek_header(&b).is_err());
        assert_eq!(
            startup_packet_len(&0x8000_0000u32.to_be_bytes()),
            Err(FrameError::BadLength(-2147483648))
        );
        assert!(startup_packet_len(&20_000u32.to_be_bytes()).is_err());
    }

    #[test]
    fn decodes_startup_and_cancel() {
        let mut p = BytesMut::new();
        p.put_i32(0);
        p.put_i32(PROTOCOL_3_0);
        p.extend_from_slice(b"user\0alice\0database\0orders-prod\0\0");
        let len = p.len() as i32;
        p[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            parse_startup(&p).expect("startup"),
            StartupPacket::Startup {
                minor: 0,
                params: vec![
                    ("user".into(), "alice".into()),
                    ("database".into(), "orders-prod".into())
                ]
            }
        );
        let mut c = BytesMut::new();
        c.put_i32(16);
        c.put_i32(CANCEL_REQUEST_CODE);
        c.put_i32(42);
        c.put_i32(-7);
        assert_eq!(
            parse_startup(&c).expect("cancel"),
            StartupPacket::Cancel { pid: 42, key: -7 }
        );
        let mut bad = BytesMut::new();
        bad.put_i32(12);
        bad.put_i32(2 << 16);
        bad.put_i32(0);
        assert_eq!(
            parse_startup(&bad),
            Err(FrameError::UnsupportedProtocol(2, 0))
        );
        let mut unterminated = BytesMut::new();
        unterminated.put_i32(13);
        unterminated.put_i32(PROTOCOL_3_0);
        unterminated.extend_from_slice(b"user\0");
        assert!(parse_startup(&unterminated).is_err());
    }

    #[test]
    fn decodes_extended_messages() {
        let p = typed(b'P', b"s1\0select $1\0\0\0");
        assert_eq!(
            parse_message(&p).expect("parse"),
            (&b"s1"[..], &b"select $1"[..])
        );
        let b = typed(b'B', b"\0s1\0\0\0\0\0\0\0");
        assert_eq!(bind_statement(&b).expect("bind"), b"s1");
        let c = typed(b'C', b"Ss1\0");
        assert_eq!(close_target(&c).expect("close"), (b'S', &b"s1"[..]));
        assert!(bind_statement(&typed(b'B', b"no-nul")).is_err());
    }

    #[test]
    fn writes_and_reads_back_reports() {
        let mut buf = BytesMut::new();
        put_error(
            &mut buf,
            &Report {
                severity: "ERROR",
                code: "AL001",
                message: "held",
                detail: Some("why"),
                hint: None,
            },
        );
        let (tag, frame) = split_frame(&mut buf).expect("ok").expect("frame");
        assert_eq!(tag, b'E');
        assert_eq!(error_field(&frame, b'C'), Some(&b"AL001"[..]));
        assert_eq!(error_field(&frame, b'D'), Some(&b"why"[..]));
        assert_eq!(error_field(&frame, b'H'), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn decodes_bind_parameters_with_parse_types() {
        let p = typed(
            b'P',
            b"s\0UPDATE t SET v = $1 WHERE id = $2\0\0\x02\0\0\0\x19\0\0\0\x17",
        );
        assert_eq!(parse_types(&p).expect("types"), vec![25, 23]);
        let mut b = BytesMut::new();
        b.extend_from_slice(b"\0s\0");
        b.put_i16(2);
        b.put_i16(0);
        b.put_i16(1);
        b.put_i16(2);
        b.put_i32(1);
        b.extend_from_slice(b"x");
        b.put_i32(-1);
        b.put_i16(0);
        let params = bind_params(&typed(b'B', &b), &[25, 23]).expect("params");
        assert_eq!(params.len(), 2);
        assert_eq!(
            (
                params[0].type_id,
                params[0].binary,
                params[0].value.as_deref()
            ),
            (25, false, Some(&b"x"[..]))
        );
        assert_eq!(
            (
                params[1].type_id,
                params[1].binary,
                params[1].value.as_deref()
            ),
            (23, true, None)
        );
        assert!(bind_params(&typed(b'B', b"\0s\0\0\0\0\x01\0\0\0\x09ab"), &[]).is_err());
    }

    #[test]
    fn decodes_function_calls() {
        // lo_open(16385, INV_READ) with binary arguments, as libpq sends it.
        let mut body = BytesMut::new();
        body.put_u32(952);
        body.put_i16(1);
        body.put_i16(1);
        body.put_i16(2);
        body.put_i32(4);
        body.put_u32(16385);
        body.put_i32(4);
        body.put_i32(0x40000);
        body.put_i16(1);
        let f = typed(b'F', &body);
        let call = function_call(&f).expect("decodes");
        assert_eq!(call.oid, 952);
        assert_eq!(call.int_arg(1), Some(0x40000));
        assert!(function_call(&f[..f.len() - 9]).is_err());
    }

    #[test]
    fn sasl_initial_response_checks_its_length() {
        let f = typed(b'p', b"SCRAM-SHA-256\0\0\0\0\x03abc");
        assert_eq!(
            sasl_initial(&f).expect("ok"),
            (&b"SCRAM-SHA-256"[..], &b"abc"[..])
        );
        let f = typed(b'p', b"SCRAM-SHA-256\0\0\0\0\x09abc");
        assert!(sasl_initial(&f).is_err());
    }
}
