//! Replicas and operations (SPEC §9, §10): two `airlock serve` processes on
//! one PostgreSQL store. A session waiting for a decision on one replica is
//! woken by an approval on the other (store events over LISTEN/NOTIFY); a
//! waiting session whose client goes away cancels its request (audited)
//! unless the developer asked to keep it; identical holds racing on both
//! replicas make one request.

mod common;

use common::requests::{requests_cli, requests_cli_cmd};
use common::*;
use std::time::Duration;

const ALICE_TOKEN: &str = "alk_alice_replica_token_0123456789";
const BOB_TOKEN: &str = "alk_bob_replica_token_0123456789";

/// A seeded target database and a fresh PostgreSQL store; returns the
/// config both replicas share and the store's database name.
fn setup(db: &str, store: &str) -> (ProxyConfig, String) {
    fresh_db_with(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); \
         INSERT INTO t (id) SELECT g FROM generate_series(1, 3) g",
    );
    let url = fresh_pg_store(store);
    let mut cfg = ProxyConfig::for_db(db)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN);
    cfg.store_url = Some(url);
    // Far beyond every wait here: only a store event can wake a session.
    cfg.server_extra
        .push(("wait_safety_poll".into(), "\"10min\"".into()));
    (cfg, format!("airlock_state_t_{store}"))
}

/// A psql session of alice on `proxy` that holds `sql` and waits for the
/// decision (`airlock.wait`), with `extra` settings first.
fn waiting_psql(proxy: &Proxy, db: &str, extra: &[&str], sql: &str) -> Background {
    let mut args = vec![
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SET airlock.reason = 'replica test'",
        "-c",
        "SET airlock.wait = '60s'",
    ];
    for e in extra {
        args.extend(["-c", e]);
    }
    args.extend(["-c", sql]);
    Background::spawn(proxy.conn("alice", &format!("{db}-prod")).psql_cmd(&args))
}

/// The one pending request in the store, once there is one.
fn pending_request(store_db: &str) -> i64 {
    let mut id = String::new();
    let found = wait_until(Duration::from_secs(30), || {
        id = admin_query(
            store_db,
            "SELECT coalesce(max(id), 0) FROM requests WHERE status = 'pending'",
        );
        id != "0"
    });
    assert!(found, "no request was held");
    id.parse().expect("request id")
}

fn status(store_db: &str, id: i64) -> String {
    admin_query(
        store_db,
        &format!("SELECT status FROM requests WHERE id = {id}"),
    )
}

#[test]
fn a_wait_on_one_replica_is_released_by_an_approval_on_the_other() {
    let db = "airlock_t_rep_wake";
    let (cfg, store_db) = setup(db, "rep_wake");
    let one = Proxy::start(cfg.clone());
    let two = Proxy::start(cfg);
    let session = waiting_psql(&one, db, &[], "UPDATE t SET n = n + 1 WHERE id = 1");
    let id = pending_request(&store_db);
    assert!(
        session.wait_for_output(
            &format!("waiting up to 1m for a decision on request #{id}"),
            Duration::from_secs(30)
        ),
        "the session does not wait: {:?}",
        session.output_so_far()
    );
    requests_cli(&two, BOB_TOKEN, &["approve", &id.to_string()]).assert_success("approve on two");
    // Released and run by the waiting session: the safety poll (10 min)
    // cannot have woken it, only the approval's event from the other replica.
    let out = session.wait(Duration::from_secs(30));
    out.assert_success("the waiting session");
    assert!(out.stdout().contains("UPDATE 1"), "{}", out.describe());
    assert_eq!(status(&store_db, id), "executed");
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "1");
}

