//! A minimal Postgres frontend over a plain TCP socket: StartupMessage,
//! SCRAM-SHA-256 (no channel binding), simple Query, CancelRequest and
//! access to every raw message, for tests that need SQLSTATEs, backend key
//! data or deliberately broken bytes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// Protocol 3.0.
pub const PROTOCOL_3_0: i32 = 196_608;
/// SSLRequest code.
pub const SSL_REQUEST: i32 = 80_877_103;
/// GSSENCRequest code.
pub const GSSENC_REQUEST: i32 = 80_877_104;
/// CancelRequest code.
pub const CANCEL_REQUEST: i32 = 80_877_102;

/// Fields of an ErrorResponse / NoticeResponse, by field type byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub fields: BTreeMap<char, String>,
}

impl PgError {
    /// Parses the body of an 'E' or 'N' message.
    pub fn parse(body: &[u8]) -> PgError {
        let mut fields = BTreeMap::new();
        let mut i = 0;
        while i < body.len() && body[i] != 0 {
            let t = body[i] as char;
            i += 1;
            let end = body[i..]
                .iter()
                .position(|&b| b == 0)
                .map(|p| i + p)
                .unwrap_or(body.len());
            fields.insert(t, String::from_utf8_lossy(&body[i..end]).into_owned());
            i = end + 1;
        }
        PgError { fields }
    }
    /// SQLSTATE ('C').
    pub fn code(&self) -> &str {
        self.fields.get(&'C').map(String::as_str).unwrap_or("")
    }
    /// Message ('M').
    pub fn message(&self) -> &str {
        self.fields.get(&'M').map(String::as_str).unwrap_or("")
    }
    /// Severity, non-localized when present ('V'), else 'S'.
    pub fn severity(&self) -> &str {
        self.fields
            .get(&'V')
            .or_else(|| self.fields.get(&'S'))
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Frames a frontend message with a type byte.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(tag);
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn put_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A Parse message.
pub fn parse_message(name: &str, sql: &str, oids: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    put_cstr(&mut b, name);
    put_cstr(&mut b, sql);
    b.extend_from_slice(&(oids.len() as i16).to_be_bytes());
    for o in oids {
        b.extend_from_slice(&o.to_be_bytes());
    }
    message(b'P', &b)
}

/// Bind (unnamed portal, text parameters and results) + Describe portal + Execute.
pub fn bind_execute(statement: &str, params: &[Option<&str>]) -> Vec<u8> {
    let mut b = Vec::new();
    put_cstr(&mut b, "");
    put_cstr(&mut b, statement);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        match p {
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v.as_bytes());
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    b.extend_from_slice(&0i16.to_be_bytes());
    let mut out = message(b'B', &b);
    out.extend(message(b'D', b"P\0"));
    let mut e = Vec::new();
    put_cstr(&mut e, "");
    e.extend_from_slice(&0i32.to_be_bytes());
    out.extend(message(b'E', &e));
    out
}

/// A StartupMessage with the given parameters.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

/// An 8-byte request packet (SSLRequest, GSSENCRequest).
pub fn request_code(code: i32) -> Vec<u8> {
    let mut m = 8i32.to_be_bytes().to_vec();
    m.extend_from_slice(&code.to_be_bytes());
    m
}

/// A CancelRequest for (pid, key).
pub fn cancel_request(pid: i32, key: &[u8]) -> Vec<u8> {
    let mut m = ((12 + key.len()) as i32).to_be_bytes().to_vec();
    m.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    m.extend_from_slice(&pid.to_be_bytes());
    m.extend_from_slice(key);
    m
}

/// Sends a CancelRequest on a new connection to `addr` and waits until the
/// server closes it (as libpq does).
pub fn send_cancel(addr: &str, pid: i32, key: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect for cancel");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&cancel_request(pid, key)).expect("send cancel");
    let mut buf = [0u8; 64];
    let _ = s.read(&mut buf);
}

/// Reads one backend message (type byte, body). Rejects absurd lengths.
pub fn read_message(s: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if !(4..=1 << 30).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad message length {len} for type {:?}", head[0] as char),
        ));
    }
    let mut body = vec![0u8; len as usize - 4];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    b
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// PBKDF2-HMAC-SHA-256 with one output block (SCRAM's Hi()).
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut s = salt.to_vec();
    s.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &s);
    let mut out = u.clone();
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(&u) {
            *o ^= x;
        }
    }
    out
}

