//! `/metrics` and `/readyz` (issue 8): the exposition parses with a real
//! OpenMetrics parser (prometheus_client's), its counters move as a scripted
//! session reads, holds a change, gets it approved and runs it; `/readyz`
//! reports each upstream and fails while the store is down.

mod common;

use common::requests::{requests_cli, requests_cli_cmd};
use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const BOB_TOKEN: &str = "alk_bob_metrics_token_0123456789";
const ALICE_TOKEN: &str = "alk_alice_metrics_token_0123456789";

/// Every sample of `/metrics`, parsed by prometheus_client's OpenMetrics parser.
fn scrape(proxy: &Proxy) -> serde_json::Map<String, Value> {
    let (status, head, body) = http_raw(proxy.http_port, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("application/openmetrics-text"),
        "{head}"
    );
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("tests/metrics_parse.py"));
    let out = run_with_timeout(cmd, Some(body.as_bytes()), Duration::from_secs(30));
    out.assert_success("parsing /metrics");
    match serde_json::from_str::<Value>(out.stdout().trim()) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {other:?}"),
    }
}

/// A sample's value (0 when absent).
fn sample(m: &serde_json::Map<String, Value>, key: &str) -> f64 {
    m.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

#[test]
fn metrics_parse_and_move_with_a_session_and_readyz_follows_the_store() {
    let db = "airlock_t_metrics";
    fresh_db_with(db, "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); INSERT INTO t VALUES (1, 0)");
    let url = fresh_pg_store("metrics");
    let store_db = "airlock_state_t_metrics";
    let mut cfg = ProxyConfig::for_db(db)
        .with_api_token("bob", BOB_TOKEN)
        .with_api_token("alice", ALICE_TOKEN);
    cfg.store_url = Some(url);
    let proxy = Proxy::start(cfg);
    let target = format!("{db}-prod");
    let before = scrape(&proxy);

    let conn = proxy.conn("alice", &target);
    conn.psql(&["-X", "-c", "SELECT n FROM t"])
        .assert_success("a read");
    let held = conn.psql(&[
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SET airlock.reason = 'metrics test'",
        "-c",
        "UPDATE t SET n = 1 WHERE id = 1",
    ]);
    assert!(held.stderr().contains("AL001"), "{}", held.describe());
    let id = admin_query(store_db, "SELECT max(id) FROM requests");
    requests_cli(&proxy, BOB_TOKEN, &["approve", &id]).assert_success("approve");
    requests_cli(&proxy, ALICE_TOKEN, &["run", &id]).assert_success("run");
    assert_eq!(admin_query(db, "SELECT n FROM t"), "1");

    let after = scrape(&proxy);
    let moved = |key: &str| sample(&after, key) - sample(&before, key);
    let t = format!("target={target}");
    assert_eq!(
        moved(&format!(
            "airlock_client_sessions_total{{protocol=postgres,{t}}}"
        )),
        2.0,
        "{after:?}"
    );
    assert_eq!(
        sample(
            &after,
            &format!("airlock_client_sessions_open{{protocol=postgres,{t}}}")
        ),
        0.0
    );
    assert!(
        moved(&format!(
            "airlock_relayed_bytes_total{{direction=client_to_upstream,{t}}}"
        )) > 0.0
    );
    assert!(
        moved(&format!(
            "airlock_relayed_bytes_total{{direction=upstream_to_client,{t}}}"
        )) > 0.0
    );
    assert!(
        moved(&format!(
            "airlock_statements_total{{class=read,{t},verdict=relayed}}"
        )) >= 1.0,
        "{after:?}"
    );
    assert_eq!(
        moved(&format!(
            "airlock_statements_total{{class=write,{t},verdict=held}}"
        )),
        1.0,
        "{after:?}"
    );
    assert_eq!(
        moved("airlock_decisions_total{outcome=approved}"),
        1.0,
        "{after:?}"
    );
    assert_eq!(
        moved("airlock_decision_latency_seconds_count{outcome=approved}"),
        1.0
    );
    assert_eq!(
        moved("airlock_runs_total{outcome=executed}"),
        1.0,
        "{after:?}"
    );
    assert_eq!(
        moved("airlock_run_duration_seconds_count{outcome=executed}"),
        1.0
    );
    assert_eq!(
        sample(&after, "airlock_requests{status=executed}"),
        1.0,
        "{after:?}"
    );
    assert_eq!(sample(&after, "airlock_requests{status=pending}"), 0.0);
    assert!(
        sample(&after, "airlock_audit_head_seq{}") > sample(&before, "airlock_audit_head_seq{}")
    );
    assert!(
        moved("airlock_store_operation_seconds_count{op=transition}") >= 2.0,
        "{after:?}"
    );
    assert!(
        moved("airlock_classifier_cache_misses_total{}") >= 1.0,
        "{after:?}"
    );

    // A run's own upstream connection is counted while it runs (no client
    // session is open meanwhile: the run is triggered over HTTP).
    let slow = conn.psql(&[
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SET airlock.reason = 'metrics test'",
        "-c",
        "UPDATE t SET n = 2 WHERE id = 1 AND pg_sleep(3) IS NOT NULL",
    ]);
    assert!(slow.stderr().contains("AL001"), "{}", slow.describe());
    let slow_id = admin_query(store_db, "SELECT max(id) FROM requests");
    requests_cli(&proxy, BOB_TOKEN, &["approve", &slow_id]).assert_success("approve");
    let run = Background::spawn(requests_cli_cmd(&proxy, ALICE_TOKEN, &["run", &slow_id]));
    let running = wait_until(Duration::from_secs(20), || {
        admin_query(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
                 AND application_name LIKE 'airlock:run#{slow_id}:%' AND state = 'active'"
            ),
        ) == "1"
    });
    assert!(running, "the run never reached the upstream");
    let during = scrape(&proxy);
    let upstreams = format!("airlock_upstream_connections_open{{{t}}}");
    assert_eq!(sample(&during, &upstreams), 1.0, "{during:?}");
    run.wait(Duration::from_secs(30)).assert_success("run");
    assert_eq!(sample(&scrape(&proxy), &upstreams), 0.0);

    // Ready: the store answers and the upstream is reachable.
    let (status, _, body) = http_raw(proxy.http_port, "GET", "/readyz", &[], "");
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["store"]["ok"], true, "{ready}");
    assert_eq!(ready["upstreams"][&target]["reachable"], true, "{ready}");

    // The store goes away: not ready, and it says why.
    admin_sql(&format!(
        "ALTER DATABASE {store_db} ALLOW_CONNECTIONS false"
    ))
    .assert_success("close the store");
    admin_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{store_db}'"
    ))
    .assert_success("drop the store's connections");
    let (status, _, body) = http_raw(proxy.http_port, "GET", "/readyz", &[], "");
    admin_sql(&format!("ALTER DATABASE {store_db} ALLOW_CONNECTIONS true"))
        .assert_success("reopen the store");
    assert_eq!(status, 503, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["store"]["ok"], false, "{ready}");
    // Back: ready again.
    let back = wait_until(Duration::from_secs(20), || {
        http_raw(proxy.http_port, "GET", "/readyz", &[], "").0 == 200
    });
    assert!(back, "not ready after the store came back");
}
