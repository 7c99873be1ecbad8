//! Client authentication and target selection: wrong password and unknown
//! user give 28P01 and look the same; unknown target (3D000) and forbidden
//! target (42501) are only revealed after a correct password; md5 and
//! cleartext are never offered; the upstream session carries the
//! developer's name and the client's startup parameters; hostile or broken
//! clients never take the proxy down.

mod common;

use common::raw::{self, Handshake};
use common::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

fn assert_scram_only(who: &str, hs: &Handshake) {
    assert_eq!(
        hs.auth_codes.first(),
        Some(&10),
        "{who}: the first authentication request must be SASL: {hs:?}"
    );
    assert!(
        hs.sasl_mechanisms.iter().any(|m| m == "SCRAM-SHA-256"),
        "{who}: SCRAM-SHA-256 must be offered: {hs:?}"
    );
    assert!(
        !hs.auth_codes.contains(&3) && !hs.auth_codes.contains(&5),
        "{who}: cleartext/md5 must never be requested: {hs:?}"
    );
}

fn auth_error(who: &str, hs: &Handshake) -> raw::PgError {
    assert!(!hs.ready, "{who}: must not be let in: {hs:?}");
    hs.error
        .clone()
        .unwrap_or_else(|| panic!("{who}: expected an ErrorResponse, got {hs:?}"))
}

/// The error with every occurrence of `name` replaced by `USER`.
fn anonymized(e: &raw::PgError, name: &str) -> Vec<(char, String)> {
    e.fields
        .iter()
        .map(|(k, v)| (*k, v.replace(name, "USER")))
        .collect()
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let db = "airlock_t_auth_pw";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let addr = proxy.addr();
    let target = format!("{db}-dev");

    // Good password: full SCRAM exchange with a correct server signature.
    let ok = raw::login(&addr, "alice", password_of("alice"), &target);
    ok.assert_ready("alice with her password");
    assert_scram_only("alice", &ok.handshake);
    assert_eq!(
        ok.handshake.server_signature_ok,
        Some(true),
        "{:?}",
        ok.handshake
    );
    assert!(
        ok.handshake.auth_codes.ends_with(&[12, 0]),
        "{:?}",
        ok.handshake
    );

    let wrong = raw::login(&addr, "alice", "not-her-password", &target);
    assert_scram_only("alice, wrong password", &wrong.handshake);
    let e_wrong = auth_error("alice, wrong password", &wrong.handshake);
    assert_eq!(e_wrong.code(), "28P01", "{e_wrong:?}");
    assert_eq!(e_wrong.severity(), "FATAL", "{e_wrong:?}");

    let ghost = raw::login(&addr, "nosuchuser", "whatever-password", &target);
    assert_scram_only("unknown user", &ghost.handshake);
    let e_ghost = auth_error("unknown user", &ghost.handshake);
    assert_eq!(e_ghost.code(), "28P01", "{e_ghost:?}");

    // Same flow and same shape: nothing tells that the user does not exist.
    let (w, g) = (&wrong.handshake, &ghost.handshake);
    assert_eq!(
        w.auth_codes, g.auth_codes,
        "auth flow differs for an unknown user"
    );
    assert_eq!(w.sasl_mechanisms, g.sasl_mechanisms);
    assert_eq!(
        w.iterations, g.iterations,
        "iteration count gives unknown users away"
    );
    assert_eq!(
        w.salt_len, g.salt_len,
        "salt length gives unknown users away"
    );
    assert_eq!(w.tags, g.tags, "message sequence differs");
    assert_eq!(
        anonymized(&e_wrong, "alice"),
        anonymized(&e_ghost, "nosuchuser"),
        "error fields differ between wrong password and unknown user"
    );

    // What psql shows: the same message modulo the user name.
    let out_wrong = proxy
        .conn("alice", &target)
        .with_password("nope")
        .psql(&["-c", "SELECT 1"]);
    let out_ghost = proxy
        .conn("nosuchuser", &target)
        .with_password("nope")
        .psql(&["-c", "SELECT 1"]);
    assert_eq!(out_wrong.code(), 2, "{}", out_wrong.describe());
    assert!(
        out_wrong
            .stderr()
            .contains("password authentication failed for user \"alice\""),
        "{}",
        out_wrong.describe()
    );
    assert_eq!(
        out_wrong.stderr().replace("alice", "USER"),
        out_ghost.stderr().replace("nosuchuser", "USER")
    );
    assert_eq!(out_wrong.code(), out_ghost.code());
}