/// What happened during a startup + authentication attempt.
#[derive(Debug, Default)]
pub struct Handshake {
    /// Authentication request codes received, in order (10 = SASL, 11 = SASLContinue, 12 = SASLFinal, 0 = Ok, 3 = cleartext, 5 = md5).
    pub auth_codes: Vec<i32>,
    /// Mechanisms offered in AuthenticationSASL.
    pub sasl_mechanisms: Vec<String>,
    /// The server-first-message (`r=…,s=…,i=…`).
    pub server_first: Option<String>,
    /// Iteration count in server-first.
    pub iterations: Option<u32>,
    /// Decoded salt length in server-first.
    pub salt_len: Option<usize>,
    /// The server's SCRAM signature (SASLFinal `v=`) was present and correct.
    pub server_signature_ok: Option<bool>,
    /// ParameterStatus values.
    pub params: BTreeMap<String, String>,
    /// BackendKeyData process id.
    pub backend_pid: Option<i32>,
    /// BackendKeyData secret key.
    pub backend_key: Option<Vec<u8>>,
    /// The ErrorResponse that ended the attempt, if any.
    pub error: Option<PgError>,
    /// NoticeResponses during startup.
    pub notices: Vec<PgError>,
    /// ReadyForQuery was reached.
    pub ready: bool,
    /// Message type bytes received, in order.
    pub tags: Vec<char>,
    /// The connection ended (EOF / reset) before ReadyForQuery or an error.
    pub io_error: Option<String>,
}

/// Results of one simple Query, up to ReadyForQuery.
#[derive(Debug, Default)]
pub struct QueryResult {
    /// Rows of every result set, as text (None = NULL).
    pub rows: Vec<Vec<Option<String>>>,
    /// CommandComplete tags.
    pub tags: Vec<String>,
    /// ErrorResponses.
    pub errors: Vec<PgError>,
    /// NoticeResponses.
    pub notices: Vec<PgError>,
    /// Transaction status byte of ReadyForQuery.
    pub status: u8,
    /// ParameterStatus reports (name, value), in order.
    pub params: Vec<(String, String)>,
    /// NotificationResponses (channel, payload), in order.
    pub notifications: Vec<(String, String)>,
}

impl QueryResult {
    /// The SQLSTATE of the first ErrorResponse, if any.
    pub fn first_error_code(&self) -> Option<&str> {
        self.errors.first().map(PgError::code)
    }
}

/// A raw client connection.
pub struct RawConn {
    pub stream: TcpStream,
    pub handshake: Handshake,
}

