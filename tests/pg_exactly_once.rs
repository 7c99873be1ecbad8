//! Exactly once (SPEC §5, §10): two airlock processes sharing a PostgreSQL
//! store run an approved request once however many `run` calls race for it
//! (HTTP through the CLI and `CALL airlock.run` in sessions, on both);
//! SIGKILL while a request is pending loses nothing; SIGKILL while it runs
//! ends, after a restart, in `failed` with nothing changed and nothing
//! re-run; crash recovery leaves alone a run that is live upstream (another
//! replica's) and waits for a transaction still in progress.

mod common;

use airlock_core::{
    Actor, ChangeRequest, Held, RequestDetails, RequestId, RequestStatus, SystemClock, Workflow,
};
use airlock_store::SqlStore;
use common::requests::{request_details, requests_cli_cmd, AnyApprover};
use common::*;
use serde_json::Value;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ALICE_TOKEN: &str = "alk_alice_once_token_0123456789";
const BOB_TOKEN: &str = "alk_bob_once_token_0123456789";

fn seed(db: &str) {
    fresh_db_with(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, v text); \
             INSERT INTO t (id, v) SELECT g, 'v' || g FROM generate_series(1, 3) g",
    );
}

fn config(db: &str, store_url: &str) -> ProxyConfig {
    let mut cfg = ProxyConfig::for_db(db)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN);
    cfg.store_url = Some(store_url.to_string());
    cfg.server_extra
        .push(("reconcile_interval".into(), "\"1s\"".into()));
    cfg
}

/// A SQLite store file in `dir` (kept by the caller across restarts).
/// The database behind `fresh_pg_store(name)`.
fn store_db(name: &str) -> String {
    format!("airlock_state_t_{name}")
}

fn sqlite_store(dir: &tempfile::TempDir) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("state.db").display()
    )
}

fn cli(proxy: &Proxy, token: &str, args: &[&str]) -> Out {
    run_with_timeout(
        requests_cli_cmd(proxy, token, args),
        None,
        Duration::from_secs(60),
    )
}

fn show(proxy: &Proxy, id: i64) -> Value {
    let out = cli(proxy, BOB_TOKEN, &["show", &id.to_string(), "--json"]);
    out.assert_success("requests show");
    let v: Value = serde_json::from_str(out.stdout().trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.describe()));
    v["request"].clone()
}

fn approve(proxy: &Proxy, id: i64) {
    let out = cli(proxy, BOB_TOKEN, &["approve", &id.to_string()]);
    out.assert_success("requests approve");
}

/// Holds `sql` as alice in a psql session on `proxy`; returns the request number.
fn hold(proxy: &Proxy, db: &str, sql: &str) -> i64 {
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let out = alice.psql(&[
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SET airlock.reason = 'exactly once test'",
        "-c",
        sql,
    ]);
    let err = out.stderr();
    assert!(err.contains("AL001"), "{}", out.describe());
    let at = err
        .find("request #")
        .unwrap_or_else(|| panic!("no request number: {}", out.describe()));
    err[at + "request #".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("bad request number: {}", out.describe()))
}

/// Waits (up to `timeout`) until request `id` has left `from`; returns it.
fn wait_status_change(proxy: &Proxy, id: i64, from: &str, timeout: Duration) -> Value {
    let mut last = Value::Null;
    let changed = wait_until(timeout, || {
        last = show(proxy, id);
        last["status"] != from
    });
    assert!(
        changed,
        "request #{id} still {from} after {timeout:?}: {last}"
    );
    last
}

/// Sessions of run `id` (`airlock:run#<id>:…`) on database `db`, by state.
fn run_sessions(db: &str, id: i64, extra: &str) -> i64 {
    admin_query(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
             AND application_name LIKE 'airlock:run#{id}:%' {extra}"
        ),
    )
    .parse()
    .expect("count")
}

