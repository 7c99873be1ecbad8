//! One client connection: greeting and login, the upstream session with
//! the target's credentials, then the relay.

use crate::auth;
use crate::conn::PacketConn;
use crate::gate::ProtectedGate;
use crate::interrupt::Interrupts;
use crate::login::{self, First, Refusal};
use crate::messages::{ErrPacket, OkPacket};
use crate::relay::{self, Gate, Verdict};
use crate::response::com;
use crate::upstream::{self, UpstreamSpec};
use airlock_core::audit::kinds;
use airlock_core::{LiveConfig, Target};
use airlock_sql::mysql_lexer::SqlModes;
use airlock_tls::stream::MaybeTlsStream;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tracing::{info, warn};

/// The read-only backstop of protected sessions.
const READ_ONLY: &str = "SET SESSION TRANSACTION READ ONLY";

/// ER_UNKNOWN_ERROR, for the proxy's own failures.
pub const UNKNOWN_ERROR: u16 = 1105;

/// What every session of a listener shares.
pub struct MysqlContext {
    /// The configuration in force.
    pub live: LiveConfig,
    /// TLS for clients (`[tls]`), when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// What the greeting announces (the upstream last connected to).
    pub flavor: Mutex<login::Flavor>,
    /// Connection ids handed out in greetings.
    pub next_id: AtomicU32,
    /// Audit of logins and change requests (none in tests without a store).
    pub workflow: Option<Arc<airlock_core::workflow::Workflow>>,
    /// Runs approved changes.
    pub runner: Option<crate::executor::MysqlRunner>,
    /// Live sessions, for KILL.
    pub sessions: Arc<crate::kill::Registry>,
    /// `caching_sha2_password` full authentication: learnt verifiers, RSA key.
    pub sha2_auth: crate::full_auth::Sha2Auth,
}

/// Why a session ended badly.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Login refused or broken.
    #[error("login: {0}")]
    Login(String),
    /// The relay failed.
    #[error(transparent)]
    Relay(#[from] relay::RelayError),
}