#[test]
fn a_waiting_client_that_goes_away_cancels_its_request_unless_asked_to_keep_it() {
    let db = "airlock_t_rep_gone";
    let (cfg, store_db) = setup(db, "rep_gone");
    let one = Proxy::start(cfg);

    let session = waiting_psql(&one, db, &[], "UPDATE t SET n = n + 1 WHERE id = 2");
    let id = pending_request(&store_db);
    assert!(session.wait_for_output("waiting up to", Duration::from_secs(30)));
    signal_pid(session.pid(), "KILL");
    let cancelled = wait_until(Duration::from_secs(20), || {
        status(&store_db, id) == "cancelled"
    });
    assert!(
        cancelled,
        "request #{id} is {} after its client went away",
        status(&store_db, id)
    );
    let audited = admin_query(
        &store_db,
        &format!(
            "SELECT count(*) FROM audit_events WHERE request_id = {id} \
             AND kind = 'request.cancelled' AND payload LIKE '%disconnected while waiting%'"
        ),
    );
    assert_eq!(audited, "1", "the cancellation is audited with its cause");

    let keep = waiting_psql(
        &one,
        db,
        &["SET airlock.on_disconnect = 'keep'"],
        "UPDATE t SET n = n + 1 WHERE id = 3",
    );
    let kept = pending_request(&store_db);
    assert!(keep.wait_for_output("waiting up to", Duration::from_secs(30)));
    signal_pid(keep.pid(), "KILL");
    // The session notices at once; give it time to act (wrongly) before looking.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        status(&store_db, kept),
        "pending",
        "on_disconnect = keep keeps the request"
    );
    assert_eq!(admin_query(db, "SELECT sum(n) FROM t"), "0");

    let bad = one.conn("alice", &format!("{db}-prod")).psql(&[
        "-X",
        "-c",
        "SET airlock.on_disconnect = 'sometimes'",
    ]);
    assert!(
        !bad.success()
            && bad
                .stderr()
                .contains("on_disconnect must be 'cancel' or 'keep'"),
        "{}",
        bad.describe()
    );
}

#[test]
fn twenty_identical_holds_across_two_replicas_make_one_request() {
    let db = "airlock_t_rep_holds";
    let (cfg, store_db) = setup(db, "rep_holds");
    let one = Proxy::start(cfg.clone());
    let two = Proxy::start(cfg);
    let proxies = [&one, &two];
    let sessions: Vec<Background> = (0..20)
        .map(|i| {
            Background::spawn(
                proxies[i % 2]
                    .conn("alice", &format!("{db}-prod"))
                    .psql_cmd(&[
                        "-X",
                        "-v",
                        "VERBOSITY=verbose",
                        "-c",
                        "SET airlock.reason = 'replica test'",
                        "-c",
                        "UPDATE t SET n = 7 WHERE id = 1",
                    ]),
            )
        })
        .collect();
    let outs: Vec<Out> = sessions
        .into_iter()
        .map(|s| s.wait(Duration::from_secs(60)))
        .collect();
    for o in &outs {
        assert!(
            o.stderr().contains("AL001"),
            "every hold is answered as held: {}",
            o.describe()
        );
    }
    assert_eq!(admin_query(&store_db, "SELECT count(*) FROM requests"), "1");
    let created = outs
        .iter()
        .filter(|o| o.stderr().contains("held for approval as request"))
        .count();
    let still = outs
        .iter()
        .filter(|o| o.stderr().contains("still pending approval"))
        .count();
    assert_eq!(
        (created, still),
        (1, 19),
        "one creates the request, the others are told it is pending"
    );
    assert_eq!(admin_query(db, "SELECT sum(n) FROM t"), "0");
}

/// Holds `sql` as alice on `proxy` (no wait) and approves it as bob; returns its number.
fn held_and_approved(proxy: &Proxy, db: &str, store_db: &str, sql: &str) -> i64 {
    let out = proxy.conn("alice", &format!("{db}-prod")).psql(&[
        "-X",
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SET airlock.reason = 'replica test'",
        "-c",
        sql,
    ]);
    assert!(out.stderr().contains("AL001"), "{}", out.describe());
    let id = pending_request(store_db);
    requests_cli(proxy, BOB_TOKEN, &["approve", &id.to_string()]).assert_success("approve");
    id
}

/// `airlock requests run N` as alice against `proxy`, in the background.
fn run_in_background(proxy: &Proxy, id: i64) -> Background {
    Background::spawn(requests_cli_cmd(
        proxy,
        ALICE_TOKEN,
        &["run", &id.to_string()],
    ))
}

/// Waits until run `id` is executing its statement upstream.
fn wait_run_active(db: &str, id: i64) {
    let active = wait_until(Duration::from_secs(20), || {
        admin_query(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
                 AND application_name LIKE 'airlock:run#{id}:%' AND state = 'active'"
            ),
        ) == "1"
    });
    assert!(active, "run #{id} never reached the upstream");
}