/// Audit events of `kind` for request `id` (`airlock audit export`).
fn audit_count(proxy: &Proxy, id: i64, kind: &str) -> usize {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(["audit", "export", "--format", "jsonl", "--config"])
        .arg(&proxy.config_path);
    for (k, v) in &proxy.config.env {
        cmd.env(k, v);
    }
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    out.assert_success("audit export");
    out.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == kind && e["request_id"] == id)
        .count()
}

#[test]
fn twenty_concurrent_runs_over_two_replicas_execute_once() {
    let db = "airlock_t_once_race";
    seed(db);
    let store = fresh_pg_store("once_race");
    let cfg = config(db, &store);
    let one = Proxy::start(cfg.clone());
    let two = Proxy::start(cfg);
    let proxies = [&one, &two];

    // Held on one replica, approved through the other.
    let id = hold(&one, db, "UPDATE t SET n = n + 1 WHERE id = 1");
    approve(&two, id);
    assert_eq!(show(&one, id)["status"], "approved");
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "0");

    // 20 attempts at once: HTTP (CLI) and session (CALL), on both replicas.
    let call = format!("CALL airlock.run({id})");
    let id_arg = id.to_string();
    let mut attempts = Vec::new();
    for i in 0..20 {
        let proxy = proxies[i % 2];
        let via_http = (i / 2) % 2 == 0;
        let cmd = if via_http {
            requests_cli_cmd(proxy, ALICE_TOKEN, &["run", &id_arg])
        } else {
            proxy.conn("alice", &format!("{db}-prod")).psql_cmd(&[
                "-v",
                "VERBOSITY=verbose",
                "-c",
                &call,
            ])
        };
        attempts.push((i, via_http, Background::spawn(cmd)));
    }
    let outs: Vec<(usize, bool, Out)> = attempts
        .into_iter()
        .map(|(i, http, bg)| (i, http, bg.wait(Duration::from_secs(60))))
        .collect();
    let winners: Vec<&(usize, bool, Out)> = outs.iter().filter(|(_, _, o)| o.success()).collect();
    let all: Vec<String> = outs
        .iter()
        .map(|(i, http, o)| format!("attempt {i} (http={http}): {}", o.describe()))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one run succeeds:\n{}",
        all.join("\n")
    );
    let (_, http, out) = winners[0];
    if *http {
        assert!(out.stdout().contains("executed"), "{}", out.describe());
    } else {
        assert!(out.stdout().contains("UPDATE 1"), "{}", out.describe());
    }
    for (i, http, o) in &outs {
        if o.success() {
            continue;
        }
        assert!(!o.timed_out, "attempt {i}: {}", o.describe());
        assert_eq!(o.code(), 1, "attempt {i} (http={http}): {}", o.describe());
        assert!(
            o.stderr().contains("nothing was run") || o.stderr().contains("HTTP 409"),
            "attempt {i} (http={http}) was refused: {}",
            o.describe()
        );
    }

    // Upstream: once. In the store: executed, one running transition.
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "1");
    for proxy in proxies {
        let r = show(proxy, id);
        assert_eq!(r["status"], "executed", "{r}");
        assert_eq!(r["run"]["rows_affected"], 1, "{r}");
    }
    let store_db = store.rsplit('/').next().unwrap();
    assert_eq!(
        admin_query(
            store_db,
            &format!(
                "SELECT count(*) FROM audit_events WHERE request_id = {id} AND kind = 'request.running'"
            )
        ),
        "1"
    );
    assert_eq!(
        admin_query(
            store_db,
            &format!("SELECT status FROM requests WHERE id = {id}")
        ),
        "executed"
    );
}

