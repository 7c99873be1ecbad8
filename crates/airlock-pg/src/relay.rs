//! The session phase: raw frames relayed in both directions.
//!
//! Unprotected targets are copied byte for byte. On protected targets the
//! client-to-upstream side splits frames and judges the ones that carry SQL
//! (see [`Gate`]); a held message is never sent. In its place the upstream
//! gets a Bind (extended protocol) or `EXECUTE` (simple protocol) of a
//! prepared statement that does not exist, named with a per-session nonce.
//! The upstream answers with an ordinary error at exactly the point where the
//! held statement would have run, so pipelined results stay in order, an
//! explicit transaction block is really aborted upstream, and the
//! skip-until-Sync rule of the extended protocol is Postgres's own. The
//! upstream-to-client side swaps that one ErrorResponse (recognised by the
//! nonce) for the proxy's own. Result rows are never decoded.

use crate::appname::{AppName, ShowRows};
use crate::frame::{self, peek_header, FrameError};
use crate::gate::{Gate, Judgement};
use crate::proxied::{self, ProxyStatements, Swaps};
use airlock_core::request::Param;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a relay ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Network problem on either side.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A peer sent bytes that are not the Postgres protocol.
    #[error("protocol: {0}")]
    Frame(#[from] FrameError),
    /// A configuration reload ended the session (its user, access or target is gone).
    #[error("{0}")]
    Revoked(airlock_core::Revocation),
}

/// A boxed future, so hooks can be used as trait objects.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// How the client's transaction must be left by a reply the proxy makes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// An error: the upstream gets a stand-in that fails, so an explicit
    /// transaction block is aborted exactly as a Postgres error would.
    Error,
    /// A success (a proxy command, an approved change run elsewhere): the
    /// upstream gets an empty query, leaving its transaction state as it was.
    Success,
}

/// Frames the proxy sends instead of the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Response frames without ReadyForQuery (the upstream's is relayed).
    pub frames: Bytes,
    /// Error or success.
    pub kind: ReplyKind,
}

/// What the session does with messages the relay will not forward as they are.
pub trait SessionHooks: Send {
    /// A simple Query, before judging: proxy commands (`SET airlock.*`,
    /// `CALL airlock.run(N)`...) are answered here; `None` lets it go on.
    fn intercept<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Option<Reply>>;
    /// A held message; the reply is usually an error, or the real result of
    /// an approved change run on its own connection.
    fn held<'a>(&'a mut self, judgement: &'a Judgement) -> BoxFuture<'a, Reply>;
    /// A held Parse together with the parameters its Bind carried. A success
    /// reply holds the result frames of the run (the relay adds ParseComplete
    /// and BindComplete).
    fn held_bound<'a>(
        &'a mut self,
        judgement: &'a Judgement,
        params: Vec<Param>,
    ) -> BoxFuture<'a, Reply> {
        let _ = params;
        self.held(judgement)
    }
}

/// Settings of a protected relay.
pub struct Guard<H: SessionHooks> {
    /// The judge.
    pub gate: Gate,
    /// What happens to held messages and proxy commands.
    pub hooks: H,
    /// Cap of one buffered extended batch.
    pub max_batch_bytes: usize,
    /// Name of the never-existing statement used to make the upstream fail.
    pub nonce: String,
    /// Notices the hooks send while the client waits (e.g. for an approval);
    /// written to the client between upstream messages.
    pub notices: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    /// The session's `application_name` mapping.
    pub app_name: Arc<AppName>,
    /// Cancelled when the client goes away while a hook runs (the hooks
    /// hold a clone: a session waiting for a decision acts on it).
    pub client_gone: tokio_util::sync::CancellationToken,
    /// Whether the session may go on after a configuration reload.
    pub standing: crate::standing::Standing,
}

/// Most bytes read ahead from the client while a hook runs (pipelined
/// messages); more waits in the socket.
const WATCH_READ_AHEAD: usize = 64 * 1024;

/// Awaits a hook (which may wait minutes for a decision, or run a change)
/// while still reading the client: what it sends meanwhile is kept in
/// `rbuf` (at most [`WATCH_READ_AHEAD`] bytes), and its going away (end of
/// stream, an error) cancels `gone`.
async fn watching<R, T>(
    hook: impl std::future::Future<Output = T>,
    client: &mut R,
    rbuf: &mut BytesMut,
    gone: &tokio_util::sync::CancellationToken,
) -> T
where
    R: AsyncRead + Unpin,
{
    tokio::pin!(hook);
    loop {
        let room = !gone.is_cancelled() && rbuf.len() < WATCH_READ_AHEAD;
        tokio::select! {
            out = &mut hook => return out,
            read = client.read_buf(rbuf), if room => match read {
                Ok(0) | Err(_) => gone.cancel(),
                Ok(_) => {}
            },
        }
    }
}

/// Whether an I/O error means a peer went away (not a proxy error).
pub(crate) fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted | NotConnected
    )
}

/// One substitution the upstream-to-client side owes the client.
struct Owed {
    /// Index of the ReadyForQuery that ends the group the held message was in.
    group: u64,
    /// Frames to send instead of the stand-in's answer.
    frames: Bytes,
    /// Error: swap the ErrorResponse naming the nonce; success: swap the
    /// EmptyQueryResponse of the group.
    kind: ReplyKind,
    /// Success of an extended batch: write the frames before the group's ReadyForQuery.
    before_ready: bool,
    /// Bytes of ParseComplete/BindComplete at the start of `frames`.
    prefix_len: usize,
}

/// State shared by the two directions of a protected relay.
#[derive(Default)]
struct Ledger {
    owed: Mutex<VecDeque<Owed>>,
    /// Stand-in frames of proxy commands sent over the extended protocol.
    swaps: Swaps,
}

