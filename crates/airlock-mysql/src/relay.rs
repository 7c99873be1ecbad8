//! The command phase: one client command at a time, passed to the upstream
//! as its own bytes, and the upstream's whole answer passed back as raw
//! bytes, its end found by [`Response`] without decoding rows. Commands the
//! proxy answers itself (or refuses) never reach the upstream.

use crate::conn::{PacketConn, ReadError};
use crate::messages::ErrPacket;
use crate::packet::{self, Header};
use crate::response::{com, Response, Shape, Step, HEAD};
use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// ER_NOT_SUPPORTED_YET.
pub const NOT_SUPPORTED: u16 = 1235;
/// ER_UNKNOWN_COM_ERROR.
pub const UNKNOWN_COMMAND: u16 = 1047;
/// ER_NET_PACKET_TOO_LARGE.
pub const PACKET_TOO_LARGE: u16 = 1153;

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The client side failed.
    #[error("client: {0}")]
    Client(ReadError),
    /// The upstream side failed or closed.
    #[error("upstream: {0}")]
    Upstream(ReadError),
    /// The session could not be set up again after a reset.
    #[error("after COM_RESET_CONNECTION: {0}")]
    Setup(String),
}

/// What the session decided about one command.
pub enum Verdict {
    /// Send it upstream as it came.
    Forward,
    /// Send these bytes upstream instead (e.g. a schema name mapped).
    Rewrite(Vec<u8>),
    /// Answer the client with this error; the upstream never sees it.
    Refuse(ErrPacket),
    /// Answer the client with these payloads (an OK packet or a result
    /// set the proxy made).
    Answer(Vec<bytes::BytesMut>),
    /// The client quits: forward and end.
    Quit,
    /// COM_CHANGE_USER: the session authenticates the new user itself.
    ChangeUser,
}

/// How the relay ended without an error.
pub enum Ended {
    /// The client quit or closed.
    Quit,
    /// The client asked to change user (this command).
    ChangeUser(packet::Payload),
}

/// Decides what happens to each command before it is relayed.
pub trait Gate: Send {
    /// Judges one command payload.
    fn judge<'a>(&'a mut self, payload: &'a [u8]) -> airlock_core::BoxFuture<'a, Verdict>;

    /// Learns how the upstream answered a forwarded command.
    fn answered(&mut self, _payload: &[u8], _response: &Response) {}

