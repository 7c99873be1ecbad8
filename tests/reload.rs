//! SIGHUP reload (SPEC §9, §10): users, groups, policies and targets follow
//! the file without dropping sessions; a session whose user was removed
//! ends at its next statement with a clear error, whatever the protocol;
//! a removed target's sessions end at once with 57P01; a broken file is
//! refused and the configuration in force stays; every reload is audited
//! with the file's SHA-256; an idle psql survives it all.

mod common;

use common::raw::{self, PgError, RawConn};
use common::requests::requests_cli;
use common::*;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::time::Duration;

const DB: &str = "airlock_t_reload";
const STORE: &str = "airlock_state_t_reload";
const BOB_TOKEN: &str = "alk_bob_reload_token_0123456789";

fn carol() -> UserSpec {
    UserSpec {
        name: "carol".into(),
        team: "platform".into(),
        groups: vec!["developers".into(), "dba".into()],
        password: "carol-pw-5Rv".into(),
    }
}

fn addr(proxy: &Proxy) -> String {
    format!("127.0.0.1:{}", proxy.pg_port)
}

/// A logged-in raw session (simple and extended protocol by hand).
fn session(proxy: &Proxy, user: &str, target: &str) -> RawConn {
    let c = raw::login(&addr(proxy), user, &proxy.config.password(user), target);
    c.assert_ready(&format!("{user} on {target}"));
    c
}

/// Sends `bytes` (a statement) and returns the first message the proxy
/// answers before it closes the connection, which it must do.
fn answer_then_close(what: &str, conn: &mut RawConn, bytes: &[u8]) -> PgError {
    conn.stream.write_all(bytes).expect("send");
    let got = raw::wait_closed(&mut conn.stream, Duration::from_secs(10))
        .unwrap_or_else(|got| panic!("{what}: the connection stayed open after {got:?}"));
    assert_eq!(got.first(), Some(&b'E'), "{what}: {got:?}");
    PgError::parse(&got[5..])
}

/// Sends a statement as removed user bob and asserts the revocation FATAL.
fn assert_ended_for_removed_user(what: &str, conn: &mut RawConn, bytes: &[u8]) {
    let e = answer_then_close(what, conn, bytes);
    assert_eq!(
        (e.severity(), e.code()),
        ("FATAL", "28000"),
        "{what}: {e:?}"
    );
    assert!(
        e.message()
            .contains("user \"bob\" was removed from the configuration"),
        "{what}: {e:?}"
    );
}