impl Ledger {
    /// Adds NoData after ParseComplete/BindComplete of a success owed to
    /// `group` whose result has no RowDescription.
    fn describe_portal(&self, group: u64) {
        let Ok(mut owed) = self.owed.lock() else {
            return;
        };
        let Some(o) = owed
            .iter_mut()
            .rev()
            .find(|o| o.group == group && o.before_ready)
        else {
            return;
        };
        // Frames already describing the result (the executor's own Describe
        // answered NoData or RowDescription) need nothing more.
        let at = o.prefix_len;
        let mut rest = o.frames.get(at..).unwrap_or(&[]);
        let mut described = false;
        while let Ok(Some(h)) = peek_header(rest) {
            described |= matches!(h.tag, b'T' | b'n');
            rest = rest.get(h.frame_len..).unwrap_or(&[]);
        }
        if o.frames.len() >= at && !described {
            let mut frames = BytesMut::with_capacity(o.frames.len() + 5);
            frames.extend_from_slice(&o.frames[..at]);
            frames.extend_from_slice(b"n\0\0\0\x04");
            frames.extend_from_slice(&o.frames[at..]);
            o.frames = frames.freeze();
        }
    }
}

/// Relays a protected session.
pub async fn relay_guarded<C, U, H>(
    client: C,
    client_pending: BytesMut,
    upstream: U,
    upstream_pending: BytesMut,
    guard: Guard<H>,
) -> Result<(), RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    H: SessionHooks,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let ledger = Arc::new(Ledger::default());
    let nonce = Bytes::from(guard.nonce.clone().into_bytes());
    let mut guard = guard;
    let notices = guard.notices.take();
    let app = guard.app_name.clone();
    let up = client_to_upstream(client_r, client_pending, upstream_w, guard, ledger.clone());
    let down = upstream_to_client(
        upstream_r,
        upstream_pending,
        client_w,
        nonce,
        ledger,
        notices,
        app,
    );
    let result = tokio::select! {
        r = up => r,
        r = down => r,
    };
    match result {
        Err(RelayError::Io(e)) if is_disconnect(&e) => Ok(()),
        other => other,
    }
}

/// Most write Parses kept back (waiting for their Bind) per session.
const MAX_KEPT: usize = 256;

/// What the client-to-upstream side is doing with the current extended batch.
enum BatchState {
    /// Forwarding judged messages.
    Open,
    /// A Parse of a statement that is not read-only was kept back: if the
    /// batch binds it, the held request carries the bound parameters.
    Deferred(Deferred),
    /// A message was held: drop everything up to Sync, as Postgres would skip it.
    Held,
}

/// A kept-back Parse.
struct Deferred {
    name: Vec<u8>,
    judgement: Judgement,
    types: Vec<u32>,
    /// The Parse frame, forwarded if the client describes the statement.
    parse: Vec<u8>,
    /// The Parse went upstream (with a Describe): the upstream answers it.
    forwarded: bool,
}

