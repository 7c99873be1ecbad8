//! `/metrics` (Prometheus/OpenMetrics text from the process's one
//! [`Metrics`] registry, with the store's counts read at scrape time) and
//! `/readyz` (the store answers; each target's upstream is reachable).

use airlock_core::Store;
use airlock_metrics::Metrics;
use airlock_sql::Classifier;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How long `/readyz` waits for the store and for each upstream.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health routes look at.
#[derive(Clone)]
pub struct HealthState {
    /// The state store.
    pub store: Arc<dyn Store>,
    /// The process's metrics.
    pub metrics: Metrics,
    /// The classifier (its cache counters).
    pub classifier: Arc<Classifier>,
    /// The configuration in force (its targets' upstreams are checked).
    pub live: airlock_core::LiveConfig,
}

/// `/metrics` and `/readyz`.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<HealthState>) -> impl IntoResponse {
    let stats = s.classifier.stats();
    s.metrics.classifier_totals(stats.hits, stats.misses);
    // A store that does not answer leaves the last values (and is visible
    // in airlock_store_operation_errors and /readyz).
    if let Ok(Ok(counts)) = tokio::time::timeout(CHECK_TIMEOUT, s.store.request_counts()).await {
        s.metrics.set_request_counts(&counts);
    }
    if let Ok(Ok(depth)) = tokio::time::timeout(CHECK_TIMEOUT, s.store.outbox_depth()).await {
        s.metrics.set_outbox_depth(depth);
    }
    if let Ok(Ok(head)) = tokio::time::timeout(CHECK_TIMEOUT, s.store.audit_head()).await {
        s.metrics.set_audit_head(head.seq);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn readyz(State(s): State<HealthState>) -> impl IntoResponse {
    let store = match tokio::time::timeout(CHECK_TIMEOUT, s.store.audit_head()).await {
        Ok(Ok(head)) => json!({ "ok": true, "audit_head_seq": head.seq }),
        Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
        Err(_) => {
            json!({ "ok": false, "error": format!("no answer within {}s", CHECK_TIMEOUT.as_secs()) })
        }
    };
    let mut upstreams = serde_json::Map::new();
    let config = s.live.current();
    for t in &config.targets {
        let (name, host, port) = (&t.name, &t.upstream.host, t.upstream_port());
        let reached = tokio::time::timeout(
            CHECK_TIMEOUT,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        let v = match reached {
            Ok(Ok(_)) => json!({ "reachable": true }),
            Ok(Err(e)) => json!({ "reachable": false, "error": e.to_string() }),
            Err(_) => json!({ "reachable": false, "error": "connect timed out" }),
        };
        upstreams.insert(name.clone(), v);
    }
    let ready = store["ok"] == true;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ready, "store": store, "upstreams": upstreams })),
    )
}
