//! The MySQL listener: accepts connections, runs each session in its own
//! task, and drains on shutdown.

use crate::login::Flavor;
use crate::session::{self, MysqlContext, SessionError};
use airlock_core::{Engine, LiveConfig};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The version announced before any upstream was seen.
const DEFAULT_VERSION: &str = "10.11.0-MariaDB-airlock";

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS files or settings.
    #[error("TLS: {0}")]
    Tls(#[from] airlock_tls::TlsError),
    /// Binding the listener.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// How long the startup probe of an upstream's version may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A configured MySQL listener.
pub struct MysqlServer {
    ctx: Arc<MysqlContext>,
    listener: TcpListener,
}

impl MysqlServer {
    /// Binds `addr`, with TLS from `[tls]` when configured.
    pub async fn bind(live: LiveConfig, addr: &str) -> Result<Self, ServerError> {
        let tls = match &live.current().tls {
            Some(t) => Some(airlock_tls::server_acceptor(
                &t.cert_file,
                &t.key_file,
                &[],
            )?),
            None => None,
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        // Clients read the server's version from the greeting, before the
        // target is known: announce the upstreams' (the first that answers;
        // later sessions announce the one last connected to).
        let mut flavor = Flavor {
            version: DEFAULT_VERSION.to_string(),
            mariadb: None,
        };
        for t in live
            .current()
            .targets
            .iter()
            .filter(|t| t.engine == Engine::Mysql)
        {
            if let Some(f) =
                crate::upstream::probe(&t.upstream.host, t.upstream_port(), PROBE_TIMEOUT).await
            {
                flavor = f;
                break;
            }
        }
        let ctx = Arc::new(MysqlContext {
            live,
            tls,
            flavor: Mutex::new(flavor),
            next_id: AtomicU32::new(rand::random::<u32>() >> 4 | 1),
            workflow: None,
            runner: None,
            sessions: Arc::default(),
            sha2_auth: Default::default(),
        });
        Ok(Self { ctx, listener })
    }

    /// Audits logins, turns held statements into change requests and runs
    /// approved ones through `workflow`.
    pub fn with_workflow(mut self, workflow: Arc<airlock_core::workflow::Workflow>) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.runner = Some(crate::executor::MysqlRunner::new(
                workflow.clone(),
                ctx.live.clone(),
            ));
            ctx.workflow = Some(workflow);
        }
        self
    }

    /// The executor of approved MySQL changes (after [`MysqlServer::with_workflow`]).
    pub fn runner(&self) -> Option<crate::executor::MysqlRunner> {
        self.ctx.runner.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until `shutdown` fires, then waits up to `grace` for sessions.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let tracker = TaskTracker::new();
        let sessions = CancellationToken::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let ctx = self.ctx.clone();
                        let stop = sessions.clone();
                        tracker.spawn(async move {
                            tokio::select! {
                                r = session::handle(ctx, tcp, peer) => log_end(r, peer),
                                _ = stop.cancelled() => info!(%peer, "mysql session closed by shutdown"),
                            }
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        drop(self.listener);
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(
                live = tracker.len(),
                "grace period over: closing the remaining mysql sessions"
            );
            sessions.cancel();
            tracker.wait().await;
        }
    }
}

fn log_end(result: Result<(), SessionError>, peer: std::net::SocketAddr) {
    match result {
        Ok(()) => {}
        Err(SessionError::Login(why)) => info!(%peer, %why, "mysql connection refused"),
        Err(e) => debug!(%peer, error = %e, "mysql connection ended with an error"),
    }
}
