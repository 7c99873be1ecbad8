//! Connections to the upstream MySQL/MariaDB server: the client side of
//! the handshake with a target's credentials (`mysql_native_password`,
//! `caching_sha2_password`, MariaDB's `client_ed25519`), and the session
//! setup that labels the connection and starts it read-only.

use crate::auth;
use crate::caps;
use crate::conn::{PacketConn, ReadError};
use crate::login::Flavor;
use crate::messages::{AuthReply, ErrPacket, Greeting, HandshakeResponse};
use crate::response::{Response, Shape, Step, HEAD};
use airlock_core::UpstreamTlsMode;
use airlock_sql::mysql_lexer::SqlModes;
use airlock_tls::stream::MaybeTlsStream;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest packet accepted during the upstream handshake.
const HANDSHAKE_LIMIT: usize = 64 * 1024;

/// Why an upstream connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting or reading failed.
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    /// Framing or closure.
    #[error("upstream connection: {0}")]
    Read(#[from] ReadError),
    /// It took too long.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The server refused (its own ERR packet).
    #[error("upstream refused: {} ({})", .0.message, .0.code)]
    Refused(ErrPacket),
    /// Something the proxy cannot do with this server.
    #[error("upstream: {0}")]
    Unsupported(String),
    /// A malformed packet.
    #[error("upstream sent a malformed packet: {0}")]
    Malformed(#[from] crate::wire::Malformed),
}

/// What the proxy needs to open an upstream session.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Its password (none: empty).
    pub password: Option<String>,
    /// Schema to start in.
    pub database: String,
    /// The client's negotiated capabilities (their shaping flags are kept).
    pub capabilities: u32,
    /// The client's negotiated MariaDB extended capabilities.
    pub mariadb_capabilities: u32,
    /// The client's collation id.
    pub charset: u8,
    /// The client's max packet size.
    pub max_packet: u32,
    /// Connection attributes to send.
    pub attributes: Vec<(String, String)>,
    /// Connect and authentication timeout.
    pub timeout: Duration,
    /// TLS towards the server (`[targets.upstream] tls`).
    pub tls: UpstreamTlsMode,
    /// CA bundle for `verify-full`.
    pub ca_file: Option<std::path::PathBuf>,
}

impl UpstreamSpec {
    /// A session of airlock's own on `target` as `creds` (none: the
    /// target's user with no password), labelled `program` in the
    /// processlist: utf8mb4, no multi-statements, 16 MiB packets.
    pub fn own(
        target: &airlock_core::Target,
        creds: Option<&airlock_core::Credentials>,
        program: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            host: target.upstream.host.clone(),
            port: target.upstream_port(),
            user: creds.map(|c| c.user.clone()).unwrap_or_default(),
            password: creds.and_then(|c| c.password.clone()),
            database: target.upstream.database.clone(),
            capabilities: caps::PROTOCOL_41,
            mariadb_capabilities: 0,
            charset: 45,
            max_packet: 1 << 24,
            attributes: vec![("program_name".into(), program.to_string())],
            timeout,
            tls: target.upstream.tls,
            ca_file: target.upstream.ca_file.clone(),
        }
    }
}

/// An authenticated upstream session.
pub struct Upstream {
    /// The connection.
    pub conn: PacketConn<MaybeTlsStream>,
    /// The server's greeting (version, thread id).
    pub greeting: Greeting,
    /// Capabilities in force on this session.
    pub capabilities: u32,
}

/// Connects and authenticates.
pub async fn connect(spec: &UpstreamSpec) -> Result<Upstream, UpstreamError> {
    tokio::time::timeout(spec.timeout, connect_inner(spec))
        .await
        .map_err(|_| UpstreamError::Timeout(spec.timeout))?
}

/// Reads the greeting of the server at `host:port` (no login), for what
/// the proxy announces to its clients.
pub async fn probe(host: &str, port: u16, timeout: Duration) -> Option<Flavor> {
    let probe = async {
        let tcp = TcpStream::connect((host, port)).await.ok()?;
        let mut conn = PacketConn::new(tcp);
        let first = conn.read_payload(HANDSHAKE_LIMIT).await.ok()?;
        Greeting::decode(&first.data).ok().map(|g| flavor_of(&g))
    };
    tokio::time::timeout(timeout, probe).await.ok().flatten()
}