/// Opens a TCP connection with a read timeout.
pub fn tcp(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Like [`login`], but `None` when the TCP connection itself is refused.
pub fn try_login(addr: &str, user: &str, password: &str, database: &str) -> Option<RawConn> {
    TcpStream::connect(addr).ok()?;
    Some(login(addr, user, password, database))
}

/// Startup + SCRAM-SHA-256 login. Never panics on protocol outcomes: look
/// at `handshake.error`, `handshake.ready`, `handshake.io_error`.
pub fn login(addr: &str, user: &str, password: &str, database: &str) -> RawConn {
    login_with(addr, &[("user", user), ("database", database)], password)
}

/// Like [`login`] with arbitrary startup parameters.
pub fn login_with(addr: &str, params: &[(&str, &str)], password: &str) -> RawConn {
    let mut stream = tcp(addr);
    let mut hs = Handshake::default();
    if let Err(e) = do_login(&mut stream, params, password, &mut hs) {
        hs.io_error = Some(e.to_string());
    }
    RawConn {
        stream,
        handshake: hs,
    }
}

fn do_login(
    s: &mut TcpStream,
    params: &[(&str, &str)],
    password: &str,
    hs: &mut Handshake,
) -> io::Result<()> {
    s.write_all(&startup_message(params))?;
    let client_nonce = B64.encode(random_bytes(18));
    let client_first_bare = format!("n=,r={client_nonce}");
    let mut auth_message = String::new();
    let mut salted = Vec::new();
    loop {
        let (tag, body) = read_message(s)?;
        hs.tags.push(tag as char);
        match tag {
            b'R' => {
                let code = i32::from_be_bytes(body[0..4].try_into().unwrap());
                hs.auth_codes.push(code);
                match code {
                    0 => {}
                    10 => {
                        hs.sasl_mechanisms = body[4..]
                            .split(|&b| b == 0)
                            .filter(|m| !m.is_empty())
                            .map(|m| String::from_utf8_lossy(m).into_owned())
                            .collect();
                        if !hs.sasl_mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                            return Ok(());
                        }
                        let first = format!("n,,{client_first_bare}");
                        let mut b = b"SCRAM-SHA-256\0".to_vec();
                        b.extend_from_slice(&(first.len() as i32).to_be_bytes());
                        b.extend_from_slice(first.as_bytes());
                        s.write_all(&message(b'p', &b))?;
                    }
                    11 => {
                        let server_first = String::from_utf8_lossy(&body[4..]).into_owned();
                        hs.server_first = Some(server_first.clone());
                        let mut nonce = "";
                        let mut salt = Vec::new();
                        let mut iters = 0u32;
                        for part in server_first.split(',') {
                            if let Some(v) = part.strip_prefix("r=") {
                                nonce = v;
                            } else if let Some(v) = part.strip_prefix("s=") {
                                salt = B64.decode(v).unwrap_or_default();
                            } else if let Some(v) = part.strip_prefix("i=") {
                                iters = v.parse().unwrap_or(0);
                            }
                        }
                        hs.iterations = Some(iters);
                        hs.salt_len = Some(salt.len());
                        if !nonce.starts_with(&client_nonce) || iters == 0 || iters > 10_000_000 {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("bad server-first-message {server_first:?}"),
                            ));
                        }
                        salted = hi(password.as_bytes(), &salt, iters);
                        let client_key = hmac(&salted, b"Client Key");
                        let stored_key = Sha256::digest(&client_key);
                        let without_proof = format!("c=biws,r={nonce}");
                        auth_message =
                            format!("{client_first_bare},{server_first},{without_proof}");
                        let signature = hmac(&stored_key, auth_message.as_bytes());
                        let proof: Vec<u8> = client_key
                            .iter()
                            .zip(&signature)
                            .map(|(a, b)| a ^ b)
                            .collect();
                        let fin = format!("{without_proof},p={}", B64.encode(proof));
                        s.write_all(&message(b'p', fin.as_bytes()))?;
                    }
                    12 => {
                        let text = String::from_utf8_lossy(&body[4..]).into_owned();
                        let server_key = hmac(&salted, b"Server Key");
                        let expected = B64.encode(hmac(&server_key, auth_message.as_bytes()));
                        hs.server_signature_ok =
                            Some(text.strip_prefix("v=") == Some(expected.as_str()));
                    }
                    // Cleartext, md5 or anything else: record it and stop here.
                    _ => return Ok(()),
                }
            }
            b'S' => {
                let mut parts = body.split(|&b| b == 0);
                let k = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                let v = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                hs.params.insert(k, v);
            }
            b'K' => {
                hs.backend_pid = Some(i32::from_be_bytes(body[0..4].try_into().unwrap()));
                hs.backend_key = Some(body[4..].to_vec());
            }
            b'N' => hs.notices.push(PgError::parse(&body)),
            b'E' => {
                hs.error = Some(PgError::parse(&body));
                return Ok(());
            }
            b'Z' => {
                hs.ready = true;
                return Ok(());
            }
            _ => {}
        }
    }
}

impl RawConn {
    /// Panics unless the login reached ReadyForQuery.
    pub fn assert_ready(&self, what: &str) {
        assert!(
            self.handshake.ready,
            "{what}: login did not reach ReadyForQuery: {:?}",
            self.handshake
        );
    }

