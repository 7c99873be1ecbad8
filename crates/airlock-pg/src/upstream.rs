//! Opening an upstream Postgres session: TCP, optional TLS (`sslmode`
//! semantics), StartupMessage and authentication (trust, cleartext, md5,
//! SCRAM-SHA-256 via `postgres-protocol`), up to the first ReadyForQuery.

use crate::frame::{self, split_frame};
use crate::scram_client::{SaltedPasswords, ScramClient};
use crate::stream::MaybeTlsStream;
use crate::tls;
use airlock_core::{Credentials, Target, UpstreamTlsMode};
use bytes::{Bytes, BytesMut};
use postgres_protocol::message::frontend;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an upstream session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Network problem.
    #[error("upstream I/O: {0}")]
    Io(#[from] io::Error),
    /// TLS problem.
    #[error("upstream TLS: {0}")]
    Tls(String),
    /// The upstream answered with an ErrorResponse (frame kept to relay).
    #[error("upstream refused the session: {message} ({code})")]
    Refused {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
        /// The raw ErrorResponse frame.
        frame: Bytes,
    },
    /// The upstream asked for something the proxy cannot do.
    #[error("upstream protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
}

/// An authenticated upstream session ready for queries.
pub struct UpstreamSession {
    /// The connection.
    pub stream: MaybeTlsStream,
    /// Bytes already read past the first ReadyForQuery (normally empty).
    pub leftover: BytesMut,
    /// ParameterStatus and NoticeResponse frames to relay to the client, in order.
    pub startup_frames: Vec<Bytes>,
    /// The upstream's ReadyForQuery frame.
    pub ready: Bytes,
    /// Real backend process id.
    pub pid: i32,
    /// Real cancel key.
    pub key: i32,
}

/// Where and how to reach an upstream for cancel requests.
#[derive(Clone)]
pub struct Endpoint {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS connector (None: plaintext).
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// Whether TLS is optional (`prefer`).
    pub tls_optional: bool,
    /// Salted passwords of this upstream's SCRAM roles, computed once.
    pub scram: Arc<SaltedPasswords>,
}

impl Endpoint {
    /// Builds the endpoint of a target.
    pub fn for_target(target: &Target) -> Result<Self, tls::TlsError> {
        let mode = target.upstream.tls;
        Ok(Self {
            host: target.upstream.host.clone(),
            port: target.upstream_port(),
            tls: tls::upstream_connector(mode, target.upstream.ca_file.as_deref())?,
            tls_optional: mode == UpstreamTlsMode::Prefer,
            scram: Arc::default(),
        })
    }

    /// Opens TCP (and TLS when configured) to the upstream.
    pub async fn connect(&self) -> Result<MaybeTlsStream, UpstreamError> {
        if self.host.starts_with('/') {
            // A socket directory, as libpq: `<dir>/.s.PGSQL.<port>`. TLS does
            // not apply to a local socket; config validation allows only
            // `disable` and `prefer` there.
            let path = format!("{}/.s.PGSQL.{}", self.host.trim_end_matches('/'), self.port);
            let unix = tokio::net::UnixStream::connect(&path).await?;
            return Ok(MaybeTlsStream::Unix(unix));
        }
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        // A half-open upstream (a dead host, a dropped NAT entry) is noticed
        // in about a minute instead of hanging a session or a run forever.
        socket2::SockRef::from(&tcp).set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL)
                .with_retries(KEEPALIVE_RETRIES),
        )?;
        let Some(connector) = &self.tls else {
            return Ok(MaybeTlsStream::Plain(tcp));
        };
        let mut tcp = tcp;
        let mut buf = BytesMut::new();
        frontend::ssl_request(&mut buf);
        tcp.write_all(&buf).await?;
        let answer = tcp.read_u8().await?;
        match answer {
            b'S' => {
                let name =
                    tls::server_name(&self.host).map_err(|e| UpstreamError::Tls(e.to_string()))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                Ok(MaybeTlsStream::ClientTls(Box::new(tls)))
            }
            b'N' if self.tls_optional => Ok(MaybeTlsStream::Plain(tcp)),
            b'N' => Err(UpstreamError::Tls("server does not support TLS".into())),
            other => Err(UpstreamError::Protocol(format!(
                "unexpected answer {other:#x} to SSLRequest"
            ))),
        }
    }

    /// Sends a CancelRequest for (pid, key) to this upstream.
    pub async fn cancel(&self, pid: i32, key: i32) -> Result<(), UpstreamError> {
        let mut stream = self.connect().await?;
        let mut buf = BytesMut::new();
        frontend::cancel_request(pid, key, &mut buf);
        stream.write_all(&buf).await?;
        stream.flush().await?;
        // Postgres closes the connection without answering.
        let mut sink = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
        let _ = stream.shutdown().await;
        Ok(())
    }
}