/// What a greeting says of its server.
pub fn flavor_of(g: &Greeting) -> Flavor {
    Flavor {
        version: g.server_version.clone(),
        mariadb: (g.capabilities & caps::LONG_PASSWORD == 0).then_some(g.mariadb_capabilities),
    }
}

/// Capabilities the proxy always asks the upstream for.
const ALWAYS: u32 = caps::LONG_PASSWORD
    | caps::PROTOCOL_41
    | caps::SECURE_CONNECTION
    | caps::PLUGIN_AUTH
    | caps::PLUGIN_AUTH_LENENC
    | caps::CONNECT_WITH_DB
    | caps::CONNECT_ATTRS;

async fn connect_inner(spec: &UpstreamSpec) -> Result<Upstream, UpstreamError> {
    let tcp = TcpStream::connect((spec.host.as_str(), spec.port)).await?;
    tcp.set_nodelay(true)?;
    let mut plain = PacketConn::new(tcp);
    let first = plain.read_payload(HANDSHAKE_LIMIT).await?;
    if first.data.first() == Some(&0xff) {
        return Err(UpstreamError::Refused(ErrPacket::decode(&first.data)?));
    }
    let greeting = Greeting::decode(&first.data)?;
    let wanted = spec.capabilities & caps::SHAPING;
    let missing = wanted & !greeting.capabilities;
    if missing != 0 {
        return Err(UpstreamError::Unsupported(format!(
            "the server lacks capabilities the client negotiated (flags {missing:#x})"
        )));
    }
    const REQUIRED: u32 = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH;
    if greeting.capabilities & REQUIRED != REQUIRED {
        return Err(UpstreamError::Unsupported(
            "the server does not speak 4.1 authentication with plugins".into(),
        ));
    }
    let missing_ext = spec.mariadb_capabilities & !greeting.mariadb_capabilities;
    if missing_ext != 0 {
        return Err(UpstreamError::Unsupported(format!(
            "the server lacks MariaDB capabilities the client negotiated (flags {missing_ext:#x})"
        )));
    }
    let mut capabilities = (wanted | ALWAYS) & (greeting.capabilities | caps::LONG_PASSWORD);
    if spec.mariadb_capabilities != 0 {
        // MariaDB reads extended capabilities only without CLIENT_MYSQL.
        capabilities &= !caps::LONG_PASSWORD;
    }
    let password = spec.password.as_deref().unwrap_or("");
    let plugin = greeting.auth_plugin.clone();
    let (plugin, token) = match token_for(&plugin, password, &greeting.scramble) {
        Some(t) => (plugin, t),
        // Unknown default plugin: answer for native; the server switches
        // to what the account needs.
        None => (
            auth::NATIVE.to_string(),
            auth::native_token(password, &greeting.scramble),
        ),
    };
    // TLS: the SSL request (the response's first 32 bytes), the handshake,
    // then the response over TLS.
    let connector = airlock_tls::upstream_connector(spec.tls, spec.ca_file.as_deref())
        .map_err(|e| UpstreamError::Unsupported(format!("TLS setup: {e}")))?;
    let offers_tls = greeting.capabilities & caps::SSL != 0;
    let mut seq = first.seq.wrapping_add(1);
    let mut conn = match connector {
        Some(connector) if offers_tls => {
            capabilities |= caps::SSL;
            let mut req = bytes::BytesMut::new();
            HandshakeResponse {
                capabilities,
                max_packet: spec.max_packet,
                charset: spec.charset,
                mariadb_capabilities: spec.mariadb_capabilities,
                ..HandshakeResponse::default()
            }
            .encode_prefix(&mut req);
            seq = plain.write_payload(seq, &req).await?;
            let name = airlock_tls::server_name(&spec.host)
                .map_err(|e| UpstreamError::Unsupported(e.to_string()))?;
            let stream = connector
                .connect(name, plain.stream)
                .await
                .map_err(|e| UpstreamError::Unsupported(format!("TLS to the upstream: {e}")))?;
            PacketConn::new(MaybeTlsStream::ClientTls(Box::new(stream)))
        }
        Some(_) if spec.tls != UpstreamTlsMode::Prefer => {
            return Err(UpstreamError::Unsupported(
                "the target is configured with TLS but the server does not offer it".into(),
            ))
        }
        _ => PacketConn {
            stream: MaybeTlsStream::Plain(plain.stream),
            buf: plain.buf,
        },
    };
    let tls = matches!(conn.stream, MaybeTlsStream::ClientTls(_));
    let response = HandshakeResponse {
        capabilities,
        max_packet: spec.max_packet,
        charset: spec.charset,
        mariadb_capabilities: spec.mariadb_capabilities,
        user: spec.user.clone(),
        auth_response: token,
        database: Some(spec.database.clone()),
        auth_plugin: Some(plugin.clone()),
        attributes: spec.attributes.clone(),
    };
    conn.write_payload(seq, &response.encode()).await?;
    let mut plugin = plugin;
    loop {
        let reply = conn.read_payload(HANDSHAKE_LIMIT).await?;
        let seq = reply.seq.wrapping_add(1);
        match AuthReply::decode(&reply.data)? {
            AuthReply::Ok => break,
            AuthReply::Err(e) => return Err(UpstreamError::Refused(e)),
            AuthReply::Switch { plugin: p, data } => {
                let token = token_for(&p, password, &data).ok_or_else(|| {
                    UpstreamError::Unsupported(format!(
                        "authentication plugin {p} is not supported"
                    ))
                })?;
                plugin = p;
                conn.write_payload(seq, &token).await?;
            }
            AuthReply::More(data) if plugin == auth::CACHING_SHA2 => match data.first() {
                Some(&auth::FAST_AUTH_OK) => {}
                Some(&auth::FULL_AUTH) if tls => {
                    // The password itself, which only TLS may carry.
                    let mut pw = password.as_bytes().to_vec();
                    pw.push(0);
                    conn.write_payload(seq, &pw).await?;
                }
                Some(&auth::FULL_AUTH) => {
                    return Err(UpstreamError::Unsupported(
                        "the server asks for caching_sha2_password full authentication, which airlock sends only over TLS: set tls = \"require\" or \"verify-full\" on the target (or use mysql_native_password)".into(),
                    ));
                }
                _ => {
                    return Err(UpstreamError::Unsupported(
                        "unexpected caching_sha2_password data".into(),
                    ))
                }
            },
            AuthReply::More(_) => {
                return Err(UpstreamError::Unsupported(format!(
                    "unexpected authentication data for {plugin}"
                )))
            }
        }
    }
    Ok(Upstream {
        conn,
        greeting,
        capabilities,
    })
}

