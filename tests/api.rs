//! The HTTP JSON API, the `airlock requests` CLI on top of it, and the
//! `airlock audit` commands, against real `airlock serve` processes with
//! SQLite and PostgreSQL state stores. Requests are created directly in the
//! store the proxy uses (through `Workflow::hold`).

mod common;

use airlock_core::{
    ApprovalPolicy, ChangeRequest, Held, PolicySource, RequestDetails, RequestId, SystemClock,
    Workflow,
};
use airlock_sql::StatementClass;
use airlock_store::SqlStore;
use common::requests::request_details;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const ALICE_TOKEN: &str = "alk_alice_token_0123456789";
const BOB_TOKEN: &str = "alk_bob_token_0123456789";
const MALLORY_TOKEN: &str = "alk_mallory_token_0123456789";

/// The policy the test config implies: dba approves, one approver.
struct TestPolicies;

impl PolicySource for TestPolicies {
    fn policy(&self, target: &str, _class: StatementClass) -> Option<ApprovalPolicy> {
        let mut p = ApprovalPolicy {
            approver_groups: vec!["dba".into()],
            ..ApprovalPolicy::default()
        };
        if target.ends_with("-short") {
            p.pending_expiry = Duration::from_secs(1);
        }
        Some(p)
    }
    fn lower_environments(&self, _family: &str, _environment: &str) -> Vec<String> {
        Vec::new()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn details(requester: &str, target: &str, statement: &str) -> RequestDetails {
    RequestDetails {
        tables: vec!["orders".into()],
        row_estimate: Some(1.0),
        ..request_details(requester, target, statement, "ticket OPS-1")
    }
}

/// Holds `statements` as `requester`'s requests in the store at `url`.
fn hold_requests(url: &str, requester: &str, target: &str, statements: &[&str]) -> Vec<RequestId> {
    runtime().block_on(async {
        let store = SqlStore::connect(url).await.expect("open store");
        let wf = Workflow::new(
            Arc::new(store.clone()),
            Arc::new(TestPolicies),
            Arc::new(SystemClock),
        );
        let mut ids = Vec::new();
        for s in statements {
            match wf.hold(details(requester, target, s)).await.expect("hold") {
                Held::Created(ChangeRequest { id, .. }) => ids.push(id),
                other => panic!("expected a new request, got {other:?}"),
            }
        }
        store.close().await;
        ids
    })
}

/// Runs SQL on the store directly (tampering).
fn store_exec(url: &str, sql: &str) {
    runtime().block_on(async {
        let store = SqlStore::connect(url).await.expect("open store");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        store.close().await;
    })
}

fn sqlite_url(dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.join("airlock-state.db").display()
    )
}

/// One raw HTTP/1.1 call; returns the status and the JSON body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("Authorization", format!("Bearer {t}")));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json".to_string()));
    }
    let (status, _, body) = http_raw(port, method, path, &headers, body);
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {body:?}"));
    (status, json)
}

/// `airlock <args>` with the API URL and a token.
fn cli(proxy: &Proxy, token: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(args)
        .env(
            "AIRLOCK_URL",
            format!("http://127.0.0.1:{}", proxy.http_port),
        )
        .env("AIRLOCK_TOKEN", token);
    run_with_timeout(cmd, None, Duration::from_secs(60))
}

/// `airlock audit <args> --config FILE`.
fn audit_cli(config: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(airlock_bin());
    cmd.arg("audit")
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("AIRLOCK_CONFIG");
    run_with_timeout(cmd, None, Duration::from_secs(60))
}

fn with_tokens(cfg: ProxyConfig) -> ProxyConfig {
    cfg.with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN)
        .with_api_token("mallory", MALLORY_TOKEN)
}

fn audit_events(port: u16) -> Vec<Value> {
    let (st, v) = http(
        port,
        "GET",
        "/api/v1/audit?limit=1000",
        Some(BOB_TOKEN),
        None,
    );
    assert_eq!(st, 200, "{v}");
    v["events"].as_array().expect("events").clone()
}

