//! One client connection from TCP accept to the end of its session:
//! TLS negotiation (pgwire), startup packet, SCRAM authentication, target
//! authorization (only after authentication), upstream session, relay.

use crate::appname::AppName;
use crate::cancel::{CancelRegistry, Registration};
use crate::frame::{self, put_auth, put_auth_sasl, put_error, Report, StartupPacket};
use crate::gate::{Gate, Judgement};
use crate::holding::ProtectedHooks;
use crate::relay::{self, BoxFuture, Guard, Reply, ReplyKind, SessionHooks};
use crate::scram::{ScramError, ScramExchange};
use crate::standing::Standing;
use crate::stream::MaybeTlsStream;
use crate::upstream::{self, UpstreamError};
use airlock_core::{Config, Decision, HeldStatement, ScramVerifier, StatementPolicy, Target, User};
use airlock_sql::Classifier;
use bytes::{Bytes, BytesMut};
use pgwire::tokio::server::{negotiate_tls, MaybeTls};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

/// Everything a connection needs, shared by all sessions.
pub struct SessionContext {
    /// The configuration in force (a session keeps the generation it started with).
    pub live: airlock_core::LiveConfig,
    /// Statement classifier with its cache.
    pub classifier: Arc<Classifier>,
    /// What happens to held statements.
    pub policy: Arc<dyn StatementPolicy>,
    /// Client TLS, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Per-process key for mock SCRAM salts of unknown users.
    pub process_key: [u8; 32],
    /// Live sessions for cancel requests.
    pub cancels: Arc<CancelRegistry>,
    /// Upstream endpoints and catalogs of the targets in force.
    pub targets: crate::targets::Targets,
    /// The change-request workflow; without it held statements are refused outright.
    pub workflow: Option<Arc<airlock_core::workflow::Workflow>>,
    /// Runs approved requests (present with the workflow).
    pub runner: Option<crate::runner::ChangeRunner>,
    /// Background writes (login audit events) that shutdown waits for.
    pub background: tokio_util::task::TaskTracker,
    /// Where sessions, bytes and statements are counted.
    pub metrics: airlock_metrics::Metrics,
    /// Live client connections, for the caps.
    pub connections: Arc<crate::limits::Connections>,
    /// How many refused logins are audited one by one.
    pub refusals: Arc<crate::limits::RefusalBudget>,
}