/// Runs one client connection to its end.
pub async fn handle(
    ctx: Arc<MysqlContext>,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<(), SessionError> {
    tcp.set_nodelay(true)?;
    // A statement waiting for a decision sends nothing for minutes: TCP
    // keepalives keep NAT entries and firewalls from dropping the session
    // and notice a client that vanished.
    socket2::SockRef::from(&tcp).set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3),
    )?;
    let config = ctx.live.current();
    let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
    let scramble = auth::new_scramble();
    let flavor = match ctx.flavor.lock() {
        Ok(f) => f.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let greeting = login::greeting(&flavor, id, &scramble, ctx.tls.is_some());
    let require_tls = config.tls.as_ref().is_some_and(|t| t.require);
    let mut plain = PacketConn::new(tcp);
    let tls = ctx.tls.clone();
    let login = async {
        plain.write_payload(0, &greeting.encode()).await?;
        let first = login::read_first(&mut plain).await?;
        let (mut client, response, seq) = match (first, tls) {
            (First::Ssl(_), Some(acceptor)) => {
                if !plain.buf.is_empty() {
                    return Err(Refusal::Broken("bytes after the SSL request".into()));
                }
                let stream = acceptor
                    .accept(plain.stream)
                    .await
                    .map_err(|e| Refusal::Broken(format!("TLS handshake: {e}")))?;
                let mut client = PacketConn::new(MaybeTlsStream::ServerTls(Box::new(stream)));
                let (response, seq) = login::read_response(&mut client).await?;
                (client, response, seq)
            }
            (First::Ssl(seq), None) => {
                let err = ErrPacket::new(
                    login::HANDSHAKE_ERROR,
                    "08S01",
                    "TLS is not configured on airlock's MySQL listener",
                );
                plain
                    .write_payload(seq.wrapping_add(1), &err.encode())
                    .await?;
                return Err(Refusal::Broken("SSL request without TLS configured".into()));
            }
            (First::Response(r, seq), _) => {
                let mut client = PacketConn {
                    stream: MaybeTlsStream::Plain(plain.stream),
                    buf: plain.buf,
                };
                if require_tls {
                    let err = ErrPacket::new(
                        login::ACCESS_DENIED,
                        "28000",
                        "airlock requires an encrypted connection (--ssl, sslMode=REQUIRED or stronger)",
                    );
                    client
                        .write_payload(seq.wrapping_add(1), &err.encode())
                        .await?;
                    return Err(Refusal::Sent {
                        user: r.user.clone(),
                        reason: "TLS required".into(),
                    });
                }
                (client, *r, seq)
            }
        };
        let tls = client.stream.is_tls();
        let logged = login::authenticate(
            &mut client,
            &config,
            response,
            seq,
            &greeting,
            tls,
            &ctx.sha2_auth,
        )
        .await?;
        Ok((client, logged))
    };
    let logged = match tokio::time::timeout(config.server.auth_timeout, login).await {
        Err(_) => return Err(SessionError::Login("authentication timed out".into())),
        Ok(Err(Refusal::Broken(why))) => return Err(SessionError::Login(why)),
        Ok(Err(Refusal::Sent { user, reason })) => {
            audit(
                &ctx,
                &user,
                kinds::LOGIN_REFUSED,
                serde_json::json!({
                    "reason": reason, "client_addr": peer.to_string(), "protocol": "mysql",
                }),
            )
            .await;
            return Err(SessionError::Login(reason));
        }
        Ok(Ok(l)) => l,
    };
    let (mut client, logged) = logged;
    let user = logged.user.name.clone();
    let target = logged.target.clone();
    let spec = upstream_spec(&target, &logged, config.server.auth_timeout);
    let mut up = match upstream::connect(&spec).await {
        Ok(u) => u,
        Err(e) => {
            warn!(%user, target = %target.name, error = %e, "upstream connection failed");
            let err = ErrPacket::new(
                UNKNOWN_ERROR,
                "HY000",
                format!(
                    "airlock cannot open a session on the upstream of {}: {e}",
                    target.name
                ),
            );
            client.write_payload(logged.seq, &err.encode()).await?;
            return Err(SessionError::Login(e.to_string()));
        }
    };
    if let Ok(mut f) = ctx.flavor.lock() {
        *f = upstream::flavor_of(&up.greeting);
    }
    let interrupts = Interrupts::default();
    ctx.sessions.insert(
        id,
        crate::kill::Entry {
            user: user.clone(),
            target: target.name.clone(),
            upstream_thread: up.greeting.connection_id,
            cancel: interrupts.cancel.clone(),
        },
    );
    let _listed = Listed(&ctx.sessions, id);
    let killer = crate::kill::Killer {
        registry: ctx.sessions.clone(),
        live: ctx.live.clone(),
        user: user.clone(),
    };
    let gate = match open_gate(&ctx, &config, &mut up, &logged, peer, &killer, &interrupts).await {
        Ok(g) => g,
        Err(why) => {
            warn!(%user, target = %target.name, %why, "upstream session setup failed");
            let err = ErrPacket::new(
                UNKNOWN_ERROR,
                "HY000",
                format!("airlock cannot start a session on {}: {why}", target.name),
            );
            client.write_payload(logged.seq, &err.encode()).await?;
            return Err(SessionError::Login(why));
        }
    };
    let ok = OkPacket {
        status: crate::caps::STATUS_AUTOCOMMIT,
        ..Default::default()
    };
    client.write_payload(logged.seq, &ok.encode(0)).await?;
    info!(%user, target = %target.name, %peer, upstream_thread = up.greeting.connection_id, "mysql session started");
    audit(
        &ctx,
        &user,
        kinds::LOGIN,
        serde_json::json!({
            "target": target.name, "client_addr": peer.to_string(), "protocol": "mysql",
        }),
    )
    .await;
    let mut gate = gate;
    let mut logged = logged;
    loop {
        let cmd = match relay::run(
            &mut client,
            &mut up.conn,
            up.capabilities,
            &mut gate,
            &interrupts.gone,
        )
        .await?
        {
            relay::Ended::Quit => return Ok(()),
            relay::Ended::ChangeUser(cmd) => cmd,
        };
        // A failed change of user ends the session, as on the server.
        let next = change_user(
            &config,
            &mut client,
            &mut up,
            &greeting,
            &logged,
            &cmd,
            &ctx.sha2_auth,
        )
        .await
        .map_err(SessionError::Login)?;
        let killer = crate::kill::Killer {
            registry: ctx.sessions.clone(),
            live: ctx.live.clone(),
            user: next.user.name.clone(),
        };
        gate = match open_gate(&ctx, &config, &mut up, &next, peer, &killer, &interrupts).await {
            Ok(g) => g,
            Err(why) => {
                let err = ErrPacket::new(UNKNOWN_ERROR, "HY000", format!("airlock: {why}"));
                client.write_payload(next.seq, &err.encode()).await?;
                return Err(SessionError::Login(why));
            }
        };
        ctx.sessions.insert(
            id,
            crate::kill::Entry {
                user: next.user.name.clone(),
                target: next.target.name.clone(),
                upstream_thread: up.greeting.connection_id,
                cancel: interrupts.cancel.clone(),
            },
        );
        let ok = OkPacket {
            status: crate::caps::STATUS_AUTOCOMMIT,
            ..Default::default()
        };
        client.write_payload(next.seq, &ok.encode(0)).await?;
        info!(from = %logged.user.name, to = %next.user.name, target = %next.target.name, "mysql session changed user");
        audit(
            &ctx,
            &next.user.name,
            kinds::LOGIN,
            serde_json::json!({
                "target": next.target.name, "client_addr": peer.to_string(), "protocol": "mysql",
                "changed_from": logged.user.name,
            }),
        )
        .await;
        logged = next;
    }
}