    /// Sends a simple Query and reads up to ReadyForQuery.
    pub fn simple_query(&mut self, sql: &str) -> io::Result<QueryResult> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.stream.write_all(&message(b'Q', &body))?;
        self.read_until_ready()
    }

    /// Reads messages up to ReadyForQuery.
    pub fn read_until_ready(&mut self) -> io::Result<QueryResult> {
        let mut r = QueryResult::default();
        loop {
            let (tag, body) = read_message(&mut self.stream)?;
            match tag {
                b'D' => {
                    let n = i16::from_be_bytes([body[0], body[1]]) as usize;
                    let mut i = 2;
                    let mut row = Vec::with_capacity(n);
                    for _ in 0..n {
                        let len = i32::from_be_bytes(body[i..i + 4].try_into().unwrap());
                        i += 4;
                        if len < 0 {
                            row.push(None);
                        } else {
                            let l = len as usize;
                            row.push(Some(String::from_utf8_lossy(&body[i..i + l]).into_owned()));
                            i += l;
                        }
                    }
                    r.rows.push(row);
                }
                b'C' => {
                    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                    r.tags
                        .push(String::from_utf8_lossy(&body[..end]).into_owned());
                }
                b'E' => r.errors.push(PgError::parse(&body)),
                b'N' => r.notices.push(PgError::parse(&body)),
                b'S' => {
                    let mut parts = body.split(|&b| b == 0);
                    let name = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                    let value = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                    r.params.push((name, value));
                }
                b'A' if body.len() >= 4 => {
                    let mut parts = body[4..].split(|&b| b == 0);
                    let channel = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                    let payload = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                    r.notifications.push((channel, payload));
                }
                b'Z' => {
                    r.status = body.first().copied().unwrap_or(0);
                    return Ok(r);
                }
                _ => {}
            }
        }
    }

    /// The extended protocol in one round trip: Parse (statement `name`,
    /// declared parameter type OIDs), Bind (text parameters, `None` = NULL),
    /// Describe portal, Execute, Sync; reads up to ReadyForQuery.
    pub fn extended_query(
        &mut self,
        name: &str,
        sql: &str,
        oids: &[u32],
        params: &[Option<&str>],
    ) -> io::Result<QueryResult> {
        let mut out = parse_message(name, sql, oids);
        out.extend(bind_execute(name, params));
        out.extend(message(b'S', &[]));
        self.stream.write_all(&out)?;
        self.read_until_ready()
    }

    /// Parse + Describe statement + Sync, as drivers prepare a named statement.
    pub fn prepare(&mut self, name: &str, sql: &str, oids: &[u32]) -> io::Result<QueryResult> {
        let mut out = parse_message(name, sql, oids);
        let mut d = vec![b'S'];
        put_cstr(&mut d, name);
        out.extend(message(b'D', &d));
        out.extend(message(b'S', &[]));
        self.stream.write_all(&out)?;
        self.read_until_ready()
    }

    /// Bind + Describe portal + Execute + Sync of a prepared statement.
    pub fn execute_prepared(
        &mut self,
        name: &str,
        params: &[Option<&str>],
    ) -> io::Result<QueryResult> {
        let mut out = bind_execute(name, params);
        out.extend(message(b'S', &[]));
        self.stream.write_all(&out)?;
        self.read_until_ready()
    }

    /// Close statement + Sync.
    pub fn close_statement(&mut self, name: &str) -> io::Result<QueryResult> {
        let mut c = vec![b'S'];
        put_cstr(&mut c, name);
        let mut out = message(b'C', &c);
        out.extend(message(b'S', &[]));
        self.stream.write_all(&out)?;
        self.read_until_ready()
    }

    /// Sends Terminate and closes.
    pub fn terminate(mut self) {
        let _ = self.stream.write_all(&message(b'X', &[]));
    }
}

/// Waits until the peer closes the connection (EOF or reset). Returns what
/// was received before, or `Err` if it was still open after `timeout`.
pub fn wait_closed(s: &mut TcpStream, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(_) => return Ok(got),
        }
        if std::time::Instant::now() >= deadline {
            return Err(got);
        }
    }
}