    /// Statements to run upstream after a successful COM_RESET_CONNECTION
    /// (the label and the read-only backstop the reset cleared); the gate
    /// forgets the session state the reset cleared.
    fn after_reset(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Relays until the client quits or a side closes.
pub async fn run<C, U, G>(
    client: &mut PacketConn<C>,
    upstream: &mut PacketConn<U>,
    capabilities: u32,
    gate: &mut G,
    gone: &CancellationToken,
) -> Result<Ended, RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    G: Gate,
{
    loop {
        let cmd = match next_command(client, upstream).await? {
            Some(c) => c,
            None => return Ok(Ended::Quit),
        };
        let Some(&kind) = cmd.data.first() else {
            // An empty command: the server would say "malformed".
            let err = ErrPacket::new(UNKNOWN_COMMAND, "08S01", "Unknown command");
            send_client(client, cmd.last_seq.wrapping_add(1), &err.encode()).await?;
            continue;
        };
        let verdict = judged(client, gone, gate.judge(&cmd.data)).await;
        match verdict {
            Verdict::Refuse(err) => {
                if Shape::of(kind) != Shape::None {
                    send_client(client, cmd.last_seq.wrapping_add(1), &err.encode()).await?;
                }
                continue;
            }
            Verdict::Answer(payloads) => {
                let mut out = bytes::BytesMut::new();
                let mut seq = cmd.last_seq.wrapping_add(1);
                for p in &payloads {
                    seq = packet::encode(&mut out, seq, p);
                }
                client
                    .write_raw(&out)
                    .await
                    .map_err(|e| RelayError::Client(e.into()))?;
                continue;
            }
            Verdict::Quit => {
                let _ = upstream.write_payload(cmd.seq, &cmd.data).await;
                return Ok(Ended::Quit);
            }
            Verdict::ChangeUser => return Ok(Ended::ChangeUser(cmd)),
            Verdict::Forward => send_upstream(upstream, cmd.seq, &cmd.data).await?,
            Verdict::Rewrite(data) => send_upstream(upstream, cmd.seq, &data).await?,
        }
        let response = relay_response(
            client,
            upstream,
            Response::new(Shape::of(kind), capabilities),
        )
        .await?;
        if kind == com::RESET_CONNECTION && !response.failed {
            for sql in gate.after_reset() {
                setup(upstream, &sql, capabilities).await?;
            }
        }
        gate.answered(&cmd.data, &response);
    }
}

/// Awaits a verdict while watching the client: a client that closes while
/// its statement waits for a decision cancels `gone`, so the wait ends. What
/// a pipelining client sends meanwhile stays buffered (up to one command's
/// limit, then it is read only after the verdict).
async fn judged<C, F>(client: &mut PacketConn<C>, gone: &CancellationToken, judge: F) -> Verdict
where
    C: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = Verdict>,
{
    tokio::pin!(judge);
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            v = &mut judge => return v,
            r = client.fill(), if watching => match r {
                Ok(_) => watching = client.buf.len() <= crate::MAX_COMMAND,
                Err(_) => {
                    gone.cancel();
                    watching = false;
                }
            },
        }
    }
}

/// Runs one of the proxy's own statements upstream, its answer swallowed;
/// an error ends the session (the backstop must hold).
async fn setup<U: AsyncRead + AsyncWrite + Unpin>(
    upstream: &mut PacketConn<U>,
    sql: &str,
    capabilities: u32,
) -> Result<(), RelayError> {
    match crate::upstream::run_query(upstream, capabilities, sql).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(RelayError::Setup(format!("{sql} failed: {}", e.message))),
        Err(e) => Err(RelayError::Setup(format!("{sql}: {e}"))),
    }
}

/// Waits for the client's next command; whatever the upstream says
/// meanwhile (an ERR before it closes an idle session) goes to the client.
async fn next_command<C, U>(
    client: &mut PacketConn<C>,
    upstream: &mut PacketConn<U>,
) -> Result<Option<packet::Payload>, RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match packet::take_payload(&mut client.buf, crate::MAX_COMMAND) {
            Ok(Some(p)) => return Ok(Some(p)),
            Ok(None) => {}
            Err(packet::FrameError::TooLong { .. }) => {
                let seq = Header::peek(&client.buf).map_or(0, |h| h.seq);
                let err = ErrPacket::new(
                    PACKET_TOO_LARGE,
                    "08S01",
                    format!(
                        "Got a packet bigger than airlock's limit of {} bytes",
                        crate::MAX_COMMAND
                    ),
                );
                let _ = send_client(client, seq.wrapping_add(1), &err.encode()).await;
                return Err(RelayError::Client(ReadError::Frame(
                    packet::FrameError::TooLong {
                        len: crate::MAX_COMMAND + 1,
                        limit: crate::MAX_COMMAND,
                    },
                )));
            }
            Err(e) => return Err(RelayError::Client(e.into())),
        }
        tokio::select! {
            r = client.fill() => match r {
                Ok(_) => {}
                Err(ReadError::Closed) => return Ok(None),
                Err(e) => return Err(RelayError::Client(e)),
            },
            r = upstream.fill() => {
                if let Err(e) = r {
                    return Err(RelayError::Upstream(e));
                }
                let bytes = upstream.buf.split();
                client.write_raw(&bytes).await.map_err(|e| RelayError::Client(e.into()))?;
            }
        }
    }
}

