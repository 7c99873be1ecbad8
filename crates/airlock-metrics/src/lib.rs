//! airlock's metrics, in the Prometheus text format through
//! `prometheus-client`. One [`Metrics`] is made at startup and passed to
//! whatever counts: the listeners (sessions, upstream connections, bytes and
//! statements), the workflow (as its [`TransitionObserver`]: decisions,
//! runs, row-guard trips), the Slack deliverer and the store decorator.
//! Values that live in the store (requests by status, outbox depth, audit
//! head) are set by the `/metrics` handler just before encoding.

use airlock_core::{ChangeRequest, RequestStatus, Timestamp, TransitionObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

mod store;
pub use store::MeteredStore;

/// A session's target and wire protocol.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// Target name.
    pub target: String,
    /// `postgres` (later `mysql`).
    pub protocol: String,
}

/// A target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Target name.
    pub target: String,
}

/// Relayed bytes of a target, by direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    /// Target name.
    pub target: String,
    /// `client_to_upstream` or `upstream_to_client`.
    pub direction: String,
}

/// Statements judged on a target, by verdict and class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatementLabels {
    /// Target name.
    pub target: String,
    /// `relayed` or `held`.
    pub verdict: String,
    /// Statement class (`read`, `write`, `ddl`, …).
    pub class: String,
}

/// A label naming an outcome or a status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `approved`, `executed`, …
    pub outcome: String,
}

/// A store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// The port method (`transition`, `create_request`, …).
    pub op: String,
}

/// Request status label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The status name.
    pub status: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~4 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

fn slow_histogram() -> Histogram {
    // 50 ms … ~28 h: decisions wait for people.
    Histogram::new(exponential_buckets(0.05, 3.0, 15))
}

