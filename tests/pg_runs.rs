//! Running approved change requests outside the session (SPEC §4.4, §5, §7,
//! §9): `airlock submit --file` makes one request of a whole script through
//! the API, another user approves, the requester runs it with `airlock
//! requests run` (atomically: a failing third write leaves nothing changed)
//! and rolls it back with `airlock requests rollback`; and crash recovery
//! settles requests left `running` from `pg_xact_status` at startup.

mod common;

use airlock_core::{
    Actor, ChangeRequest, Held, RequestDetails, RequestId, RequestStatus, SystemClock,
    UpstreamSession, Workflow,
};
use airlock_store::SqlStore;
use common::requests::{request_details, AnyApprover};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const ALICE_TOKEN: &str = "alk_alice_runs_token_0123456789";
const BOB_TOKEN: &str = "alk_bob_runs_token_0123456789";
const MALLORY_TOKEN: &str = "alk_mallory_runs_token_0123456789";

fn seed(db: &str) {
    fresh_db_with(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g",
    );
}

fn values(db: &str) -> String {
    admin_query(
        db,
        "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM t",
    )
}

fn config(db: &str) -> ProxyConfig {
    ProxyConfig::for_db(db)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN)
        .with_api_token("mallory", MALLORY_TOKEN)
}

/// `airlock <args>` against the proxy's API with `token`.
fn cli(proxy: &Proxy, token: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(args)
        .env(
            "AIRLOCK_URL",
            format!("http://127.0.0.1:{}", proxy.http_port),
        )
        .env("AIRLOCK_TOKEN", token);
    run_with_timeout(cmd, None, Duration::from_secs(120))
}

fn json_of(out: &Out) -> Value {
    serde_json::from_str(out.stdout().trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.describe()))
}

