//! Query cancellation through the proxy: an interactive psql cancels with
//! Ctrl-C (57014 long before the statement would end) and keeps its
//! session; a raw client sees the real upstream pid in BackendKeyData, a
//! CancelRequest with the right key cancels, and one with a wrong key (or a
//! wrong pid) cancels nothing.

mod common;

use common::raw;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn running_queries(db: &str, query: &str) -> i64 {
    admin_query(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active' AND query = '{}'",
            query.replace('\'', "''")
        ),
    )
    .parse()
    .unwrap()
}

#[test]
fn interactive_psql_ctrl_c_cancels_and_session_goes_on() {
    let db = "airlock_t_cancel_psql";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let conn = proxy.conn("alice", &format!("{db}-dev"));

    // psql on a pseudo-terminal (script(1)), so it runs interactively and
    // Ctrl-C (0x03) reaches it as SIGINT from the terminal, as for a user.
    // `exec` makes psql script's own child: otherwise the shell in between
    // also gets the terminal's SIGINT, dies of it, and script reports 130
    // although psql went on and quit cleanly.
    let psql_line = format!(
        "exec psql -X -P pager=off -v VERBOSITY=verbose -d \"{}\"",
        conn.conninfo()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &psql_line, "/dev/null"])
        .env("PGPASSWORD", &conn.password)
        .env("PGAPPNAME", APP_NAME)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb")
        .env("PSQL_HISTORY", "/dev/null")
        .env_remove("PGOPTIONS");
    let mut term = Background::spawn(cmd);
    assert!(
        term.wait_for_output("=#", Duration::from_secs(20))
            || term.wait_for_output("=>", Duration::from_secs(1)),
        "psql gave no prompt through the proxy: {:?}",
        term.output_so_far()
    );
    let sleep_sql = "SELECT pg_sleep(30);";
    term.write_stdin(format!("{sleep_sql}\n").as_bytes());
    assert!(
        wait_until(Duration::from_secs(15), || running_queries(db, sleep_sql)
            == 1),
        "the sleep never ran upstream: {:?}",
        term.output_so_far()
    );
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    term.write_stdin(b"\x03");
    assert!(
        term.wait_for_output(
            "canceling statement due to user request",
            Duration::from_secs(10)
        ),
        "no cancel error within 10 s: {:?}",
        term.output_so_far()
    );
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    let (out, _) = term.output_so_far();
    assert!(out.contains("57014"), "SQLSTATE 57014 expected: {out}");
    assert_eq!(
        running_queries(db, sleep_sql),
        0,
        "the upstream query is still running"
    );

    // Same session, still usable.
    term.write_stdin(b"SELECT 'still ' || 'alive' AS status, pg_backend_pid() > 0 AS has_pid;\n");
    assert!(
        term.wait_for_output("still alive", Duration::from_secs(10)),
        "session not usable after cancel: {:?}",
        term.output_so_far()
    );
    term.write_stdin(b"\\q\n");
    let done = term.wait(Duration::from_secs(10));
    assert!(done.success(), "{}", done.describe());
}

#[test]
fn raw_cancel_right_key_cancels_wrong_key_does_not() {
    let db = "airlock_t_cancel_raw";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let addr = proxy.addr();
    let target = format!("{db}-dev");
    let mut c = raw::login(&addr, "alice", password_of("alice"), &target);
    c.assert_ready("alice");
    let pid = c.handshake.backend_pid.expect("BackendKeyData pid");
    let key = c.handshake.backend_key.clone().expect("BackendKeyData key");
    assert_eq!(key.len(), 4, "protocol 3.0 secret keys are 4 bytes");

    // The pid handed to the client is the real upstream backend's.
    let r = c.simple_query("SELECT pg_backend_pid()").unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(
        r.rows,
        vec![vec![Some(pid.to_string())]],
        "BackendKeyData pid must be the upstream pid"
    );

    // Wrong key, and right key with the wrong pid: nothing is cancelled.
    let wrong_key: Vec<u8> = key.iter().map(|b| b ^ 0x5a).collect();
    let addr2 = addr.clone();
    let k2 = key.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        raw::send_cancel(&addr2, pid, &wrong_key);
        raw::send_cancel(&addr2, pid ^ 1, &k2);
        raw::send_cancel(&addr2, pid, &[0, 0, 0, 0]);
    });
    let t0 = Instant::now();
    let r = c
        .simple_query("SELECT pg_sleep(3), 'completed' AS outcome")
        .unwrap();
    let took = t0.elapsed();
    sender.join().unwrap();
    assert!(
        r.errors.is_empty(),
        "a CancelRequest with a wrong key cancelled the query: {:?}",
        r.errors
    );
    assert_eq!(
        r.rows,
        vec![vec![Some(String::new()), Some("completed".into())]]
    );
    assert!(
        took >= Duration::from_secs(3),
        "query ended early: {took:?}"
    );

    // The right key cancels, quickly.
    let addr2 = addr.clone();
    let k2 = key.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        raw::send_cancel(&addr2, pid, &k2);
    });
    let t0 = Instant::now();
    let r = c.simple_query("SELECT pg_sleep(30)").unwrap();
    let took = t0.elapsed();
    sender.join().unwrap();
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert_eq!(r.errors[0].code(), "57014", "{:?}", r.errors[0]);
    assert_eq!(r.errors[0].severity(), "ERROR");
    assert!(took < Duration::from_secs(6), "cancel took {took:?}");
    assert_eq!(r.status, b'I');

    // Session goes on; within a transaction the block is aborted as usual.
    let r = c.simple_query("SELECT 40 + 2").unwrap();
    assert_eq!(r.rows, vec![vec![Some("42".into())]]);
    let r = c.simple_query("BEGIN").unwrap();
    assert_eq!(r.status, b'T');
    let addr2 = addr.clone();
    let k2 = key.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        raw::send_cancel(&addr2, pid, &k2);
    });
    let r = c.simple_query("SELECT pg_sleep(30)").unwrap();
    sender.join().unwrap();
    assert_eq!(r.errors.first().map(|e| e.code()), Some("57014"), "{r:?}");
    assert_eq!(r.status, b'E', "the transaction block is aborted");
    let r = c.simple_query("SELECT 1").unwrap();
    assert_eq!(r.errors.first().map(|e| e.code()), Some("25P02"), "{r:?}");
    let r = c.simple_query("ROLLBACK").unwrap();
    assert_eq!(r.tags, vec!["ROLLBACK".to_string()]);
    assert_eq!(r.status, b'I');
    c.terminate();

    // A CancelRequest for a session that has ended is ignored, and the proxy goes on.
    raw::send_cancel(&addr, pid, &key);
    let mut c2 = raw::login(&addr, "alice", password_of("alice"), &target);
    c2.assert_ready("second login");
    let r = c2.simple_query("SELECT 1").unwrap();
    assert_eq!(r.rows, vec![vec![Some("1".into())]]);
}