fn run_error(store_db: &str, id: i64) -> String {
    admin_query(
        store_db,
        &format!("SELECT coalesce(run_error, '') FROM requests WHERE id = {id}"),
    )
}

fn transitions(store_db: &str, id: i64, kind: &str) -> String {
    admin_query(
        store_db,
        &format!("SELECT count(*) FROM audit_events WHERE request_id = {id} AND kind = '{kind}'"),
    )
}

/// Two replicas; the first started (`reconciler`) holds the reconciler's lease.
fn reconciler_and_runner(cfg: &ProxyConfig, store_db: &str) -> (Proxy, Proxy) {
    let mut cfg = cfg.clone();
    cfg.server_extra
        .push(("reconcile_interval".into(), "\"1s\"".into()));
    let reconciler = Proxy::start(cfg.clone());
    assert!(
        wait_until(Duration::from_secs(10), || admin_query(
            store_db,
            "SELECT count(*) FROM leases WHERE name = 'reconciler'"
        ) == "1"),
        "no reconciler took the lease"
    );
    (reconciler, Proxy::start(cfg))
}

const SLOW_UPDATE: &str = "UPDATE t SET n = n + 1 WHERE id = 1 AND pg_sleep(3) IS NOT NULL";

#[test]
fn kill_9_of_the_running_replica_is_settled_by_the_other_from_the_target() {
    let db = "airlock_t_rep_kill";
    let (cfg, store_db) = setup(db, "rep_kill");
    let (reconciler, mut runner) = reconciler_and_runner(&cfg, &store_db);

    // Killed while the change sleeps inside its transaction: never committed.
    let id = held_and_approved(&runner, db, &store_db, SLOW_UPDATE);
    let run = run_in_background(&runner, id);
    wait_run_active(db, id);
    signal_pid(runner.pid(), "KILL");
    let _ = run.wait(Duration::from_secs(30));
    let settled = wait_until(Duration::from_secs(40), || {
        status(&store_db, id) != "running"
    });
    assert!(
        settled,
        "request #{id} still running: {}",
        reconciler.stderr()
    );
    assert_eq!(
        status(&store_db, id),
        "failed",
        "{}",
        run_error(&store_db, id)
    );
    assert!(
        run_error(&store_db, id).contains("aborted"),
        "{}",
        run_error(&store_db, id)
    );
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "0");
    assert_eq!(
        transitions(&store_db, id, "request.running"),
        "1",
        "never re-run"
    );
    let _ = runner.wait_exit(Duration::from_secs(5));
}

#[test]
fn a_change_committed_before_its_replica_died_is_settled_executed() {
    let db = "airlock_t_rep_commit";
    let (cfg, store_db) = setup(db, "rep_commit");
    let (reconciler, runner) = reconciler_and_runner(&cfg, &store_db);
    let id = held_and_approved(&runner, db, &store_db, SLOW_UPDATE);
    let run = run_in_background(&runner, id);
    wait_run_active(db, id);
    // The store stops taking status changes: the run commits upstream but
    // cannot record it, and its replica dies in that window.
    let mut locker = Background::spawn(Conn::direct(&store_db).psql_cmd(&["-X", "-q"]));
    locker.write_stdin(b"BEGIN; SELECT seq FROM audit_head FOR UPDATE; \\echo locked\n");
    assert!(locker.wait_for_output("locked", Duration::from_secs(10)));
    let committed = wait_until(Duration::from_secs(20), || {
        admin_query(db, "SELECT n FROM t WHERE id = 1") == "1"
    });
    assert!(committed, "the change never committed upstream");
    signal_pid(runner.pid(), "KILL");
    let _ = run.wait(Duration::from_secs(30));
    locker.write_stdin(b"ROLLBACK;\n");
    locker.close_stdin();
    let _ = locker.wait(Duration::from_secs(10));
    let settled = wait_until(Duration::from_secs(40), || {
        status(&store_db, id) != "running"
    });
    assert!(
        settled,
        "request #{id} still running: {}",
        reconciler.stderr()
    );
    assert_eq!(status(&store_db, id), "executed", "{}", reconciler.stderr());
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "1");
    assert_eq!(
        transitions(&store_db, id, "request.running"),
        "1",
        "never re-run"
    );
}