#[test]
fn api_and_cli_review_requests_on_a_sqlite_store() {
    let db = "airlock_api_sqlite";
    fresh_db(db);
    let proxy = Proxy::start(with_tokens(ProxyConfig::for_db(db)));
    let port = proxy.http_port;
    let url = sqlite_url(proxy.dir.path());
    let target = format!("{db}-prod");
    let ids = hold_requests(
        &url,
        "alice",
        &target,
        &[
            "UPDATE orders SET state = 'x' WHERE id = 1",
            "UPDATE orders SET state = 'y' WHERE id = 2",
            "DELETE FROM orders WHERE id = 3",
        ],
    );
    let [one, two, three] = [ids[0].0, ids[1].0, ids[2].0];

    // Authentication.
    let (st, v) = http(port, "GET", "/api/v1/requests", None, None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let (st, v) = http(port, "GET", "/api/v1/requests", Some("alk_wrong"), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let out = cli(&proxy, "alk_wrong", &["requests", "list"]);
    assert!(
        !out.success() && out.stderr().contains("unauthorized"),
        "{}",
        out.describe()
    );

    // List and show.
    let (st, v) = http(
        port,
        "GET",
        "/api/v1/requests?status=pending",
        Some(ALICE_TOKEN),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["requests"].as_array().map(Vec::len), Some(3), "{v}");
    let out = cli(&proxy, ALICE_TOKEN, &["requests", "list", "--json"]);
    out.assert_success("requests list --json");
    let listed: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    assert_eq!(listed["requests"].as_array().map(Vec::len), Some(3));
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "list", "--target", &target],
    );
    out.assert_success("requests list");
    for id in [one, two, three] {
        assert!(
            out.stdout().contains(&format!("#{id} ")),
            "{}",
            out.describe()
        );
    }
    let out = cli(&proxy, BOB_TOKEN, &["requests", "show", &one.to_string()]);
    out.assert_success("requests show");
    assert!(
        out.stdout()
            .contains("UPDATE orders SET state = 'x' WHERE id = 1")
            && out.stdout().contains("pending")
            && out.stdout().contains("ticket OPS-1"),
        "{}",
        out.describe()
    );
    let (st, v) = http(port, "GET", "/api/v1/requests/9999", Some(BOB_TOKEN), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let (st, _) = http(port, "GET", "/api/v1/requests/abc", Some(BOB_TOKEN), None);
    assert_eq!(st, 400);

    // Another user approves through the CLI.
    let out = cli(
        &proxy,
        BOB_TOKEN,
        &["requests", "approve", &one.to_string()],
    );
    out.assert_success("requests approve");
    assert!(
        out.stdout().contains(&format!("approved #{one}")),
        "{}",
        out.describe()
    );
    let (_, v) = http(
        port,
        "GET",
        &format!("/api/v1/requests/{one}"),
        Some(ALICE_TOKEN),
        None,
    );
    assert_eq!(v["request"]["status"], "approved", "{v}");
    assert_eq!(v["approvals"][0]["approver"], "bob");
    assert_eq!(v["approvals"][0]["via"], "cli");

    // Self-approval and approval from outside the approver groups are refused and audited.
    let (st, v) = http(
        port,
        "POST",
        &format!("/api/v1/requests/{two}/approve"),
        Some(ALICE_TOKEN),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("own_request")),
        "{v}"
    );
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "approve", &two.to_string()],
    );
    assert!(
        !out.success() && out.stderr().contains("own_request"),
        "{}",
        out.describe()
    );
    let (st, v) = http(
        port,
        "POST",
        &format!("/api/v1/requests/{two}/approve"),
        Some(MALLORY_TOKEN),
        Some("{}"),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("not_approver")),
        "{v}"
    );
    let refused: Vec<(String, String)> = audit_events(port)
        .iter()
        .filter(|e| e["kind"] == "decision.refused" && e["request_id"] == two)
        .map(|e| {
            let p: Value = serde_json::from_str(e["payload"].as_str().unwrap_or("{}")).unwrap();
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                p["refusal"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            ("alice".to_string(), "own_request".to_string()),
            ("alice".to_string(), "own_request".to_string()),
            ("mallory".to_string(), "not_approver".to_string()),
        ]
    );

    // Reject needs a reason; with one it sticks; a later approval is a state conflict.
    let (st, v) = http(
        port,
        "POST",
        &format!("/api/v1/requests/{two}/reject"),
        Some(BOB_TOKEN),
        Some("{}"),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("reason_required")),
        "{v}"
    );
    let out = cli(
        &proxy,
        BOB_TOKEN,
        &[
            "requests",
            "reject",
            &two.to_string(),
            "--reason",
            "needs a WHERE on tenant",
        ],
    );
    out.assert_success("requests reject");
    let out = cli(
        &proxy,
        BOB_TOKEN,
        &["requests", "show", &two.to_string(), "--json"],
    );
    let shown: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    assert_eq!(shown["request"]["status"], "rejected");
    assert_eq!(
        shown["request"]["decision_reason"],
        "needs a WHERE on tenant"
    );
    let (st, v) = http(
        port,
        "POST",
        &format!("/api/v1/requests/{two}/approve"),
        Some(BOB_TOKEN),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("wrong_status")),
        "{v}"
    );

    // Cancel: not by another non-admin user, yes by the requester.
    let (st, v) = http(
        port,
        "POST",
        &format!("/api/v1/requests/{three}/cancel"),
        Some(MALLORY_TOKEN),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("not_requester_or_admin")),
        "{v}"
    );
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "cancel", &three.to_string()],
    );
    out.assert_success("requests cancel");
    assert!(out.stdout().contains(&format!("cancelled #{three}")));
    let (_, v) = http(
        port,
        "GET",
        &format!("/api/v1/requests/{three}"),
        Some(ALICE_TOKEN),
        None,
    );
    assert_eq!(v["request"]["status"], "cancelled");
    let (st, v) = http(
        port,
        "GET",
        "/api/v1/requests?status=bogus",
        Some(ALICE_TOKEN),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );

    // The API's head is the store's head, and the chain verifies offline.
    let (st, v) = http(port, "GET", "/api/v1/audit/head", Some(ALICE_TOKEN), None);
    assert_eq!(st, 200);
    let out = audit_cli(&proxy.config_path, &["head"]);
    out.assert_success("audit head");
    assert_eq!(out.stdout().trim(), v["head"].as_str().unwrap_or(""));
    audit_cli(&proxy.config_path, &["verify"]).assert_success("audit verify");
}