/// The error and notices of a held statement, as one text.
fn held_message(conn: &mut RawConn, sql: &str) -> String {
    let r = conn.simple_query(sql).expect("held statement");
    let error = r
        .errors
        .first()
        .unwrap_or_else(|| panic!("{sql} was not held: {r:?}"));
    let mut text = error.message().to_string();
    for n in &r.notices {
        text.push('\n');
        text.push_str(n.message());
    }
    text
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn sighup_applies_users_policies_and_targets_without_dropping_sessions() {
    fresh_db_with(
        DB,
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); INSERT INTO t VALUES (1, 0)",
    );
    let mut cfg = ProxyConfig::for_db(DB).with_api_token("bob", BOB_TOKEN);
    cfg.store_url = Some(fresh_pg_store("reload"));
    let mut proxy = Proxy::start(cfg.clone());
    let prod = format!("{DB}-prod");
    let dev = format!("{DB}-dev");

    // Before: an idle psql, raw sessions of alice and bob on both targets
    // (guarded, recording relays), bob with a prepared statement.
    let mut idle_psql = Background::spawn(proxy.conn("alice", &prod).psql_cmd(&["-X", "-A", "-t"]));
    let mut alice_prod = session(&proxy, "alice", &prod);
    let mut alice_dev = session(&proxy, "alice", &dev);
    let mut bob_prod = session(&proxy, "bob", &prod);
    let mut bob_dev = session(&proxy, "bob", &dev);
    let mut bob_prepared = session(&proxy, "bob", &prod);
    let p = bob_prepared
        .prepare("s1", "SELECT n FROM t WHERE id = 1", &[])
        .expect("prepare");
    assert!(p.errors.is_empty(), "{p:?}");
    requests_cli(&proxy, BOB_TOKEN, &["list"]).assert_success("bob's API token");
    let carol_before = raw::login(&addr(&proxy), "carol", &carol().password, &prod);
    assert!(!carol_before.handshake.ready, "carol is not configured yet");
    alice_prod
        .simple_query("SET airlock.reason = 'reload test'")
        .expect("set reason");
    let first = held_message(&mut alice_prod, "UPDATE t SET n = n + 1 WHERE id = 1");
    assert!(first.contains("needs 1 approval(s)"), "{first}");

    // Reload: bob removed, carol added, writes need two approvals.
    let mut next = cfg.clone();
    next.users.retain(|u| u.name != "bob");
    next.users.push(carol());
    next.extra_toml
        .push_str("\n[policy]\napprovals_required = 2\n");
    assert!(proxy.reload_with(next.clone()), "{}", proxy.stderr());

    let mut carol_prod = session(&proxy, "carol", &prod);
    let r = carol_prod.simple_query("SELECT n FROM t").expect("carol");
    assert!(r.errors.is_empty(), "{r:?}");

    let select = raw::message(b'Q', b"SELECT 1\0");
    assert_ended_for_removed_user("bob, protected target", &mut bob_prod, &select);
    assert_ended_for_removed_user("bob, recorded target", &mut bob_dev, &select);
    let mut execute = raw::bind_execute("s1", &[]);
    execute.extend(raw::message(b'S', &[]));
    assert_ended_for_removed_user("bob, prepared statement", &mut bob_prepared, &execute);
    let bob_after = raw::login(&addr(&proxy), "bob", password_of("bob"), &prod);
    assert!(!bob_after.handshake.ready, "a removed user cannot log in");
    let api = requests_cli(&proxy, BOB_TOKEN, &["list"]);
    assert!(
        !api.success() && api.stderr().contains("unknown API token"),
        "a removed user's API token stops working: {}",
        api.describe()
    );

    let r = alice_prod
        .simple_query("SELECT n FROM t WHERE id = 1")
        .expect("alice");
    assert_eq!(r.rows, vec![vec![Some("0".to_string())]], "{r:?}");
    let second = held_message(&mut alice_prod, "UPDATE t SET n = n + 2 WHERE id = 1");
    assert!(
        second.contains("needs 2 approval(s)"),
        "the reloaded policy applies to the next held statement: {second}"
    );

    // A broken file is refused: everything stays as it is.
    assert!(!proxy.reload_text("[[users]\nname = \"broken\n"));
    assert!(
        proxy.stderr().contains("config reload refused"),
        "{}",
        proxy.stderr()
    );
    session(&proxy, "carol", &prod).terminate();
    let r = alice_dev.simple_query("SELECT 1").expect("alice dev");
    assert!(r.errors.is_empty(), "{r:?}");

    // The dev target removed: its sessions end at once, prod's stay.
    let mut third = next.clone();
    third.targets.retain(|t| t.name != dev);
    assert!(proxy.reload_with(third.clone()), "{}", proxy.stderr());
    let got = raw::wait_closed(&mut alice_dev.stream, Duration::from_secs(10))
        .expect("the removed target's session is closed at once");
    assert_eq!(got.first(), Some(&b'E'), "{got:?}");
    let e = PgError::parse(&got[5..]);
    assert_eq!((e.severity(), e.code()), ("FATAL", "57P01"), "{e:?}");
    assert!(
        e.message()
            .contains(&format!("target \"{dev}\" was removed")),
        "{e:?}"
    );
    let r = alice_prod.simple_query("SELECT 1").expect("alice prod");
    assert!(r.errors.is_empty(), "{r:?}");

    // The idle psql saw none of it.
    idle_psql.write_stdin(b"SELECT 'still ' || 'here';\n");
    assert!(
        idle_psql.wait_for_output("still here", Duration::from_secs(20)),
        "{:?}",
        idle_psql.output_so_far()
    );
    idle_psql.close_stdin();

    // Audited: each reload with the file's hash, the refusal, the sessions ended.
    let hashes = admin_query(
        STORE,
        "SELECT string_agg(payload::json->>'sha256', ',' ORDER BY seq) FROM audit_events WHERE kind = 'config.reloaded'",
    );
    let file = std::fs::read_to_string(&proxy.config_path).expect("config");
    let hashes: Vec<&str> = hashes.split(',').collect();
    assert_eq!(hashes.len(), 2, "{hashes:?}");
    assert_eq!(hashes[1], sha256_hex(&file));
    let refused = admin_query(
        STORE,
        "SELECT count(*) FROM audit_events WHERE kind = 'config.reload_refused'",
    );
    assert_eq!(refused, "1");
    // Each ended session is audited once its client was told.
    let revoked_sql = "SELECT string_agg(e, ',' ORDER BY e) FROM (SELECT actor || ':' || (payload::json->>'target') AS e FROM audit_events WHERE kind = 'session.revoked') s";
    let expected = format!("alice:{dev},bob:{dev},bob:{prod},bob:{prod}");
    let mut revoked = String::new();
    wait_until(Duration::from_secs(10), || {
        revoked = admin_query(STORE, revoked_sql);
        revoked == expected
    });
    assert_eq!(revoked, expected);
}
