//! The proxy's side of the connection phase: its own greeting with a fresh
//! scramble, the client's handshake response, the password check against
//! the user's verifiers (`caching_sha2_password` fast path,
//! `mysql_native_password`, switching plugins where the client answered
//! for one the user has no verifier for), then the target picked by the
//! schema — only once authenticated.

use crate::auth;
use crate::caps;
use crate::conn::{PacketConn, ReadError};
use crate::full_auth::{self, Sha2Auth};
use crate::messages::{auth_switch, ErrPacket, Greeting, HandshakeResponse};
use airlock_core::config::{NativeVerifier, Sha2Verifier};
use airlock_core::{Config, Engine, Target, User};
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest packet accepted before authentication.
pub const LOGIN_LIMIT: usize = 16 * 1024;

/// `utf8mb4_general_ci`, the greeting's collation.
const UTF8MB4: u8 = 45;

/// ER_ACCESS_DENIED_ERROR.
pub const ACCESS_DENIED: u16 = 1045;
/// ER_DBACCESS_DENIED_ERROR.
pub const DB_ACCESS_DENIED: u16 = 1044;
/// ER_BAD_DB_ERROR.
pub const BAD_DB: u16 = 1049;
/// ER_NO_DB_ERROR.
pub const NO_DB: u16 = 1046;
/// ER_HANDSHAKE_ERROR.
pub const HANDSHAKE_ERROR: u16 = 1043;

/// A client that proved who it is and picked a target.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The airlock user.
    pub user: User,
    /// The target.
    pub target: Target,
    /// The client's handshake response (capabilities narrowed to what the
    /// proxy offered).
    pub response: HandshakeResponse,
    /// Sequence id of the proxy's next packet (the final OK or ERR).
    pub seq: u8,
}

/// Why a login ended without a session.
#[derive(Debug)]
pub enum Refusal {
    /// Refused with this error, already sent to the client.
    Sent {
        /// The user name given (empty before the response).
        user: String,
        /// Why, for the log and the audit trail.
        reason: String,
    },
    /// The connection failed or sent garbage.
    Broken(String),
}

impl From<ReadError> for Refusal {
    fn from(e: ReadError) -> Self {
        Refusal::Broken(e.to_string())
    }
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Broken(e.to_string())
    }
}

/// What the proxy announces of the upstream servers: their version and,
/// for MariaDB, its extended capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavor {
    /// Version string.
    pub version: String,
    /// MariaDB's extended capabilities (`None` for MySQL).
    pub mariadb: Option<u32>,
}

/// The greeting the proxy sends.
pub fn greeting(flavor: &Flavor, connection_id: u32, scramble: &[u8], tls: bool) -> Greeting {
    let mut capabilities = caps::OFFERED | if tls { caps::SSL } else { 0 };
    let mut mariadb_capabilities = 0;
    if let Some(ext) = flavor.mariadb {
        // A MariaDB greeting: no CLIENT_MYSQL bit, extended capabilities.
        capabilities &= !caps::LONG_PASSWORD;
        mariadb_capabilities = ext & caps::MARIADB_OFFERED;
    }
    Greeting {
        server_version: flavor.version.clone(),
        connection_id,
        scramble: scramble.to_vec(),
        capabilities,
        mariadb_capabilities,
        charset: UTF8MB4,
        status: caps::STATUS_AUTOCOMMIT,
        auth_plugin: auth::CACHING_SHA2.to_string(),
    }
}

/// What the client sent first: an SSL request or its handshake response.
pub enum First {
    /// Upgrade to TLS, then read the response.
    Ssl(u8),
    /// The response.
    Response(Box<HandshakeResponse>, u8),
}

/// Reads the client's first answer to the greeting.
pub async fn read_first<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut PacketConn<S>,
) -> Result<First, Refusal> {
    // Exactly one packet: TLS handshake bytes may follow an SSL request.
    let p = conn.read_packet_exact(LOGIN_LIMIT).await?;
    if HandshakeResponse::is_ssl_request(&p.data) {
        return Ok(First::Ssl(p.seq));
    }
    match HandshakeResponse::decode(&p.data) {
        Ok(r) => Ok(First::Response(Box::new(r), p.seq)),
        Err(e) => {
            let err = ErrPacket::new(HANDSHAKE_ERROR, "08S01", "Bad handshake");
            let _ = conn
                .write_payload(p.seq.wrapping_add(1), &err.encode())
                .await;
            Err(Refusal::Sent {
                user: String::new(),
                reason: e.to_string(),
            })
        }
    }
}

/// Reads the handshake response after a TLS upgrade.
pub async fn read_response<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut PacketConn<S>,
) -> Result<(HandshakeResponse, u8), Refusal> {
    match read_first(conn).await? {
        First::Response(r, seq) => Ok((*r, seq)),
        First::Ssl(_) => Err(Refusal::Broken("a second SSL request".into())),
    }
}

