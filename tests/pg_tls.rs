//! TLS on both sides of the proxy: clients verify the proxy's certificate
//! with `sslmode=verify-full` against a test CA (and fail against another
//! CA); `[tls] require = true` refuses plaintext; upstream TLS modes really
//! encrypt (checked in `pg_stat_ssl`) and `verify-full` really verifies.

mod common;

use common::raw;
use common::*;
use std::io::{Read, Write};
use std::time::Duration;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn tls_conn(proxy: &Proxy, target: &str, ca: &std::path::Path, host: &str) -> Conn {
    let mut c = proxy.conn("alice", target);
    c.host = host.into();
    c.with("hostaddr", "127.0.0.1")
        .with("sslmode", "verify-full")
        .with("sslrootcert", ca.to_str().unwrap())
}

#[test]
fn client_tls_verify_full_with_test_ca() {
    let db = "airlock_t_tls_client";
    fresh_db(db);
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "good-");
    let other = make_pki(dir.path(), "other-");
    let proxy =
        Proxy::start(ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, false));
    let target = format!("{db}-dev");

    // SSLRequest is answered 'S'.
    let mut s = raw::tcp(&proxy.addr());
    s.write_all(&raw::request_code(raw::SSL_REQUEST)).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(
        b[0], b'S',
        "SSLRequest must be accepted when [tls] is configured"
    );
    drop(s);

    for host in ["localhost", "127.0.0.1"] {
        let c = tls_conn(&proxy, &target, &pki.ca_cert, host);
        let out = c.psql(&["-A", "-c", "SELECT 'over tls' AS t", "-c", "\\conninfo"]);
        assert!(
            out.success(),
            "verify-full to {host} failed: {}",
            out.describe()
        );
        assert!(out.stdout().contains("over tls"), "{}", out.describe());
        assert!(
            out.stdout().contains("SSL connection (protocol: TLSv1."),
            "{}",
            out.describe()
        );
    }

    // Another CA: the client refuses the proxy's certificate.
    let c = tls_conn(&proxy, &target, &other.ca_cert, "localhost");
    let out = c.psql(&["-A", "-c", "SELECT 1"]);
    assert!(
        !out.success(),
        "verify-full against the wrong CA must fail: {}",
        out.describe()
    );
    assert!(
        out.stderr().contains("certificate verify failed"),
        "{}",
        out.describe()
    );

    // Plaintext is still allowed when require = false.
    let out = proxy
        .conn("alice", &target)
        .with("sslmode", "disable")
        .psql(&["-A", "-t", "-c", "SELECT 'plain ok'"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.stdout(), "plain ok\n");

    // Wrong password over TLS is still 28P01-shaped for psql.
    let out = tls_conn(&proxy, &target, &pki.ca_cert, "localhost")
        .with_password("nope")
        .psql(&["-c", "SELECT 1"]);
    assert!(!out.success());
    assert!(
        out.stderr().contains("password authentication failed"),
        "{}",
        out.describe()
    );
}

#[test]
fn plaintext_refused_when_tls_required() {
    let db = "airlock_t_tls_require";
    fresh_db(db);
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "req-");
    let proxy =
        Proxy::start(ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, true));
    let target = format!("{db}-dev");

    let out = proxy
        .conn("alice", &target)
        .with("sslmode", "disable")
        .psql(&["-c", "SELECT 1"]);
    assert!(
        !out.success(),
        "plaintext must be refused: {}",
        out.describe()
    );
    let err = out.stderr().to_ascii_lowercase();
    assert!(
        err.contains("ssl") || err.contains("encrypt") || err.contains("tls"),
        "the refusal should say TLS is required: {}",
        out.describe()
    );

    // On the wire: a FATAL 28000 before any authentication exchange.
    let mut c = raw::login(&proxy.addr(), "alice", password_of("alice"), &target);
    let err = c
        .handshake
        .error
        .take()
        .unwrap_or_else(|| panic!("plaintext startup was not refused: {:?}", c.handshake));
    assert_eq!(err.code(), "28000", "{err:?}");
    assert_eq!(err.severity(), "FATAL", "{err:?}");
    assert!(
        c.handshake.auth_codes.is_empty(),
        "no auth before TLS: {:?}",
        c.handshake
    );

    for mode in ["require", "verify-ca"] {
        let out = proxy
            .conn("alice", &target)
            .with("sslmode", mode)
            .with("sslrootcert", pki.ca_cert.to_str().unwrap())
            .psql(&["-A", "-t", "-c", "SELECT 'tls ok'"]);
        assert!(out.success(), "sslmode={mode}: {}", out.describe());
        assert_eq!(out.stdout(), "tls ok\n");
    }
    let out =
        tls_conn(&proxy, &target, &pki.ca_cert, "localhost").psql(&["-A", "-t", "-c", "SELECT 2"]);
    assert!(out.success(), "{}", out.describe());
}

#[test]
fn upstream_tls_modes() {
    let db = "airlock_t_tls_upstream";
    fresh_db(db);
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "up-");
    let mut cfg = ProxyConfig::for_db(db);
    let mut add = |name: &str, host: &str, tls: &str, ca: Option<&std::path::Path>| {
        let mut t = TargetSpec::local(&format!("{db}-{name}"), db, false);
        t.host = host.into();
        t.tls = tls.into();
        t.ca_file = ca.map(Into::into);
        cfg.targets.push(t);
    };
    add("up-disable", "127.0.0.1", "disable", None);
    add("up-prefer", "127.0.0.1", "prefer", None);
    add("up-require", "127.0.0.1", "require", None);
    // PostgreSQL's certificate is Debian's self-signed snakeoil for CN=localhost.
    add(
        "up-verify",
        "localhost",
        "verify-full",
        Some(std::path::Path::new(SNAKEOIL)),
    );
    add(
        "up-verify-wrong-ca",
        "localhost",
        "verify-full",
        Some(&pki.ca_cert),
    );
    add(
        "up-verify-wrong-host",
        "127.0.0.1",
        "verify-full",
        Some(std::path::Path::new(SNAKEOIL)),
    );
    let proxy = Proxy::start(cfg);

    let ssl_of = |target: &str| -> Out {
        proxy.conn("alice", &format!("{db}-{target}")).psql(&[
            "-A",
            "-t",
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
    };
    let mut problems = Vec::new();
    for (target, expected) in [
        ("up-disable", "f"),
        ("up-prefer", "t"),
        ("up-require", "t"),
        ("up-verify", "t"),
    ] {
        let out = ssl_of(target);
        if !out.success() || out.stdout().trim() != expected {
            problems.push(format!(
                "target {target}: expected ssl={expected}: {}",
                out.describe()
            ));
        }
    }
    for target in ["up-verify-wrong-ca", "up-verify-wrong-host"] {
        let out = ssl_of(target);
        if out.success() {
            problems.push(format!(
                "target {target}: the upstream certificate must not be accepted: {}",
                out.describe()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The failing targets did not take the proxy down.
    let out = ssl_of("up-require");
    assert!(out.success(), "{}", out.describe());
    let _ = Duration::ZERO;
}
