//! Holding in the session (SPEC §4) through psql on a protected target: a
//! held UPDATE becomes a change request and changes nothing; a re-send while
//! pending makes no duplicate; another user approves with the CLI; a re-send
//! with other literals is a new request; the approved statement re-sent runs
//! once and returns its real result; a further re-send is held again.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const BOB_TOKEN: &str = "bob-api-token-for-tests-7f3a";

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

fn cli(proxy: &Proxy, args: &[&str]) -> Out {
    common::requests::requests_cli(proxy, BOB_TOKEN, args)
}

#[test]
fn held_update_is_approved_by_another_user_and_runs_once_on_resend() {
    hold_approve_resend_flow("airlock_t_hold_flow", None);
}

/// The same flow with the state in PostgreSQL instead of the SQLite file.
#[test]
fn held_update_flow_with_a_postgresql_store() {
    let store = fresh_pg_store("hold_flow");
    hold_approve_resend_flow("airlock_t_hold_flow_pgstore", Some(store));
}

/// Held → approved by another user with the CLI → re-sent: runs once.
/// `store_url`: the state store (default: SQLite next to the config).
fn hold_approve_resend_flow(db: &str, store_url: Option<String>) {
    seed(db);
    let mut config = ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN);
    config.store_url = store_url;
    let proxy = Proxy::start(config);
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let update = "UPDATE t SET v = 'x' WHERE id = 1";
    let send = |sql: &str| {
        alice.psql(&[
            "-X",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SET airlock.reason = 'fix the v of row 1'",
            "-c",
            sql,
        ])
    };

    // 0. The same statement, with another literal, ran on dev before (it
    // writes the value the row already has, so the data stays as seeded).
    let dev = proxy.conn("alice", &format!("{db}-dev"));
    let ran = dev.psql(&["-c", "UPDATE t SET v = 'v3' WHERE id = 3"]);
    assert!(ran.stdout().contains("UPDATE 1"), "{}", ran.describe());
    // Recording is off the session's path: wait until the dev run is stored.
    assert!(
        common::requests::wait_for_executions(&proxy, &format!("{db}-dev"), 1),
        "the dev run was not recorded"
    );

    // 1. Held: a request, NOTICEs with the context, AL001, nothing changed.
    let out = send(update);
    let err = out.stderr();
    assert!(err.contains("ERROR:  AL001"), "{}", out.describe());
    assert!(
        err.contains(&format!("earlier run on {db}-dev (dev) by alice"))
            && err.contains("1 row(s)"),
        "the dev run must be shown: {}",
        out.describe()
    );
    assert!(
        err.contains("planner estimate: about 1 row(s)"),
        "the row estimate must be shown: {}",
        out.describe()
    );
    assert!(err.contains("request #1"), "{}", out.describe());
    assert!(
        err.contains("NOTICE:") && err.contains("summary"),
        "{}",
        out.describe()
    );
    assert_eq!(values(db), "1=v1,2=v2,3=v3");

    // 2. The same statement again while pending: said so, no duplicate.
    let out = send(update);
    assert!(out.stderr().contains("still pending"), "{}", out.describe());
    let listed = alice.psql(&["-At", "-c", "SHOW airlock.requests"]);
    assert_eq!(listed.stdout().lines().count(), 1, "{}", listed.describe());
    assert!(
        listed.stdout().starts_with("1|pending|"),
        "{}",
        listed.describe()
    );

    // 3. Bob approves with the CLI.
    let approved = cli(&proxy, &["approve", "1"]);
    assert!(approved.success(), "{}", approved.describe());

    // 4. Other literals: a new request, which does not use the approval.
    let out = send("UPDATE t SET v = 'x' WHERE id = 2");
    assert!(out.stderr().contains("request #2"), "{}", out.describe());
    assert_eq!(values(db), "1=v1,2=v2,3=v3");

    // 5. The approved statement re-sent: runs once, real result.
    let out = send(update);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout().contains("UPDATE 1"), "{}", out.describe());
    assert!(
        out.stderr().contains("committed independently"),
        "{}",
        out.describe()
    );
    assert_eq!(values(db), "1=x,2=v2,3=v3");

    // 6. Once more: held again as a new request.
    let out = send(update);
    assert!(
        out.stderr().contains("AL001") && out.stderr().contains("request #3"),
        "{}",
        out.describe()
    );

    // The store knows: #1 executed with 1 row.
    let shown = cli(&proxy, &["show", "1", "--json"]);
    assert!(shown.success(), "{}", shown.describe());
    assert!(
        shown.stdout().contains("\"executed\""),
        "{}",
        shown.describe()
    );
}

