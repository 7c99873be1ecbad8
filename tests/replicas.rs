//! Replicas and operations (SPEC §9, §10): two `airlock serve` processes on
//! one PostgreSQL store. A session waiting for a decision on one replica is
//! woken by an approval on the other (store events over LISTEN/NOTIFY); a
//! waiting session whose client goes away cancels its request (audited)
//! unless the developer asked to keep it; identical holds racing on both
//! replicas make one request.

mod common;

use common::requests::requests_cli;
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
    let kept = {
        let mut id = String::new();
        assert!(wait_until(Duration::from_secs(30), || {
            id = admin_query(
                &store_db,
                "SELECT coalesce(max(id), 0) FROM requests WHERE status = 'pending'",
            );
            id != "0"
        }));
        id.parse::<i64>().expect("id")
    };
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