/// The answer of `plugin` to `scramble`, for the plugins the proxy speaks.
fn token_for(plugin: &str, password: &str, scramble: &[u8]) -> Option<Vec<u8>> {
    match plugin {
        auth::NATIVE => Some(auth::native_token(password, scramble)),
        auth::CACHING_SHA2 => Some(auth::sha2_token(password, scramble)),
        auth::ED25519 => Some(crate::ed25519::sign(password, scramble)),
        _ => None,
    }
}

impl Upstream {
    /// The lexing modes of this session's `sql_mode` and of the server's
    /// global one (what a new session starts with).
    pub async fn lexing_modes(&mut self) -> Result<(SqlModes, SqlModes), String> {
        match self
            .query_rows("SELECT @@SESSION.sql_mode, @@GLOBAL.sql_mode")
            .await
        {
            Ok(Ok(rows)) => {
                let row = rows.first().ok_or("no sql_mode row")?;
                let mode = |i: usize| {
                    SqlModes::from_sql_mode(row.get(i).cloned().flatten().as_deref().unwrap_or(""))
                };
                Ok((mode(0), mode(1)))
            }
            Ok(Err(e)) => Err(format!("reading sql_mode: {}", e.message)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs a query and returns its rows as text (`None` for NULL).
    pub async fn query_rows(
        &mut self,
        sql: &str,
    ) -> Result<Result<Vec<Vec<Option<String>>>, ErrPacket>, UpstreamError> {
        let mut payload = Vec::with_capacity(sql.len() + 1);
        payload.push(crate::response::com::QUERY);
        payload.extend_from_slice(sql.as_bytes());
        self.conn.write_payload(0, &payload).await?;
        let mut r = Response::new(Shape::Results, self.capabilities);
        let mut packets = Vec::new();
        loop {
            let p = self.conn.read_payload(crate::MAX_COMMAND).await?;
            let head = p.data[..p.data.len().min(HEAD)].to_vec();
            let step = r.packet(p.data.len(), &head);
            packets.push(p.data);
            match step {
                Step::Done => break,
                Step::More => {}
                Step::LocalInfile => {
                    return Err(UpstreamError::Unsupported(
                        "a setup query asked for a local file".into(),
                    ))
                }
            }
        }
        if let Some(err) = packets.iter().find(|p| p.first() == Some(&0xff)) {
            return Ok(Err(ErrPacket::decode(err)?));
        }
        let columns = crate::wire::Reader::new(&packets[0])
            .lenenc("columns")?
            .unwrap_or(0) as usize;
        let eof = usize::from(self.capabilities & caps::DEPRECATE_EOF == 0);
        let mut rows = Vec::new();
        // Rows sit between the definitions (and their EOF) and the terminator.
        let first_row = 1 + columns + eof;
        for row in packets
            .iter()
            .skip(first_row)
            .take(packets.len().saturating_sub(first_row + 1))
        {
            let mut rd = crate::wire::Reader::new(row);
            let mut values = Vec::with_capacity(columns);
            for _ in 0..columns {
                if rd.rest().first() == Some(&0xfb) {
                    rd.u8("null")?;
                    values.push(None);
                } else {
                    values.push(Some(
                        String::from_utf8_lossy(rd.lenenc_bytes("value")?).into_owned(),
                    ));
                }
            }
            rows.push(values);
        }
        Ok(Ok(rows))
    }

    /// Runs a one-row, one-column query and returns its value (text).
    pub async fn query_value(
        &mut self,
        sql: &str,
    ) -> Result<Result<Option<String>, ErrPacket>, UpstreamError> {
        Ok(self.query_rows(sql).await?.map(|rows| {
            rows.into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten())
        }))
    }

    /// Runs `sql` and reads its whole answer; an ERR is returned as such.
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Result<(), ErrPacket>, UpstreamError> {
        run_query(&mut self.conn, self.capabilities, sql).await
    }
}

/// Runs `sql` on `conn` (a session with `capabilities`) and reads its whole
/// answer, rows discarded; an ERR is returned as such.
pub async fn run_query<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut PacketConn<S>,
    capabilities: u32,
    sql: &str,
) -> Result<Result<(), ErrPacket>, UpstreamError> {
    let mut payload = Vec::with_capacity(sql.len() + 1);
    payload.push(crate::response::com::QUERY);
    payload.extend_from_slice(sql.as_bytes());
    conn.write_payload(0, &payload).await?;
    let mut r = Response::new(Shape::Results, capabilities);
    let mut err = None;
    loop {
        let p = conn.read_payload(crate::MAX_COMMAND).await?;
        if p.data.first() == Some(&0xff) && err.is_none() {
            err = Some(ErrPacket::decode(&p.data)?);
        }
        let head = &p.data[..p.data.len().min(HEAD)];
        match r.packet(p.data.len(), head) {
            Step::Done => break,
            Step::More => {}
            Step::LocalInfile => {
                return Err(UpstreamError::Unsupported(
                    "a setup statement asked for a local file".into(),
                ))
            }
        }
    }
    Ok(match err {
        Some(e) => Err(e),
        None => Ok(()),
    })
}