#[test]
fn airlock_settings_never_reach_the_upstream_and_cancel_works() {
    let db = "airlock_t_hold_settings";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let out = alice.psql(&[
        "-qAt",
        "-c",
        "SET airlock.reason = 'why not'",
        "-c",
        "SHOW airlock.reason",
        "-c",
        "SET airlock.max_rows = 5",
        "-c",
        "SHOW airlock.max_rows",
    ]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.stdout(), "why not\n5\n");
    let bad = alice.psql(&["-c", "SET airlock.reasn = 'typo'"]);
    assert!(bad.stderr().contains("airlock.reasn"), "{}", bad.describe());

    // Comment form: the reason travels with the statement.
    let out = alice.psql(&[
        "-c",
        "/* airlock: reason=from a comment */ DELETE FROM t WHERE id = 3",
    ]);
    assert!(out.stderr().contains("request #1"), "{}", out.describe());
    assert!(
        out.stderr().contains("no earlier run")
            && out
                .stderr()
                .contains("never ran successfully in a lower environment"),
        "{}",
        out.describe()
    );
    let out = alice.psql(&["-c", "CALL airlock.cancel(1)"]);
    assert!(out.success(), "{}", out.describe());
    let listed = alice.psql(&["-At", "-c", "SHOW airlock.requests"]);
    assert_eq!(
        listed.stdout().trim(),
        "",
        "a cancelled request is not open: {}",
        listed.describe()
    );
    assert_eq!(values(db), "1=v1,2=v2,3=v3");

    // Logins, good and bad, are in the audit trail with the request events.
    let refused = alice
        .clone()
        .with_password("not-her-password")
        .psql(&["-c", "SELECT 1"]);
    assert!(!refused.success());
    let mut cmd = Command::new(airlock_bin());
    cmd.args(["audit", "export", "--format", "jsonl", "--config"])
        .arg(&proxy.config_path);
    for (k, v) in &proxy.config.env {
        cmd.env(k, v);
    }
    let export = run_with_timeout(cmd, None, Duration::from_secs(30));
    assert!(export.success(), "{}", export.describe());
    let text = export.stdout();
    for kind in [
        "\"login\"",
        "\"login.refused\"",
        "\"request.created\"",
        "\"request.cancelled\"",
    ] {
        assert!(text.contains(kind), "no {kind} event in:\n{text}");
    }
    assert!(text.contains("authentication failed"), "{text}");
}

fn request_status(proxy: &Proxy, id: u32) -> String {
    let out = cli(proxy, &["show", &id.to_string(), "--json"]);
    assert!(out.success(), "{}", out.describe());
    out.stdout()
}