#[test]
fn sigkill_while_pending_loses_nothing() {
    let db = "airlock_t_once_pending";
    seed(db);
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(db, &sqlite_store(&state));
    let first = Proxy::start(cfg.clone());
    let id = hold(&first, db, "UPDATE t SET v = 'after restart' WHERE id = 2");
    assert_eq!(show(&first, id)["status"], "pending");
    first.signal("KILL");
    let mut first = first;
    assert!(first.wait_exit(Duration::from_secs(10)).is_some());

    let second = Proxy::start(cfg);
    let r = show(&second, id);
    assert_eq!(r["status"], "pending", "{r}");
    assert_eq!(r["requester"], "alice", "{r}");
    assert_eq!(r["reason"], "exactly once test", "{r}");
    approve(&second, id);
    let out = second
        .conn("alice", &format!("{db}-prod"))
        .psql(&["-c", &format!("CALL airlock.run({id})")]);
    assert!(
        out.success() && out.stdout().contains("UPDATE 1"),
        "{}",
        out.describe()
    );
    assert_eq!(
        admin_query(db, "SELECT v FROM t WHERE id = 2"),
        "after restart"
    );
    assert_eq!(show(&second, id)["status"], "executed");
}

#[test]
fn sigkill_while_running_ends_failed_and_is_never_rerun() {
    let db = "airlock_t_once_killed";
    seed(db);
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(db, &sqlite_store(&state));
    let mut first = Proxy::start(cfg.clone());
    let id = hold(
        &first,
        db,
        "UPDATE t SET v = 'k' WHERE id = 1 AND pg_sleep(3) IS NOT NULL",
    );
    approve(&first, id);

    // The run starts in a session; SIGKILL while the statement sleeps.
    let mut cmd = first
        .conn("alice", &format!("{db}-prod"))
        .psql_cmd(&["-c", &format!("CALL airlock.run({id})")]);
    cmd.env("PGPASSWORD", password_of("alice"));
    let session = Background::spawn(cmd);
    assert!(
        wait_until(Duration::from_secs(10), || run_sessions(
            db,
            id,
            "AND state = 'active' AND query LIKE '%pg_sleep%'"
        ) == 1),
        "the run never reached the upstream"
    );
    let seen = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    first.signal("KILL");
    assert!(
        seen.elapsed() < Duration::from_millis(2500),
        "the kill may have come after the statement ended ({:?})",
        seen.elapsed()
    );
    assert!(first.wait_exit(Duration::from_secs(10)).is_some());
    let out = session.wait(Duration::from_secs(30));
    assert!(!out.success(), "{}", out.describe());
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 1"), "v1");

    // Restart on the same store: settled from the upstream, not re-run.
    let second = Proxy::start(cfg);
    let r = wait_status_change(&second, id, "running", Duration::from_secs(40));
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["run"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("aborted")),
        "{r}"
    );
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 1"), "v1");
    assert_eq!(run_sessions(db, id, ""), 0, "no run session is left");
    assert_eq!(audit_count(&second, id, "request.running"), 1);
    assert_eq!(audit_count(&second, id, "request.failed"), 1);
    // Still failed and unchanged a moment later: nothing picks it up again.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(show(&second, id)["status"], "failed");
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 1"), "v1");
}

#[test]
fn recovery_leaves_a_run_live_on_another_replica_alone() {
    let db = "airlock_t_once_live";
    seed(db);
    let store = fresh_pg_store("once_live");
    let cfg = config(db, &store);
    // The replica started first holds the reconciler's lease.
    let two = Proxy::start(cfg.clone());
    assert!(
        wait_until(Duration::from_secs(10), || admin_query(
            &store_db("once_live"),
            "SELECT count(*) FROM leases WHERE name = 'reconciler'"
        ) == "1"),
        "no reconciler took the lease"
    );
    let one = Proxy::start(cfg);
    let id = hold(
        &one,
        db,
        "UPDATE t SET n = n + 1 WHERE id = 1 AND pg_sleep(6) IS NOT NULL",
    );
    approve(&one, id);
    let out_cmd = requests_cli_cmd(&one, ALICE_TOKEN, &["run", &id.to_string()]);
    let run = Background::spawn(out_cmd);
    assert!(
        wait_until(Duration::from_secs(10), || run_sessions(
            db,
            id,
            "AND state = 'active'"
        ) == 1),
        "the run never reached the upstream"
    );

    // The reconciler on the other replica sees the run's backend live.
    assert!(
        wait_until(Duration::from_secs(10), || two
            .stderr()
            .contains(&format!("run #{id} is live upstream"))),
        "{}",
        two.stderr()
    );
    assert_eq!(show(&two, id)["status"], "running");

    // The first replica finishes it; the reconciler never settled or re-ran it.
    let out = run.wait(Duration::from_secs(30));
    assert!(
        out.success() && out.stdout().contains("executed"),
        "{}",
        out.describe()
    );
    assert_eq!(show(&two, id)["status"], "executed");
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "1");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !two.stderr().contains("settled a request"),
        "{}",
        two.stderr()
    );
    let r = show(&two, id);
    assert_eq!(r["status"], "executed", "{r}");
    assert!(r["run"]["error"].is_null(), "{r}");
    assert_eq!(audit_count(&two, id, "request.running"), 1);
}

