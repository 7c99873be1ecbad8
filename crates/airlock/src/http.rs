//! The HTTP listener: liveness, and the routes given (readiness, metrics,
//! the JSON API, the pages, Slack).

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `/healthz` and the routes of `api` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    api: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