/// Every metric airlock exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    sessions_open: Family<SessionLabels, Gauge>,
    sessions_total: Family<SessionLabels, Counter>,
    sessions_refused: Family<OutcomeLabels, Counter>,
    upstream_open: Family<TargetLabels, Gauge>,
    bytes: Family<BytesLabels, Counter>,
    statements: Family<StatementLabels, Counter>,
    requests: Family<StatusLabels, Gauge>,
    decisions: Family<OutcomeLabels, Counter>,
    decision_seconds: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    runs: Family<OutcomeLabels, Counter>,
    run_seconds: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    row_guard_trips: Counter,
    classifier_hits: Counter,
    classifier_misses: Counter,
    outbox_depth: Gauge,
    slack_errors: Family<OutcomeLabels, Counter>,
    audit_head_seq: Gauge,
    store_seconds: Family<OpLabels, Histogram, fn() -> Histogram>,
    store_errors: Family<OpLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered under the `airlock_` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("airlock");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            sessions_open: Family::default(),
            sessions_total: Family::default(),
            sessions_refused: Family::default(),
            upstream_open: Family::default(),
            bytes: Family::default(),
            statements: Family::default(),
            requests: Family::default(),
            decisions: Family::default(),
            decision_seconds: Family::new_with_constructor(slow_histogram),
            runs: Family::default(),
            run_seconds: Family::new_with_constructor(slow_histogram),
            row_guard_trips: Counter::default(),
            classifier_hits: Counter::default(),
            classifier_misses: Counter::default(),
            outbox_depth: Gauge::default(),
            slack_errors: Family::default(),
            audit_head_seq: Gauge::default(),
            store_seconds: Family::new_with_constructor(latency_histogram),
            store_errors: Family::default(),
        };
        r.register(
            "client_sessions_open",
            "Client sessions open now",
            m.sessions_open.clone(),
        );
        r.register(
            "client_sessions",
            "Client sessions accepted and authenticated",
            m.sessions_total.clone(),
        );
        r.register(
            "client_sessions_refused",
            "Client connections refused (reason)",
            m.sessions_refused.clone(),
        );
        r.register(
            "upstream_connections_open",
            "Upstream connections open now (sessions and runs)",
            m.upstream_open.clone(),
        );
        r.register(
            "relayed_bytes",
            "Bytes relayed between clients and upstreams",
            m.bytes.clone(),
        );
        r.register(
            "statements",
            "Statements judged on each target, by verdict and class",
            m.statements.clone(),
        );
        r.register(
            "requests",
            "Change requests in the store, by status",
            m.requests.clone(),
        );
        r.register(
            "decisions",
            "Decisions on change requests (approved, rejected, cancelled, expired)",
            m.decisions.clone(),
        );
        r.register(
            "decision_latency_seconds",
            "Time from hold to decision",
            m.decision_seconds.clone(),
        );
        r.register(
            "runs",
            "Finished runs and rollbacks, by outcome",
            m.runs.clone(),
        );
        r.register(
            "run_duration_seconds",
            "Time from the start of a run to its outcome",
            m.run_seconds.clone(),
        );
        r.register(
            "row_guard_trips",
            "Runs rolled back by the row guard",
            m.row_guard_trips.clone(),
        );
        r.register(
            "classifier_cache_hits",
            "Classifications answered by the cache",
            m.classifier_hits.clone(),
        );
        r.register(
            "classifier_cache_misses",
            "Classifications that ran the parsers",
            m.classifier_misses.clone(),
        );
        r.register(
            "slack_outbox_depth",
            "Outbox messages not yet delivered",
            m.outbox_depth.clone(),
        );
        r.register(
            "slack_delivery_errors",
            "Slack delivery attempts that failed, by kind",
            m.slack_errors.clone(),
        );
        r.register(
            "audit_head_seq",
            "Sequence number of the audit chain's head",
            m.audit_head_seq.clone(),
        );
        r.register(
            "store_operation_seconds",
            "Latency of state store operations",
            m.store_seconds.clone(),
        );
        r.register(
            "store_operation_errors",
            "State store operations that failed",
            m.store_errors.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A client session authenticated: counted, and open until the guard drops.
    pub fn session_opened(&self, target: &str, protocol: &str) -> OpenGuard {
        let labels = SessionLabels {
            target: target.to_string(),
            protocol: protocol.to_string(),
        };
        self.sessions_total.get_or_create(&labels).inc();
        OpenGuard::new(self.sessions_open.get_or_create(&labels).clone())
    }

    /// A connection was refused before its session started (`auth`, `limit`, …).
    pub fn session_refused(&self, reason: &str) {
        self.sessions_refused
            .get_or_create(&OutcomeLabels {
                outcome: reason.to_string(),
            })
            .inc();
    }

    /// An upstream connection opened: open until the guard drops.
    pub fn upstream_opened(&self, target: &str) -> OpenGuard {
        OpenGuard::new(
            self.upstream_open
                .get_or_create(&TargetLabels {
                    target: target.to_string(),
                })
                .clone(),
        )
    }

    /// The byte counters of a target: (client to upstream, upstream to client).
    pub fn byte_counters(&self, target: &str) -> (Counter, Counter) {
        let get = |direction: &str| {
            self.bytes
                .get_or_create(&BytesLabels {
                    target: target.to_string(),
                    direction: direction.to_string(),
                })
                .clone()
        };
        (get("client_to_upstream"), get("upstream_to_client"))
    }

    /// A statement was judged: relayed or held, with its class.
    pub fn statement(&self, target: &str, held: bool, class: &str) {
        self.statements
            .get_or_create(&StatementLabels {
                target: target.to_string(),
                verdict: if held { "held" } else { "relayed" }.to_string(),
                class: class.to_string(),
            })
            .inc();
    }

    /// The classifier cache's totals so far (they only grow).
    pub fn classifier_totals(&self, hits: u64, misses: u64) {
        let top_up = |c: &Counter, total: u64| {
            let now = c.get();
            if total > now {
                c.inc_by(total - now);
            }
        };
        top_up(&self.classifier_hits, hits);
        top_up(&self.classifier_misses, misses);
    }

    /// Requests by status, as the store counts them now.
    pub fn set_request_counts(&self, counts: &[(RequestStatus, i64)]) {
        for status in RequestStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.requests
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_string(),
                })
                .set(n);
        }
    }

    /// Undelivered outbox messages.
    pub fn set_outbox_depth(&self, n: i64) {
        self.outbox_depth.set(n);
    }

    /// The audit chain's head sequence.
    pub fn set_audit_head(&self, seq: i64) {
        self.audit_head_seq.set(seq);
    }

    /// A Slack delivery attempt failed (`api`, `rate_limited`, `store`, …).
    pub fn slack_error(&self, kind: &str) {
        self.slack_errors
            .get_or_create(&OutcomeLabels {
                outcome: kind.to_string(),
            })
            .inc();
    }

    /// A store operation took `took` (and failed when `failed`).
    pub fn store_op(&self, op: &str, took: Duration, failed: bool) {
        let labels = OpLabels { op: op.to_string() };
        self.store_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.store_errors.get_or_create(&labels).inc();
        }
    }
}