/// Idle time before the first TCP keepalive probe on an upstream connection.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Between keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the connection is dropped.
const KEEPALIVE_RETRIES: u32 = 3;

/// Opens and authenticates an upstream session with the given startup parameters.
pub async fn open(
    endpoint: &Endpoint,
    creds: &Credentials,
    params: &[(String, String)],
    timeout: Duration,
) -> Result<UpstreamSession, UpstreamError> {
    tokio::time::timeout(timeout, open_inner(endpoint, creds, params))
        .await
        .map_err(|_| UpstreamError::Timeout(timeout))?
}

async fn open_inner(
    endpoint: &Endpoint,
    creds: &Credentials,
    params: &[(String, String)],
) -> Result<UpstreamSession, UpstreamError> {
    let mut stream = endpoint.connect().await?;
    let mut out = BytesMut::new();
    frontend::startup_message(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut out,
    )?;
    stream.write_all(&out).await?;

    let mut buf = BytesMut::with_capacity(8192);
    let mut scram: Option<ScramClient> = None;
    let mut startup_frames = Vec::new();
    let mut key_data = None;
    loop {
        let (tag, f) = read_frame(&mut stream, &mut buf).await?;
        out.clear();
        match tag {
            b'R' => {
                let b = frame::body(&f);
                if b.len() < 4 {
                    return Err(UpstreamError::Protocol(
                        "short Authentication message".into(),
                    ));
                }
                let code = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                let payload = &b[4..];
                match code {
                    0 => {}
                    3 => {
                        frontend::password_message(password(creds)?.as_bytes(), &mut out)?;
                    }
                    5 => {
                        let salt: [u8; 4] = payload
                            .try_into()
                            .map_err(|_| UpstreamError::Protocol("bad md5 salt".into()))?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            creds.user.as_bytes(),
                            password(creds)?.as_bytes(),
                            salt,
                        );
                        frontend::password_message(hash.as_bytes(), &mut out)?;
                    }
                    10 => {
                        let offers_scram =
                            payload.split(|&c| c == 0).any(|m| m == b"SCRAM-SHA-256");
                        if !offers_scram {
                            return Err(UpstreamError::Protocol(
                                "upstream offers no SCRAM-SHA-256".into(),
                            ));
                        }
                        let (s, first) = ScramClient::start();
                        frontend::sasl_initial_response(
                            "SCRAM-SHA-256",
                            first.as_bytes(),
                            &mut out,
                        )?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram.as_mut().ok_or_else(|| {
                            UpstreamError::Protocol("SASLContinue before SASL".into())
                        })?;
                        let fin = s
                            .client_final(payload, password(creds)?, &endpoint.scram)
                            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                        frontend::sasl_response(fin.as_bytes(), &mut out)?;
                    }
                    12 => {
                        let s = scram.take().ok_or_else(|| {
                            UpstreamError::Protocol("SASLFinal before SASL".into())
                        })?;
                        s.verify_final(payload)
                            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                    }
                    other => {
                        return Err(UpstreamError::Protocol(format!(
                            "unsupported upstream authentication method {other}"
                        )))
                    }
                }
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                }
            }
            b'S' | b'N' => startup_frames.push(f),
            b'K' => {
                key_data = Some(
                    frame::backend_key(&f).map_err(|e| UpstreamError::Protocol(e.to_string()))?,
                )
            }
            b'v' => {}
            b'E' => {
                return Err(UpstreamError::Refused {
                    code: frame::error_text(&f, b'C'),
                    message: frame::error_text(&f, b'M'),
                    frame: f,
                });
            }
            b'Z' => {
                let (pid, key) = key_data.ok_or_else(|| {
                    UpstreamError::Protocol("no BackendKeyData from upstream".into())
                })?;
                return Ok(UpstreamSession {
                    stream,
                    leftover: buf,
                    startup_frames,
                    ready: f,
                    pid,
                    key,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} during startup",
                    other as char
                )))
            }
        }
    }
}

fn password(creds: &Credentials) -> Result<&str, UpstreamError> {
    creds.password.as_deref().ok_or_else(|| {
        UpstreamError::Protocol(format!(
            "upstream asks a password for role {:?} but none is configured",
            creds.user
        ))
    })
}

async fn read_frame(
    stream: &mut MaybeTlsStream,
    buf: &mut BytesMut,
) -> Result<(u8, Bytes), UpstreamError> {
    loop {
        match split_frame(buf) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(UpstreamError::Protocol(e.to_string())),
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(UpstreamError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed the connection during startup",
            )));
        }
    }
}
