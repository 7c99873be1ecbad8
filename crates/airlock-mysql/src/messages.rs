//! The connection-phase messages (pure encode/decode): the server's
//! initial handshake, the client's SSL request and handshake response,
//! auth switch and "more data" exchanges; and the generic OK / ERR / EOF.

use crate::caps;
use crate::wire::{put_lenenc, put_lenenc_bytes, put_nul, Malformed, Reader};
use bytes::{BufMut, BytesMut};

/// The server's initial handshake (protocol version 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Server version string.
    pub server_version: String,
    /// Connection (thread) id.
    pub connection_id: u32,
    /// The scramble (20 bytes from MySQL and MariaDB).
    pub scramble: Vec<u8>,
    /// Capabilities (lower 32 bits).
    pub capabilities: u32,
    /// MariaDB's extended capabilities (0 from MySQL).
    pub mariadb_capabilities: u32,
    /// Default collation id.
    pub charset: u8,
    /// Status flags.
    pub status: u16,
    /// Default authentication plugin.
    pub auth_plugin: String,
}

impl Greeting {
    /// Encodes the payload.
    pub fn encode(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(128);
        out.put_u8(10);
        put_nul(&mut out, self.server_version.as_bytes());
        out.put_u32_le(self.connection_id);
        let (part1, part2) = self.scramble.split_at(self.scramble.len().min(8));
        out.put_slice(part1);
        out.put_bytes(0, 8 - part1.len());
        out.put_u8(0);
        out.put_u16_le(self.capabilities as u16);
        out.put_u8(self.charset);
        out.put_u16_le(self.status);
        out.put_u16_le((self.capabilities >> 16) as u16);
        out.put_u8(if self.capabilities & caps::PLUGIN_AUTH != 0 {
            (self.scramble.len() + 1) as u8
        } else {
            0
        });
        out.put_bytes(0, 6);
        out.put_u32_le(self.mariadb_capabilities);
        // Part 2 is at least 13 bytes, NUL-terminated.
        out.put_slice(part2);
        out.put_bytes(0, 13usize.saturating_sub(part2.len()).max(1));
        put_nul(&mut out, self.auth_plugin.as_bytes());
        out
    }

    /// Decodes a payload (an ERR payload is the caller's to recognise first).
    pub fn decode(payload: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(payload);
        if r.u8("protocol version")? != 10 {
            return Err(Malformed("not protocol version 10"));
        }
        let server_version = String::from_utf8_lossy(r.nul_terminated("server version")?).into();
        let connection_id = r.u32("connection id")?;
        let mut scramble = r.bytes(8, "scramble")?.to_vec();
        r.u8("filler")?;
        let mut capabilities = u32::from(r.u16("capabilities")?);
        let (mut charset, mut status, mut mariadb_capabilities) = (0, 0, 0);
        let mut auth_plugin = String::from("mysql_native_password");
        if !r.is_empty() {
            charset = r.u8("charset")?;
            status = r.u16("status")?;
            capabilities |= u32::from(r.u16("capabilities")?) << 16;
            let data_len = r.u8("auth data length")?;
            r.bytes(6, "reserved")?;
            mariadb_capabilities = r.u32("extended capabilities")?;
            if capabilities & caps::LONG_PASSWORD != 0 {
                mariadb_capabilities = 0;
            }
            if capabilities & caps::SECURE_CONNECTION != 0 {
                let n = usize::from(data_len).saturating_sub(8).max(13);
                let part2 = r.bytes(n, "scramble part 2")?;
                // The last byte of part 2 is a NUL terminator.
                let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
                scramble.extend_from_slice(part2);
            }
            if capabilities & caps::PLUGIN_AUTH != 0 {
                auth_plugin = String::from_utf8_lossy(r.nul_bytes()).into();
            }
        }
        Ok(Self {
            server_version,
            connection_id,
            scramble,
            capabilities,
            mariadb_capabilities,
            charset,
            status,
            auth_plugin,
        })
    }
}

