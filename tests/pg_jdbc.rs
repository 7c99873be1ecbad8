//! pgJDBC (Debian's `libpostgresql-jdbc-java`, what DBeaver uses) through the
//! proxy on an unprotected target, compared with a direct connection.
//!
//! `tests/jdbc/JdbcCheck.java` is compiled here and run twice in `full` mode,
//! on identically prepared fresh databases: directly against PostgreSQL (as
//! the upstream role, `sslmode=require`) and through airlock (as alice on
//! `<db>-dev`, TLS with `sslmode=verify-full` against the test CA). It covers
//! typed parameters (int, bigint, smallint, text, numeric, timestamp,
//! timestamptz, date, bytea, boolean, float8, uuid, int[]/text[] via
//! createArrayOf, nulls of each), getObject/getString/getBytes/java.time
//! reads, DatabaseMetaData (getTables, getColumns, getPrimaryKeys,
//! getIndexInfo, getSchemas), batches (plain, failing, statement batch,
//! `reWriteBatchedInserts`), generated keys, server-side cursors with a fetch
//! size (portal suspension, interleaved portals), the prepareThreshold switch
//! to named server-side statements with binary transfer, errors with their
//! fields (22012, 42703, 22P02, 23505, 25P02 in a block), notices and
//! savepoints. The two transcripts must be identical, line for line.
//!
//! The "same fresh database" is the same database name dropped and created
//! again between the two runs, so `current_database()` and everything derived
//! from it are equal without any normalization. Nothing is normalized.

mod common;
mod drivers;

use common::*;
use drivers::*;

#[test]
fn jdbc_transcript_through_proxy_matches_direct() {
    let db = "airlock_t_jdbc";
    let jdbc = Jdbc::compile();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "jdbc-");

    // Direct: PostgreSQL's own (snakeoil) certificate, so only sslmode=require.
    fresh_db(db);
    let direct_url = format!("jdbc:postgresql://{PG_HOST}:{PG_PORT}/{db}?ssl=true&sslmode=require");
    let direct = jdbc.run(&direct_url, UPSTREAM_USER, UPSTREAM_PASSWORD, "full", None);
    assert_complete("JdbcCheck full (direct)", &direct);

    // Through the proxy, on a fresh database with the same name.
    fresh_db(db);
    let proxy =
        Proxy::start(ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, false));
    let proxied_url = format!(
        "jdbc:postgresql://127.0.0.1:{}/{db}-dev?ssl=true&sslmode=verify-full&sslrootcert={}",
        proxy.pg_port,
        pki.ca_cert.display()
    );
    let proxied = jdbc.run(&proxied_url, "alice", password_of("alice"), "full", None);
    assert_same_transcript("JdbcCheck full", &direct, &proxied);
}

#[test]
fn jdbc_verify_full_rejects_a_foreign_ca() {
    // The TLS in the transcript test is real: with another CA pgJDBC refuses the proxy.
    let db = "airlock_t_jdbc_ca";
    let jdbc = Jdbc::compile();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "jdbc-");
    let other = make_pki(dir.path(), "other-");
    fresh_db(db);
    let proxy =
        Proxy::start(ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, false));
    let url = |ca: &std::path::Path| {
        format!(
            "jdbc:postgresql://127.0.0.1:{}/{db}-dev?ssl=true&sslmode=verify-full&sslrootcert={}",
            proxy.pg_port,
            ca.display()
        )
    };
    let bad = jdbc.run(
        &url(&other.ca_cert),
        "alice",
        password_of("alice"),
        "readonly",
        None,
    );
    assert!(
        !bad.success(),
        "pgJDBC accepted the proxy's certificate with a foreign CA: {}",
        bad.describe()
    );
    assert!(
        bad.stderr().contains("SSL")
            || bad.stderr().contains("PKIX")
            || bad.stderr().contains("certificat"),
        "expected a TLS verification failure: {}",
        bad.describe()
    );
    let good = jdbc.run(
        &url(&pki.ca_cert),
        "alice",
        password_of("alice"),
        "readonly",
        None,
    );
    assert_complete("JdbcCheck readonly over verify-full", &good);
}