/// COM_CHANGE_USER: the new user authenticates against the users table
/// (with the greeting's scramble, as the client computed it), on the same
/// target; the upstream session is reset. The client has its ERR when this
/// fails.
async fn change_user(
    config: &airlock_core::Config,
    client: &mut PacketConn<MaybeTlsStream>,
    up: &mut upstream::Upstream,
    greeting: &crate::messages::Greeting,
    current: &login::LoggedIn,
    cmd: &crate::packet::Payload,
    sha2_auth: &crate::full_auth::Sha2Auth,
) -> Result<login::LoggedIn, String> {
    let caps = current.response.capabilities;
    let parsed = (|| {
        let mut r = crate::wire::Reader::new(&cmd.data[1..]);
        let user = String::from_utf8(r.nul_terminated("user")?.to_vec())
            .map_err(|_| crate::wire::Malformed("user"))?;
        let auth = if caps & crate::caps::SECURE_CONNECTION != 0 {
            let n = r.u8("auth length")?;
            r.bytes(usize::from(n), "auth")?.to_vec()
        } else {
            r.nul_bytes().to_vec()
        };
        let db = String::from_utf8_lossy(r.nul_bytes()).into_owned();
        let charset = if r.rest().len() >= 2 {
            r.u16("charset")? as u8
        } else {
            current.response.charset
        };
        let plugin = (caps & crate::caps::PLUGIN_AUTH != 0 && !r.is_empty())
            .then(|| String::from_utf8_lossy(r.nul_bytes()).into_owned());
        Ok::<_, crate::wire::Malformed>((user, auth, db, charset, plugin))
    })();
    let Ok((user, auth, db, charset, plugin)) = parsed else {
        let err = ErrPacket::new(
            login::HANDSHAKE_ERROR,
            "08S01",
            "Bad COM_CHANGE_USER packet",
        );
        let _ = client
            .write_payload(cmd.last_seq.wrapping_add(1), &err.encode())
            .await;
        return Err("malformed COM_CHANGE_USER".into());
    };
    let response = crate::messages::HandshakeResponse {
        user,
        auth_response: auth,
        database: Some(if db.is_empty() {
            current.target.name.clone()
        } else {
            db
        }),
        auth_plugin: plugin,
        charset,
        ..current.response.clone()
    };
    let tls = client.stream.is_tls();
    let next = match login::authenticate(
        client,
        config,
        response,
        cmd.last_seq,
        greeting,
        tls,
        sha2_auth,
    )
    .await
    {
        Ok(l) => l,
        Err(Refusal::Sent { reason, .. }) => return Err(format!("change user refused: {reason}")),
        Err(Refusal::Broken(why)) => return Err(why),
    };
    if next.target.name != current.target.name {
        let err = ErrPacket::new(
            login::DB_ACCESS_DENIED,
            "42000",
            format!("airlock: COM_CHANGE_USER cannot move the session from target '{}' to '{}'; connect anew", current.target.name, next.target.name),
        );
        let _ = client.write_payload(next.seq, &err.encode()).await;
        return Err("change user onto another target".into());
    }
    // Reset the upstream session: nothing of the old user's state survives.
    up.conn
        .write_payload(0, &[crate::response::com::RESET_CONNECTION])
        .await
        .map_err(|e| e.to_string())?;
    let reply = up
        .conn
        .read_payload(crate::MAX_COMMAND)
        .await
        .map_err(|e| e.to_string())?;
    if reply.data.first() == Some(&0xff) {
        let err = ErrPacket::new(
            UNKNOWN_ERROR,
            "HY000",
            "airlock: resetting the upstream session failed",
        );
        let _ = client.write_payload(next.seq, &err.encode()).await;
        return Err("upstream reset failed".into());
    }
    Ok(next)
}