/// Checks the password of `response` and picks the target; answers the
/// client with an ERR when refused (the final OK is the caller's, once
/// the upstream session is open).
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut PacketConn<S>,
    config: &Config,
    mut response: HandshakeResponse,
    response_seq: u8,
    greeting: &Greeting,
    tls: bool,
    sha2_auth: &Sha2Auth,
) -> Result<LoggedIn, Refusal> {
    let scramble = greeting.scramble.as_slice();
    response.capabilities &= greeting.capabilities | caps::LONG_PASSWORD;
    // Extended capabilities count only from a client without CLIENT_MYSQL.
    if response.capabilities & caps::LONG_PASSWORD != 0 {
        response.mariadb_capabilities = 0;
    }
    response.mariadb_capabilities &= greeting.mariadb_capabilities;
    let mut seq = response_seq.wrapping_add(1);
    let user = config.user(&response.user);
    let native = user
        .and_then(|u| u.mysql_native_verifier.as_deref())
        .and_then(|v| NativeVerifier::parse(v).ok());
    let sha2 = user
        .and_then(|u| u.mysql_sha2_verifier.as_deref())
        .and_then(|v| Sha2Verifier::parse(v).ok());
    let client_plugin = response
        .auth_plugin
        .clone()
        .unwrap_or_else(|| auth::NATIVE.to_string());
    let mut token = response.auth_response.clone();
    // The plugin to check with: the client's, if the user has its
    // verifier; otherwise switch. An unknown user goes through the same
    // exchange, so nothing tells users apart before the check.
    let plugin = match client_plugin.as_str() {
        auth::CACHING_SHA2 if sha2.is_some() => auth::CACHING_SHA2,
        auth::NATIVE if native.is_some() => auth::NATIVE,
        _ => {
            let wanted = if sha2.is_some() || native.is_none() {
                auth::CACHING_SHA2
            } else {
                auth::NATIVE
            };
            if response.capabilities & caps::PLUGIN_AUTH == 0 && wanted != auth::NATIVE {
                return refuse(
                    conn,
                    seq,
                    &response,
                    "the client cannot switch authentication plugins",
                )
                .await;
            }
            conn.write_payload(seq, &auth_switch(wanted, scramble))
                .await?;
            let p = conn.read_payload(LOGIN_LIMIT).await?;
            seq = p.seq.wrapping_add(1);
            token = p.data;
            wanted
        }
    };
    let ok = match plugin {
        auth::CACHING_SHA2 => {
            let name = user.map_or(response.user.as_str(), |u| u.name.as_str());
            let checked = full_auth::check(
                conn,
                seq,
                tls,
                sha2_auth,
                name,
                sha2.as_ref(),
                scramble,
                &token,
            )
            .await?;
            seq = checked.seq;
            checked.ok
        }
        _ => native
            .as_ref()
            .is_some_and(|v| auth::native_check(&v.0, scramble, &token)),
    };
    let Some(user) = user.filter(|_| ok) else {
        let reason = match user {
            None => "unknown user".to_string(),
            Some(_) if native.is_none() && sha2.is_none() => {
                "the user has no MySQL verifier (mysql_sha2_verifier or mysql_native_verifier from `airlock passwd`)".to_string()
            }
            Some(_) => "wrong password".to_string(),
        };
        return refuse(conn, seq, &response, &reason).await;
    };
    // Only now, authenticated, may the client learn anything about targets.
    // Without a schema (mysqldump connects so, then selects the schema),
    // the one MySQL target the user may reach is the session's target.
    let schema = match response.database.clone() {
        Some(s) => s,
        None => {
            let mut reachable = config
                .targets
                .iter()
                .filter(|t| t.engine == Engine::Mysql && t.allows(user));
            match (reachable.next(), reachable.next()) {
                (Some(only), None) => only.name.clone(),
                _ => {
                    let err = ErrPacket::new(
                        NO_DB,
                        "3D000",
                        "No database selected: connect with an airlock target name as the database",
                    );
                    conn.write_payload(seq, &err.encode()).await?;
                    return Err(Refusal::Sent {
                        user: user.name.clone(),
                        reason: "no target named".into(),
                    });
                }
            }
        }
    };
    let target = config.target(&schema).filter(|t| t.engine == Engine::Mysql);
    let Some(target) = target else {
        let err = ErrPacket::new(BAD_DB, "42000", format!("Unknown database '{schema}'"));
        conn.write_payload(seq, &err.encode()).await?;
        return Err(Refusal::Sent {
            user: user.name.clone(),
            reason: format!("unknown target {schema:?}"),
        });
    };
    if !target.allows(user) {
        let err = ErrPacket::new(
            DB_ACCESS_DENIED,
            "42000",
            format!(
                "Access denied for user '{}' to database '{schema}'",
                user.name
            ),
        );
        conn.write_payload(seq, &err.encode()).await?;
        return Err(Refusal::Sent {
            user: user.name.clone(),
            reason: format!("not in the allowed groups of {schema:?}"),
        });
    }
    Ok(LoggedIn {
        user: user.clone(),
        target: target.clone(),
        response,
        seq,
    })
}

async fn refuse<S: AsyncRead + AsyncWrite + Unpin, T>(
    conn: &mut PacketConn<S>,
    seq: u8,
    response: &HandshakeResponse,
    reason: &str,
) -> Result<T, Refusal> {
    let using = if response.auth_response.is_empty() {
        "NO"
    } else {
        "YES"
    };
    let err = ErrPacket::new(
        ACCESS_DENIED,
        "28000",
        format!(
            "Access denied for user '{}' (using password: {using}); airlock checks MySQL logins against the user's mysql_sha2_verifier or mysql_native_verifier from `airlock passwd`",
            response.user
        ),
    );
    conn.write_payload(seq, &err.encode()).await?;
    Err(Refusal::Sent {
        user: response.user.clone(),
        reason: reason.to_string(),
    })
}