/// `airlock submit --json` as alice; returns the request number.
fn submit(proxy: &Proxy, dir: &Path, name: &str, sql: &str, extra: &[&str]) -> i64 {
    let file = dir.join(name);
    std::fs::write(&file, sql).expect("write sql file");
    let target = proxy.config.targets[1].name.clone();
    let file_arg = file.to_string_lossy().into_owned();
    let mut args = vec![
        "submit",
        "--target",
        &target,
        "--file",
        &file_arg,
        "--reason",
        "ticket OPS-7",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = cli(proxy, ALICE_TOKEN, &args);
    out.assert_success("airlock submit");
    let v = json_of(&out);
    assert_eq!(v["created"], true, "{v}");
    assert_eq!(v["request"]["status"], "pending", "{v}");
    v["request"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id: {v}"))
}

fn approve(proxy: &Proxy, id: i64) {
    let out = cli(proxy, BOB_TOKEN, &["requests", "approve", &id.to_string()]);
    out.assert_success("requests approve");
    assert!(
        out.stdout().contains(&format!("approved #{id}")),
        "{}",
        out.describe()
    );
}

fn show(proxy: &Proxy, id: i64) -> Value {
    let out = cli(
        proxy,
        BOB_TOKEN,
        &["requests", "show", &id.to_string(), "--json"],
    );
    out.assert_success("requests show");
    json_of(&out)["request"].clone()
}

#[test]
fn submitted_scripts_run_once_atomically_and_roll_back_from_the_cli() {
    let db = "airlock_t_runs_cli";
    seed(db);
    let proxy = Proxy::start(config(db));
    let dir = tempfile::tempdir().expect("tempdir");
    let target = format!("{db}-prod");

    // Read-only submissions, unknown targets and users not allowed on the
    // target are refused with a clear message; nothing is created.
    let ro = dir.path().join("ro.sql");
    std::fs::write(&ro, "SELECT * FROM t;\nSELECT 1;\n").unwrap();
    let ro_arg = ro.to_string_lossy().into_owned();
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["submit", "--target", &target, "--file", &ro_arg],
    );
    assert!(
        out.code() == 1 && out.stderr().contains("read-only") && out.stderr().contains("HTTP 400"),
        "{}",
        out.describe()
    );
    let out = cli(
        &proxy,
        MALLORY_TOKEN,
        &["submit", "--target", &target, "--file", &ro_arg],
    );
    assert!(
        out.code() == 1 && out.stderr().contains("target_not_allowed"),
        "{}",
        out.describe()
    );
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["submit", "--target", "nope", "--file", &ro_arg],
    );
    assert!(
        out.code() == 1 && out.stderr().contains("unknown_target"),
        "{}",
        out.describe()
    );

    // 1. Three writes and a read from a file: ONE request, nothing run yet.
    let script = "UPDATE t SET v = 'a' WHERE id = 1;\n\
                  INSERT INTO t VALUES (4, 'v4');\n\
                  DELETE FROM t WHERE id = 3;\n\
                  SELECT count(*) FROM t;\n";
    let one = submit(&proxy, dir.path(), "change.sql", script, &[]);
    let r = show(&proxy, one);
    assert_eq!(r["statement_count"], 4, "{r}");
    assert_eq!(r["transactional"], true, "{r}");
    assert_eq!(r["requester"], "alice", "{r}");
    assert_eq!(r["reason"], "ticket OPS-7", "{r}");
    assert_eq!(values(db), "1=v1,2=v2,3=v3");
    let listed = cli(&proxy, BOB_TOKEN, &["requests", "list", "--json"]);
    assert_eq!(
        json_of(&listed)["requests"].as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.describe()
    );

    // Not approved yet: running is refused.
    let out = cli(&proxy, ALICE_TOKEN, &["requests", "run", &one.to_string()]);
    assert!(
        out.code() == 1 && out.stderr().contains("HTTP 409"),
        "{}",
        out.describe()
    );

    // 2. Bob approves; bob (neither requester nor admin) may not run it.
    approve(&proxy, one);
    let out = cli(&proxy, BOB_TOKEN, &["requests", "run", &one.to_string()]);
    assert!(
        out.code() == 1 && out.stderr().contains("HTTP 403"),
        "{}",
        out.describe()
    );
    assert_eq!(values(db), "1=v1,2=v2,3=v3");

    // 3. Alice runs it: executed, all three writes visible, rows = 3.
    let out = cli(&proxy, ALICE_TOKEN, &["requests", "run", &one.to_string()]);
    out.assert_success("requests run");
    assert!(
        out.stdout().contains(&format!("request #{one}: executed"))
            && out.stdout().contains("3 row(s) affected"),
        "{}",
        out.describe()
    );
    assert_eq!(values(db), "1=a,2=v2,4=v4");
    let r = show(&proxy, one);
    assert_eq!(r["status"], "executed", "{r}");
    assert_eq!(r["run"]["rows_affected"], 3, "{r}");
    assert_eq!(r["run"]["by"], "alice", "{r}");
    // Once: a second run is refused and changes nothing.
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "run", &one.to_string(), "--json"],
    );
    assert!(
        out.code() == 1 && out.stdout().contains("wrong_status"),
        "{}",
        out.describe()
    );
    assert_eq!(values(db), "1=a,2=v2,4=v4");

    // 4. A script whose third write fails: failed, nothing changed.
    let bad = "UPDATE t SET v = 'b' WHERE id = 2;\n\
               INSERT INTO t VALUES (5, 'v5');\n\
               INSERT INTO t VALUES (1, 'duplicate');\n\
               SELECT count(*) FROM t;\n";
    let two = submit(&proxy, dir.path(), "bad.sql", bad, &[]);
    approve(&proxy, two);
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "run", &two.to_string(), "--json"],
    );
    assert_eq!(out.code(), 1, "{}", out.describe());
    let v = json_of(&out);
    assert_eq!(v["request"]["status"], "failed", "{v}");
    assert_eq!(v["result"]["ok"], false, "{v}");
    assert!(
        v["result"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("23505")),
        "{v}"
    );
    assert_eq!(values(db), "1=a,2=v2,4=v4");
    let out = cli(&proxy, ALICE_TOKEN, &["requests", "run", &two.to_string()]);
    assert_eq!(out.code(), 1, "{}", out.describe());

    // 5. Rollback approved with the change: run, then roll back, no new review.
    let three = submit(
        &proxy,
        dir.path(),
        "rb.sql",
        "UPDATE t SET v = 'changed' WHERE id IN (1, 2)",
        &[
            "--rollback",
            "UPDATE t SET v = 'v' || id WHERE id IN (1, 2)",
            "--max-rows",
            "5",
        ],
    );
    let r = show(&proxy, three);
    assert_eq!(r["max_rows"], 5, "{r}");
    assert_eq!(
        r["rollback_sql"], "UPDATE t SET v = 'v' || id WHERE id IN (1, 2)",
        "{r}"
    );
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "rollback", &three.to_string()],
    );
    assert!(
        out.code() == 1 && out.stderr().contains("HTTP 409"),
        "rollback before the run: {}",
        out.describe()
    );
    approve(&proxy, three);
    cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "run", &three.to_string()],
    )
    .assert_success("run with rollback");
    assert_eq!(values(db), "1=changed,2=changed,4=v4");
    let out = cli(
        &proxy,
        BOB_TOKEN,
        &["requests", "rollback", &three.to_string()],
    );
    assert!(
        out.code() == 1 && out.stderr().contains("HTTP 403"),
        "{}",
        out.describe()
    );
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &["requests", "rollback", &three.to_string()],
    );
    out.assert_success("requests rollback");
    assert!(
        out.stdout().contains("rolled_back") && out.stdout().contains("2 row(s) affected"),
        "{}",
        out.describe()
    );
    assert_eq!(values(db), "1=v1,2=v2,4=v4");
    let r = show(&proxy, three);
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert_eq!(r["rollback_run"]["rows_affected"], 2, "{r}");

    // The same file submitted again while a copy is pending: no duplicate.
    let four = submit(
        &proxy,
        dir.path(),
        "again.sql",
        "DELETE FROM t WHERE id = 4",
        &[],
    );
    let file = dir.path().join("again.sql");
    let out = cli(
        &proxy,
        ALICE_TOKEN,
        &[
            "submit",
            "--target",
            &target,
            "--file",
            &file.to_string_lossy(),
            "--reason",
            "ticket OPS-7",
        ],
    );
    out.assert_success("submit again");
    assert!(
        out.stdout().contains(&format!("request #{four} (pending)")),
        "{}",
        out.describe()
    );
    assert_eq!(values(db), "1=v1,2=v2,4=v4");
}