/// The client's handshake response (or the SSL request, its first 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeResponse {
    /// Capabilities.
    pub capabilities: u32,
    /// Max packet size.
    pub max_packet: u32,
    /// Collation id.
    pub charset: u8,
    /// MariaDB's extended capabilities (in the last 4 filler bytes).
    pub mariadb_capabilities: u32,
    /// User name.
    pub user: String,
    /// Authentication response.
    pub auth_response: Vec<u8>,
    /// Schema, with `CLIENT_CONNECT_WITH_DB`.
    pub database: Option<String>,
    /// Plugin the auth response is for, with `CLIENT_PLUGIN_AUTH`.
    pub auth_plugin: Option<String>,
    /// Connection attributes, with `CLIENT_CONNECT_ATTRS`.
    pub attributes: Vec<(String, String)>,
}

/// Length of an SSL request payload.
pub const SSL_REQUEST_LEN: usize = 32;

impl HandshakeResponse {
    /// Whether `payload` is an SSL request (32 bytes with `CLIENT_SSL`).
    pub fn is_ssl_request(payload: &[u8]) -> bool {
        payload.len() == SSL_REQUEST_LEN
            && Reader::new(payload)
                .u32("caps")
                .is_ok_and(|c| c & caps::SSL != 0)
    }

    /// Decodes a 4.1 handshake response.
    pub fn decode(payload: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(payload);
        let capabilities = r.u32("capabilities")?;
        if capabilities & caps::PROTOCOL_41 == 0 {
            return Err(Malformed("pre-4.1 handshake responses are not supported"));
        }
        let max_packet = r.u32("max packet")?;
        let charset = r.u8("charset")?;
        r.bytes(19, "filler")?;
        let mariadb_capabilities = r.u32("extended capabilities")?;
        let user = utf8(r.nul_terminated("user")?, "user")?;
        let auth_response = if capabilities & caps::PLUGIN_AUTH_LENENC != 0 {
            r.lenenc_bytes("auth response")?.to_vec()
        } else if capabilities & caps::SECURE_CONNECTION != 0 {
            let n = r.u8("auth response length")?;
            r.bytes(usize::from(n), "auth response")?.to_vec()
        } else {
            r.nul_bytes().to_vec()
        };
        let database = if capabilities & caps::CONNECT_WITH_DB != 0 && !r.is_empty() {
            Some(utf8(r.nul_bytes(), "database")?)
        } else {
            None
        };
        let auth_plugin = if capabilities & caps::PLUGIN_AUTH != 0 && !r.is_empty() {
            Some(utf8(r.nul_bytes(), "auth plugin")?)
        } else {
            None
        };
        let mut attributes = Vec::new();
        if capabilities & caps::CONNECT_ATTRS != 0 && !r.is_empty() {
            let all = r.lenenc_bytes("connection attributes")?;
            let mut a = Reader::new(all);
            while !a.is_empty() {
                let k = utf8(a.lenenc_bytes("attribute name")?, "attribute name")?;
                let v = utf8(a.lenenc_bytes("attribute value")?, "attribute value")?;
                attributes.push((k, v));
            }
        }
        Ok(Self {
            capabilities,
            max_packet,
            charset,
            mariadb_capabilities,
            user,
            auth_response,
            database: database.filter(|d| !d.is_empty()),
            auth_plugin,
            attributes,
        })
    }

    /// The 32 bytes every response starts with (the whole SSL request).
    pub fn encode_prefix(&self, out: &mut BytesMut) {
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.max_packet);
        out.put_u8(self.charset);
        out.put_bytes(0, 19);
        out.put_u32_le(self.mariadb_capabilities);
    }

    /// Encodes the full response.
    pub fn encode(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(128);
        self.encode_prefix(&mut out);
        put_nul(&mut out, self.user.as_bytes());
        if self.capabilities & caps::PLUGIN_AUTH_LENENC != 0 {
            put_lenenc_bytes(&mut out, &self.auth_response);
        } else {
            out.put_u8(self.auth_response.len() as u8);
            out.put_slice(&self.auth_response);
        }
        if self.capabilities & caps::CONNECT_WITH_DB != 0 {
            put_nul(&mut out, self.database.as_deref().unwrap_or("").as_bytes());
        }
        if self.capabilities & caps::PLUGIN_AUTH != 0 {
            put_nul(
                &mut out,
                self.auth_plugin.as_deref().unwrap_or("").as_bytes(),
            );
        }
        if self.capabilities & caps::CONNECT_ATTRS != 0 {
            let mut attrs = BytesMut::new();
            for (k, v) in &self.attributes {
                put_lenenc_bytes(&mut attrs, k.as_bytes());
                put_lenenc_bytes(&mut attrs, v.as_bytes());
            }
            put_lenenc_bytes(&mut out, &attrs);
        }
        out
    }
}