fn seconds_between(from: Option<Timestamp>, to: Timestamp) -> Option<f64> {
    let from = from?;
    (to.0 >= from.0).then(|| (to.0 - from.0) as f64 / 1000.0)
}

impl TransitionObserver for Metrics {
    fn transition(&self, request: &ChangeRequest, from: RequestStatus, now: Timestamp) {
        let outcome = |s: &str| OutcomeLabels {
            outcome: s.to_string(),
        };
        let to = request.status;
        match (from, to) {
            (RequestStatus::Pending, _) if to != RequestStatus::Pending => {
                let labels = outcome(to.as_str());
                self.decisions.get_or_create(&labels).inc();
                if let Some(s) = seconds_between(Some(request.details.created_at), now) {
                    self.decision_seconds.get_or_create(&labels).observe(s);
                }
            }
            (RequestStatus::Approved, RequestStatus::Cancelled | RequestStatus::Expired) => {
                self.decisions.get_or_create(&outcome(to.as_str())).inc();
            }
            (RequestStatus::Running | RequestStatus::RollingBack, _) => {
                let labels = outcome(to.as_str());
                self.runs.get_or_create(&labels).inc();
                let record = if from == RequestStatus::RollingBack {
                    &request.rollback_run
                } else {
                    &request.run
                };
                if let Some(s) = seconds_between(record.started_at, now) {
                    self.run_seconds.get_or_create(&labels).observe(s);
                }
                if record
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("row guard"))
                {
                    self.row_guard_trips.inc();
                }
            }
            _ => {}
        }
    }
}

/// Decrements an "open now" gauge when dropped.
#[derive(Debug)]
pub struct OpenGuard(Gauge);

impl OpenGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        OpenGuard(gauge)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_and_closed_on_drop() {
        let m = Metrics::new();
        let guard = m.session_opened("orders-prod", "postgres");
        let text = m.encode();
        assert!(
            text.contains(
                r#"airlock_client_sessions_open{target="orders-prod",protocol="postgres"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"airlock_client_sessions_total{target="orders-prod",protocol="postgres"} 1"#
            ),
            "{text}"
        );
        drop(guard);
        assert!(m.encode().contains(
            r#"airlock_client_sessions_open{target="orders-prod",protocol="postgres"} 0"#
        ));
    }

    #[test]
    fn classifier_totals_only_grow() {
        let m = Metrics::new();
        m.classifier_totals(5, 2);
        m.classifier_totals(3, 4);
        let text = m.encode();
        assert!(
            text.contains("airlock_classifier_cache_hits_total 5"),
            "{text}"
        );
        assert!(
            text.contains("airlock_classifier_cache_misses_total 4"),
            "{text}"
        );
    }
}