async fn client_to_upstream<R, W, H>(
    mut client: R,
    mut rbuf: BytesMut,
    mut upstream: W,
    mut guard: Guard<H>,
    ledger: Arc<Ledger>,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    H: SessionHooks,
{
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut ready_producers: u64 = 0; // messages forwarded that end with ReadyForQuery
    let mut batch = BatchState::Open;
    // Named statements kept back across a Sync, waiting for their Bind.
    let mut kept: std::collections::HashMap<Vec<u8>, Deferred> = std::collections::HashMap::new();
    let mut batch_bytes: usize = 0;
    let mut skip: usize = 0; // bytes of an oversized frame still to discard
                             // Proxy commands parsed over the extended protocol, by statement and portal.
    let mut proxy = ProxyStatements::default();
    let gone = guard.client_gone.clone();
    loop {
        if skip > 0 {
            let n = skip.min(rbuf.len());
            let _ = rbuf.split_to(n);
            skip -= n;
        }
        let header = if skip == 0 { peek_header(&rbuf)? } else { None };
        let Some(h) = header else {
            flush(&mut upstream, &mut out).await?;
            if client.read_buf(&mut rbuf).await? == 0 {
                return Ok(());
            }
            continue;
        };
        if matches!(h.tag, b'Q' | b'F' | b'P' | b'B' | b'E') {
            // A statement starts or a portal runs: a reload may have ended the session.
            guard.standing.admit()?;
        }
        let is_terminator = matches!(h.tag, b'S' | b'H');
        if !is_terminator && h.frame_len > guard.max_batch_bytes {
            // Never buffer a frame larger than the cap: discard it as it arrives.
            if let BatchState::Open = batch {
                let j = guard.gate.oversized(guard.max_batch_bytes);
                let simple = matches!(h.tag, b'Q' | b'F');
                let style = if simple { b'Q' } else { b'B' };
                let reply = watching(guard.hooks.held(&j), &mut client, &mut rbuf, &gone).await;
                owe(&mut out, &guard, &ledger, reply, ready_producers, style);
                if simple {
                    ready_producers += 1;
                } else {
                    batch = BatchState::Held;
                }
            }
            skip = h.frame_len;
            continue;
        }
        if rbuf.len() < h.frame_len {
            flush(&mut upstream, &mut out).await?;
            rbuf.reserve(h.frame_len - rbuf.len());
            if client.read_buf(&mut rbuf).await? == 0 {
                return Ok(());
            }
            continue;
        }
        let f = rbuf.split_to(h.frame_len);
        let held = matches!(batch, BatchState::Held);
        match h.tag {
            b'Q' | b'F' => {
                // A simple Query replaces the unnamed portal.
                proxy.unbound(b"");
                if !held {
                    let intercepted = if h.tag == b'Q' {
                        match std::str::from_utf8(frame::query_sql(&f)?) {
                            Ok(sql) => {
                                watching(guard.hooks.intercept(sql), &mut client, &mut rbuf, &gone)
                                    .await
                            }
                            Err(_) => None,
                        }
                    } else {
                        None
                    };
                    if let Some(reply) = intercepted {
                        owe(&mut out, &guard, &ledger, reply, ready_producers, b'Q');
                    } else {
                        let (j, answered) = if h.tag == b'Q' {
                            let j = guard.gate.query(frame::query_sql(&f)?);
                            // `DEALLOCATE s` of a kept-back Parse that never
                            // went upstream: answered here, as Postgres would
                            // answer it had the statement been prepared.
                            let local = j == Judgement::Pass
                                && guard
                                    .gate
                                    .sole_deallocate_of_unknown()
                                    .and_then(|n| kept.get(n))
                                    .is_some_and(|d| !d.forwarded);
                            if local {
                                let mut done = BytesMut::new();
                                frame::put_command_complete(&mut done, "DEALLOCATE");
                                let reply = Reply {
                                    frames: done.freeze(),
                                    kind: ReplyKind::Success,
                                };
                                owe(&mut out, &guard, &ledger, reply, ready_producers, b'Q');
                            }
                            for name in guard.gate.take_deallocated() {
                                if name == b"*" {
                                    kept.clear();
                                } else {
                                    kept.remove(&name);
                                }
                            }
                            (j, local)
                        } else {
                            let call = frame::function_call(&f).ok();
                            (guard.gate.function_call(call.as_ref()), false)
                        };
                        match j {
                            Judgement::Pass if answered => {}
                            Judgement::Pass => {
                                match crate::plain::client_frame(&guard.app_name, h.tag, &f)? {
                                    Some(labelled) => out.extend_from_slice(&labelled),
                                    None => out.extend_from_slice(&f),
                                }
                            }
                            ref hold_it => {
                                let reply = watching(
                                    guard.hooks.held(hold_it),
                                    &mut client,
                                    &mut rbuf,
                                    &gone,
                                )
                                .await;
                                owe(&mut out, &guard, &ledger, reply, ready_producers, b'Q');
                            }
                        }
                    }
                    ready_producers += 1;
                }
                flush(&mut upstream, &mut out).await?;
            }
            b'P' if !held
                && matches!(batch, BatchState::Open)
                && proxy_command_of(&f).is_some() =>
            {
                // A proxy command: the upstream parses a stand-in of the same name.
                let (name, _) = frame::parse_message(&f)?;
                proxy.parsed(name, proxy_command_of(&f));
                batch_bytes += f.len();
                out.extend_from_slice(&proxied::stand_in_parse(name, &guard.nonce));
            }
            b'B' if !held
                && matches!(batch, BatchState::Open)
                && frame::bind_statement(&f).is_ok_and(|n| proxy.is_proxy(n)) =>
            {
                let (portal, statement, params) = proxied::bind_parts(&f)?;
                proxy.bound(&portal, &statement, &params);
                batch_bytes += f.len();
                out.extend_from_slice(&proxied::stand_in_bind(&portal, &statement));
            }
            b'D' if !held && proxy_target(&proxy, &f).is_some() => {
                // The command's own description replaces the stand-in's.
                let sql = proxy_target(&proxy, &f).unwrap_or_default();
                let description = match airlock_sql::proxy_command(&sql) {
                    Some(
                        airlock_sql::ProxyCommand::Show(_)
                        | airlock_sql::ProxyCommand::ShowRequests,
                    ) => match watching(guard.hooks.intercept(&sql), &mut client, &mut rbuf, &gone)
                        .await
                    {
                        Some(r) if r.kind == ReplyKind::Success => proxied::description(&r.frames),
                        _ => Bytes::from_static(b"n\0\0\0\x04"),
                    },
                    _ => Bytes::from_static(b"n\0\0\0\x04"),
                };
                ledger.swaps.push(ready_producers, description);
                out.extend_from_slice(&f);
            }
            b'E' if !held && frame::execute_portal(&f).is_ok_and(|p| proxy.portal(p).is_some()) => {
                let portal = frame::execute_portal(&f)?.to_vec();
                let sql = proxy.portal(&portal).unwrap_or_default().to_string();
                let reply = match watching(
                    guard.hooks.intercept(&sql),
                    &mut client,
                    &mut rbuf,
                    &gone,
                )
                .await
                {
                    Some(r) => r,
                    None => Reply {
                        frames: proxy_unavailable(),
                        kind: ReplyKind::Error,
                    },
                };
                if reply.kind == ReplyKind::Success {
                    ledger
                        .swaps
                        .push(ready_producers, proxied::rows_only(&reply.frames));
                    out.extend_from_slice(&f);
                } else {
                    // Fails upstream where the command stood: Postgres skips to Sync.
                    owe(&mut out, &guard, &ledger, reply, ready_producers, b'B');
                    batch = BatchState::Held;
                }
            }
            b'B' if !held
                && matches!(batch, BatchState::Open)
                && frame::bind_statement(&f).is_ok_and(|n| kept.contains_key(n)) =>
            {
                let name = frame::bind_statement(&f)?.to_vec();
                if let Some(d) = kept.get(&name) {
                    let params = frame::bind_params(&f, &d.types).unwrap_or_default();
                    let reply = watching(
                        guard.hooks.held_bound(&d.judgement, params),
                        &mut client,
                        &mut rbuf,
                        &gone,
                    )
                    .await;
                    if reply.kind == ReplyKind::Success {
                        owe_before_ready(&ledger, reply, ready_producers, false, true);
                    } else {
                        owe(&mut out, &guard, &ledger, reply, ready_producers, b'B');
                    }
                    batch = BatchState::Held;
                }
            }
            b'P' | b'B' => {
                batch_bytes += f.len();
                if let BatchState::Deferred(d) = &batch {
                    // Only a Bind of the kept-back statement completes it.
                    let bound = h.tag == b'B'
                        && frame::bind_statement(&f).is_ok_and(|n| n == d.name.as_slice());
                    let BatchState::Deferred(d) = std::mem::replace(&mut batch, BatchState::Held)
                    else {
                        unreachable!("matched above")
                    };
                    if bound {
                        let params = match frame::bind_params(&f, &d.types) {
                            Ok(p) => p,
                            Err(e) => {
                                tracing::warn!(error = %e, "undecodable Bind parameters; the request is held without them");
                                Vec::new()
                            }
                        };
                        let reply = watching(
                            guard.hooks.held_bound(&d.judgement, params),
                            &mut client,
                            &mut rbuf,
                            &gone,
                        )
                        .await;
                        if reply.kind == ReplyKind::Success {
                            owe_before_ready(&ledger, reply, ready_producers, !d.forwarded, true);
                        } else {
                            owe(&mut out, &guard, &ledger, reply, ready_producers, b'B');
                        }
                    } else {
                        let reply = watching(
                            guard.hooks.held(&d.judgement),
                            &mut client,
                            &mut rbuf,
                            &gone,
                        )
                        .await;
                        owe(&mut out, &guard, &ledger, reply, ready_producers, b'B');
                    }
                } else if !held {
                    let j = if batch_bytes > guard.max_batch_bytes {
                        guard.gate.oversized(guard.max_batch_bytes)
                    } else if h.tag == b'P' {
                        let (name, sql) = frame::parse_message(&f)?;
                        proxy.parsed(name, None);
                        // A re-Parse of a name replaces what was kept under it.
                        kept.remove(name);
                        let types = frame::parse_types(&f).unwrap_or_default();
                        guard.gate.parse_typed(name, sql, &types)
                    } else {
                        if let Some((portal, _)) = frame::cstr(frame::body(&f)) {
                            proxy.unbound(portal);
                        }
                        guard.gate.bind(frame::bind_statement(&f)?)
                    };
                    match j {
                        Judgement::Pass => {
                            match crate::plain::client_frame(&guard.app_name, h.tag, &f)? {
                                Some(labelled) => out.extend_from_slice(&labelled),
                                None => out.extend_from_slice(&f),
                            }
                        }
                        Judgement::Hold { ref sql, .. }
                            if h.tag == b'P' && !sql.trim().is_empty() =>
                        {
                            let (name, _) = frame::parse_message(&f)?;
                            batch = BatchState::Deferred(Deferred {
                                name: name.to_vec(),
                                types: frame::parse_types(&f).unwrap_or_default(),
                                judgement: j.clone(),
                                parse: f.to_vec(),
                                forwarded: false,
                            });
                        }
                        ref hold_it => {
                            let reply =
                                watching(guard.hooks.held(hold_it), &mut client, &mut rbuf, &gone)
                                    .await;
                            owe(&mut out, &guard, &ledger, reply, ready_producers, b'B');
                            batch = BatchState::Held;
                        }
                    }
                }
            }
            b'D' if matches!(&batch, BatchState::Deferred(d)
                if !d.forwarded && describes_statement(&f, &d.name)
                    && matches!(&d.judgement, Judgement::Hold { sql, .. } if guard.gate.parse_is_inert(sql))) =>
            {
                // The client describes the held statement (asyncpg, pgJDBC
                // describe-only) to learn its parameter types: Postgres parses
                // and describes it on the session's own (read) connection —
                // parse analysis runs nothing the catalog marks as user code —
                // and the Bind stays held, now with typed parameters.
                if let BatchState::Deferred(d) = &mut batch {
                    batch_bytes += d.parse.len() + f.len();
                    out.extend_from_slice(&d.parse);
                    out.extend_from_slice(&f);
                    d.forwarded = true;
                }
            }
            b'H' if matches!(&batch, BatchState::Deferred(d) if d.forwarded) => {
                // asyncpg describes with Flush, then binds in the same batch:
                // the upstream's answers to Parse and Describe go out now.
                out.extend_from_slice(&f);
                flush(&mut upstream, &mut out).await?;
            }
            b'S' if matches!(&batch, BatchState::Deferred(d) if !d.name.is_empty() || d.forwarded) =>
            {
                // A named statement parsed on its own (psycopg's prepare): the
                // client gets its ParseComplete, the proxy keeps it until a
                // Bind brings the parameters. The upstream never sees it.
                if let BatchState::Deferred(d) = std::mem::replace(&mut batch, BatchState::Open) {
                    if kept.len() >= MAX_KEPT && !kept.contains_key(&d.name) {
                        // Bounded: over the cap the statement is held now
                        // rather than kept for a later Bind.
                        let reply = watching(
                            guard.hooks.held(&d.judgement),
                            &mut client,
                            &mut rbuf,
                            &gone,
                        )
                        .await;
                        owe(&mut out, &guard, &ledger, reply, ready_producers, b'B');
                    } else {
                        owe_before_ready(
                            &ledger,
                            Reply {
                                frames: Bytes::new(),
                                kind: ReplyKind::Success,
                            },
                            ready_producers,
                            !d.forwarded,
                            false,
                        );
                        kept.insert(d.name.clone(), d);
                    }
                }
                out.extend_from_slice(&f);
                ready_producers += 1;
                batch_bytes = 0;
                flush(&mut upstream, &mut out).await?;
            }
            b'C' | b'D' | b'E' | b'S' | b'H' if matches!(batch, BatchState::Deferred(_)) => {
                // The kept-back statement was not bound in this batch: held as is.
                if let BatchState::Deferred(d) = std::mem::replace(&mut batch, BatchState::Held) {
                    let reply = watching(
                        guard.hooks.held(&d.judgement),
                        &mut client,
                        &mut rbuf,
                        &gone,
                    )
                    .await;
                    owe(&mut out, &guard, &ledger, reply, ready_producers, b'B');
                }
                // Re-handle this message in the held state.
                rbuf = [&f[..], &rbuf[..]].concat().as_slice().into();
                continue;
            }
            b'C' => {
                let (kind, name) = frame::close_target(&f)?;
                proxy.closed(kind, name);
                if kind == b'S' {
                    kept.remove(name);
                    guard.gate.close_statement(name);
                }
                if !held {
                    batch_bytes += f.len();
                    out.extend_from_slice(&f);
                }
            }
            b'D' | b'E' => {
                if !held {
                    batch_bytes += f.len();
                    out.extend_from_slice(&f);
                } else if h.tag == b'D' && frame::body(&f).first() == Some(&b'P') {
                    // A Describe of the portal of a change run by the proxy
                    // expects NoData when the change returns no rows.
                    ledger.describe_portal(ready_producers);
                }
            }
            b'S' => {
                out.extend_from_slice(&f);
                ready_producers += 1;
                batch = BatchState::Open;
                batch_bytes = 0;
                flush(&mut upstream, &mut out).await?;
            }
            b'H' => {
                // After an error Postgres keeps skipping until Sync, so a held
                // batch stays held across Flush.
                out.extend_from_slice(&f);
                batch_bytes = 0;
                flush(&mut upstream, &mut out).await?;
            }
            b'd' | b'c' | b'f' => {
                // COPY data carries no SQL; outside COPY mode Postgres ignores it.
                out.extend_from_slice(&f);
                flush(&mut upstream, &mut out).await?;
            }
            b'X' => {
                out.extend_from_slice(&f);
                flush(&mut upstream, &mut out).await?;
                return Ok(());
            }
            other => {
                if !held {
                    let j = guard.gate.unknown_message(other);
                    let reply = watching(guard.hooks.held(&j), &mut client, &mut rbuf, &gone).await;
                    owe(&mut out, &guard, &ledger, reply, ready_producers, b'Q');
                    ready_producers += 1;
                }
                flush(&mut upstream, &mut out).await?;
            }
        }
    }
}

/// Writes what `out` holds and flushes: a TLS stream may keep accepted
/// bytes in its record buffer until flushed, and the relay is about to wait
/// for the other side.
async fn flush<W: AsyncWrite + Unpin>(upstream: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    if !out.is_empty() {
        upstream.write_all(out).await?;
        out.clear();
        upstream.flush().await?;
    }
    Ok(())
}

/// The proxy command a Parse carries, if it is one.
fn proxy_command_of(f: &[u8]) -> Option<&str> {
    let (_, sql) = frame::parse_message(f).ok()?;
    let sql = std::str::from_utf8(sql).ok()?;
    airlock_sql::proxy_command(sql).map(|_| sql)
}

/// Whether a Describe frame describes the prepared statement `name`.
fn describes_statement(f: &[u8], name: &[u8]) -> bool {
    match frame::body(f).split_first() {
        Some((b'S', rest)) => frame::cstr(rest).is_some_and(|(n, _)| n == name),
        _ => false,
    }
}

/// The proxy command a Describe ('S' statement or 'P' portal) is about.
fn proxy_target(proxy: &ProxyStatements, f: &[u8]) -> Option<String> {
    let body = frame::body(f);
    let (kind, rest) = body.split_first()?;
    let (name, _) = frame::cstr(rest)?;
    match kind {
        b'S' => proxy.statement(name),
        _ => proxy.portal(name),
    }
    .map(str::to_string)
}

/// The answer to a proxy command when no workflow is configured.
fn proxy_unavailable() -> Bytes {
    let mut out = BytesMut::new();
    frame::put_error(
        &mut out,
        &frame::Report {
            severity: "ERROR",
            code: "0A000",
            message:
                "airlock: proxy commands need the change-request workflow, which is not configured",
            detail: None,
            hint: None,
        },
    );
    out.freeze()
}

/// Records a success owed to an extended batch whose stand-in is its own
/// Sync: the frames go out right before the group's ReadyForQuery.
fn owe_before_ready(ledger: &Ledger, reply: Reply, group: u64, parsed: bool, bound: bool) {
    let mut frames = BytesMut::new();
    // ParseComplete and BindComplete of the statement that was kept back.
    if parsed {
        frames.extend_from_slice(b"1\0\0\0\x04");
    }
    if bound {
        frames.extend_from_slice(b"2\0\0\0\x04");
    }
    let prefix_len = frames.len();
    frames.extend_from_slice(&reply.frames);
    if let Ok(mut owed) = ledger.owed.lock() {
        owed.push_back(Owed {
            group,
            frames: frames.freeze(),
            kind: ReplyKind::Success,
            before_ready: true,
            prefix_len,
        });
    }
}

/// Records the owed reply and appends its stand-in: for an error, `EXECUTE
/// nonce` (simple protocol) or a Bind to nonce (extended), which fail
/// upstream; for a success, an empty query. An extended batch only ever owes
/// errors: after one, Postgres skips to Sync.
fn owe<H: SessionHooks>(
    out: &mut BytesMut,
    guard: &Guard<H>,
    ledger: &Ledger,
    reply: Reply,
    group: u64,
    style: u8,
) {
    let kind = if style == b'B' {
        ReplyKind::Error
    } else {
        reply.kind
    };
    if let Ok(mut owed) = ledger.owed.lock() {
        owed.push_back(Owed {
            group,
            frames: reply.frames,
            kind,
            before_ready: false,
            prefix_len: 0,
        });
    }
    match (kind, style) {
        (ReplyKind::Error, b'B') => frame::put_bind(out, &guard.nonce),
        (ReplyKind::Error, _) => frame::put_query(out, &format!("EXECUTE {}", guard.nonce)),
        (ReplyKind::Success, _) => frame::put_query(out, ""),
    }
}

async fn upstream_to_client<R, W>(
    mut upstream: R,
    mut rbuf: BytesMut,
    mut client: W,
    nonce: Bytes,
    ledger: Arc<Ledger>,
    mut notices: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    app: Arc<AppName>,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut show = ShowRows::default();
    let mut drop_complete = false; // the stand-in row was swapped; its tag goes too
    let mut ready_seen: u64 = 0;
    let mut skip: usize = 0; // bytes of the current frame still to pass through
    loop {
        if rbuf.is_empty() || skip == 0 && !has_interesting_frame_complete(&rbuf) {
            rbuf.reserve(32 * 1024);
            // Between messages (nothing half-relayed), notices may go out.
            let idle = rbuf.is_empty() && skip == 0;
            let read = match notices.as_mut() {
                Some(rx) if idle => {
                    tokio::select! {
                        n = upstream.read_buf(&mut rbuf) => n?,
                        notice = rx.recv() => {
                            match notice {
                                Some(frames) => {
                                    client.write_all(&frames).await?;
                                    client.flush().await?;
                                }
                                None => notices = None,
                            }
                            continue;
                        }
                    }
                }
                _ => upstream.read_buf(&mut rbuf).await?,
            };
            if read == 0 {
                // A clean close towards the client (close_notify over TLS).
                let _ = client.shutdown().await;
                return Ok(());
            }
        }
        let mut pos = 0;
        let mut start = 0;
        while pos < rbuf.len() {
            if skip > 0 {
                let n = skip.min(rbuf.len() - pos);
                pos += n;
                skip -= n;
                continue;
            }
            let Some(h) = peek_header(&rbuf[pos..])? else {
                break;
            };
            let available = rbuf.len() - pos;
            let interesting = matches!(h.tag, b'Z' | b'E' | b'I')
                || show.wants(&app, h.tag)
                || (matches!(h.tag, b'T' | b'D' | b'C')
                    && (drop_complete || ledger.swaps.pending()));
            if !interesting {
                if available >= h.frame_len {
                    pos += h.frame_len;
                } else {
                    skip = h.frame_len - available;
                    pos = rbuf.len();
                }
                continue;
            }
            if available < h.frame_len {
                break;
            }
            let f = &rbuf[pos..pos + h.frame_len];
            let stand_in = matches!(h.tag, b'T' | b'D') && contains(f, &nonce);
            if stand_in || (h.tag == b'C' && drop_complete) {
                // A proxy command's stand-in: its description or its one row
                // becomes the command's own; its CommandComplete is dropped.
                client.write_all(&rbuf[start..pos]).await?;
                if stand_in {
                    if let Some(frames) = ledger.swaps.next(ready_seen) {
                        client.write_all(&frames).await?;
                    }
                }
                drop_complete = h.tag == b'D';
                pos += h.frame_len;
                start = pos;
            } else if let Some(own) = show.on_frame(&app, h.tag, f) {
                // application_name as the client set it.
                client.write_all(&rbuf[start..pos]).await?;
                client.write_all(&own).await?;
                pos += h.frame_len;
                start = pos;
            } else if h.tag == b'Z' {
                let mut before = None;
                if let Ok(mut owed) = ledger.owed.lock() {
                    while owed.front().is_some_and(|o| o.group < ready_seen) {
                        owed.pop_front();
                    }
                    if owed
                        .front()
                        .is_some_and(|o| o.group == ready_seen && o.before_ready)
                    {
                        before = owed.pop_front().map(|o| o.frames);
                    }
                    // A held message whose group ended without our error (an
                    // earlier error made Postgres skip it) owes nothing more.
                    while owed.front().is_some_and(|o| o.group <= ready_seen) {
                        owed.pop_front();
                    }
                }
                if let Some(frames) = before {
                    client.write_all(&rbuf[start..pos]).await?;
                    client.write_all(&frames).await?;
                    start = pos;
                }
                ledger.swaps.ended(ready_seen);
                ready_seen += 1;
                pos += h.frame_len;
            } else if (h.tag == b'E' && contains(f, &nonce)) || h.tag == b'I' {
                let want = if h.tag == b'E' {
                    ReplyKind::Error
                } else {
                    ReplyKind::Success
                };
                let replacement = ledger.owed.lock().ok().and_then(|mut owed| {
                    while owed.front().is_some_and(|o| o.group < ready_seen) {
                        owed.pop_front();
                    }
                    // An empty query of the client's own is not ours: only the
                    // group's owed success is swapped.
                    let ours = owed.front().is_some_and(|o| {
                        o.kind == want && (want == ReplyKind::Error || o.group == ready_seen)
                    });
                    if ours {
                        owed.pop_front()
                    } else {
                        None
                    }
                });
                if let Some(o) = replacement {
                    client.write_all(&rbuf[start..pos]).await?;
                    client.write_all(&o.frames).await?;
                    pos += h.frame_len;
                    start = pos;
                } else {
                    pos += h.frame_len;
                }
            } else {
                pos += h.frame_len;
            }
        }
        if pos > start {
            client.write_all(&rbuf[start..pos]).await?;
        }
        // Before waiting for upstream again: a TLS client stream may hold
        // accepted bytes until flushed (a large result would stall).
        client.flush().await?;
        let _ = rbuf.split_to(pos);
    }
}

/// Whether the buffer starts with a complete frame, so parsing can go on without reading.
fn has_interesting_frame_complete(buf: &[u8]) -> bool {
    matches!(peek_header(buf), Ok(Some(h)) if buf.len() >= h.frame_len)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{put_error, put_query, split_frame, Report};
    use airlock_sql::Classifier;
    use bytes::BufMut;
    use tokio::io::duplex;

    struct FixedReply;
    impl SessionHooks for FixedReply {
        fn intercept<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Option<Reply>> {
            Box::pin(async move {
                (sql == "SET airlock.reason = 'x'").then(|| Reply {
                    frames: Bytes::from_static(b"C\0\0\0\x08SET\0"),
                    kind: ReplyKind::Success,
                })
            })
        }
        fn held<'a>(&'a mut self, _j: &'a Judgement) -> BoxFuture<'a, Reply> {
            Box::pin(async move {
                let mut b = BytesMut::new();
                put_error(
                    &mut b,
                    &Report {
                        severity: "ERROR",
                        code: "AL001",
                        message: "held",
                        detail: None,
                        hint: None,
                    },
                );
                Reply {
                    frames: b.freeze(),
                    kind: ReplyKind::Error,
                }
            })
        }
    }

    fn ready(status: u8) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(b'Z');
        b.put_i32(5);
        b.put_u8(status);
        b
    }

    async fn next_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut BytesMut) -> (u8, Bytes) {
        loop {
            if let Some(f) = split_frame(buf).expect("valid frame") {
                return f;
            }
            assert!(r.read_buf(buf).await.expect("read") > 0, "peer closed");
        }
    }

    #[tokio::test]
    async fn held_query_becomes_failing_execute_and_its_error_is_replaced() {
        let (client_side, proxy_client) = duplex(1 << 16);
        let (proxy_upstream, upstream_side) = duplex(1 << 16);
        let guard = Guard {
            gate: Gate::new(Arc::new(Classifier::new(16))),
            hooks: FixedReply,
            max_batch_bytes: 1 << 20,
            nonce: "airlock_held_test".into(),
            notices: None,
            app_name: Arc::new(AppName::new("alice")),
            client_gone: Default::default(),
            standing: crate::standing::Standing::fixed(),
        };
        let relay = tokio::spawn(relay_guarded(
            proxy_client,
            BytesMut::new(),
            proxy_upstream,
            BytesMut::new(),
            guard,
        ));
        let (mut cr, mut cw) = tokio::io::split(client_side);
        let (mut ur, mut uw) = tokio::io::split(upstream_side);

        let mut q = BytesMut::new();
        put_query(&mut q, "DELETE FROM t");
        put_query(&mut q, "SELECT 1");
        cw.write_all(&q).await.expect("write");

        let mut ubuf = BytesMut::new();
        let (tag, f) = next_frame(&mut ur, &mut ubuf).await;
        assert_eq!(tag, b'Q');
        assert_eq!(
            frame::query_sql(&f).expect("sql"),
            b"EXECUTE airlock_held_test"
        );
        let (_, f) = next_frame(&mut ur, &mut ubuf).await;
        assert_eq!(frame::query_sql(&f).expect("sql"), b"SELECT 1");

        // The upstream answers both: the nonce error, then a real error of the read.
        let mut answer = BytesMut::new();
        for msg in [
            "prepared statement \"airlock_held_test\" does not exist",
            "some real error",
        ] {
            put_error(
                &mut answer,
                &Report {
                    severity: "ERROR",
                    code: "26000",
                    message: msg,
                    detail: None,
                    hint: None,
                },
            );
            answer.extend_from_slice(&ready(b'I'));
        }
        uw.write_all(&answer).await.expect("write");

        let mut cbuf = BytesMut::new();
        let (tag, f) = next_frame(&mut cr, &mut cbuf).await;
        assert_eq!(tag, b'E');
        assert_eq!(frame::error_field(&f, b'C'), Some(&b"AL001"[..]));
        assert_eq!(next_frame(&mut cr, &mut cbuf).await.0, b'Z');
        let (tag, f) = next_frame(&mut cr, &mut cbuf).await;
        assert_eq!(tag, b'E');
        assert_eq!(frame::error_field(&f, b'M'), Some(&b"some real error"[..]));
        assert_eq!(next_frame(&mut cr, &mut cbuf).await.0, b'Z');
        drop((cr, cw, ur, uw));
        relay.await.expect("join").expect("relay ends cleanly");
    }

    /// Both sides hold written bytes until flushed, as TLS streams do: the
    /// relay must flush before it waits, or queries and answers stall.
    #[tokio::test]
    async fn buffering_streams_are_flushed_before_the_relay_waits() {
        let (client_side, proxy_client) = duplex(1 << 16);
        let (proxy_upstream, upstream_side) = duplex(1 << 16);
        let guard = Guard {
            gate: Gate::new(Arc::new(Classifier::new(16))),
            hooks: FixedReply,
            max_batch_bytes: 1 << 20,
            nonce: "airlock_held_test".into(),
            notices: None,
            app_name: Arc::new(AppName::new("alice")),
            client_gone: Default::default(),
            standing: crate::standing::Standing::fixed(),
        };
        let _relay = tokio::spawn(relay_guarded(
            tokio::io::BufWriter::new(proxy_client),
            BytesMut::new(),
            tokio::io::BufWriter::new(proxy_upstream),
            BytesMut::new(),
            guard,
        ));
        let (mut cr, mut cw) = tokio::io::split(client_side);
        let (mut ur, mut uw) = tokio::io::split(upstream_side);
        let limit = std::time::Duration::from_secs(5);
        let mut q = BytesMut::new();
        put_query(&mut q, "SELECT 1");
        cw.write_all(&q).await.expect("write");
        let mut ubuf = BytesMut::new();
        let (tag, _) = tokio::time::timeout(limit, next_frame(&mut ur, &mut ubuf))
            .await
            .expect("the query stayed in the relay's write buffer");
        assert_eq!(tag, b'Q');
        let mut answer = BytesMut::new();
        frame::put_command_complete(&mut answer, "SELECT 1");
        answer.extend_from_slice(&ready(b'I'));
        uw.write_all(&answer).await.expect("write");
        let mut cbuf = BytesMut::new();
        let (tag, _) = tokio::time::timeout(limit, next_frame(&mut cr, &mut cbuf))
            .await
            .expect("the answer stayed in the relay's write buffer");
        assert_eq!(tag, b'C');
        assert_eq!(next_frame(&mut cr, &mut cbuf).await.0, b'Z');
    }

    fn typed(tag: u8, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.extend_from_slice(body);
        b
    }

    fn start(
        max_batch_bytes: usize,
    ) -> (
        tokio::task::JoinHandle<Result<(), RelayError>>,
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
    ) {
        let (client_side, proxy_client) = duplex(1 << 20);
        let (proxy_upstream, upstream_side) = duplex(1 << 20);
        let guard = Guard {
            gate: Gate::new(Arc::new(Classifier::new(16))),
            hooks: FixedReply,
            max_batch_bytes,
            nonce: "airlock_held_test".into(),
            notices: None,
            app_name: Arc::new(AppName::new("alice")),
            client_gone: Default::default(),
            standing: crate::standing::Standing::fixed(),
        };
        let relay = tokio::spawn(relay_guarded(
            proxy_client,
            BytesMut::new(),
            proxy_upstream,
            BytesMut::new(),
            guard,
        ));
        (relay, client_side, upstream_side)
    }

    #[tokio::test]
    async fn extended_batch_is_forwarded_up_to_the_held_parse_then_skipped_to_sync() {
        let (relay, mut client, mut upstream) = start(1 << 20);
        let mut batch = BytesMut::new();
        batch.extend_from_slice(&typed(b'P', b"\0SELECT 1\0\0\0"));
        batch.extend_from_slice(&typed(b'B', b"\0\0\0\0\0\0\0\0"));
        batch.extend_from_slice(&typed(b'E', b"\0\0\0\0\0"));
        batch.extend_from_slice(&typed(b'P', b"w\0DELETE FROM t\0\0\0"));
        batch.extend_from_slice(&typed(b'B', b"\0w\0\0\0\0\0\0\0"));
        batch.extend_from_slice(&typed(b'E', b"\0\0\0\0\0"));
        batch.extend_from_slice(&typed(b'S', b""));
        client.write_all(&batch).await.expect("write");

        let mut ubuf = BytesMut::new();
        let mut tags = Vec::new();
        loop {
            let (tag, f) = next_frame(&mut upstream, &mut ubuf).await;
            tags.push(tag);
            if tag == b'B' && frame::bind_statement(&f).expect("bind") == b"airlock_held_test" {
                tags.pop();
                tags.push(b'!');
            }
            if tag == b'S' {
                break;
            }
        }
        // The read runs; the held Parse becomes the failing Bind; its Bind/Execute never leave.
        assert_eq!(tags, b"PBE!S");
        drop((client, upstream));
        relay.await.expect("join").expect("relay ends cleanly");
    }

    #[tokio::test]
    async fn an_oversized_batch_is_held_without_buffering_it() {
        let (relay, mut client, mut upstream) = start(64 * 1024);
        let mut big = b"\0SELECT '".to_vec();
        big.extend(std::iter::repeat_n(b'x', 200 * 1024));
        big.extend_from_slice(b"'\0\0\0");
        let mut batch = typed(b'P', &big);
        batch.extend_from_slice(&typed(b'S', b""));
        client.write_all(&batch).await.expect("write");
        let mut ubuf = BytesMut::new();
        let (tag, f) = next_frame(&mut upstream, &mut ubuf).await;
        assert_eq!(tag, b'B');
        assert_eq!(
            frame::bind_statement(&f).expect("bind"),
            b"airlock_held_test"
        );
        assert_eq!(next_frame(&mut upstream, &mut ubuf).await.0, b'S');
        drop((client, upstream));
        relay.await.expect("join").expect("relay ends cleanly");
    }

    #[tokio::test]
    async fn a_proxy_command_is_answered_through_an_empty_query_and_only_that_one() {
        let (relay, mut client, mut upstream) = start(1 << 20);
        let mut q = BytesMut::new();
        put_query(&mut q, "");
        put_query(&mut q, "SET airlock.reason = 'x'");
        client.write_all(&q).await.expect("write");
        let mut ubuf = BytesMut::new();
        for _ in 0..2 {
            let (tag, f) = next_frame(&mut upstream, &mut ubuf).await;
            assert_eq!(tag, b'Q');
            assert_eq!(
                frame::query_sql(&f).expect("sql"),
                b"",
                "the SET never goes upstream"
            );
        }
        let mut answer = BytesMut::new();
        for _ in 0..2 {
            answer.extend_from_slice(&typed(b'I', b""));
            answer.extend_from_slice(&ready(b'T'));
        }
        upstream.write_all(&answer).await.expect("write");
        let mut cbuf = BytesMut::new();
        // The client's own empty query keeps its EmptyQueryResponse...
        assert_eq!(next_frame(&mut client, &mut cbuf).await.0, b'I');
        assert_eq!(next_frame(&mut client, &mut cbuf).await.0, b'Z');
        // ...and the proxy command gets its CommandComplete, with the upstream's status.
        let (tag, f) = next_frame(&mut client, &mut cbuf).await;
        assert_eq!((tag, frame::body(&f)), (b'C', &b"SET\0"[..]));
        let (tag, f) = next_frame(&mut client, &mut cbuf).await;
        assert_eq!((tag, frame::ready_status(&f)), (b'Z', Some(b'T')));
        drop((client, upstream));
        relay.await.expect("join").expect("relay ends cleanly");
    }
}