fn details(target: &str, statement: &str) -> RequestDetails {
    request_details("alice", target, statement, "ticket OPS-8")
}

/// The xid of a transaction that ran an UPDATE and then committed or aborted.
fn xid_of_transaction(db: &str, end: &str) -> String {
    let out = Conn::direct(db).psql(&[
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "BEGIN",
        "-c",
        "UPDATE t SET v = v WHERE id = 1",
        "-c",
        "SELECT pg_current_xact_id()",
        "-c",
        end,
    ]);
    out.assert_success("xid transaction");
    let xid = out.stdout().trim().to_string();
    assert!(
        !xid.is_empty() && xid.bytes().all(|b| b.is_ascii_digit()),
        "{}",
        out.describe()
    );
    xid
}

#[test]
fn requests_left_running_are_settled_from_pg_xact_status_at_startup() {
    let db = "airlock_t_runs_recovery";
    seed(db);
    let state = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        state.path().join("state.db").display()
    );
    let target = format!("{db}-prod");
    let committed = xid_of_transaction(db, "COMMIT");
    let aborted = xid_of_transaction(db, "ROLLBACK");

    // Three requests left `running` by a "crashed" process: with the xid of a
    // committed transaction, of an aborted one, and with none recorded.
    let ids: Vec<RequestId> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let store = SqlStore::connect(&url).await.expect("open store");
            let wf = Workflow::new(
                Arc::new(store.clone()),
                Arc::new(AnyApprover),
                Arc::new(SystemClock),
            );
            let alice = Actor::new("alice", ["developers"]);
            let bob = Actor::new("bob", ["developers", "dba"]);
            let mut ids = Vec::new();
            for (n, xid) in [Some(&committed), Some(&aborted), None]
                .into_iter()
                .enumerate()
            {
                let statement = format!("UPDATE t SET v = 'crash{n}' WHERE id = 2");
                let id = match wf.hold(details(&target, &statement)).await.expect("hold") {
                    Held::Created(ChangeRequest { id, .. }) => id,
                    other => panic!("expected a new request, got {other:?}"),
                };
                wf.approve(id, &bob, "cli", None).await.expect("approve");
                wf.start_run(id, &alice).await.expect("start run");
                if let Some(xid) = xid {
                    // As an older airlock recorded it: no backend.
                    let session = UpstreamSession {
                        xid: Some(xid.clone()),
                        backend: None,
                    };
                    wf.record_upstream(id, RequestStatus::Running, &session)
                        .await
                        .expect("record xid");
                }
                ids.push(id);
            }
            store.close().await;
            ids
        });

    let mut cfg = config(db);
    cfg.store_url = Some(url);
    cfg.server_extra
        .push(("reconcile_interval".into(), "\"1s\"".into()));
    let proxy = Proxy::start(cfg);
    let expected = ["executed", "failed", "unknown"];
    for (id, want) in ids.iter().zip(expected) {
        let mut last = Value::Null;
        // The run without a recorded session is given START_GRACE (15s).
        let settled = wait_until(Duration::from_secs(40), || {
            last = show(&proxy, id.0);
            last["status"] != "running"
        });
        assert!(settled, "request {id} still running: {last}");
        assert_eq!(last["status"], want, "request {id}: {last}");
    }
    let r = show(&proxy, ids[1].0);
    assert!(
        r["run"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("aborted")),
        "{r}"
    );
    let r = show(&proxy, ids[2].0);
    assert!(
        r["run"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no upstream session was recorded")),
        "{r}"
    );
    // Never re-run: the statements' values never reached the table.
    assert_eq!(values(db), "1=v1,2=v2,3=v3");
    assert!(
        proxy
            .stderr()
            .contains("settled a request whose run is gone"),
        "{}",
        proxy.stderr()
    );
}