fn utf8(b: &[u8], what: &'static str) -> Result<String, Malformed> {
    String::from_utf8(b.to_vec()).map_err(|_| Malformed(what))
}

/// What the server says during authentication, after the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// Authenticated.
    Ok,
    /// Refused.
    Err(ErrPacket),
    /// Use another plugin, with this scramble.
    Switch {
        /// The plugin.
        plugin: String,
        /// Its data (the scramble, without the trailing NUL).
        data: Vec<u8>,
    },
    /// Plugin-specific data (`caching_sha2_password`'s 3 = fast auth
    /// succeeded, 4 = full authentication needed; a PEM public key).
    More(Vec<u8>),
}

impl AuthReply {
    /// Decodes a server packet of the authentication phase.
    pub fn decode(payload: &[u8]) -> Result<Self, Malformed> {
        match payload.first() {
            Some(0x00) => Ok(AuthReply::Ok),
            Some(0xff) => Ok(AuthReply::Err(ErrPacket::decode(payload)?)),
            Some(0xfe) => {
                let mut r = Reader::new(&payload[1..]);
                let plugin = utf8(r.nul_bytes(), "plugin")?;
                let data = r.rest();
                let data = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
                Ok(AuthReply::Switch { plugin, data })
            }
            Some(0x01) => Ok(AuthReply::More(payload[1..].to_vec())),
            _ => Err(Malformed("unexpected packet during authentication")),
        }
    }
}

/// Encodes an auth switch request.
pub fn auth_switch(plugin: &str, scramble: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(64);
    out.put_u8(0xfe);
    put_nul(&mut out, plugin.as_bytes());
    out.put_slice(scramble);
    out.put_u8(0);
    out
}

/// Encodes an "auth more data" packet.
pub fn auth_more(data: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(1 + data.len());
    out.put_u8(0x01);
    out.put_slice(data);
    out
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    /// Error number.
    pub code: u16,
    /// SQLSTATE (5 characters).
    pub sqlstate: String,
    /// Message.
    pub message: String,
}

impl ErrPacket {
    /// A new error.
    pub fn new(code: u16, sqlstate: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            sqlstate: sqlstate.to_string(),
            message: message.into(),
        }
    }

    /// Encodes the payload (4.1 form, with the SQLSTATE marker).
    pub fn encode(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(16 + self.message.len());
        out.put_u8(0xff);
        out.put_u16_le(self.code);
        out.put_u8(b'#');
        let mut state = [b'H', b'Y', b'0', b'0', b'0'];
        for (d, s) in state.iter_mut().zip(self.sqlstate.bytes()) {
            *d = s;
        }
        out.put_slice(&state);
        out.put_slice(self.message.as_bytes());
        out
    }

    /// Decodes a payload that starts with 0xFF.
    pub fn decode(payload: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(payload);
        if r.u8("header")? != 0xff {
            return Err(Malformed("not an ERR packet"));
        }
        let code = r.u16("error code")?;
        let mut sqlstate = String::from("HY000");
        if r.rest().first() == Some(&b'#') {
            r.u8("marker")?;
            sqlstate = String::from_utf8_lossy(r.bytes(5, "sqlstate")?).into();
        }
        Ok(Self {
            code,
            sqlstate,
            message: String::from_utf8_lossy(r.rest()).into(),
        })
    }
}

/// An OK packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkPacket {
    /// Affected rows.
    pub affected_rows: u64,
    /// Last insert id.
    pub last_insert_id: u64,
    /// Status flags.
    pub status: u16,
    /// Warnings.
    pub warnings: u16,
    /// Human-readable info.
    pub info: String,
}

impl OkPacket {
    /// Encodes the payload with `header` (0x00, or 0xFE where an OK ends a
    /// result set under `CLIENT_DEPRECATE_EOF`).
    pub fn encode(&self, header: u8) -> BytesMut {
        let mut out = BytesMut::with_capacity(16 + self.info.len());
        out.put_u8(header);
        put_lenenc(&mut out, self.affected_rows);
        put_lenenc(&mut out, self.last_insert_id);
        out.put_u16_le(self.status);
        out.put_u16_le(self.warnings);
        out.put_slice(self.info.as_bytes());
        out
    }