fn details(target: &str, statement: &str) -> RequestDetails {
    request_details("alice", target, statement, "ticket OPS-9")
}

#[test]
fn recovery_waits_for_a_transaction_still_in_progress() {
    let db = "airlock_t_once_inprogress";
    seed(db);
    let state = tempfile::tempdir().expect("tempdir");
    let url = sqlite_store(&state);
    let target = format!("{db}-prod");

    // An open upstream transaction (not labelled as an airlock run): the
    // state a dead proxy's run is in until its backend notices.
    let mut open =
        Background::spawn(Conn::direct(db).psql_cmd(&["-q", "-At", "-v", "ON_ERROR_STOP=1"]));
    open.write_stdin(b"BEGIN;\nUPDATE t SET v = 'in flight' WHERE id = 3;\nSELECT 'xid=' || pg_current_xact_id();\n");
    assert!(open.wait_for_output("xid=", Duration::from_secs(20)));
    assert!(wait_until(Duration::from_secs(5), || open
        .output_so_far()
        .0
        .contains('\n')));
    let (stdout, _) = open.output_so_far();
    let xid: String = stdout
        .split("xid=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!xid.is_empty(), "{stdout}");

    // A request left running with that transaction's id.
    let id: RequestId = tokio::runtime::Builder::new_current_thread()
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
            let statement = "UPDATE t SET v = 'in flight' WHERE id = 3";
            let id = match wf.hold(details(&target, statement)).await.expect("hold") {
                Held::Created(ChangeRequest { id, .. }) => id,
                other => panic!("expected a new request, got {other:?}"),
            };
            let bob = Actor::new("bob", ["developers", "dba"]);
            wf.approve(id, &bob, "cli", None).await.expect("approve");
            wf.start_run(id, &Actor::new("alice", ["developers"]))
                .await
                .expect("start run");
            // As an older airlock recorded it: no backend.
            let session = airlock_core::UpstreamSession {
                xid: Some(xid.clone()),
                backend: None,
            };
            wf.record_upstream(id, RequestStatus::Running, &session)
                .await
                .expect("record xid");
            store.close().await;
            id
        });

    // While the transaction is in progress, recovery waits (not `unknown`).
    let proxy = Proxy::start(config(db, &url));
    std::thread::sleep(Duration::from_secs(3));
    let r = show(&proxy, id.0);
    assert_eq!(r["status"], "running", "{r}");

    // It commits: recovery settles `executed` from pg_xact_status.
    open.write_stdin(b"COMMIT;\n");
    let out = open.wait(Duration::from_secs(20));
    assert!(out.success(), "{}", out.describe());
    let r = wait_status_change(&proxy, id.0, "running", Duration::from_secs(20));
    assert_eq!(r["status"], "executed", "{r}");
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 3"), "in flight");
    assert!(
        proxy
            .stderr()
            .contains("settled a request whose run is gone"),
        "{}",
        proxy.stderr()
    );
}
