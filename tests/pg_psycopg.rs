//! psycopg 3 (PyPI `psycopg[binary]`) through the proxy on an unprotected
//! target, compared with a direct connection.
//!
//! `tests/psycopg_check.py full` runs twice on identically prepared fresh
//! databases (the same name dropped and created again, so nothing needs
//! normalizing): directly (upstream role, `sslmode=require`) and through
//! airlock (alice on `<db>-dev`, `sslmode=verify-full` against the test CA).
//! It uses binary results and server-side parameters (text and binary
//! format) for int2/4/8, numeric, float8, text, bytea, bool, date, timestamp,
//! timestamptz, interval, uuid, jsonb, int[], text[] and nulls; executemany
//! (pipelined) with and without RETURNING, an explicit pipeline,
//! auto-prepared statements, named server-side cursors (plain, scrollable,
//! WITH HOLD), binary and text COPY both ways, notices from RAISE NOTICE,
//! LISTEN/NOTIFY where the notifying pid must equal what `pg_backend_pid()`
//! returned on the notifying connection and BackendKeyData's pid (SPEC §11),
//! errors with their fields, and a 10 MiB value. The transcripts must be
//! identical, line for line.

mod common;
mod drivers;

use common::*;
use drivers::*;

#[test]
fn psycopg_transcript_through_proxy_matches_direct() {
    require_psycopg();
    let db = "airlock_t_psycopg";
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "psycopg-");

    fresh_db(db);
    let direct_conn = Conn::direct(db)
        .with("password", UPSTREAM_PASSWORD)
        .with("sslmode", "require");
    let direct = run_psycopg(&direct_conn.conninfo(), "full", None);
    assert_complete("psycopg_check full (direct)", &direct);
    // The program itself proves pid fidelity only if these lines are there.
    let d = direct.stdout();
    assert!(
        d.contains("backend_pid matches pg_backend_pid(): True"),
        "{}",
        direct.describe()
    );
    assert!(
        d.contains("payload=from other pid=other"),
        "{}",
        direct.describe()
    );

    fresh_db(db);
    let proxy =
        Proxy::start(ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, false));
    let proxied_conn = proxy
        .conn("alice", &format!("{db}-dev"))
        .with("password", password_of("alice"))
        .with("sslmode", "verify-full")
        .with("sslrootcert", pki.ca_cert.to_str().unwrap());
    let proxied = run_psycopg(&proxied_conn.conninfo(), "full", None);
    assert_same_transcript("psycopg_check full", &direct, &proxied);
}