    /// Encodes the payload for a session with `capabilities`: under
    /// `CLIENT_SESSION_TRACK` the info is a length-encoded string.
    pub fn encode_for(&self, header: u8, capabilities: u32) -> BytesMut {
        if capabilities & caps::SESSION_TRACK == 0 || self.info.is_empty() {
            return self.encode(header);
        }
        let mut out = OkPacket {
            info: String::new(),
            ..self.clone()
        }
        .encode(header);
        put_lenenc_bytes(&mut out, self.info.as_bytes());
        out
    }

    /// Decodes the fixed part of an OK packet (header 0x00 or 0xFE).
    pub fn decode(payload: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(payload);
        r.u8("header")?;
        let affected_rows = r.lenenc("affected rows")?.unwrap_or(0);
        let last_insert_id = r.lenenc("last insert id")?.unwrap_or(0);
        let status = r.u16("status").unwrap_or(0);
        let warnings = r.u16("warnings").unwrap_or(0);
        Ok(Self {
            affected_rows,
            last_insert_id,
            status,
            warnings,
            info: String::new(),
        })
    }
}

/// Status flags of an EOF packet (0xFE, warnings, status).
pub fn eof_status(payload: &[u8]) -> u16 {
    let mut r = Reader::new(payload);
    let _ = r.u8("header");
    let _ = r.u16("warnings");
    r.u16("status").unwrap_or(0)
}

/// Encodes an EOF packet.
pub fn eof(warnings: u16, status: u16) -> BytesMut {
    let mut out = BytesMut::with_capacity(5);
    out.put_u8(0xfe);
    out.put_u16_le(warnings);
    out.put_u16_le(status);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_round_trip() {
        let g = Greeting {
            server_version: "10.11.19-MariaDB".into(),
            connection_id: 42,
            scramble: (1..=20).collect(),
            capabilities: caps::OFFERED,
            mariadb_capabilities: 0,
            charset: 45,
            status: caps::STATUS_AUTOCOMMIT,
            auth_plugin: "caching_sha2_password".into(),
        };
        assert_eq!(Greeting::decode(&g.encode()).unwrap(), g);
        assert!(Greeting::decode(&[9, 0]).is_err());
        assert!(Greeting::decode(&g.encode()[..20]).is_err());
    }

    #[test]
    fn response_round_trip() {
        let r = HandshakeResponse {
            capabilities: caps::OFFERED,
            max_packet: 1 << 24,
            charset: 45,
            mariadb_capabilities: 0,
            user: "alice".into(),
            auth_response: vec![1; 32],
            database: Some("orders".into()),
            auth_plugin: Some("caching_sha2_password".into()),
            attributes: vec![("program_name".into(), "mysql".into())],
        };
        let bytes = r.encode();
        assert_eq!(HandshakeResponse::decode(&bytes).unwrap(), r);
        assert!(!HandshakeResponse::is_ssl_request(&bytes));
        let mut ssl = BytesMut::new();
        HandshakeResponse {
            capabilities: caps::OFFERED | caps::SSL,
            ..r.clone()
        }
        .encode_prefix(&mut ssl);
        assert!(HandshakeResponse::is_ssl_request(&ssl));
        for n in 0..bytes.len() {
            // Truncated anywhere: an error or a shorter response, never a panic.
            let _ = HandshakeResponse::decode(&bytes[..n]);
        }
    }

    #[test]
    fn err_ok_and_auth_replies() {
        let e = ErrPacket::new(1045, "28000", "Access denied");
        assert_eq!(ErrPacket::decode(&e.encode()).unwrap(), e);
        let ok = OkPacket {
            affected_rows: 3,
            last_insert_id: 0,
            status: 2,
            warnings: 1,
            info: String::new(),
        };
        assert_eq!(OkPacket::decode(&ok.encode(0)).unwrap(), ok);
        assert_eq!(
            AuthReply::decode(&auth_switch("mysql_native_password", &[7; 20])).unwrap(),
            AuthReply::Switch {
                plugin: "mysql_native_password".into(),
                data: vec![7; 20]
            }
        );
        assert_eq!(
            AuthReply::decode(&[1, 3]).unwrap(),
            AuthReply::More(vec![3])
        );
        assert!(AuthReply::decode(&[]).is_err());
        assert_eq!(eof_status(&eof(0, 8)), 8);
    }
}