#[test]
fn a_run_whose_upstream_connection_is_terminated_is_settled_at_once_from_pg_xact_status() {
    let db = "airlock_t_rep_term";
    let (cfg, store_db) = setup(db, "rep_term");
    // A reconciler that would only look after an hour: the run settles itself.
    let mut cfg = cfg;
    cfg.server_extra
        .push(("reconcile_interval".into(), "\"1h\"".into()));
    let proxy = Proxy::start(cfg);
    let id = held_and_approved(&proxy, db, &store_db, SLOW_UPDATE);
    let run = run_in_background(&proxy, id);
    wait_run_active(db, id);
    admin_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{db}' AND application_name LIKE 'airlock:run#{id}:%'"
    ))
    .assert_success("terminate the run's backend");
    let out = run.wait(Duration::from_secs(30));
    assert!(!out.success(), "{}", out.describe());
    assert_eq!(status(&store_db, id), "failed", "{}", out.describe());
    let error = run_error(&store_db, id);
    assert!(
        error.contains("connection lost")
            && error.contains("pg_xact_status")
            && error.contains("aborted"),
        "{error}"
    );
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "0");
}

#[test]
fn a_developer_who_disconnects_mid_run_does_not_abandon_it() {
    let db = "airlock_t_rep_leave";
    let (cfg, store_db) = setup(db, "rep_leave");
    let proxy = Proxy::start(cfg);
    let id = held_and_approved(&proxy, db, &store_db, SLOW_UPDATE);
    let session = Background::spawn(proxy.conn("alice", &format!("{db}-prod")).psql_cmd(&[
        "-X",
        "-c",
        &format!("CALL airlock.run({id})"),
    ]));
    wait_run_active(db, id);
    signal_pid(session.pid(), "KILL");
    let _ = session.wait(Duration::from_secs(10));
    let done = wait_until(Duration::from_secs(30), || {
        status(&store_db, id) != "running"
    });
    assert!(done, "request #{id} still running");
    assert_eq!(
        status(&store_db, id),
        "executed",
        "{}",
        run_error(&store_db, id)
    );
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "1");
}

#[test]
fn sigterm_mid_run_lets_the_change_finish_after_the_sessions_close() {
    let db = "airlock_t_rep_term_run";
    let (mut cfg, store_db) = setup(db, "rep_sigterm");
    // Sessions get 1s; the 3s change outlives them and still completes.
    cfg.server_extra
        .push(("shutdown_grace".into(), "\"1s\"".into()));
    let mut proxy = Proxy::start(cfg);
    let id = held_and_approved(&proxy, db, &store_db, SLOW_UPDATE);
    let session = Background::spawn(proxy.conn("alice", &format!("{db}-prod")).psql_cmd(&[
        "-X",
        "-c",
        &format!("CALL airlock.run({id})"),
    ]));
    wait_run_active(db, id);
    proxy.signal("TERM");
    let _ = session.wait(Duration::from_secs(20));
    let exited = proxy.wait_exit(Duration::from_secs(30));
    assert!(exited.is_some(), "airlock did not stop: {}", proxy.stderr());
    assert_eq!(status(&store_db, id), "executed", "{}", proxy.stderr());
    assert_eq!(admin_query(db, "SELECT n FROM t WHERE id = 1"), "1");
}

#[test]
fn a_cancel_request_sent_to_the_other_replica_cancels_the_query() {
    let db = "airlock_t_rep_cancel";
    let (cfg, _store_db) = setup(db, "rep_cancel");
    let one = Proxy::start(cfg.clone());
    let two = Proxy::start(cfg);
    let mut c = raw::login(
        &one.addr(),
        "alice",
        password_of("alice"),
        &format!("{db}-dev"),
    );
    c.assert_ready("alice");
    let pid = c.handshake.backend_pid.expect("BackendKeyData pid");
    let key = c.handshake.backend_key.clone().expect("BackendKeyData key");
    // The session's listing is written off the connect path: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let other = two.addr();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        raw::send_cancel(&other, pid, &key);
    });
    let r = c.simple_query("SELECT pg_sleep(30)").expect("query");
    sender.join().expect("sender");
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert_eq!(r.errors[0].code(), "57014", "{:?}", r.errors[0]);
    assert!(
        two.stderr()
            .contains("passed on to the replica that owns the session"),
        "{}",
        two.stderr()
    );
    // The session goes on.
    let r = c.simple_query("SELECT 40 + 2").expect("query");
    assert_eq!(r.rows, vec![vec![Some("42".into())]]);
}