/// Labels the upstream session with the developer, starts it read-only on
/// a protected target, and makes the session's gate.
async fn open_gate(
    ctx: &Arc<MysqlContext>,
    config: &airlock_core::Config,
    up: &mut upstream::Upstream,
    logged: &login::LoggedIn,
    peer: SocketAddr,
    killer: &crate::kill::Killer,
    interrupts: &Interrupts,
) -> Result<Box<dyn Gate>, String> {
    let user = logged.user.name.clone();
    let target = logged.target.clone();
    let label = format!(
        "SET @airlock_developer = '{}'",
        user.replace('\\', "\\\\").replace('\'', "''")
    );
    match up.simple_query(&label).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(%user, error = %e.message, "labelling the upstream session failed"),
        Err(e) => return Err(e.to_string()),
    }
    let gate: Box<dyn Gate> = if target.protected {
        match protect(up, &target).await {
            Ok((modes, server_modes)) => {
                let program = logged
                    .response
                    .attributes
                    .iter()
                    .find(|(k, _)| k == "program_name")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| "mysql".into());
                let mut g = ProtectedGate::new(
                    target.clone(),
                    logged.user.clone(),
                    peer.to_string(),
                    program,
                    modes,
                );
                g.workflow = ctx.workflow.clone();
                g.killer = Some(killer.clone());
                g.server_modes = server_modes;
                g.client_collation = logged.response.charset;
                g.utf8 = Some(crate::binary_params::is_utf8_collation(
                    logged.response.charset,
                ));
                g.interrupts = interrupts.clone();
                g.wait_safety_poll = config.server.wait_safety_poll;
                g.runner = ctx.runner.clone();
                g.capabilities = up.capabilities;
                g.mariadb_capabilities = logged.response.mariadb_capabilities;
                if target.read_only_backstop {
                    g.reset_setup.push(READ_ONLY.to_string());
                }
                g.reset_setup.push(label.clone());
                g.public_url = config.server.public_url.clone();
                Box::new(g)
            }
            Err(why) => return Err(format!("cannot start a read-only session: {why}")),
        }
    } else {
        let recorder = match (&ctx.workflow, &target.family) {
            (Some(w), Some(_)) => Some(crate::record::Recorder::start(
                w.clone(),
                target.clone(),
                user.clone(),
            )),
            _ => None,
        };
        Box::new(PlainGate {
            target: target.clone(),
            recorder,
            label: label.clone(),
            killer: killer.clone(),
            capabilities: up.capabilities,
        })
    };
    Ok(gate)
}

/// Starts a protected session read-only (the backstop) and learns its
/// `sql_mode`, which decides how statements are lexed.
async fn protect(
    up: &mut upstream::Upstream,
    target: &Target,
) -> Result<(SqlModes, SqlModes), String> {
    if target.read_only_backstop {
        match up.simple_query(READ_ONLY).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("SET SESSION TRANSACTION READ ONLY: {}", e.message)),
            Err(e) => return Err(e.to_string()),
        }
    }
    up.lexing_modes().await
}

impl Gate for Box<dyn Gate> {
    fn judge<'a>(&'a mut self, payload: &'a [u8]) -> airlock_core::BoxFuture<'a, Verdict> {
        (**self).judge(payload)
    }

    fn answered(&mut self, payload: &[u8], response: &crate::response::Response) {
        (**self).answered(payload, response)
    }