#[test]
fn serve_logs_the_audit_head_and_expires_requests() {
    let db = "airlock_api_headlog";
    fresh_db(db);
    let mut cfg = with_tokens(ProxyConfig::for_db(db));
    cfg.extra_toml = "[audit]\nhead_log_interval = \"1s\"\n".into();
    let proxy = Proxy::start(cfg);
    let url = sqlite_url(proxy.dir.path());
    let ids = hold_requests(
        &url,
        "alice",
        &format!("{db}-short"),
        &["UPDATE t SET a = 1"],
    );
    // The background job expires it (pending expiry 1 s, checked every 5 s).
    assert!(
        wait_until(Duration::from_secs(15), || {
            let (_, v) = http(
                proxy.http_port,
                "GET",
                &format!("/api/v1/requests/{}", ids[0]),
                Some(BOB_TOKEN),
                None,
            );
            v["request"]["status"] == "expired"
        }),
        "request not expired; stderr:\n{}",
        proxy.stderr()
    );
    let out = audit_cli(&proxy.config_path, &["head"]);
    let head = out.stdout().trim().to_string();
    let (seq, hash) = head.split_once(':').expect("SEQ:HASH");
    assert!(
        wait_until(Duration::from_secs(10), || proxy
            .stderr()
            .contains(&format!("audit head seq={seq} hash={hash}"))),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn audit_verify_head_and_export_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, "[server]\n").expect("config");
    let url = sqlite_url(dir.path());
    hold_requests(
        &url,
        "alice",
        "orders-prod",
        &[
            "UPDATE a SET x = 1",
            "UPDATE a SET x = 2",
            "UPDATE a SET x = 3",
            "UPDATE a SET x = 4",
            "UPDATE a SET x = 5",
        ],
    );
    let out = audit_cli(&config, &["verify"]);
    out.assert_success("verify");
    assert!(
        out.stdout().contains("audit chain ok: 5 events"),
        "{}",
        out.describe()
    );
    // A config with Slack whose token variables are not set here: the
    // offline commands do not need them.
    let with_slack = dir.path().join("with-slack.toml");
    std::fs::write(
        &with_slack,
        "[server]\n\n[slack]\nmode = \"http\"\nreview_channel = \"C0123REVIEW\"\n\
         bot_token_env = \"AIRLOCK_T_UNSET_BOT_TOKEN\"\nsigning_secret_env = \"AIRLOCK_T_UNSET_SECRET\"\n",
    )
    .expect("config");
    let mut cmd = Command::new(airlock_bin());
    cmd.args(["audit", "verify", "--config"])
        .arg(&with_slack)
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_T_UNSET_BOT_TOKEN")
        .env_remove("AIRLOCK_T_UNSET_SECRET");
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    assert!(
        out.success() && out.stdout().contains("audit chain ok: 5 events"),
        "{}",
        out.describe()
    );
    let head = audit_cli(&config, &["head"]).stdout().trim().to_string();
    assert!(head.starts_with("5:"), "{head}");

    // Export: one JSON object per event.
    let out = audit_cli(&config, &["export", "--format", "jsonl"]);
    out.assert_success("export");
    let lines: Vec<Value> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as i64 + 1);
        for key in [
            "at",
            "actor",
            "kind",
            "request_id",
            "payload",
            "prev_hash",
            "hash",
        ] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    assert_eq!(
        format!("5:{}", lines[4]["hash"].as_str().unwrap_or("")),
        head
    );

    // A truncated tail whose head row was rewritten too still verifies on its
    // own, but not against the head kept earlier.
    store_exec(
        &url,
        &format!(
            "DELETE FROM audit_events WHERE seq > 3; UPDATE audit_head SET seq = 3, hash = '{}'",
            lines[2]["hash"].as_str().unwrap_or("")
        ),
    );
    audit_cli(&config, &["verify"]).assert_success("verify after a careful truncation");
    let out = audit_cli(&config, &["verify", "--head", &head]);
    assert_eq!(out.code(), 1, "{}", out.describe());
    assert!(
        out.stdout().contains("event 4") && out.stdout().contains("truncated"),
        "{}",
        out.describe()
    );

    // Deleting without fixing the head row is caught without --head.
    store_exec(&url, "DELETE FROM audit_events WHERE seq = 3");
    let out = audit_cli(&config, &["verify"]);
    assert_eq!(out.code(), 1, "{}", out.describe());
    assert!(out.stdout().contains("event 3"), "{}", out.describe());

    // An edited payload is named by its seq.
    store_exec(
        &url,
        "UPDATE audit_events SET payload = '{\"edited\":true}' WHERE seq = 2",
    );
    let out = audit_cli(&config, &["verify", "--json"]);
    assert_eq!(out.code(), 1, "{}", out.describe());
    let v: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    assert_eq!(
        (v["seq"].as_i64(), v["fault"]["fault"].as_str()),
        (Some(2), Some("altered")),
        "{v}"
    );
    let out = audit_cli(&config, &["verify", "--head", "nonsense"]);
    assert!(!out.success());
}