#[test]
fn targets_are_revealed_only_after_authentication() {
    let db = "airlock_t_auth_target";
    fresh_db(db);
    let mut cfg = ProxyConfig::for_db(db);
    let mut contractors = TargetSpec::local(&format!("{db}-contractors"), db, false);
    contractors.allowed_groups = vec!["contractors".into()];
    cfg.targets.push(contractors);
    let proxy = Proxy::start(cfg);
    let addr = proxy.addr();
    let dev = format!("{db}-dev");
    let missing = format!("{db}-nosuch");

    // Correct password, unknown target: 3D000, after the SCRAM exchange.
    let c = raw::login(&addr, "alice", password_of("alice"), &missing);
    assert_scram_only("alice to an unknown target", &c.handshake);
    let e = auth_error("alice to an unknown target", &c.handshake);
    assert_eq!(e.code(), "3D000", "{e:?}");
    assert!(
        c.handshake.auth_codes.contains(&11),
        "3D000 before authentication: {:?}",
        c.handshake
    );
    let out = proxy.conn("alice", &missing).psql(&["-c", "SELECT 1"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr().contains(&missing),
        "psql should name the database: {}",
        out.describe()
    );

    // Correct password, target not allowed for the user's groups: 42501.
    let c = raw::login(&addr, "mallory", password_of("mallory"), &dev);
    assert_scram_only("mallory to a developers' target", &c.handshake);
    let e = auth_error("mallory to a developers' target", &c.handshake);
    assert_eq!(e.code(), "42501", "{e:?}");
    assert!(
        c.handshake.auth_codes.contains(&11),
        "42501 before authentication: {:?}",
        c.handshake
    );
    let out = proxy.conn("mallory", &dev).psql(&["-c", "SELECT 1"]);
    assert!(!out.success(), "{}", out.describe());

    // Positive controls: mallory on the contractors' target, bob (dba) on dev.
    let out = proxy.conn("mallory", &format!("{db}-contractors")).psql(&[
        "-At",
        "-c",
        "SELECT 'contractor in'",
    ]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.stdout(), "contractor in\n");
    let out = proxy
        .conn("bob", &dev)
        .psql(&["-At", "-c", "SELECT 'dba in'"]);
    assert!(out.success(), "{}", out.describe());

    // Wrong password: the answer is the same whatever the target is —
    // existing, missing, or forbidden — so nothing about targets leaks.
    let cases = [
        ("alice", dev.as_str()),
        ("alice", missing.as_str()),
        ("alice", "postgres"),
        ("alice", ""),
    ];
    let reference = raw::login(&addr, "alice", "bad-password", &dev).handshake;
    let e_ref = auth_error("reference", &reference);
    assert_eq!(e_ref.code(), "28P01");
    for (user, target) in cases {
        let hs = raw::login(&addr, user, "bad-password", target).handshake;
        let e = auth_error(&format!("{user} -> {target:?} with a bad password"), &hs);
        assert_eq!(e.code(), "28P01", "{user} -> {target:?}: {e:?}");
        assert_eq!(
            e.fields, e_ref.fields,
            "{user} -> {target:?}: error differs from the existing target's"
        );
        assert_eq!(
            hs.tags, reference.tags,
            "{user} -> {target:?}: message flow differs"
        );
    }
    let m_ref = raw::login(
        &addr,
        "mallory",
        "bad-password",
        &format!("{db}-contractors"),
    )
    .handshake;
    let m_forbidden = raw::login(&addr, "mallory", "bad-password", &dev).handshake;
    let m_missing = raw::login(&addr, "mallory", "bad-password", &missing).handshake;
    let e_m = auth_error("mallory, bad password", &m_ref);
    assert_eq!(e_m.code(), "28P01");
    for (what, hs) in [("forbidden", &m_forbidden), ("missing", &m_missing)] {
        let e = auth_error(what, hs);
        assert_eq!(
            e.fields, e_m.fields,
            "mallory with a bad password on a {what} target"
        );
        assert_eq!(hs.tags, m_ref.tags);
    }
    // Unknown user and unknown target together: still 28P01.
    let hs = raw::login(&addr, "nosuchuser", "bad-password", &missing).handshake;
    assert_eq!(auth_error("ghost to nowhere", &hs).code(), "28P01");
    // psql shows the same text for a bad password whatever the target.
    let a = proxy
        .conn("alice", &dev)
        .with_password("bad")
        .psql(&["-c", "SELECT 1"]);
    let b = proxy
        .conn("alice", &missing)
        .with_password("bad")
        .psql(&["-c", "SELECT 1"]);
    assert_eq!(a.stderr(), b.stderr());
    assert!(
        a.stderr().contains("password authentication failed"),
        "{}",
        a.describe()
    );
}

#[test]
fn upstream_session_carries_developer_and_startup_parameters() {
    let db = "airlock_t_auth_params";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let target = format!("{db}-dev");

    // psql's default application_name.
    let app = proxy
        .conn("alice", &target)
        .query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()");
    assert_eq!(app, "airlock:alice:psql");
    let who = proxy
        .conn("bob", &target)
        .query("SELECT current_user, session_user");
    assert_eq!(who, format!("{UPSTREAM_USER}|{UPSTREAM_USER}"));

    let mut c = raw::login_with(
        &proxy.addr(),
        &[
            ("user", "alice"),
            ("database", &target),
            ("application_name", "billing-job"),
            ("client_encoding", "LATIN1"),
            ("DateStyle", "SQL, DMY"),
            ("TimeZone", "Asia/Tokyo"),
        ],
        password_of("alice"),
    );
    c.assert_ready("alice with startup parameters");
    let hs = &c.handshake;
    let direct_version = Conn::direct(db).query("SHOW server_version");
    assert_eq!(
        hs.params.get("server_version"),
        Some(&direct_version),
        "{hs:?}"
    );
    assert_eq!(
        hs.params.get("client_encoding").map(String::as_str),
        Some("LATIN1"),
        "{hs:?}"
    );
    assert_eq!(
        hs.params.get("DateStyle").map(String::as_str),
        Some("SQL, DMY"),
        "{hs:?}"
    );
    assert_eq!(
        hs.params.get("TimeZone").map(String::as_str),
        Some("Asia/Tokyo"),
        "{hs:?}"
    );
    assert_eq!(
        hs.params.get("server_encoding").map(String::as_str),
        Some("UTF8"),
        "{hs:?}"
    );
    // The label is for the upstream; the client sees the value it set.
    assert_eq!(
        hs.params.get("application_name").map(String::as_str),
        Some("billing-job"),
        "{hs:?}"
    );
    for p in [
        "integer_datetimes",
        "standard_conforming_strings",
        "is_superuser",
        "session_authorization",
    ] {
        assert!(
            hs.params.contains_key(p),
            "ParameterStatus {p} missing: {hs:?}"
        );
    }
    let r = c
        .simple_query(
            "SELECT application_name, current_setting('client_encoding'), current_setting('DateStyle'), current_setting('TimeZone') \
             FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(
        r.rows,
        vec![vec![
            Some("airlock:alice:billing-job".into()),
            Some("LATIN1".into()),
            Some("SQL, DMY".into()),
            Some("Asia/Tokyo".into()),
        ]]
    );
    // A SET is reported back as ParameterStatus, as directly, with the
    // client's value; upstream it keeps the developer's label, and a client
    // cannot pose as another developer.
    let r = c.simple_query("SET application_name = 'renamed'").unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(
        r.params,
        vec![("application_name".to_string(), "renamed".to_string())]
    );
    let r = c.simple_query("SHOW application_name").unwrap();
    assert_eq!(r.rows, vec![vec![Some("renamed".into())]], "{r:?}");
    let r = c
        .simple_query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        .unwrap();
    assert_eq!(r.rows, vec![vec![Some("airlock:alice:renamed".into())]]);
    let r = c
        .simple_query("set application_name to 'airlock:bob:psql';")
        .unwrap();
    assert_eq!(
        r.params,
        vec![(
            "application_name".to_string(),
            "airlock:bob:psql".to_string()
        )]
    );
    let r = c
        .simple_query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        .unwrap();
    assert_eq!(
        r.rows,
        vec![vec![Some("airlock:alice:airlock:bob:psql".into())]]
    );
    c.terminate();
}

/// Reads whatever comes until the peer closes; panics if it stays open.
fn expect_closed(s: &mut std::net::TcpStream, what: &str) -> Vec<u8> {
    raw::wait_closed(s, Duration::from_secs(10)).unwrap_or_else(|got| {
        panic!("{what}: the proxy kept the connection open for 10 s (got {got:?})")
    })
}

fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn hostile_clients_do_not_take_the_proxy_down() {
    let db = "airlock_t_auth_hostile";
    fresh_db(db);
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "h-");
    let mut proxy =
        Proxy::start(ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, false));
    let addr = proxy.addr();
    let target = format!("{db}-dev");
    let works = |proxy: &mut Proxy, after: &str| {
        proxy.assert_alive(after);
        let out = proxy
            .conn("alice", &target)
            .with("sslmode", "disable")
            .psql(&["-At", "-c", "SELECT 'still serving'"]);
        assert!(out.success(), "after {after}: {}", out.describe());
        assert_eq!(out.stdout(), "still serving\n", "after {after}");
    };

    // (a) connect and disconnect at once, many times.
    for _ in 0..50 {
        drop(raw::tcp(&addr));
    }
    works(&mut proxy, "(a) connect/disconnect");

    // (b) partial startup packets, then disconnect.
    for cut_at in [1usize, 3, 4, 7, 20] {
        let mut s = raw::tcp(&addr);
        let m = raw::startup_message(&[("user", "alice"), ("database", &target)]);
        s.write_all(&m[..cut_at.min(m.len())]).unwrap();
        drop(s);
    }
    // ... and disconnect in the middle of SCRAM, at each step.
    for step in 0..2 {
        let mut s = raw::tcp(&addr);
        s.write_all(&raw::startup_message(&[
            ("user", "alice"),
            ("database", &target),
        ]))
        .unwrap();
        let (tag, _) = raw::read_message(&mut s).expect("AuthenticationSASL");
        assert_eq!(tag, b'R');
        if step == 1 {
            let first = "n,,n=,r=abcdefghijklmnop";
            let mut b = b"SCRAM-SHA-256\0".to_vec();
            b.extend_from_slice(&(first.len() as i32).to_be_bytes());
            b.extend_from_slice(first.as_bytes());
            s.write_all(&raw::message(b'p', &b)).unwrap();
            let (tag, _) = raw::read_message(&mut s).expect("SASLContinue");
            assert_eq!(tag, b'R');
        }
        drop(s);
    }
    works(&mut proxy, "(b) partial startup / mid-SCRAM disconnects");

    // (c) 1 KB of garbage (first byte 0x5a: a length field far beyond any startup packet).
    let mut garbage = pseudo_random(1024, 0x9e37_79b9_7f4a_7c15);
    garbage[0] = 0x5a;
    let mut s = raw::tcp(&addr);
    s.write_all(&garbage).unwrap();
    expect_closed(&mut s, "(c) garbage");
    // Garbage after a valid startup, in place of the SASL response.
    let mut s = raw::tcp(&addr);
    s.write_all(&raw::startup_message(&[
        ("user", "alice"),
        ("database", &target),
    ]))
    .unwrap();
    let _ = raw::read_message(&mut s);
    let _ = s.write_all(&garbage);
    expect_closed(&mut s, "(c) garbage instead of SASLInitialResponse");
    works(&mut proxy, "(c) garbage");

    // (d) startup length fields of 2^31 and 0xFFFFFFFF (and other absurd ones).
    for len in [0x8000_0000u32, 0xFFFF_FFFF, 0x7FFF_FFFF, 0, 3, 8] {
        let mut s = raw::tcp(&addr);
        let mut m = len.to_be_bytes().to_vec();
        m.extend_from_slice(&raw::PROTOCOL_3_0.to_be_bytes());
        m.extend_from_slice(b"user\0alice\0\0");
        let _ = s.write_all(&m);
        expect_closed(&mut s, &format!("(d) startup length {len:#x}"));
    }
    works(&mut proxy, "(d) absurd startup lengths");

    // (e) SSLRequest, then garbage instead of a TLS ClientHello.
    let mut s = raw::tcp(&addr);
    s.write_all(&raw::request_code(raw::SSL_REQUEST)).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b[0], b'S');
    let _ = s.write_all(&garbage);
    expect_closed(&mut s, "(e) garbage instead of ClientHello");
    // ... and a plaintext startup message instead of a ClientHello.
    let mut s = raw::tcp(&addr);
    s.write_all(&raw::request_code(raw::SSL_REQUEST)).unwrap();
    s.read_exact(&mut b).unwrap();
    let _ = s.write_all(&raw::startup_message(&[
        ("user", "alice"),
        ("database", &target),
    ]));
    expect_closed(&mut s, "(e) startup instead of ClientHello");
    // GSSENCRequest is refused with 'N' (and the client may go on in plaintext).
    let mut c = raw::tcp(&addr);
    c.write_all(&raw::request_code(raw::GSSENC_REQUEST))
        .unwrap();
    c.read_exact(&mut b).unwrap();
    assert_eq!(b[0], b'N', "GSSENCRequest must be refused with 'N'");
    drop(c);
    // Two SSLRequests in a row.
    let mut s = raw::tcp(&addr);
    s.write_all(&raw::request_code(raw::SSL_REQUEST)).unwrap();
    s.read_exact(&mut b).unwrap();
    let _ = s.write_all(&raw::request_code(raw::SSL_REQUEST));
    expect_closed(&mut s, "(e) second SSLRequest inside TLS negotiation");
    works(&mut proxy, "(e) bad TLS negotiation");

    // (f) authenticated, then a Query message announcing 2^31-1 bytes, then close.
    let mut c = raw::login(&addr, "alice", password_of("alice"), &target);
    c.assert_ready("(f) login");
    let mut m = vec![b'Q'];
    m.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
    m.extend_from_slice(b"SELECT 1");
    c.stream.write_all(&m).unwrap();
    let _ = c.stream.shutdown(Shutdown::Both);
    drop(c);
    // ... and messages with lengths below 4 or negative.
    for len in [0u32, 3, 0x8000_0000, 0xFFFF_FFFF] {
        let mut c = raw::login(&addr, "alice", password_of("alice"), &target);
        c.assert_ready("(f) login");
        let mut m = vec![b'Q'];
        m.extend_from_slice(&len.to_be_bytes());
        let _ = c.stream.write_all(&m);
        expect_closed(&mut c.stream, &format!("(f) Query with length {len:#x}"));
    }
    // ... and an unknown message type.
    let mut c = raw::login(&addr, "alice", password_of("alice"), &target);
    c.assert_ready("(f) login");
    let _ = c.stream.write_all(&raw::message(b'!', b"what is this"));
    let _ = raw::wait_closed(&mut c.stream, Duration::from_secs(10));
    works(&mut proxy, "(f) absurd messages after authentication");

    // Many half-open connections at once do not block others.
    let idle: Vec<_> = (0..64).map(|_| raw::tcp(&addr)).collect();
    works(&mut proxy, "64 idle connections");
    drop(idle);
    works(&mut proxy, "the end");
}