async fn send_client<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut PacketConn<C>,
    seq: u8,
    payload: &[u8],
) -> Result<(), RelayError> {
    client
        .write_payload(seq, payload)
        .await
        .map(|_| ())
        .map_err(|e| RelayError::Client(e.into()))
}

async fn send_upstream<U: AsyncRead + AsyncWrite + Unpin>(
    upstream: &mut PacketConn<U>,
    seq: u8,
    payload: &[u8],
) -> Result<(), RelayError> {
    upstream
        .write_payload(seq, payload)
        .await
        .map(|_| ())
        .map_err(|e| RelayError::Upstream(e.into()))
}

/// Passes the upstream's answer to the client as raw bytes until
/// `response` is complete; a local file the server asks for is passed from
/// the client to the upstream.
pub async fn relay_response<C, U>(
    client: &mut PacketConn<C>,
    upstream: &mut PacketConn<U>,
    mut response: Response,
) -> Result<Response, RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    if response.is_done() {
        return Ok(response);
    }
    // Payload bytes of the current packet still to pass on unjudged.
    let mut skip = 0usize;
    let mut done = false;
    let mut infile = false;
    loop {
        let mut consumed = 0;
        loop {
            let buf = &upstream.buf[consumed..];
            if skip > 0 {
                let n = skip.min(buf.len());
                consumed += n;
                skip -= n;
                if skip > 0 {
                    break;
                }
                continue;
            }
            if done || infile {
                break;
            }
            let Some(h) = Header::peek(buf) else { break };
            let want = h.len.min(HEAD);
            if buf.len() < 4 + want {
                break;
            }
            let step = response.packet(h.len, &buf[4..4 + want]);
            consumed += 4;
            skip = h.len;
            match step {
                Step::More => {}
                Step::Done => done = true,
                Step::LocalInfile => infile = true,
            }
        }
        if consumed > 0 {
            let bytes = upstream.buf.split_to(consumed);
            client
                .write_raw(&bytes)
                .await
                .map_err(|e| RelayError::Client(e.into()))?;
        }
        if infile && skip == 0 {
            infile = false;
            pass_local_file(client, upstream).await?;
            response.after_infile();
            continue;
        }
        if done && skip == 0 {
            return Ok(response);
        }
        upstream.fill().await.map_err(RelayError::Upstream)?;
    }
}

/// `LOAD DATA LOCAL`: the client's file packets, up to and including the
/// empty one that ends it, go to the upstream.
async fn pass_local_file<C, U>(
    client: &mut PacketConn<C>,
    upstream: &mut PacketConn<U>,
) -> Result<(), RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        while let Some((h, total)) = packet::whole_packet(&client.buf) {
            let bytes = client.buf.split_to(total);
            upstream
                .write_raw(&bytes)
                .await
                .map_err(|e| RelayError::Upstream(e.into()))?;
            if h.len == 0 {
                return Ok(());
            }
        }
        client.fill().await.map_err(RelayError::Client)?;
        if client.buf.remaining() > 2 * packet::MAX_PAYLOAD + 8 {
            return Err(RelayError::Client(ReadError::Frame(
                packet::FrameError::TooLong {
                    len: client.buf.remaining(),
                    limit: 2 * packet::MAX_PAYLOAD,
                },
            )));
        }
    }
}

/// The gate of an unprotected target: everything is relayed except what
/// the proxy must answer itself or cannot relay.
pub fn plain_verdict(payload: &[u8]) -> Option<Verdict> {
    match payload.first().copied() {
        Some(com::QUIT) => Some(Verdict::Quit),
        Some(com::BINLOG_DUMP) | Some(0x1e) | Some(0x15) | Some(com::SHUTDOWN) => {
            Some(Verdict::Refuse(ErrPacket::new(
                UNKNOWN_COMMAND,
                "08S01",
                "airlock does not relay replication or shutdown commands",
            )))
        }
        Some(com::CHANGE_USER) => Some(Verdict::ChangeUser),
        _ => None,
    }
}