/// Why a connection ended before or during its session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Network problem.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol.
    #[error("protocol: {0}")]
    Frame(#[from] frame::FrameError),
    /// The client was refused (already told why).
    #[error("refused: {0}")]
    Refused(String),
    /// Startup took too long.
    #[error("startup not finished within {0:?}")]
    Timeout(Duration),
    /// The relay ended with an error.
    #[error("relay: {0}")]
    Relay(#[from] relay::RelayError),
}

/// How long a revoked session's FATAL may take to reach its client.
const REVOKED_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest authentication message accepted from a client.
const MAX_AUTH_MESSAGE: usize = 16 * 1024;

/// Serves one accepted TCP connection to its end.
pub async fn handle(
    ctx: Arc<SessionContext>,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<(), SessionError> {
    let timeout = ctx.live.current().server.auth_timeout;
    let ready = tokio::time::timeout(timeout, startup(&ctx, tcp, peer))
        .await
        .map_err(|_| SessionError::Timeout(timeout))??;
    let Some(ready) = ready else { return Ok(()) };
    let Ready {
        client,
        config,
        catalog,
        generation,
        client_buf,
        upstream,
        target,
        user,
        application_name,
        app_name,
        login_audit,
        _registration,
        _slots,
    } = ready;
    info!(user = %user.name, target = %target.name, %peer, protected = target.protected, "session started");
    let _session_open = ctx.metrics.session_opened(&target.name, "postgres");
    let _upstream_open = ctx.metrics.upstream_opened(&target.name);
    let (from_client, to_client) = ctx.metrics.byte_counters(&target.name);
    let mut client = crate::metered::Metered::new(client, from_client, to_client);
    let cancel_signal = _registration.signal.clone();
    let standing = Standing::new(&ctx.live, &user.name, &target.name, generation);
    let client_io = &mut client;
    let relay = async {
        if target.protected {
            let fallback = PolicyReplies {
                policy: ctx.policy.clone(),
                user: user.name.clone(),
                target: target.name.clone(),
                environment: target.environment.clone(),
            };
            let gate = Gate::new(ctx.classifier.clone())
                .with_catalog(catalog.clone())
                .with_metrics(ctx.metrics.clone(), &target.name);
            let max_batch_bytes = config.server.max_batch_bytes;
            let nonce = format!("airlock_held_{:016x}", rand::random::<u64>());
            match (&ctx.workflow, &ctx.runner) {
                (Some(workflow), Some(runner)) => {
                    let (notice_tx, notice_rx) = tokio::sync::mpsc::channel(16);
                    let client_gone = tokio_util::sync::CancellationToken::new();
                    let hooks = ProtectedHooks {
                        workflow: workflow.clone(),
                        config: config.clone(),
                        user: user.clone(),
                        target: target.clone(),
                        client_addr: peer.to_string(),
                        application_name: application_name.clone(),
                        runner: runner.clone(),
                        settings: Default::default(),
                        refuse: Box::new(move |j| fallback.refusal(j)),
                        notices: notice_tx,
                        cancel: cancel_signal.clone(),
                        login_audit,
                        catalog: catalog.clone(),
                        client_gone: client_gone.clone(),
                    };
                    let guard = Guard {
                        gate,
                        hooks,
                        max_batch_bytes,
                        nonce,
                        notices: Some(notice_rx),
                        app_name: app_name.clone(),
                        client_gone,
                        standing,
                    };
                    relay::relay_guarded(
                        &mut *client_io,
                        client_buf,
                        upstream.stream,
                        upstream.leftover,
                        guard,
                    )
                    .await
                }
                _ => {
                    let guard = Guard {
                        gate,
                        hooks: fallback,
                        max_batch_bytes,
                        nonce,
                        notices: None,
                        app_name: app_name.clone(),
                        client_gone: Default::default(),
                        standing,
                    };
                    relay::relay_guarded(
                        &mut *client_io,
                        client_buf,
                        upstream.stream,
                        upstream.leftover,
                        guard,
                    )
                    .await
                }
            }
        } else if let (Some(workflow), Some(_)) = (&ctx.workflow, &target.family) {
            // Lower environments record their changes for later "earlier runs".
            let (tx, rx) = tokio::sync::mpsc::channel(256);
            tokio::spawn(record_executions(
                rx,
                workflow.clone(),
                user.name.clone(),
                target.clone(),
            ));
            let recording = crate::record::Recording {
                classifier: ctx.classifier.clone(),
                sink: tx,
                app_name,
                standing,
            };
            crate::record::relay_recorded(
                client_io,
                client_buf,
                upstream.stream,
                upstream.leftover,
                recording,
            )
            .await
        } else {
            crate::plain::relay_plain(
                client_io,
                client_buf,
                upstream.stream,
                upstream.leftover,
                app_name,
                standing,
            )
            .await
        }
    };
    let result = tokio::select! {
        r = relay => r,
        why = crate::standing::target_removed(&ctx.live, &target.name) => Err(relay::RelayError::Revoked(why)),
    };
    let result = match result {
        Err(relay::RelayError::Revoked(why)) => {
            end_revoked(&ctx, &mut client, &user, &target, peer, &why).await;
            Ok(())
        }
        other => other,
    };
    info!(user = %user.name, target = %target.name, %peer, "session ended");
    result.map_err(Into::into)
}

/// An authenticated, authorized client with its upstream session.
struct Ready {
    client: MaybeTlsStream,
    /// The configuration the session started with (it keeps its target settings).
    config: Arc<Config>,
    /// The target's catalog, when protected.
    catalog: Option<Arc<crate::catalog::CatalogCell>>,
    /// The configuration generation the login was decided under.
    generation: u64,
    client_buf: BytesMut,
    upstream: upstream::UpstreamSession,
    target: Target,
    user: User,
    application_name: String,
    app_name: Arc<AppName>,
    login_audit: Option<tokio::task::JoinHandle<()>>,
    _registration: Registration,
    _slots: (crate::limits::Slot, crate::limits::UserSlot),
}

/// Reads from the client into `buf` until it holds `n` bytes.
async fn fill(
    stream: &mut MaybeTlsStream,
    buf: &mut BytesMut,
    n: usize,
) -> Result<(), SessionError> {
    while buf.len() < n {
        buf.reserve(n - buf.len());
        if stream.read_buf(buf).await? == 0 {
            return Err(SessionError::Refused(
                "client closed the connection during startup".into(),
            ));
        }
    }
    Ok(())
}

/// Reads one typed message of at most `MAX_AUTH_MESSAGE` bytes.
async fn read_auth_message(
    stream: &mut MaybeTlsStream,
    buf: &mut BytesMut,
) -> Result<(u8, Bytes), SessionError> {
    fill(stream, buf, 5).await?;
    let h = frame::peek_header(buf)?.ok_or(frame::FrameError::Malformed("message"))?;
    if h.frame_len > MAX_AUTH_MESSAGE {
        return Err(frame::FrameError::BadLength(h.frame_len as i64).into());
    }
    fill(stream, buf, h.frame_len).await?;
    Ok((h.tag, buf.split_to(h.frame_len).freeze()))
}

async fn send_fatal(
    stream: &mut MaybeTlsStream,
    code: &str,
    message: &str,
    detail: Option<&str>,
) -> Result<(), SessionError> {
    let mut out = BytesMut::new();
    put_error(
        &mut out,
        &Report {
            severity: "FATAL",
            code,
            message,
            detail,
            hint: None,
        },
    );
    stream.write_all(&out).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Err(SessionError::Refused(format!("{code}: {message}")))
}

fn into_stream(io: MaybeTls) -> Option<MaybeTlsStream> {
    match io {
        MaybeTls::Plain(t) => Some(MaybeTlsStream::Plain(t)),
        MaybeTls::Tls(t) => Some(MaybeTlsStream::ServerTls(t)),
        _ => None,
    }
}

async fn startup(
    ctx: &SessionContext,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<Option<Ready>, SessionError> {
    // The generation in force when the client connected decides its login.
    let (snapshot, targets) = crate::targets::consistent(&ctx.live, &ctx.targets);
    let config = snapshot.config.clone();
    let generation = snapshot.generation;
    let Some(framed) = negotiate_tls::<()>(tcp, ctx.tls.clone()).await? else {
        debug!(%peer, "direct TLS without a configured certificate");
        return Ok(None);
    };
    let parts = framed.into_parts();
    let mut buf = parts.read_buf;
    let Some(mut stream) = into_stream(parts.io) else {
        return Err(SessionError::Refused("unsupported socket type".into()));
    };

    fill(&mut stream, &mut buf, 4).await?;
    let len = frame::startup_packet_len(&buf)?.ok_or(frame::FrameError::Malformed("startup"))?;
    fill(&mut stream, &mut buf, len).await?;
    let packet = buf.split_to(len);
    let (minor, params) = match frame::parse_startup(&packet)? {
        StartupPacket::Cancel { pid, key } => {
            forward_cancel(ctx, pid, key).await;
            // A clean close (close_notify over TLS): libpq 17 sends the
            // CancelRequest inside TLS and reports a bare EOF as a failure.
            let _ = stream.shutdown().await;
            return Ok(None);
        }
        StartupPacket::Negotiation => {
            return send_fatal(&mut stream, "08P01", "unexpected encryption request", None)
                .await
                .map(|_| None);
        }
        StartupPacket::Startup { minor, params } => (minor, params),
    };
    let Some(slot) = ctx
        .connections
        .connect(config.server.max_client_connections)
    else {
        ctx.metrics.session_refused("max_client_connections");
        warn!(%peer, cap = config.server.max_client_connections, "connection refused: server.max_client_connections reached");
        return send_fatal(
            &mut stream,
            "53300",
            "sorry, too many clients already",
            None,
        )
        .await
        .map(|_| None);
    };
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());

    let mut out = BytesMut::new();
    let unsupported: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.as_str())
        .collect();
    if minor > 0 || !unsupported.is_empty() {
        frame::put_negotiate_protocol(&mut out, 0, &unsupported);
    }

    if config.tls.as_ref().is_some_and(|t| t.require) && !stream.is_tls() {
        stream.write_all(&out).await?;
        return send_fatal(
            &mut stream,
            "28000",
            "airlock requires an encrypted connection (sslmode=require or stronger)",
            None,
        )
        .await
        .map(|_| None);
    }
    let Some(user_name) = param("user").filter(|u| !u.is_empty()).map(str::to_string) else {
        stream.write_all(&out).await?;
        return send_fatal(
            &mut stream,
            "28000",
            "no PostgreSQL user name specified in startup packet",
            None,
        )
        .await
        .map(|_| None);
    };
    let database = param("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user_name)
        .to_string();

    // SCRAM-SHA-256, the only method offered.
    put_auth_sasl(&mut out);
    stream.write_all(&out).await?;
    out.clear();
    let user = config.user(&user_name).cloned();
    let verifier = user
        .as_ref()
        .and_then(|u| u.scram_verifier.as_deref())
        .and_then(|v| ScramVerifier::parse(v).ok());
    let (tag, msg) = read_auth_message(&mut stream, &mut buf).await?;
    if tag != b'p' {
        return send_fatal(&mut stream, "08P01", "expected SASL response", None)
            .await
            .map(|_| None);
    }
    let (mechanism, client_first) = frame::sasl_initial(&msg)?;
    if mechanism != b"SCRAM-SHA-256" {
        return send_fatal(
            &mut stream,
            "08P01",
            "client selected an invalid SASL authentication mechanism",
            None,
        )
        .await
        .map(|_| None);
    }
    let auth_failed = format!("password authentication failed for user \"{user_name}\"");
    let (exchange, server_first) = match ScramExchange::start(
        verifier.as_ref(),
        &user_name,
        &ctx.process_key,
        client_first,
    ) {
        Ok(x) => x,
        Err(e) => {
            warn!(user = %user_name, %peer, error = %e, "SCRAM exchange failed");
            return send_fatal(&mut stream, "28P01", &auth_failed, None)
                .await
                .map(|_| None);
        }
    };
    put_auth(&mut out, 11, server_first.as_bytes());
    stream.write_all(&out).await?;
    out.clear();
    let (tag, msg) = read_auth_message(&mut stream, &mut buf).await?;
    if tag != b'p' {
        return send_fatal(&mut stream, "08P01", "expected SASL response", None)
            .await
            .map(|_| None);
    }
    let server_final = match exchange.finish(frame::body(&msg)) {
        Ok(s) => s,
        Err(e) => {
            let why = match e {
                ScramError::BadPassword if user.is_none() => "unknown user".to_string(),
                other => other.to_string(),
            };
            warn!(user = %user_name, %peer, reason = %why, "authentication failed");
            audit_login(
                ctx,
                &user_name,
                airlock_core::audit::kinds::LOGIN_REFUSED,
                serde_json::json!({ "reason": "authentication failed", "database": database, "client_addr": peer.to_string() }),
            )
            .await;
            return send_fatal(&mut stream, "28P01", &auth_failed, None)
                .await
                .map(|_| None);
        }
    };
    let Some(user) = user else {
        return send_fatal(&mut stream, "28P01", &auth_failed, None)
            .await
            .map(|_| None);
    };
    put_auth(&mut out, 12, server_final.as_bytes());

    // Only now, authenticated, may the client learn anything about targets.
    // A MySQL target is not a database of this listener.
    let target = config
        .target(&database)
        .filter(|t| t.engine == airlock_core::Engine::Postgres)
        .cloned();
    let Some(target) = target else {
        stream.write_all(&out).await?;
        warn!(user = %user.name, %database, "unknown target");
        audit_login(
            ctx,
            &user.name,
            airlock_core::audit::kinds::LOGIN_REFUSED,
            serde_json::json!({ "reason": "unknown target", "database": database, "client_addr": peer.to_string() }),
        )
        .await;
        return send_fatal(
            &mut stream,
            "3D000",
            &format!("database \"{database}\" does not exist"),
            None,
        )
        .await
        .map(|_| None);
    };
    if !target.allows(&user) {
        stream.write_all(&out).await?;
        warn!(user = %user.name, target = %target.name, "target not allowed for the user's groups");
        audit_login(
            ctx,
            &user.name,
            airlock_core::audit::kinds::LOGIN_REFUSED,
            serde_json::json!({ "reason": "target not allowed for the user's groups", "target": target.name, "client_addr": peer.to_string() }),
        )
        .await;
        return send_fatal(
            &mut stream,
            "42501",
            &format!("permission denied for database \"{database}\""),
            Some("None of your groups may connect to this target."),
        )
        .await
        .map(|_| None);
    }
    let cap = config.server.max_connections_per_user;
    let Some(user_slot) = ctx.connections.user(&user.name, cap) else {
        stream.write_all(&out).await?;
        ctx.metrics.session_refused("max_connections_per_user");
        warn!(user = %user.name, cap, "connection refused: server.max_connections_per_user reached");
        return send_fatal(
            &mut stream,
            "53300",
            &format!("too many connections for role \"{}\"", user.name),
            Some(&format!("airlock allows {cap} sessions per user at once (server.max_connections_per_user); close some first.")),
        )
        .await
        .map(|_| None);
    };
    if param("replication").is_some_and(|r| !matches!(r, "false" | "off" | "no" | "0")) {
        stream.write_all(&out).await?;
        return send_fatal(
            &mut stream,
            "28000",
            "airlock does not relay replication connections",
            None,
        )
        .await
        .map(|_| None);
    }

    let (Some(creds), Some(endpoint)) =
        (target.session_credentials(), targets.endpoint(&target.name))
    else {
        stream.write_all(&out).await?;
        return send_fatal(
            &mut stream,
            "08004",
            "airlock: target has no usable upstream credentials",
            None,
        )
        .await
        .map(|_| None);
    };
    if target.protected {
        if let Err(why) = vet_startup_parameters(&params, &ctx.classifier) {
            stream.write_all(&out).await?;
            warn!(user = %user.name, target = %target.name, %why, "startup parameter refused");
            return send_fatal(&mut stream, "42501", &why, None)
                .await
                .map(|_| None);
        }
    }
    let app_name = Arc::new(AppName::new(&user.name));
    let mut upstream_params = upstream_parameters(&params, &app_name, &target);
    let idle = config.server.idle_in_transaction_timeout;
    if target.protected && !idle.is_zero() {
        // A forgotten transaction on production must not pin its vacuum horizon.
        upstream_params.push((
            "idle_in_transaction_session_timeout".to_string(),
            idle.as_millis().to_string(),
        ));
    }
    let session = match upstream::open(
        endpoint,
        creds,
        &upstream_params,
        config.server.auth_timeout,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            warn!(user = %user.name, target = %target.name, error = %e, "upstream session failed");
            stream.write_all(&out).await?;
            let message = match &e {
                UpstreamError::Refused { message, .. } => {
                    format!(
                        "airlock: the upstream of target \"{}\" refused the session: {message}",
                        target.name
                    )
                }
                _ => format!(
                    "airlock: cannot reach the upstream of target \"{}\"",
                    target.name
                ),
            };
            return send_fatal(&mut stream, "08004", &message, None)
                .await
                .map(|_| None);
        }
    };

    // Off the connect path (a store write can cost an fsync); shutdown waits
    // for it, and the session's first workflow action waits for it.
    let login_audit = ctx.workflow.as_ref().map(|workflow| {
        let event = airlock_core::audit::NewAuditEvent::new(
            workflow.now(),
            &user.name,
            airlock_core::audit::kinds::LOGIN,
            None,
            serde_json::json!({
                "target": target.name,
                "environment": target.environment,
                "client_addr": peer.to_string(),
                "application_name": param("application_name").unwrap_or(""),
                "tls": stream.is_tls(),
                "upstream_pid": session.pid,
            }),
        );
        let workflow = workflow.clone();
        ctx.background.spawn(async move {
            if let Err(e) = workflow.store().append_audit(&event).await {
                warn!(error = %e, "audit of a login failed");
            }
        })
    });
    let registration =
        ctx.cancels
            .register(&target.name, session.pid, session.key, endpoint.clone());
    put_auth(&mut out, 0, &[]);
    for f in &session.startup_frames {
        // The label is for the upstream; the client sees its own value.
        match app_name.parameter_status(f) {
            Some(own) => out.extend_from_slice(&own),
            None => out.extend_from_slice(f),
        }
    }
    frame::put_backend_key(&mut out, session.pid, registration.key);
    out.extend_from_slice(&session.ready);
    stream.write_all(&out).await?;
    let application_name = param("application_name").unwrap_or("").to_string();
    Ok(Some(Ready {
        client: stream,
        catalog: targets.catalog(&target.name),
        config,
        generation,
        client_buf: buf,
        upstream: session,
        target,
        user,
        application_name,
        app_name,
        login_audit,
        _registration: registration,
        _slots: (slot, user_slot),
    }))
}

/// Ends a session a configuration reload revoked: the client gets a FATAL
/// naming why (57P01 for a removed target, so drivers treat the connection
/// as gone; 28000 for a removed user or lost access), and the audit trail
/// records it.
async fn end_revoked<C>(
    ctx: &SessionContext,
    client: &mut C,
    user: &User,
    target: &Target,
    peer: SocketAddr,
    why: &airlock_core::Revocation,
) where
    C: tokio::io::AsyncWrite + Unpin,
{
    warn!(user = %user.name, target = %target.name, %peer, reason = %why, "session ended by a configuration reload");
    let message = why.to_string();
    let mut out = BytesMut::new();
    put_error(
        &mut out,
        &Report {
            severity: "FATAL",
            code: why.sqlstate(),
            message: &message,
            detail: Some("airlock's configuration was reloaded and no longer allows this session."),
            hint: None,
        },
    );
    if let Some(workflow) = &ctx.workflow {
        let event = airlock_core::audit::NewAuditEvent::new(
            workflow.now(),
            &user.name,
            airlock_core::audit::kinds::SESSION_REVOKED,
            None,
            serde_json::json!({
                "target": target.name,
                "reason": message,
                "client_addr": peer.to_string(),
            }),
        );
        if let Err(e) = workflow.store().append_audit(&event).await {
            warn!(error = %e, "audit of a revoked session failed");
        }
    }
    // A client that does not read cannot keep the session (and its slots).
    let _ = tokio::time::timeout(REVOKED_WRITE_TIMEOUT, async {
        if client.write_all(&out).await.is_ok() {
            let _ = client.flush().await;
        }
        let _ = client.shutdown().await;
    })
    .await;
}

/// Appends a login event to the audit trail (when there is a store).
async fn audit_login(
    ctx: &SessionContext,
    actor: &str,
    kind: &str,
    mut payload: serde_json::Value,
) {
    if kind == airlock_core::audit::kinds::LOGIN_REFUSED {
        ctx.metrics.session_refused("login_refused");
        match ctx.refusals.take() {
            Some(0) => {}
            Some(n) => payload["unaudited_refusals_before"] = serde_json::json!(n),
            None => {
                ctx.metrics.session_refused("login_refused_unaudited");
                return;
            }
        }
    }
    let Some(workflow) = &ctx.workflow else {
        return;
    };
    let event = airlock_core::audit::NewAuditEvent::new(workflow.now(), actor, kind, None, payload);
    if let Err(e) = workflow.store().append_audit(&event).await {
        warn!(error = %e, "audit of a login failed");
    }
}

/// Writes what a recording relay observed to the store, off the session's path.
async fn record_executions(
    mut rx: tokio::sync::mpsc::Receiver<crate::record::Observed>,
    workflow: Arc<airlock_core::workflow::Workflow>,
    user: String,
    target: Target,
) {
    while let Some(o) = rx.recv().await {
        let fingerprint = airlock_sql::fingerprint(&o.sql)
            .map(|f| f.hash)
            .unwrap_or_else(|| format!("unparsed:{}", o.sql.trim()));
        let execution = airlock_core::request::Execution {
            request_id: None,
            family: target.family.clone(),
            target: target.name.clone(),
            environment: target.environment.clone(),
            fingerprint,
            user: user.clone(),
            class: o.class,
            rows: o.rows,
            duration_ms: o.duration_ms,
            success: o.error.is_none(),
            error: o.error,
            at: workflow.now(),
        };
        if let Err(e) = workflow.record_execution(&execution).await {
            warn!(target = %target.name, error = %e, "recording an execution failed");
        }
    }
}

/// Startup parameters for the upstream: the client's own (client_encoding,
/// DateStyle, ...), the target's role and database, `application_name`
/// labelled with the developer, and on protected targets the read-only
/// start option instead of any client `options`.
pub fn upstream_parameters(
    client: &[(String, String)],
    app_name: &AppName,
    target: &Target,
) -> Vec<(String, String)> {
    let creds_user = target
        .session_credentials()
        .map(|c| c.user.clone())
        .unwrap_or_default();
    let mut out = vec![
        ("user".to_string(), creds_user),
        ("database".to_string(), target.upstream.database.clone()),
    ];
    let app = client
        .iter()
        .find(|(k, _)| k == "application_name")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    out.push(("application_name".to_string(), app_name.label(app)));
    for (k, v) in client {
        match k.as_str() {
            "user" | "database" | "application_name" | "replication" => {}
            "options" if target.protected => {}
            k if k.starts_with("_pq_.") => {}
            _ => out.push((k.clone(), v.clone())),
        }
    }
    if target.protected && target.read_only_backstop {
        out.push((
            "options".to_string(),
            "-c default_transaction_read_only=on".to_string(),
        ));
    }
    out
}

/// On protected targets every startup parameter the client sets upstream
/// (any GUC can be one) must be a setting change that could pass as a `SET`
/// statement: `client_encoding=SJIS` or `default_transaction_read_only=off`
/// in the startup packet would otherwise get around the classifier.
pub fn vet_startup_parameters(
    client: &[(String, String)],
    classifier: &Classifier,
) -> Result<(), String> {
    for (name, value) in client {
        if matches!(
            name.as_str(),
            "user" | "database" | "application_name" | "options" | "replication"
        ) || name.starts_with("_pq_.")
        {
            continue;
        }
        let sql = format!(
            "SET \"{}\" TO '{}'",
            name.replace('"', "\"\""),
            value.replace('\'', "''")
        );
        let c = classifier.classify(&sql);
        if !c.read_only {
            return Err(format!(
                "airlock: startup parameter {name}={value:?} is not allowed on a protected target: {}",
                c.reasons.join("; ")
            ));
        }
    }
    Ok(())
}

async fn forward_cancel(ctx: &SessionContext, pid: i32, key: i32) {
    match ctx.cancels.lookup(pid, key) {
        Some((endpoint, real_key)) => {
            if let Err(e) = endpoint.cancel(pid, real_key).await {
                warn!(pid, error = %e, "forwarding cancel request failed");
            } else {
                info!(pid, "cancel request forwarded");
            }
        }
        None => {
            if !ctx.cancels.pass_on(pid, key).await {
                warn!(pid, "cancel request with unknown pid or key ignored");
            }
        }
    }
}

/// Held-message replies from the statement policy.
struct PolicyReplies {
    policy: Arc<dyn StatementPolicy>,
    user: String,
    target: String,
    environment: String,
}

impl PolicyReplies {
    fn refusal(&self, judgement: &Judgement) -> Bytes {
        let (sql, class, reasons) = match judgement {
            Judgement::Hold {
                sql,
                class,
                reasons,
            } => (sql.as_str(), *class, reasons.as_slice()),
            Judgement::Pass => ("", airlock_sql::StatementClass::Unknown, &[][..]),
        };
        info!(user = %self.user, target = %self.target, class = class.as_str(), reasons = ?reasons, "statement held");
        let decision = self.policy.on_held(&HeldStatement {
            user: &self.user,
            target: &self.target,
            environment: &self.environment,
            sql,
            class,
            reasons,
        });
        let mut out = BytesMut::new();
        match decision {
            Decision::Refuse {
                sqlstate,
                message,
                detail,
                hint,
                notices,
            } => {
                for n in &notices {
                    frame::put_report(
                        &mut out,
                        b'N',
                        &Report {
                            severity: "NOTICE",
                            code: "00000",
                            message: n,
                            detail: None,
                            hint: None,
                        },
                    );
                }
                put_error(
                    &mut out,
                    &Report {
                        severity: "ERROR",
                        code: sqlstate,
                        message: &message,
                        detail: detail.as_deref(),
                        hint: hint.as_deref(),
                    },
                );
            }
        }
        out.freeze()
    }
}

impl SessionHooks for PolicyReplies {
    fn intercept<'a>(&'a mut self, _sql: &'a str) -> BoxFuture<'a, Option<Reply>> {
        Box::pin(async { None })
    }

    fn held<'a>(&'a mut self, judgement: &'a Judgement) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            Reply {
                frames: self.refusal(judgement),
                kind: ReplyKind::Error,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::{Credentials, UpstreamConfig, UpstreamTlsMode};

    fn target(protected: bool) -> Target {
        let creds = Credentials {
            user: "reader".into(),
            password_env: None,
            password_file: None,
            password: None,
        };
        Target {
            name: "orders-prod".into(),
            engine: Default::default(),
            family: None,
            environment: "prod".into(),
            protected,
            allowed_groups: vec!["dev".into()],
            read_only_backstop: true,
            upstream: UpstreamConfig {
                host: "db".into(),
                port: Some(5432),
                database: "orders".into(),
                tls: UpstreamTlsMode::Disable,
                ca_file: None,
            },
            read_credentials: Some(creds.clone()),
            policy: Default::default(),
            trusted_functions: Vec::new(),
            mysql_schemas: Vec::new(),
            write_credentials: Some(Credentials {
                user: "writer".into(),
                ..creds
            }),
        }
    }

    fn client() -> Vec<(String, String)> {
        [
            ("user", "alice"),
            ("database", "orders-prod"),
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
            ("options", "-c default_transaction_read_only=off"),
            ("DateStyle", "ISO"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn protected_sessions_start_read_only_and_drop_client_options() {
        let p = upstream_parameters(&client(), &AppName::new("alice"), &target(true));
        let get = |k: &str| {
            p.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("user"), ["reader"]);
        assert_eq!(get("database"), ["orders"]);
        assert_eq!(get("application_name"), ["airlock:alice:psql"]);
        assert_eq!(get("options"), ["-c default_transaction_read_only=on"]);
        assert_eq!(get("client_encoding"), ["UTF8"]);
        assert_eq!(get("DateStyle"), ["ISO"]);
    }

    #[test]
    fn unprotected_sessions_use_write_role_and_client_options() {
        let p = upstream_parameters(&client(), &AppName::new("alice"), &target(false));
        assert!(p.contains(&("user".into(), "writer".into())));
        assert!(p.contains(&(
            "options".into(),
            "-c default_transaction_read_only=off".into()
        )));
    }

    #[test]
    fn startup_parameters_that_could_pass_as_set_are_allowed_only() {
        let classifier = Classifier::new(16);
        assert!(vet_startup_parameters(&client(), &classifier).is_ok());
        for (k, v) in [
            ("default_transaction_read_only", "off"),
            ("client_encoding", "SJIS"),
            ("role", "postgres"),
            ("session_authorization", "postgres"),
            ("standard_conforming_strings", "off"),
        ] {
            let mut c = client();
            c.push((k.to_string(), v.to_string()));
            assert!(
                vet_startup_parameters(&c, &classifier).is_err(),
                "{k}={v} must be refused"
            );
        }
    }

    #[test]
    fn long_application_names_are_cut_to_63_bytes() {
        let mut c = client();
        c[2].1 = "é".repeat(60);
        let p = upstream_parameters(&c, &AppName::new("alice"), &target(false));
        let app = &p
            .iter()
            .find(|(k, _)| k == "application_name")
            .expect("set")
            .1;
        assert!(app.len() <= 63 && app.starts_with("airlock:alice:"));
    }
}
