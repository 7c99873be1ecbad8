//! psql through the proxy on an unprotected target: `-c`, `-f`, scripts on
//! stdin, the `\d` family, `\l` and `\copy` both ways. Every run is done
//! twice, directly against PostgreSQL (as the upstream role) and through
//! airlock (as alice on `<db>-dev`, whose upstream is the same database and
//! role), and the full `psql -X -A` output (stdout, stderr, exit status) is
//! compared byte for byte. Nothing is normalized.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// Runs `args` (+ optional stdin) directly and through the proxy and asserts
/// identical output. Returns the direct run for further checks.
fn same(what: &str, direct: &Conn, proxied: &Conn, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let (d, p) = match stdin {
        Some(input) => (
            direct.psql_stdin(args, input),
            proxied.psql_stdin(args, input),
        ),
        None => (direct.psql(args), proxied.psql(args)),
    };
    assert_same_output(what, &d, &p);
    d
}

/// The same, for output that depends on cluster-wide state other tests
/// change concurrently (`\l` lists every database, and parallel tests create
/// and drop theirs): direct, proxied, direct again; the comparison counts
/// only when both direct runs agree (nothing changed in between). No
/// normalization: the proxied output must equal the direct one exactly.
fn same_cluster_wide(what: &str, direct: &Conn, proxied: &Conn, args: &[&str]) -> Out {
    for _ in 0..20 {
        let d1 = direct.psql(args);
        let p = proxied.psql(args);
        let d2 = direct.psql(args);
        if d1.stdout_bytes == d2.stdout_bytes && d1.stderr_bytes == d2.stderr_bytes {
            assert_same_output(what, &d1, &p);
            return d1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: the cluster never stayed unchanged long enough to compare");
}

fn setup(db: &str) -> (Proxy, Conn, Conn) {
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let proxied = proxy.conn("alice", &format!("{db}-dev"));
    (proxy, Conn::direct(db), proxied)
}

#[test]
fn dash_c_commands_match_direct() {
    let db = "airlock_t_psql_c";
    let (_proxy, direct, proxied) = setup(db);

    let d = same(
        "simple select",
        &direct,
        &proxied,
        &[
            "-A",
            "-c",
            "SELECT 1 AS a, 'x' AS b, NULL AS c, 'ünïcødé ✓ 日本語 🎉' AS u",
        ],
        None,
    );
    assert!(d.success(), "{}", d.describe());
    assert_eq!(d.stdout(), "a|b|c|u\n1|x||ünïcødé ✓ 日本語 🎉\n(1 row)\n");

    // Several statements in one -c string: one Query message, every result shown.
    let d = same(
        "multi-statement -c",
        &direct,
        &proxied,
        &[
            "-A",
            "-c",
            "CREATE TEMP TABLE t (x int, y text); INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, 'c'); \
             SELECT * FROM t ORDER BY x; UPDATE t SET y = 'b' WHERE x = 2; SELECT count(*) FROM t WHERE y IS NOT NULL",
        ],
        None,
    );
    assert!(d.stdout().contains("INSERT 0 3"), "{}", d.describe());
    assert!(d.stdout().contains("UPDATE 1"), "{}", d.describe());

    // Several -c options: separate Query messages in one session.
    let d = same(
        "repeated -c",
        &direct,
        &proxied,
        &[
            "-A",
            "-c",
            "SET search_path = pg_catalog",
            "-c",
            "SHOW search_path",
            "-c",
            "SELECT current_setting('search_path')",
        ],
        None,
    );
    assert!(d.stdout().contains("pg_catalog"), "{}", d.describe());

    // Errors: exit status, message, SQLSTATE, position, detail, hint.
    let d = same(
        "division by zero",
        &direct,
        &proxied,
        &["-A", "-c", "SELECT 1/0"],
        None,
    );
    assert_eq!(d.code(), 1);
    assert!(d.stderr().contains("division by zero"), "{}", d.describe());
    let d = same(
        "verbose error with position and hint",
        &direct,
        &proxied,
        &[
            "-A",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SELECT relnme FROM pg_class",
        ],
        None,
    );
    assert!(d.stderr().contains("42703"), "{}", d.describe());
    assert!(d.stderr().contains("HINT"), "{}", d.describe());
    assert!(d.stderr().contains("LINE 1"), "{}", d.describe());

    // Aligned output, expanded output, tuples only, field separators.
    for args in [
        vec!["-c", "SELECT g, md5(g::text) FROM generate_series(1, 50) g"],
        vec!["-x", "-c", "SELECT 1 AS one, 'two' AS two, now() IS NOT NULL AS three"],
        vec!["-At", "-F", ",", "-c", "SELECT g, g::text || 'x' FROM generate_series(1, 5) g"],
        vec!["-A", "-c", "SELECT '\\x00ff'::bytea, '{1,2,NULL}'::int[], '{\"a\": [1, null]}'::jsonb, 1.5::numeric(10,3), '2024-02-29 12:34:56.789+02'::timestamptz, interval '1 year 2 mons 3 days 04:05:06'"],
        vec!["-A", "-c", "SELECT current_database(), current_user, session_user, version()"],
    ] {
        let d = same(&format!("psql {args:?}"), &direct, &proxied, &args, None);
        assert!(d.success(), "{}", d.describe());
        assert!(!d.stdout().is_empty());
    }
}

/// A 2 MB text literal with varied (multi-byte) characters and no quotes.
fn large_literal() -> String {
    let mut s = String::with_capacity(2_200_000);
    let mut i = 0u32;
    while s.len() < 2_000_000 {
        s.push_str(&format!("{i:07}-ü✓日{} ", (b'a' + (i % 26) as u8) as char));
        i += 1;
    }
    s
}

/// Replaces the PID in psql's `Asynchronous notification "…" with payload
/// "…" received from server process with PID N.` lines; returns the count.
fn mask_notification_pid(out: &[u8]) -> (Vec<u8>, usize) {
    let text = String::from_utf8_lossy(out);
    let marker = "received from server process with PID ";
    let mut n = 0;
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| match l.find(marker) {
            Some(i)
                if l.starts_with("Asynchronous notification \"chan\" with payload \"hello\"") =>
            {
                n += 1;
                format!("{}<pid>.", &l[..i + marker.len()])
            }
            _ => l.to_string(),
        })
        .collect();
    (lines.join("\n").into_bytes(), n)
}

#[test]
fn dash_f_script_matches_direct() {
    let db = "airlock_t_psql_f";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sql");
    let text = include_str!("sql/psql_script.sql").replace("<LARGE>", &large_literal());
    std::fs::write(&script, text).unwrap();
    let script = script.to_str().unwrap();

    // Each run starts from an empty database, so both see the same state.
    let mut d = Conn::direct(db).psql(&["-A", "-f", script]);
    fresh_db(db);
    let mut p = proxy
        .conn("alice", &format!("{db}-dev"))
        .psql(&["-A", "-f", script]);
    // The one thing that truly differs: the script LISTENs and NOTIFYs
    // itself, and psql prints the notifying backend's PID, which is a
    // different backend in each run. The line itself must be there in both.
    for (who, out) in [("direct", &mut d), ("proxied", &mut p)] {
        let (masked, n) = mask_notification_pid(&out.stdout_bytes);
        assert_eq!(
            n,
            1,
            "{who}: expected one async notification line: {}",
            out.describe()
        );
        out.stdout_bytes = masked;
    }
    assert_same_output("psql -f script", &d, &p);

    let out = d.stdout();
    let err = d.stderr();
    assert!(
        out.contains(&format!(
            "current_database|current_user\n{db}|{UPSTREAM_USER}\n"
        )),
        "{}",
        d.describe()
    );
    assert!(d.success(), "{}", d.describe());
    // The script really did what it says (so equality is not vacuous).
    for needle in [
        "INSERT 0 3",
        "crème brûlée ✓ 日本語 🎉",
        "(null)",
        "DELETE 1",
        "(2000 rows)",
        "add_one\n42\n",
        "id|big_enough|md5\n1|t|",
        "-ü✓日",
        "server_side_large",
        "ROLLBACK",
        "gexec 3",
    ] {
        assert!(
            out.contains(needle),
            "stdout lacks {needle:?}: {}",
            d.describe()
        );
    }
    for needle in [
        "ERROR:  23505: duplicate key value violates unique constraint \"items_pkey\"",
        "DETAIL:  Key (id)=(1) already exists.",
        "ERROR:  22012: division by zero",
        "ERROR:  42P01: relation \"no_such_table\" does not exist",
        "HINT:  Perhaps you meant to reference the column \"items.name\".",
        "NOTICE:  00000: notice from DO: 42",
        "WARNING:  01000: warning with detail",
        "ERROR:  25P02: current transaction is aborted",
    ] {
        assert!(
            err.contains(needle),
            "stderr lacks {needle:?}: {}",
            d.describe()
        );
    }
    assert!(
        out.len() > 5_000_000,
        "large values missing: {} bytes",
        out.len()
    );
}

#[test]
fn stdin_script_matches_direct() {
    let db = "airlock_t_psql_stdin";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let input = include_bytes!("sql/psql_stdin.sql");

    let d = Conn::direct(db).psql_stdin(&["-A"], input);
    fresh_db(db);
    let p = proxy
        .conn("alice", &format!("{db}-dev"))
        .psql_stdin(&["-A"], input);
    assert_same_output("psql < script", &d, &p);

    assert!(d.success(), "{}", d.describe());
    let out = d.stdout();
    let err = d.stderr();
    assert!(
        out.contains(&format!(
            "current_database|current_user\n{db}|{UPSTREAM_USER}\n"
        )),
        "{}",
        d.describe()
    );
    for needle in [
        "answer is 42",
        "next|quoted\n43|42\n",
        "ROLLBACK",
        "count\n0\n",
        "id\n3\n(1 row)",
        "x is 1",
        "answer is set",
        "error state: true 25P02",
        "multi",
        "line",
    ] {
        assert!(
            out.contains(needle),
            "stdout lacks {needle:?}: {}",
            d.describe()
        );
    }
    for needle in [
        "ERROR:  22012: division by zero",
        "ERROR:  25P02: current transaction is aborted, commands ignored until end of transaction block",
        "ERROR:  23505: duplicate key value",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {}", d.describe());
    }
}

#[test]
fn describe_commands_match_direct() {
    let db = "airlock_t_psql_d";
    let (_proxy, direct, proxied) = setup(db);
    let setup_sql = include_str!("sql/psql_schema.sql");
    direct
        .psql_stdin(&["-v", "ON_ERROR_STOP=1", "-q"], setup_sql.as_bytes())
        .assert_success("create schema objects");

    for cmd in [
        "\\d",
        "\\d items",
        "\\d+ items",
        "\\d orders",
        "\\d shop.customers",
        "\\d items_name_idx",
        "\\d item_summary",
        "\\dt",
        "\\dt shop.*",
        "\\dti",
        "\\di",
        "\\dv",
        "\\ds",
        "\\dn",
        "\\df",
        "\\df shop.*",
        "\\df+ add_tax",
        "\\dT",
        "\\dT+ mood",
        "\\dD",
        "\\dx",
        "\\dp",
        "\\dc",
        "\\dC int4",
        "\\do +",
        "\\sf add_tax",
        "\\sv item_summary",
        "\\l airlock_t_psql_d",
    ] {
        for mode in ["-A", "-P"] {
            let args: Vec<&str> = if mode == "-A" {
                vec!["-A", "-c", cmd]
            } else {
                vec!["-P", "pager=off", "-c", cmd]
            };
            let d = same(
                &format!("psql {mode} -c {cmd:?}"),
                &direct,
                &proxied,
                &args,
                None,
            );
            assert!(d.success(), "{cmd}: {}", d.describe());
            assert!(!d.stdout().is_empty(), "{cmd}: empty output");
        }
    }
    // Spot checks that the objects are really there.
    let d = direct.psql(&["-A", "-c", "\\dt"]);
    assert!(
        d.stdout().contains("public|items|table|airlock_scram"),
        "{}",
        d.describe()
    );
    let d = direct.psql(&["-A", "-c", "\\df"]);
    assert!(d.stdout().contains("add_tax"), "{}", d.describe());
    let d = direct.psql(&["-A", "-c", "\\d items"]);
    assert!(d.stdout().contains("items_name_idx"), "{}", d.describe());

    // \l and \du list cluster-wide objects.
    for cmd in ["\\l", "\\du"] {
        let d = same_cluster_wide(
            &format!("psql -A -c {cmd:?}"),
            &direct,
            &proxied,
            &["-A", "-c", cmd],
        );
        assert!(d.success(), "{}", d.describe());
    }
    let d = same_cluster_wide(
        "psql -c \\l",
        &direct,
        &proxied,
        &["-P", "pager=off", "-c", "\\l"],
    );
    assert!(d.stdout().contains(db), "{}", d.describe());
    assert!(d.stdout().contains("template0"), "{}", d.describe());
}

fn write_copy_inputs(dir: &Path) {
    let mut input = String::new();
    for i in 1..=3000 {
        input.push_str(&format!(
            "{i}\tvalue {i} ✓ with \\t tab and \\\\ backslash\n"
        ));
    }
    // One 200 kB row: larger than any single network read.
    input.push_str(&format!("3001\t{}\n", "0123456789abcdef".repeat(12_800)));
    input.push_str("3002\t\\N\n");
    std::fs::write(dir.join("input.txt"), input).unwrap();
    let mut bad = String::new();
    for i in 1..=1000 {
        if i == 700 {
            bad.push_str("not-a-number\toops\n");
        } else {
            bad.push_str(&format!("{}\tbad file row {i}\n", 10_000 + i));
        }
    }
    std::fs::write(dir.join("bad.txt"), bad).unwrap();
}

#[test]
fn copy_both_ways_matches_direct() {
    let db = "airlock_t_psql_copy";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let script = include_str!("sql/psql_copy.sql");
    let ddir = tempfile::tempdir().unwrap();
    let pdir = tempfile::tempdir().unwrap();
    write_copy_inputs(ddir.path());
    write_copy_inputs(pdir.path());

    // Same script, run in two working directories (\copy paths are relative).
    let mut cmd = Conn::direct(db).psql_cmd(&["-A", "-f", "-"]);
    cmd.current_dir(ddir.path());
    let d = run_with_timeout(cmd, Some(script.as_bytes()), Duration::from_secs(120));
    fresh_db(db);
    let mut cmd = proxy
        .conn("alice", &format!("{db}-dev"))
        .psql_cmd(&["-A", "-f", "-"]);
    cmd.current_dir(pdir.path());
    let p = run_with_timeout(cmd, Some(script.as_bytes()), Duration::from_secs(120));
    assert_same_output("\\copy script", &d, &p);
    assert!(d.success(), "{}", d.describe());

    // Files written by `\copy … to` are identical.
    for f in ["c.txt", "c.csv", "c.bin", "q.txt", "ext.txt"] {
        let a = std::fs::read(ddir.path().join(f)).unwrap_or_else(|e| panic!("direct {f}: {e}"));
        let b = std::fs::read(pdir.path().join(f)).unwrap_or_else(|e| panic!("proxied {f}: {e}"));
        assert!(a == b, "{f} differs: {}", first_difference(&a, &b));
        assert!(!a.is_empty(), "{f} is empty");
    }
    let c_txt = std::fs::read_to_string(pdir.path().join("c.txt")).unwrap();
    assert_eq!(c_txt.lines().count(), 5000);
    assert!(c_txt.contains("\\N"), "NULLs are written as \\N");
    assert!(c_txt.contains("tab\\there\\nnewline \\\\ backslash"));
    let c_csv = std::fs::read_to_string(pdir.path().join("c.csv")).unwrap();
    // header + 5000 rows + 429 notes with an embedded newline (g % 10 = 0, g % 7 <> 0)
    assert_eq!(c_csv.lines().count(), 1 + 5000 + 429);
    let bin = std::fs::read(pdir.path().join("c.bin")).unwrap();
    assert!(
        bin.starts_with(b"PGCOPY\n\xff\r\n\0"),
        "binary COPY signature"
    );
    assert_eq!(
        std::fs::read_to_string(pdir.path().join("ext.txt"))
            .unwrap()
            .lines()
            .count(),
        3004
    );

    let out = d.stdout();
    let err = d.stderr();
    assert!(
        out.contains(&format!(
            "current_database|current_user\n{db}|{UPSTREAM_USER}\n"
        )),
        "{}",
        d.describe()
    );
    for needle in [
        "COPY 5000",
        "COPY 10",
        "COPY 3002",
        "c2|c3|c4|ext\n5000|5000|5000|3002\n",
        "missing_c2|missing_c3|missing_c4\n0|0|0\n",
        "ext_rows|big_len|nulls\n3004|204800|1\n",
        "9001\tinline one",
        "after_bad\n3004\n",
    ] {
        assert!(
            out.contains(needle),
            "stdout lacks {needle:?}: {}",
            d.describe()
        );
    }
    assert!(
        err.contains("invalid input syntax for type integer: \"not-a-number\"")
            && err.contains("COPY ext, line 700"),
        "the bad \\copy must fail at line 700: {}",
        d.describe()
    );
}