    fn after_reset(&mut self) -> Vec<String> {
        (**self).after_reset()
    }
}

fn upstream_spec(
    target: &Target,
    logged: &login::LoggedIn,
    timeout: std::time::Duration,
) -> UpstreamSpec {
    let creds = target.session_credentials();
    let client_program = logged
        .response
        .attributes
        .iter()
        .find(|(k, _)| k == "program_name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut attributes: Vec<(String, String)> = logged
        .response
        .attributes
        .iter()
        .filter(|(k, _)| k != "program_name")
        .cloned()
        .collect();
    attributes.push((
        "program_name".into(),
        format!("airlock:{}", logged.user.name),
    ));
    attributes.push(("airlock_user".into(), logged.user.name.clone()));
    if !client_program.is_empty() {
        attributes.push(("airlock_client_program".into(), client_program));
    }
    UpstreamSpec {
        host: target.upstream.host.clone(),
        port: target.upstream_port(),
        user: creds.map(|c| c.user.clone()).unwrap_or_default(),
        password: creds.and_then(|c| c.password.clone()),
        database: target.upstream.database.clone(),
        capabilities: logged.response.capabilities,
        mariadb_capabilities: logged.response.mariadb_capabilities,
        charset: logged.response.charset,
        max_packet: logged.response.max_packet,
        attributes,
        timeout,
        tls: target.upstream.tls,
        ca_file: target.upstream.ca_file.clone(),
    }
}

async fn audit(ctx: &MysqlContext, actor: &str, kind: &str, payload: serde_json::Value) {
    let Some(workflow) = &ctx.workflow else {
        return;
    };
    let event = airlock_core::audit::NewAuditEvent::new(workflow.now(), actor, kind, None, payload);
    if let Err(e) = workflow.store().append_audit(&event).await {
        warn!(error = %e, "audit of a login failed");
    }
}

/// The gate of an unprotected target (recording changes on family targets).
struct PlainGate {
    target: Target,
    recorder: Option<crate::record::Recorder>,
    label: String,
    killer: crate::kill::Killer,
    capabilities: u32,
}

/// Takes a session off the KILL registry when it ends.
struct Listed<'a>(&'a crate::kill::Registry, u32);

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

impl Gate for PlainGate {
    fn judge<'a>(&'a mut self, payload: &'a [u8]) -> airlock_core::BoxFuture<'a, Verdict> {
        if let Some(kill) = crate::kill::of_command(payload, SqlModes::default()) {
            let killer = self.killer.clone();
            let caps = self.capabilities;
            return Box::pin(async move { killer.answer(kill, caps).await });
        }
        let v = if let Some(v) = relay::plain_verdict(payload) {
            v
        } else if payload.first() == Some(&com::INIT_DB) {
            init_db(&self.target, &payload[1..])
        } else {
            if payload.first() == Some(&com::QUERY) {
                if let (Some(r), Ok(sql)) = (&mut self.recorder, std::str::from_utf8(&payload[1..]))
                {
                    r.before(sql);
                }
            }
            Verdict::Forward
        };
        Box::pin(std::future::ready(v))
    }

    fn after_reset(&mut self) -> Vec<String> {
        vec![self.label.clone()]
    }

    fn answered(&mut self, _payload: &[u8], response: &crate::response::Response) {
        if let Some(r) = &mut self.recorder {
            r.after(response);
        }
    }
}

/// COM_INIT_DB: the target's own name maps to its upstream schema; any
/// other schema is refused (a target is one schema).
pub fn init_db(target: &Target, schema: &[u8]) -> Verdict {
    let schema = String::from_utf8_lossy(schema);
    if schema == target.name || schema == target.upstream.database {
        let mut out = vec![com::INIT_DB];
        out.extend_from_slice(target.upstream.database.as_bytes());
        return Verdict::Rewrite(out);
    }
    if target.mysql_schemas.iter().any(|s| *s == schema) {
        return Verdict::Forward;
    }
    Verdict::Refuse(ErrPacket::new(
        login::DB_ACCESS_DENIED,
        "42000",
        format!(
            "airlock: this session is on target '{}'; schema '{schema}' needs its own target and connection",
            target.name
        ),
    ))
}
