//! The protected-target proof (issue 2, "Protected target").
//!
//! Target `<db>-prod` is `protected = true` with `read_only_backstop = false`,
//! and its read credentials are the upstream SCRAM role, a SUPERUSER: the
//! upstream session CAN write and is NOT started read-only, so everything
//! held here is held by airlock's classifier alone.
//!
//! - the corpus `tests/fixtures/held_statements.sql` (writes in disguise) is
//!   sent through the proxy in the simple protocol (psql: one `-c` per
//!   statement, and all of them as one `-f` script), and in the extended
//!   protocol (psycopg `prepare=True` and `binary=True`; pgJDBC
//!   PreparedStatement): every statement must fail with an ERROR whose
//!   SQLSTATE is in class `AL`, and the session must stay usable;
//! - psql's `\lo_import` / `\lo_unlink` (the FunctionCall message) are refused;
//! - afterwards a direct connection checks that nothing changed: rows and
//!   checksums, sequences, large objects, relations, columns, functions,
//!   roles, per-database/role settings, ALTER SYSTEM settings, manual
//!   VACUUM/ANALYZE counters, files the server could have written;
//! - inside a transaction block the held statement aborts the block (next
//!   statement 25P02, ROLLBACK TO SAVEPOINT recovers) and after ROLLBACK the
//!   session works;
//! - pure reads (psql incl. `\d` family, cursors, EXPLAIN, SHOW, SET,
//!   `COPY … TO STDOUT`; pgJDBC metadata and cursors; psycopg binary results,
//!   named cursor, binary COPY TO) give output identical to a direct
//!   connection;
//! - `pg_dump` of the protected target through the proxy equals `pg_dump`
//!   directly.

mod common;
mod drivers;

use common::*;
use drivers::*;
use std::path::Path;
use std::time::Duration;

/// Seed of every protected test database (run directly as the upstream role).
const SEED: &str = r#"
CREATE TABLE t (id int PRIMARY KEY, v text, n numeric);
INSERT INTO t SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 200) g;
COMMENT ON TABLE t IS 'the protected table';
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL);
INSERT INTO accounts VALUES (0, 'zero', 0), (1, 'alice', 100.50), (2, 'bob', 20), (3, 'carol', 3000), (4, 'dave', -5.25);
CREATE TABLE audit_log (id serial PRIMARY KEY, msg text);
INSERT INTO audit_log (msg) VALUES ('seeded');
CREATE SEQUENCE s;
SELECT nextval('s');
CREATE FUNCTION public.bump() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit_log (msg) VALUES ('bumped') RETURNING id $$;
CREATE TABLE victim (id int);
CREATE VIEW v_bump AS SELECT public.bump() AS b;
CREATE VIEW v_over_v_bump AS SELECT * FROM v_bump;
CREATE FUNCTION public.lower(int) RETURNS int LANGUAGE sql AS $$ INSERT INTO audit_log (msg) VALUES ('shadowed lower') RETURNING id $$;
CREATE FUNCTION public.plus_w(int, int) RETURNS int LANGUAGE sql AS $$ INSERT INTO audit_log (msg) VALUES ('operator') RETURNING id $$;
CREATE OPERATOR |+| (LEFTARG = int, RIGHTARG = int, FUNCTION = public.plus_w);
CREATE FUNCTION public.check_w(int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_log (msg) VALUES ('domain check'); RETURN true; END $$;
CREATE DOMAIN positive_w AS int CHECK (public.check_w(VALUE));
CREATE FUNCTION public.acct_touch(accounts) RETURNS int LANGUAGE sql AS $$ INSERT INTO audit_log (msg) VALUES ('attribute notation') RETURNING id $$;
CREATE FUNCTION public.stable_bump() RETURNS bigint LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN nextval('s'); END $$;
CREATE FUNCTION public.pure_add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE PROCEDURE public.p_write() LANGUAGE sql AS $$ DELETE FROM t WHERE id = 12 $$;
CREATE VIEW v_t AS SELECT id, owner FROM accounts WHERE id > 0;
CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS c, sum(balance) AS total FROM accounts;
CREATE INDEX t_v_idx ON t (v);
CREATE TABLE lobs (id int PRIMARY KEY, lo oid NOT NULL);
INSERT INTO lobs SELECT 1, lo_from_bytea(0, convert_to('large object payload', 'UTF8'));
ANALYZE;
"#;

/// Files the corpus would make the server write (COPY … TO file/PROGRAM, lo_export).
const SERVER_FILES: &[&str] = &[
    "/tmp/airlock_held_lo_export",
    "/tmp/airlock_held_copy_to",
    "/tmp/airlock_held_copy_program",
];

/// A role the corpus tries to create, and a setting it tries to attach to the upstream role.
const CLEANUP: &[&str] = &[
    "DROP ROLE IF EXISTS airlock_held_role",
    "ALTER ROLE airlock_scram RESET airlock.held_marker",
];

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// Fresh seeded database `db` and a proxy whose `<db>-prod` is protected,
/// without the read-only backstop, with writing read credentials.
fn setup(db: &str) -> (Proxy, Conn, Conn) {
    fresh_db(db);
    let direct = Conn::direct(db);
    let out = direct.psql_stdin(&["-q", "-v", "ON_ERROR_STOP=1"], SEED.as_bytes());
    out.assert_success("seeding the protected database");
    let mut cfg = ProxyConfig::for_db(db);
    let prod = format!("{db}-prod");
    {
        let t = cfg.target_mut(&prod);
        assert!(t.protected);
        t.read_only_backstop = Some(false);
        // Read credentials = the SUPERUSER upstream role: they can write.
        t.read_credentials = Some(CredSpec::upstream_scram());
    }
    let proxy = Proxy::start(cfg);
    let proxied = proxy.conn("alice", &prod);
    // Prove the premise: directly, the role can write and sessions are not read-only.
    assert_eq!(
        direct.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"),
        "t",
        "the upstream role must be a superuser for this proof"
    );
    assert_eq!(direct.query("SHOW default_transaction_read_only"), "off");
    (proxy, direct, proxied)
}

fn remove_server_files() {
    for f in SERVER_FILES {
        let _ = std::fs::remove_file(f);
    }
}

fn cleanup_cluster() {
    for sql in CLEANUP {
        let _ = admin_sql(sql);
    }
}

// ---------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------

/// Entries of `tests/fixtures/held_statements.sql` (blank-line separated,
/// `#` comment lines dropped), with `{db}` replaced.
fn corpus(db: &str) -> Vec<String> {
    let path = workspace_root().join("tests/fixtures/held_statements.sql");
    let text = std::fs::read_to_string(&path).expect("read held_statements.sql");
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(cur.join("\n").replace("{db}", db));
                cur.clear();
            }
            continue;
        }
        cur.push(line);
    }
    if !cur.is_empty() {
        out.push(cur.join("\n").replace("{db}", db));
    }
    assert!(
        out.len() >= 40,
        "the corpus must have at least 40 entries, has {}",
        out.len()
    );
    out
}

