//! Limits (issue 8): connection caps (per user and in all) with Postgres's
//! own error, `idle_in_transaction_session_timeout` on protected read
//! sessions, and refused logins audited at a bounded rate (the rest counted).

mod common;

use common::raw;
use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn audit(proxy: &Proxy) -> Vec<Value> {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(["audit", "export", "--format", "jsonl", "--config"])
        .arg(&proxy.config_path)
        .envs(proxy.config.env.iter().map(|(k, v)| (k, v)));
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    out.assert_success("audit export");
    out.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn the_101st_session_of_a_user_capped_at_100_is_refused_and_the_others_are_unaffected() {
    let db = "airlock_t_limits_user";
    fresh_db(db);
    let mut cfg = ProxyConfig::for_db(db);
    cfg.server_extra
        .push(("max_connections_per_user".into(), "100".into()));
    let proxy = Proxy::start(cfg);
    let target = format!("{db}-dev");
    let mut open: Vec<raw::RawConn> = (0..100)
        .map(|i| {
            let c = raw::login(&proxy.addr(), "alice", password_of("alice"), &target);
            assert!(c.handshake.ready, "session {i}: {:?}", c.handshake.error);
            c
        })
        .collect();
    let over = raw::login(&proxy.addr(), "alice", password_of("alice"), &target);
    let error = over.handshake.error.clone().expect("the 101st is refused");
    assert_eq!(
        (error.severity(), error.code()),
        ("FATAL", "53300"),
        "{error:?}"
    );
    assert!(
        error
            .message()
            .contains("too many connections for role \"alice\""),
        "{error:?}"
    );
    // psql shows it in plain words.
    let out = proxy.conn("alice", &target).psql(&["-X", "-c", "SELECT 1"]);
    assert!(!out.success());
    assert!(
        out.stderr()
            .contains("too many connections for role \"alice\""),
        "{}",
        out.describe()
    );
    // The 100 go on; other users are not capped by alice's sessions.
    for c in open.iter_mut().step_by(10) {
        let r = c.simple_query("SELECT 1").expect("query");
        assert_eq!(r.rows, vec![vec![Some("1".into())]]);
    }
    proxy
        .conn("bob", &target)
        .psql(&["-X", "-c", "SELECT 1"])
        .assert_success("bob");
    // One closes: alice may connect again.
    drop(open.pop());
    let again = wait_until(Duration::from_secs(10), || {
        raw::login(&proxy.addr(), "alice", password_of("alice"), &target)
            .handshake
            .ready
    });
    assert!(again, "a freed slot is not reused");
}

#[test]
fn the_server_wide_cap_refuses_with_too_many_clients() {
    let db = "airlock_t_limits_all";
    fresh_db(db);
    let mut cfg = ProxyConfig::for_db(db);
    cfg.server_extra
        .push(("max_client_connections".into(), "2".into()));
    let proxy = Proxy::start(cfg);
    let target = format!("{db}-dev");
    let a = raw::login(&proxy.addr(), "alice", password_of("alice"), &target);
    let b = raw::login(&proxy.addr(), "bob", password_of("bob"), &target);
    assert!(a.handshake.ready && b.handshake.ready);
    let c = raw::login(&proxy.addr(), "alice", password_of("alice"), &target);
    let error = c.handshake.error.expect("refused");
    assert_eq!(error.code(), "53300", "{error:?}");
    assert!(error.message().contains("too many clients"), "{error:?}");
}

#[test]
fn a_forgotten_transaction_on_a_protected_target_times_out() {
    let db = "airlock_t_limits_idle";
    fresh_db(db);
    let mut cfg = ProxyConfig::for_db(db);
    cfg.server_extra
        .push(("idle_in_transaction_timeout".into(), "\"1s\"".into()));
    let proxy = Proxy::start(cfg);
    let mut c = raw::login(
        &proxy.addr(),
        "alice",
        password_of("alice"),
        &format!("{db}-prod"),
    );
    c.assert_ready("alice");
    let r = c
        .simple_query("SHOW idle_in_transaction_session_timeout")
        .expect("show");
    assert_eq!(r.rows, vec![vec![Some("1s".into())]]);
    let r = c.simple_query("BEGIN").expect("begin");
    assert_eq!(r.status, b'T');
    std::thread::sleep(Duration::from_millis(2500));
    let (tag, body) = raw::read_message(&mut c.stream).expect("the server's FATAL");
    assert_eq!(tag, b'E');
    let error = raw::PgError::parse(&body);
    assert_eq!(
        (error.severity(), error.code()),
        ("FATAL", "25P03"),
        "{error:?}"
    );
    // An unprotected target keeps the server's own setting.
    let mut dev = raw::login(
        &proxy.addr(),
        "alice",
        password_of("alice"),
        &format!("{db}-dev"),
    );
    let r = dev
        .simple_query("SHOW idle_in_transaction_session_timeout")
        .expect("show");
    assert_eq!(r.rows, vec![vec![Some("0".into())]]);
}

#[test]
fn refused_logins_are_audited_at_a_bounded_rate_and_the_rest_counted() {
    let db = "airlock_t_limits_flood";
    fresh_db(db);
    let mut cfg = ProxyConfig::for_db(db);
    cfg.server_extra
        .push(("refused_login_audits_per_second".into(), "2".into()));
    let proxy = Proxy::start(cfg);
    let target = format!("{db}-dev");
    let flood = 12;
    for _ in 0..flood {
        let c = raw::login(&proxy.addr(), "alice", "not-the-password", &target);
        assert_eq!(
            c.handshake.error.map(|e| e.code().to_string()).as_deref(),
            Some("28P01")
        );
    }
    let (_, _, body) = http_raw(proxy.http_port, "GET", "/metrics", &[], "");
    let count = |outcome: &str| -> u64 {
        let key = format!("airlock_client_sessions_refused_total{{outcome=\"{outcome}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("login_refused"), flood, "{body}");
    let unaudited = count("login_refused_unaudited");
    let audited = audit(&proxy)
        .iter()
        .filter(|e| e["kind"] == "login.refused")
        .count() as u64;
    assert_eq!(
        audited + unaudited,
        flood,
        "every refusal is audited or counted"
    );
    assert!(
        unaudited > 0,
        "the flood was not bounded: {audited} audited"
    );
    // A good login still works at once.
    proxy
        .conn("alice", &target)
        .psql(&["-X", "-c", "SELECT 1"])
        .assert_success("alice");
}