fn wait_until_exists(proxy: &Proxy, id: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cli(proxy, &["show", &id.to_string(), "--json"]).success() {
        assert!(
            std::time::Instant::now() < deadline,
            "request #{id} never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn wait_mode_blocks_until_approval_rejection_or_cancel() {
    let db = "airlock_t_hold_wait";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let waiting = |sql: &str| {
        let mut cmd = alice.psql_cmd(&[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SET airlock.wait = '60s'",
            "-c",
            sql,
        ]);
        cmd.env("PGPASSWORD", &alice.password);
        Background::spawn(cmd)
    };

    // Approved while waiting: the session gets the real result.
    let session = waiting("UPDATE t SET v = 'w' WHERE id = 1");
    wait_until_exists(&proxy, 1);
    assert_eq!(values(db), "1=v1,2=v2,3=v3", "nothing runs before approval");
    assert!(cli(&proxy, &["approve", "1"]).success());
    let out = session.wait(Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout().contains("UPDATE 1"), "{}", out.describe());
    assert!(out.stderr().contains("waiting up to"), "{}", out.describe());
    assert_eq!(values(db), "1=w,2=v2,3=v3");

    // Rejected while waiting: the ERROR carries the reviewer's reason.
    let session = waiting("UPDATE t SET v = 'r' WHERE id = 2");
    wait_until_exists(&proxy, 2);
    assert!(cli(&proxy, &["reject", "2", "--reason", "not on a Friday"]).success());
    let out = session.wait(Duration::from_secs(30));
    assert!(!out.success());
    assert!(
        out.stderr().contains("not on a Friday"),
        "{}",
        out.describe()
    );

    // Cancelled by the client (psql sends a CancelRequest on SIGINT).
    let session = waiting("UPDATE t SET v = 'c' WHERE id = 3");
    wait_until_exists(&proxy, 3);
    session.signal("INT");
    let out = session.wait(Duration::from_secs(30));
    assert!(
        out.stderr()
            .contains("canceling statement due to user request"),
        "{}",
        out.describe()
    );
    assert!(
        request_status(&proxy, 3).contains("\"cancelled\""),
        "{}",
        request_status(&proxy, 3)
    );
    assert_eq!(values(db), "1=w,2=v2,3=v3");
}

/// Sends `setup` then `sql` as separate Query messages in one session.
fn send_with(conn: &Conn, setup: &[&str], sql: &str) -> Out {
    let mut args = vec!["-X", "-v", "VERBOSITY=verbose"];
    for s in setup {
        args.push("-c");
        args.push(s);
    }
    args.push("-c");
    args.push(sql);
    conn.psql(&args)
}

#[test]
fn row_guard_rollback_and_scripts_as_one_request() {
    let db = "airlock_t_hold_guard";
    seed(db);
    admin_query(
        db,
        "INSERT INTO t SELECT g, 'bulk' FROM generate_series(100, 149) g",
    );
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let bulk = || admin_query(db, "SELECT count(*) FROM t WHERE v = 'bulk'");

    // max_rows = 5 on an UPDATE of 50 rows: approved, run, rolled back, failed with both counts.
    let update = "UPDATE t SET v = 'touched' WHERE v = 'bulk'";
    let out = send_with(&alice, &["SET airlock.max_rows = 5"], update);
    assert!(out.stderr().contains("request #1"), "{}", out.describe());
    assert!(cli(&proxy, &["approve", "1"]).success());
    let out = send_with(&alice, &["SET airlock.max_rows = 5"], update);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr().contains("50 rows") && out.stderr().contains("limit of 5"),
        "{}",
        out.describe()
    );
    assert_eq!(bulk(), "50", "the guard rolled the change back");
    assert!(request_status(&proxy, 1).contains("\"failed\""));

    // A rollback approved with the change runs on one call, no second review.
    let change = "UPDATE t SET v = 'changed' WHERE id = 2";
    let setup = ["SET airlock.rollback = 'UPDATE t SET v = ''v2'' WHERE id = 2'"];
    let out = send_with(&alice, &setup, change);
    assert!(out.stderr().contains("request #2"), "{}", out.describe());
    assert!(cli(&proxy, &["approve", "2"]).success());
    let out = send_with(&alice, &setup, change);
    assert!(out.stdout().contains("UPDATE 1"), "{}", out.describe());
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 2"), "changed");
    let out = alice.psql(&["-c", "CALL airlock.rollback(2)"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 2"), "v2");
    assert!(request_status(&proxy, 2).contains("\"rolled_back\""));

    // A script sent as one Query message is one request and runs atomically.
    let script = "UPDATE t SET v = 's1' WHERE id = 1; INSERT INTO t VALUES (7, 's2'); INSERT INTO t VALUES (1, 'dup'); SELECT 1";
    let out = send_with(&alice, &[], script);
    assert!(out.stderr().contains("request #3"), "{}", out.describe());
    let listed = alice.psql(&["-At", "-c", "SHOW airlock.requests"]);
    assert!(
        listed.stdout().starts_with("3|pending|"),
        "one request: {}",
        listed.describe()
    );
    assert!(cli(&proxy, &["approve", "3"]).success());
    let out = alice.psql(&["-v", "VERBOSITY=verbose", "-c", "CALL airlock.run(3)"]);
    assert!(
        out.stderr().contains("23505"),
        "the third write fails: {}",
        out.describe()
    );
    assert_eq!(
        admin_query(db, "SELECT v FROM t WHERE id = 1"),
        "v1",
        "nothing changed"
    );
    assert_eq!(admin_query(db, "SELECT count(*) FROM t WHERE id = 7"), "0");
    assert!(request_status(&proxy, 3).contains("\"failed\""));
}