/// `ERROR:  ALxxx:` as psql prints it with VERBOSITY verbose.
fn al_error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.find("ERROR:  AL").is_some_and(|i| {
                let code = &l[i + "ERROR:  ".len()..];
                code.len() >= 6
                    && code.as_bytes()[2..5]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric())
                    && code.as_bytes()[5] == b':'
            })
        })
        .collect()
}

/// Lines reporting an ERROR/FATAL/PANIC that is not an `AL` refusal.
fn other_error_lines(stderr: &str) -> Vec<&str> {
    let al = al_error_lines(stderr);
    stderr
        .lines()
        .filter(|l| l.contains("ERROR:") || l.contains("FATAL:") || l.contains("PANIC:"))
        .filter(|l| !al.contains(l))
        .collect()
}

fn one_line(s: &str) -> String {
    s.replace('\n', "⏎")
}

/// Panics with every failure listed (so one run shows all misclassified statements).
fn report(what: &str, failures: &[String], total: usize) {
    if !failures.is_empty() {
        panic!(
            "{what}: {} of {total} held statements were not refused with an AL SQLSTATE:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// The direct "nothing changed" check
// ---------------------------------------------------------------------------

/// Everything the corpus could have changed, read directly (as `postgres`,
/// outside the proxy). Waits until no other session is connected to `db` (the
/// proxy's upstream sessions have ended and flushed their statistics).
fn fingerprint(db: &str) -> String {
    let quiet = wait_until(Duration::from_secs(20), || {
        admin_query(
            db,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"),
        ) == "0"
    });
    assert!(quiet, "sessions on {db} did not end");
    let queries = [
        // relations, their storage (TRUNCATE/CLUSTER/REINDEX/VACUUM FULL change relfilenode),
        // privileges, comments, options
        "SELECT c.relname, c.relkind, c.relfilenode, c.relacl, obj_description(c.oid, 'pg_class'), c.reloptions \
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1",
        // temp tables anywhere in this database
        "SELECT count(*) FROM pg_class WHERE relpersistence = 't'",
        // columns
        "SELECT a.attrelid::regclass::text, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 ORDER BY 1, 2",
        // rows
        "SELECT 't', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM t x",
        "SELECT 'accounts', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM accounts x",
        "SELECT 'audit_log', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM audit_log x",
        "SELECT 'lobs', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM lobs x",
        "SELECT 'mv', * FROM mv",
        // sequences
        "SELECT 's', last_value, is_called FROM s",
        "SELECT 'audit_log_id_seq', last_value, is_called FROM audit_log_id_seq",
        "SELECT seqrelid::regclass::text, seqstart, seqincrement, seqmax, seqmin, seqcycle FROM pg_sequence ORDER BY 1",
        // large objects
        "SELECT count(*) FROM pg_largeobject_metadata",
        "SELECT oid, lomacl, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid",
        // functions and procedures
        "SELECT p.oid::regprocedure::text, p.prosrc, p.provolatile, p.proacl FROM pg_proc p \
         WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1",
        // views
        "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
        // indexes
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        // roles (cluster-wide)
        "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, \
         rolbypassrls, rolconfig FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1",
        // per-database / per-role settings, ALTER SYSTEM settings
        "SELECT coalesce(d.datname, '*'), coalesce(r.rolname, '*'), s.setconfig FROM pg_db_role_setting s \
         LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2",
        "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY 1",
        "SELECT datname, datacl, datallowconn, datconnlimit FROM pg_database WHERE datname = current_database()",
        // what a new session of the role gets
        "SELECT current_setting('default_transaction_read_only'), current_setting('work_mem'), \
         current_setting('search_path')",
        // manual maintenance (autovacuum has its own counters)
        "SELECT relname, vacuum_count, analyze_count FROM pg_stat_user_tables ORDER BY 1",
        // schemas and extensions
        "SELECT nspname, nspacl FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' ORDER BY 1",
        "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    ];
    let mut s = String::new();
    for q in queries {
        s.push_str(q);
        s.push_str("\n=> ");
        s.push_str(&admin_query(db, q));
        s.push_str("\n\n");
    }
    for f in SERVER_FILES {
        s.push_str(&format!("file {f} exists: {}\n", Path::new(f).exists()));
    }
    s
}

/// Asserts that nothing changed between two fingerprints (shows the differing lines).
fn assert_unchanged(what: &str, before: &str, after: &str) {
    if before != after {
        let b: Vec<&str> = before.lines().collect();
        let a: Vec<&str> = after.lines().collect();
        let mut diff = String::new();
        for i in 0..a.len().max(b.len()) {
            if b.get(i) != a.get(i) {
                diff.push_str(&format!(
                    "  before: {:?}\n  after:  {:?}\n",
                    b.get(i),
                    a.get(i)
                ));
            }
        }
        panic!("{what}: the protected database CHANGED although every statement should have been held:\n{diff}");
    }
}

// ---------------------------------------------------------------------------
// Simple protocol (psql)
// ---------------------------------------------------------------------------

#[test]
fn corpus_simple_protocol_psql_dash_c_each_refused_and_nothing_changes() {
    let db = "airlock_t_prot_c";
    remove_server_files();
    let (mut proxy, _direct, proxied) = setup(db);
    let before = fingerprint(db);
    let entries = corpus(db);
    let mut failures = Vec::new();
    for (i, stmt) in entries.iter().enumerate() {
        // Every statement in its own psql, followed by a read on the same session.
        let out = proxied.psql(&[
            "-At",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            stmt,
            "-c",
            "SELECT 'still usable'",
        ]);
        let stderr = out.stderr();
        let mut why = Vec::new();
        if out.timed_out {
            why.push("psql timed out".to_string());
        }
        if al_error_lines(&stderr).len() != 1 {
            why.push(format!(
                "expected exactly one `ERROR:  ALxxx:` line, got {}",
                al_error_lines(&stderr).len()
            ));
        }
        if !other_error_lines(&stderr).is_empty() {
            why.push(format!("other errors: {:?}", other_error_lines(&stderr)));
        }
        if out.stdout() != "still usable\n" {
            why.push(format!(
                "stdout should be only the follow-up read, got {:?}",
                cut(&out.stdout(), 300)
            ));
        }
        if !why.is_empty() {
            failures.push(format!(
                "#{} {:?}: {} (stderr: {:?})",
                i + 1,
                one_line(stmt),
                why.join("; "),
                cut(&stderr, 400)
            ));
        }
    }
    proxy.assert_alive("the corpus via psql -c");
    let after = fingerprint(db);
    cleanup_cluster();
    report("psql -c", &failures, entries.len());
    assert_unchanged("psql -c", &before, &after);
}

#[test]
fn corpus_simple_protocol_psql_script_each_refused_and_nothing_changes() {
    let db = "airlock_t_prot_f";
    remove_server_files();
    let (mut proxy, _direct, proxied) = setup(db);
    let before = fingerprint(db);
    let entries = corpus(db);
    // One script, one session: a marker on stderr before each entry, so every
    // psql error can be attributed. psql splits multi-statement entries at
    // their semicolons (each part is its own Query); the read parts may run,
    // every entry must still produce at least one AL error and no other error.
    // `COPY … FROM STDIN` takes its data from the script itself, and when that COPY fails
    // psql stops reading the script (it does so directly too), so those entries go last,
    // after the final usability check.
    let is_copy_in = |s: &str| s.to_ascii_uppercase().contains("FROM STDIN");
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|&i| !is_copy_in(&entries[i]))
        .collect();
    let copy_in: Vec<usize> = (0..entries.len())
        .filter(|&i| is_copy_in(&entries[i]))
        .collect();
    let mut script = String::from("\\set VERBOSITY verbose\n\\set ON_ERROR_STOP off\n");
    let push = |script: &mut String, i: usize| {
        let mut stmt = entries[i].trim_end().to_string();
        if !stmt.ends_with(';') {
            stmt.push(';');
        }
        script.push_str(&format!("\\warn @@ENTRY {}\n{stmt}\n", i + 1));
    };
    for &i in &order {
        push(&mut script, i);
    }
    script.push_str("\\warn @@END\nSELECT 'still usable';\n");
    for &i in &copy_in {
        push(&mut script, i);
    }
    order.extend(copy_in);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.sql");
    std::fs::write(&path, &script).unwrap();
    let out = proxied.psql(&["-At", "-f", path.to_str().unwrap()]);
    let stderr = out.stderr();
    let mut failures = Vec::new();
    let mut sections: Vec<(usize, String)> = Vec::new();
    for line in stderr.lines() {
        if let Some(n) = line.strip_prefix("@@ENTRY ") {
            sections.push((n.trim().parse().unwrap(), String::new()));
        } else if line.starts_with("@@END") {
            sections.push((0, String::new()));
        } else if let Some(last) = sections.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    for &i in &order {
        let n = i + 1;
        let Some((_, text)) = sections.iter().find(|(k, _)| *k == n) else {
            failures.push(format!(
                "#{n} {:?}: never reached (psql stopped before it)",
                one_line(&entries[i])
            ));
            continue;
        };
        let al = al_error_lines(text);
        let other = other_error_lines(text);
        if al.is_empty() || !other.is_empty() {
            failures.push(format!(
                "#{n} {:?}: AL errors {}, other errors {:?}",
                one_line(&entries[i]),
                al.len(),
                other
            ));
        }
    }
    if !out.stdout().contains("still usable\n") {
        failures.push(format!(
            "the session was not usable at the end: {}",
            out.describe()
        ));
    }
    if stderr.contains("connection to server was lost")
        || stderr.contains("server closed the connection")
    {
        failures.push(format!("the connection was lost: {}", cut(&stderr, 2000)));
    }
    proxy.assert_alive("the corpus via psql -f");
    let after = fingerprint(db);
    cleanup_cluster();
    report("psql -f", &failures, entries.len());
    assert_unchanged("psql -f", &before, &after);
}

#[test]
fn psql_large_object_commands_use_function_call_and_are_refused() {
    let db = "airlock_t_prot_lo";
    remove_server_files();
    let (mut proxy, direct, proxied) = setup(db);
    let before = fingerprint(db);
    let lo = direct.query("SELECT lo FROM lobs WHERE id = 1");
    let mut failures = Vec::new();
    for cmd in [
        "\\lo_import /etc/hostname".to_string(),
        format!("\\lo_unlink {lo}"),
    ] {
        let out = proxied.psql(&[
            "-At",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            &cmd,
            "-c",
            "SELECT 'still usable'",
        ]);
        let stderr = out.stderr();
        if al_error_lines(&stderr).is_empty() {
            failures.push(format!(
                "{cmd}: not refused with an AL SQLSTATE: {}",
                out.describe()
            ));
        } else if !out.stdout().ends_with("still usable\n") {
            failures.push(format!(
                "{cmd}: session not usable afterwards: {}",
                out.describe()
            ));
        }
    }
    proxy.assert_alive("\\lo_import");
    let after = fingerprint(db);
    report("psql large-object commands", &failures, 2);
    assert_unchanged("\\lo_import / \\lo_unlink", &before, &after);
}

// ---------------------------------------------------------------------------
// Extended protocol (psycopg, pgJDBC)
// ---------------------------------------------------------------------------

fn nul_file(dir: &Path, entries: &[String]) -> std::path::PathBuf {
    let path = dir.join("held.nul");
    std::fs::write(&path, entries.join("\0")).unwrap();
    path
}

/// Parses "held <n> [<mode>] <outcome> <after>" lines; returns failures.
fn check_held_transcript(what: &str, out: &Out, entries: &[String], modes: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    if !out.success() {
        failures.push(format!("{what} did not finish: {}", out.describe()));
    }
    let stdout = out.stdout();
    for (i, stmt) in entries.iter().enumerate() {
        for mode in modes {
            let prefix = if mode.is_empty() {
                format!("held {} ", i + 1)
            } else {
                format!("held {} {mode} ", i + 1)
            };
            match stdout.lines().find(|l| l.starts_with(&prefix)) {
                None => failures.push(format!(
                    "#{} {:?} [{what} {mode}]: no outcome",
                    i + 1,
                    one_line(stmt)
                )),
                Some(line) => {
                    let rest = &line[prefix.len()..];
                    // An entry that itself opens a block before the held statement
                    // ("BEGIN; DELETE …; COMMIT;") leaves that block aborted when the driver
                    // sends it as one pipelined batch (pgJDBC does): BEGIN runs, the held
                    // statement fails, COMMIT is skipped until Sync — what Postgres does when
                    // that statement fails. Then ROLLBACK must make the session usable again.
                    let opens_block = stmt.to_ascii_uppercase().contains("BEGIN;");
                    let ok = rest.starts_with("AL")
                        && (rest.ends_with(" usable")
                            || (opens_block
                                && rest.ends_with(" aborted-block,after-rollback:usable")));
                    if !ok {
                        failures.push(format!(
                            "#{} {:?} [{what} {mode}]: {rest}",
                            i + 1,
                            one_line(stmt)
                        ));
                    }
                }
            }
        }
    }
    failures
}

#[test]
fn corpus_extended_protocol_psycopg_each_refused_and_nothing_changes() {
    require_psycopg();
    let db = "airlock_t_prot_py";
    remove_server_files();
    let (mut proxy, _direct, proxied) = setup(db);
    let before = fingerprint(db);
    let entries = corpus(db);
    let dir = tempfile::tempdir().unwrap();
    let file = nul_file(dir.path(), &entries);
    let conninfo = proxied
        .clone()
        .with("password", password_of("alice"))
        .conninfo();
    let out = run_psycopg(&conninfo, "held", Some(file.to_str().unwrap()));
    let failures = check_held_transcript("psycopg", &out, &entries, &["prepare", "binary"]);
    proxy.assert_alive("the corpus via psycopg");
    let after = fingerprint(db);
    cleanup_cluster();
    report("psycopg extended protocol", &failures, entries.len() * 2);
    assert_unchanged("psycopg", &before, &after);
}

#[test]
fn corpus_extended_protocol_pgjdbc_each_refused_and_nothing_changes() {
    let db = "airlock_t_prot_jdbc";
    remove_server_files();
    let jdbc = Jdbc::compile();
    let (mut proxy, _direct, _proxied) = setup(db);
    let before = fingerprint(db);
    let entries = corpus(db);
    let dir = tempfile::tempdir().unwrap();
    let file = nul_file(dir.path(), &entries);
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/{db}-prod?sslmode=disable",
        proxy.pg_port
    );
    let out = jdbc.run(&url, "alice", password_of("alice"), "held", Some(&file));
    let failures = check_held_transcript("pgJDBC", &out, &entries, &[""]);
    proxy.assert_alive("the corpus via pgJDBC");
    let after = fingerprint(db);
    cleanup_cluster();
    report("pgJDBC extended protocol", &failures, entries.len());
    assert_unchanged("pgJDBC", &before, &after);
}

// ---------------------------------------------------------------------------
// Transaction blocks
// ---------------------------------------------------------------------------

#[test]
fn held_statement_in_transaction_block_aborts_block_and_session_stays_usable() {
    require_psycopg();
    let db = "airlock_t_prot_txn";
    let (mut proxy, _direct, proxied) = setup(db);
    let before = fingerprint(db);

    // Simple protocol (psql script).
    let script = "\\set VERBOSITY verbose\n\
                  BEGIN;\n\
                  SELECT 1 AS first;\n\
                  DELETE FROM t WHERE id = 1;\n\
                  SELECT 2 AS second;\n\
                  ROLLBACK;\n\
                  SELECT 3 AS after_rollback;\n\
                  BEGIN;\n\
                  SAVEPOINT sp;\n\
                  SELECT public.bump();\n\
                  SELECT 4 AS in_aborted_block;\n\
                  ROLLBACK TO SAVEPOINT sp;\n\
                  SELECT 5 AS after_rollback_to_savepoint;\n\
                  COMMIT;\n\
                  SELECT 6 AS after_commit;\n";
    let out = proxied.psql_stdin(&["-q", "-At"], script.as_bytes());
    let stderr = out.stderr();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR:")).collect();
    assert_eq!(
        errors.len(),
        4,
        "expected exactly 4 errors: {}",
        out.describe()
    );
    assert!(
        al_error_lines(errors[0]).len() == 1,
        "DELETE in a block: AL error expected: {}",
        out.describe()
    );
    assert!(
        errors[1].contains("ERROR:  25P02:"),
        "the next statement must get 25P02: {}",
        out.describe()
    );
    assert!(
        al_error_lines(errors[2]).len() == 1,
        "bump() in a block: AL error expected: {}",
        out.describe()
    );
    assert!(
        errors[3].contains("ERROR:  25P02:"),
        "the next statement must get 25P02: {}",
        out.describe()
    );
    assert!(!stderr.contains("FATAL"), "{}", out.describe());
    assert_eq!(out.stdout(), "1\n3\n5\n6\n", "{}", out.describe());

    // Extended protocol (psycopg, autocommit off: the driver opens the block).
    for stmt in [
        "DELETE FROM t WHERE id = 1",
        "SELECT public.bump()",
        "SELECT nextval('s')",
    ] {
        let conninfo = proxied
            .clone()
            .with("password", password_of("alice"))
            .conninfo();
        let out = run_psycopg(&conninfo, "txnblock", Some(stmt));
        let lines: Vec<String> = out.stdout().lines().map(String::from).collect();
        let held = lines
            .iter()
            .find(|l| l.starts_with("txn held:"))
            .cloned()
            .unwrap_or_default();
        assert!(
            held.starts_with("txn held: sqlstate=AL"),
            "psycopg {stmt:?} in a block must get an AL error: {}",
            out.describe()
        );
        let expected = [
            "txn select 1: 1 INTRANS",
            held.as_str(),
            "txn status after held: INERROR",
            "txn select 2: sqlstate=25P02 class=InFailedSqlTransaction",
            "txn status after rollback: IDLE",
            "after rollback select 3: 3",
            "done txnblock: IDLE",
            "done",
        ];
        assert_eq!(
            lines,
            expected,
            "psycopg transaction block with {stmt:?}: {}",
            out.describe()
        );
    }
    proxy.assert_alive("transaction blocks");
    let after = fingerprint(db);
    assert_unchanged("transaction blocks", &before, &after);
}

// ---------------------------------------------------------------------------
// Pure reads are identical to a direct connection
// ---------------------------------------------------------------------------

fn reads_script(db: &str) -> String {
    format!(
        r#"\pset pager off
SELECT count(*), sum(id), sum(n), md5(string_agg(v, ',' ORDER BY id)) FROM t;
SELECT a.owner, count(*), sum(t.n) FROM accounts a JOIN t ON t.id % 5 = a.id GROUP BY a.owner ORDER BY 1;
SELECT * FROM t ORDER BY id LIMIT 10;
SELECT * FROM t WHERE v LIKE 'v1%' AND n BETWEEN 1 AND 100 ORDER BY id;
WITH x AS (SELECT id FROM t WHERE id < 5) SELECT * FROM x ORDER BY id;
WITH RECURSIVE r AS (SELECT 1 AS k UNION ALL SELECT k + 1 FROM r WHERE k < 5) SELECT k, (SELECT v FROM t WHERE id = k) FROM r;
SELECT id, row_number() OVER (ORDER BY n DESC), lag(v) OVER (ORDER BY id) FROM t WHERE id <= 5 ORDER BY id;
SELECT string_agg(v, '|') FILTER (WHERE id < 4), array_agg(id ORDER BY id DESC) FILTER (WHERE id < 4) FROM t;
SELECT owner, balance, CASE WHEN balance < 0 THEN 'neg' ELSE 'pos' END FROM accounts ORDER BY id;
SELECT * FROM v_t ORDER BY id;
SELECT * FROM mv;
VALUES (1, 'a'), (2, 'b');
SELECT last_value, is_called FROM s;
SELECT count(*) FROM pg_largeobject_metadata;
SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1;
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname IN ('t', 'accounts') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum;
SELECT pg_get_functiondef('public.bump'::regproc);
SELECT pg_get_viewdef('v_t'::regclass, true);
SELECT has_table_privilege('t', 'SELECT'), pg_table_is_visible('t'::regclass);
SELECT current_user, session_user, current_database(), current_schema();
SELECT now() IS NOT NULL AS has_now, current_setting('server_version_num')::int >= 150000 AS v15;
SELECT 1/0;
SELECT 'after an error';
EXPLAIN (COSTS OFF) SELECT * FROM t WHERE id = 1;
EXPLAIN (COSTS OFF) SELECT a.owner FROM accounts a JOIN t ON t.id = a.id;
SHOW search_path;
SHOW default_transaction_read_only;
SHOW server_version;
SET search_path = pg_catalog, public;
SHOW search_path;
SET search_path = "$user", public;
SHOW search_path;
SET work_mem = '8MB';
SHOW work_mem;
SELECT set_config('search_path', 'public', false);
RESET work_mem;
BEGIN;
DECLARE c CURSOR FOR SELECT id, v FROM t ORDER BY id;
FETCH 3 FROM c;
FETCH 2 FROM c;
MOVE 10 IN c;
FETCH NEXT FROM c;
CLOSE c;
COMMIT;
BEGIN READ ONLY;
SELECT count(*) FROM t;
LOCK TABLE t IN ACCESS SHARE MODE;
SAVEPOINT a;
SELECT count(*) FROM accounts;
RELEASE SAVEPOINT a;
COMMIT;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM t;
ROLLBACK;
COPY t TO STDOUT;
COPY (SELECT id, v FROM t WHERE id < 10 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER);
LISTEN airlock_reads;
UNLISTEN airlock_reads;
\d
\dt
\d t
\d+ accounts
\df
\dv
\ds
\di
\dn
\dm
\dx
\dp t
\du airlock_scram
\l {db}
\lo_list
DISCARD ALL;
SELECT 'end of reads';
"#
    )
}

#[test]
fn pure_reads_on_protected_target_match_direct() {
    require_psycopg();
    let db = "airlock_t_prot_reads";
    let jdbc = Jdbc::compile();
    let (mut proxy, direct, proxied) = setup(db);
    let before = fingerprint(db);

    // psql, simple protocol.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reads.sql");
    std::fs::write(&path, reads_script(db)).unwrap();
    let path = path.to_str().unwrap();
    let d = direct.psql(&["-A", "-f", path]);
    let p = proxied.psql(&["-A", "-f", path]);
    assert!(
        d.stdout().contains("end of reads"),
        "direct reads script: {}",
        d.describe()
    );
    // Name the reads airlock refused (psql prefixes errors with the script line).
    let held: Vec<String> = p
        .stderr()
        .lines()
        .filter(|l| l.contains("needs review") || l.starts_with("DETAIL:"))
        .map(String::from)
        .collect();
    let lines: Vec<String> = reads_script(db).lines().map(String::from).collect();
    let refused: Vec<String> = held
        .iter()
        .filter_map(|l| {
            let n: usize = l.split(':').nth(2)?.trim().parse().ok()?;
            Some(format!("line {n}: {:?}", lines.get(n - 1)?))
        })
        .collect();
    assert!(
        held.is_empty(),
        "pure reads were refused on the protected target:\n{}\n{}",
        refused.join("\n"),
        held.join("\n")
    );
    assert_same_output("psql reads on the protected target", &d, &p);

    // psycopg: binary results, server-side parameters, named cursor, binary COPY TO.
    let d = run_psycopg(
        &direct
            .clone()
            .with("password", UPSTREAM_PASSWORD)
            .conninfo(),
        "readonly",
        None,
    );
    assert_complete("psycopg_check readonly (direct)", &d);
    let p = run_psycopg(
        &proxied
            .clone()
            .with("password", password_of("alice"))
            .conninfo(),
        "readonly",
        None,
    );
    assert_same_transcript("psycopg reads on the protected target", &d, &p);

    // pgJDBC: DatabaseMetaData (what DBeaver runs), cursors with fetch size, named statements.
    let d = jdbc.run(
        &format!("jdbc:postgresql://{PG_HOST}:{PG_PORT}/{db}?sslmode=disable"),
        UPSTREAM_USER,
        UPSTREAM_PASSWORD,
        "readonly",
        None,
    );
    assert_complete("JdbcCheck readonly (direct)", &d);
    let p = jdbc.run(
        &format!(
            "jdbc:postgresql://127.0.0.1:{}/{db}-prod?sslmode=disable",
            proxy.pg_port
        ),
        "alice",
        password_of("alice"),
        "readonly",
        None,
    );
    assert_same_transcript("pgJDBC reads on the protected target", &d, &p);

    proxy.assert_alive("reads");
    let after = fingerprint(db);
    assert_unchanged("pure reads", &before, &after);
}

// ---------------------------------------------------------------------------
// pg_dump
// ---------------------------------------------------------------------------

/// `pg_dump` (plain format) of `dbname` over TCP. pg_dump ≥ 15.14/16.10/17.6
/// writes `\restrict KEY` / `\unrestrict KEY` lines with a random KEY; where
/// pg_dump knows `--restrict-key` the key is fixed instead, so the two dumps
/// are compared byte for byte without any normalization.
fn pg_dump(host: &str, port: u16, user: &str, password: &str, dbname: &str, extra: &[&str]) -> Out {
    let help = std::process::Command::new("pg_dump")
        .arg("--help")
        .output()
        .expect("pg_dump --help");
    let mut cmd = std::process::Command::new("pg_dump");
    for v in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGSSLMODE",
        "PGOPTIONS",
        "PGPASSFILE",
        "PGSERVICE",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("PGPASSWORD", password)
        .env("PGGSSENCMODE", "disable")
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            user,
            "--no-password",
        ]);
    if String::from_utf8_lossy(&help.stdout).contains("--restrict-key") {
        cmd.arg("--restrict-key=airlocktestkey");
    }
    cmd.args(extra).arg(dbname);
    run_with_timeout(cmd, None, Duration::from_secs(120))
}

fn dump_matches(db: &str, extra: &[&str]) {
    let (mut proxy, _direct, _proxied) = setup(db);
    let before = fingerprint(db);
    let d = pg_dump(
        PG_HOST,
        PG_PORT,
        UPSTREAM_USER,
        UPSTREAM_PASSWORD,
        db,
        extra,
    );
    d.assert_success("pg_dump directly");
    assert!(
        d.stdout().contains("CREATE TABLE public.t"),
        "{}",
        d.describe()
    );
    let p = pg_dump(
        "127.0.0.1",
        proxy.pg_port,
        "alice",
        password_of("alice"),
        &format!("{db}-prod"),
        extra,
    );
    assert_same_output(
        &format!("pg_dump {extra:?} of the protected target"),
        &d,
        &p,
    );
    proxy.assert_alive("pg_dump");
    let after = fingerprint(db);
    assert_unchanged("pg_dump", &before, &after);
}

#[test]
fn pg_dump_of_protected_target_matches_direct() {
    // Includes the large object (pg_dump reads it with lo_open/loread through libpq's
    // FunctionCall path) and the sequence, view, materialized view, functions.
    dump_matches("airlock_t_prot_dump", &[]);
}

#[test]
fn pg_dump_schema_only_and_no_blobs_of_protected_target_match_direct() {
    dump_matches("airlock_t_prot_dump_s", &["--schema-only"]);
    dump_matches("airlock_t_prot_dump_b", &["--no-blobs"]);
}

#[test]
fn startup_parameters_cannot_lift_read_only_or_change_tokenizing() {
    let db = "airlock_t_prot_startup";
    let (proxy, _direct, proxied) = setup(db);
    let addr = format!("127.0.0.1:{}", proxy.pg_port);
    let prod = format!("{db}-prod");
    for (k, v) in [
        ("default_transaction_read_only", "off"),
        ("client_encoding", "SJIS"),
        ("standard_conforming_strings", "off"),
        ("role", "postgres"),
        ("session_authorization", "postgres"),
    ] {
        let c = common::raw::login_with(
            &addr,
            &[("user", "alice"), ("database", prod.as_str()), (k, v)],
            &proxied.password,
        );
        let err =
            c.handshake.error.as_ref().unwrap_or_else(|| {
                panic!("startup parameter {k}={v} was accepted: {:?}", c.handshake)
            });
        assert_eq!(err.code(), "42501", "{k}={v}: {err:?}");
        assert!(err.message().contains(k), "{k}={v}: {err:?}");
    }
    // Harmless ones pass and reach the upstream.
    let mut c = common::raw::login_with(
        &addr,
        &[
            ("user", "alice"),
            ("database", prod.as_str()),
            ("DateStyle", "German"),
            ("client_encoding", "LATIN1"),
        ],
        &proxied.password,
    );
    c.assert_ready("a protected session with harmless startup parameters");
    let r = c.simple_query("SHOW DateStyle").expect("query");
    assert_eq!(r.rows, vec![vec![Some("German, DMY".to_string())]]);
}