#[test]
fn api_on_a_postgres_store() {
    let state_db = "airlock_api_state_pg";
    fresh_db(state_db);
    let db = "airlock_api_pg_upstream";
    fresh_db(db);
    let url = format!("postgres://postgres@{PG_HOST}:{PG_PORT}/{state_db}");
    let mut cfg = with_tokens(ProxyConfig::for_db(db));
    cfg.store_url = Some(url.clone());
    let proxy = Proxy::start(cfg);
    let port = proxy.http_port;
    let ids = hold_requests(
        &url,
        "alice",
        &format!("{db}-prod"),
        &["UPDATE t SET a = 1", "UPDATE t SET a = 2"],
    );
    let (st, _) = http(port, "GET", "/api/v1/requests", None, None);
    assert_eq!(st, 401);
    let (st, v) = http(
        port,
        "POST",
        &format!("/api/v1/requests/{}/approve", ids[0]),
        Some(ALICE_TOKEN),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("own_request")),
        "{v}"
    );
    let out = cli(
        &proxy,
        BOB_TOKEN,
        &[
            "requests",
            "approve",
            &ids[0].to_string(),
            "--comment",
            "lgtm",
        ],
    );
    out.assert_success("approve on the PG store");
    let out = cli(
        &proxy,
        BOB_TOKEN,
        &["requests", "reject", &ids[1].to_string(), "--reason", "no"],
    );
    out.assert_success("reject on the PG store");
    let out = cli(&proxy, ALICE_TOKEN, &["requests", "list", "--json"]);
    let v: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    let statuses: Vec<&str> = v["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, vec!["rejected", "approved"]);
    assert!(audit_events(port)
        .iter()
        .any(|e| e["kind"] == "decision.refused" && e["actor"] == "alice"));
    let out = audit_cli(&proxy.config_path, &["verify"]);
    out.assert_success("verify on the PG store");
    let head = audit_cli(&proxy.config_path, &["head"])
        .stdout()
        .trim()
        .to_string();
    let out = audit_cli(&proxy.config_path, &["export", "--format", "jsonl"]);
    let seq: usize = head
        .split(':')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("seq");
    assert_eq!(out.stdout().lines().count(), seq);
}
