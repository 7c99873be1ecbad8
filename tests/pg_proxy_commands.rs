//! The proxy's own commands over the extended protocol (issue 7, item 4):
//! psycopg (`prepare=True`: named Parse/Bind/Describe/Execute), asyncpg
//! (always prepared statements, described before their Bind, re-executed
//! with Bind alone), node-postgres (named statements, unnamed Parse/Bind
//! with bound parameters) and pgJDBC (what DBeaver uses) each `SET airlock.reason`, read it back with `SHOW`,
//! send a held UPDATE with bound parameters, list `SHOW airlock.requests`;
//! another user approves; `CALL airlock.run(N)` runs the stored statement
//! once. The reason is stored in the request, nothing reaches the upstream
//! as a custom setting, and every driver stays in sync afterwards.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";
const BOB_TOKEN: &str = "bob-api-token-proxycmd-77a1";

fn cli(proxy: &Proxy, args: &[&str]) -> Out {
    common::requests::requests_cli(proxy, BOB_TOKEN, args)
}

fn seed(db: &str) {
    fresh_db_with(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 4) g",
    );
}

/// The stored request: its reason and status, from the API.
fn request(proxy: &Proxy, id: &str) -> String {
    let out = cli(proxy, &["show", id, "--json"]);
    assert!(out.success(), "{}", out.describe());
    out.stdout()
}

const PSYCOPG: &str = r#"
import sys, psycopg
mode, conninfo = sys.argv[1], sys.argv[2]
with psycopg.connect(conninfo, autocommit=True) as c:
    if mode == "hold":
        c.execute("SET airlock.reason = 'driver reason psycopg'", prepare=True)
        print("set ok")
        print("reason", c.execute("SHOW airlock.reason", prepare=True).fetchone()[0])
        try:
            c.execute("UPDATE t SET v = %s WHERE id = %s", ("psy", 1), prepare=True)
            print("UPDATED")
        except psycopg.Error as e:
            print("SQLSTATE", e.sqlstate)
        rows = c.execute("SHOW airlock.requests", prepare=True).fetchall()
        print("requests", len(rows))
        upstream = c.execute("SELECT current_setting('airlock.reason', true)", prepare=True)
        print("upstream setting", upstream.fetchone()[0])
    else:
        cur = c.execute("CALL airlock.run(%s)", (int(sys.argv[3]),), prepare=True)
        print("ran", cur.rowcount)
    print("still in sync", c.execute("SELECT 1", prepare=True).fetchone()[0])
"#;

const ASYNCPG: &str = r#"
import sys, asyncio, asyncpg
mode, dsn = sys.argv[1], sys.argv[2]
async def main():
    c = await asyncpg.connect(dsn, ssl=False)
    if mode == "hold":
        await c.fetch("SET airlock.reason = 'driver reason asyncpg'")
        print("set ok")
        print("reason", await c.fetchval("SHOW airlock.reason"))
        try:
            # Bound parameters: asyncpg prepares (Parse + Describe) to learn
            # their types, then binds (binary values).
            await c.execute("UPDATE t SET v = $1 WHERE id = $2", "apg", 2)
            print("UPDATED")
        except asyncpg.PostgresError as e:
            print("SQLSTATE", e.sqlstate)
        print("requests", len(await c.fetch("SHOW airlock.requests")))
        # asyncpg re-executes its cached statement with Bind alone.
        print("reason again", await c.fetchval("SHOW airlock.reason"))
    elif mode == "resend":
        # The approved statement sent again with the same bound parameters runs.
        status = await c.execute("UPDATE t SET v = $1 WHERE id = $2", "apg", 2)
        print("ran", status)
    else:
        await c.fetch("CALL airlock.run(%d)" % int(sys.argv[3]))
        print("ran")
    print("still in sync", await c.fetchval("SELECT 1"))
    await c.close()
asyncio.run(main())
"#;

fn python(script: &str, args: &[&str]) -> String {
    let mut py = Command::new("python3");
    py.arg("-c").arg(script).args(args);
    let out = run_with_timeout(py, None, Duration::from_secs(60));
    assert!(out.success(), "{}", out.describe());
    out.stdout()
}

fn held_and_run(
    db: &str,
    proxy: &Proxy,
    hold: impl Fn() -> String,
    run: impl Fn(&str) -> String,
    reason: &str,
    id: i32,
    value: &str,
) {
    let transcript = hold();
    assert!(transcript.contains("set ok\n"), "{transcript}");
    assert!(
        transcript.contains(&format!("reason {reason}\n")),
        "{transcript}"
    );
    assert!(transcript.contains("SQLSTATE AL001\n"), "{transcript}");
    assert!(transcript.contains("requests 1\n"), "{transcript}");
    assert!(transcript.contains("still in sync 1\n"), "{transcript}");
    let stored = request(proxy, "1");
    assert!(stored.contains(reason), "the reason is stored: {stored}");
    assert_eq!(
        admin_query(db, &format!("SELECT v FROM t WHERE id = {id}")),
        format!("v{id}"),
        "nothing ran before approval"
    );
    assert!(cli(proxy, &["approve", "1"]).success());
    let transcript = run("1");
    assert!(transcript.contains("ran"), "{transcript}");
    assert!(transcript.contains("still in sync 1\n"), "{transcript}");
    assert_eq!(
        admin_query(db, &format!("SELECT v FROM t WHERE id = {id}")),
        value
    );
    let stored = request(proxy, "1");
    assert!(stored.contains("executed"), "{stored}");
}

#[test]
fn psycopg_prepared_proxy_commands() {
    let db = "airlock_t_pcmd_psycopg";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let conninfo = format!("{} password={}", alice.conninfo(), alice.password);
    held_and_run(
        db,
        &proxy,
        || {
            let t = python(PSYCOPG, &["hold", &conninfo]);
            // SET airlock.* never reached the upstream as a custom setting.
            assert!(t.contains("upstream setting None\n"), "{t}");
            t
        },
        |id| python(PSYCOPG, &["run", &conninfo, id]),
        "driver reason psycopg",
        1,
        "psy",
    );
}

#[test]
fn asyncpg_proxy_commands() {
    let db = "airlock_t_pcmd_asyncpg";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let dsn = format!(
        "postgresql://alice:{}@127.0.0.1:{}/{db}-prod",
        alice.password, proxy.pg_port
    );
    let transcript = python(ASYNCPG, &["hold", &dsn]);
    assert!(
        transcript.contains("reason again driver reason asyncpg\n"),
        "{transcript}"
    );
    held_and_run(
        db,
        &proxy,
        || transcript.clone(),
        |id| python(ASYNCPG, &["run", &dsn, id]),
        "driver reason asyncpg",
        2,
        "apg",
    );
    resend_runs_the_approved_statement(
        db,
        &proxy,
        || python(ASYNCPG, &["hold", &dsn]),
        || python(ASYNCPG, &["resend", &dsn]),
        2,
        "apg",
    );
}

/// A second hold of the same statement (request 2, after request 1 ran and
/// the row was reset), approved by bob, then the same statement with the
/// same bound parameters sent again: it runs once, from the request.
fn resend_runs_the_approved_statement(
    db: &str,
    proxy: &Proxy,
    hold: impl Fn() -> String,
    resend: impl Fn() -> String,
    id: i32,
    value: &str,
) {
    admin_query(db, &format!("UPDATE t SET v = 'v{id}' WHERE id = {id}"));
    let transcript = hold();
    assert!(transcript.contains("SQLSTATE AL001\n"), "{transcript}");
    assert!(cli(proxy, &["approve", "2"]).success());
    let transcript = resend();
    assert!(transcript.contains("ran"), "{transcript}");
    assert!(transcript.contains("still in sync 1\n"), "{transcript}");
    assert_eq!(
        admin_query(db, &format!("SELECT v FROM t WHERE id = {id}")),
        value
    );
    let stored = request(proxy, "2");
    assert!(stored.contains("\"status\":\"executed\""), "{stored}");
}

#[test]
fn node_postgres_proxy_commands() {
    let modules = workspace_root().join("tests/node/node_modules/pg");
    assert!(
        modules.exists(),
        "node-postgres is missing: npm ci --prefix tests/node (done by .ci/run)"
    );
    let db = "airlock_t_pcmd_node";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let url = format!(
        "postgresql://alice:{}@127.0.0.1:{}/{db}-prod",
        alice.password, proxy.pg_port
    );
    let node = |args: &[&str]| {
        let mut cmd = Command::new("node");
        cmd.arg(workspace_root().join("tests/node/proxy_commands.js"))
            .args(args);
        let out = run_with_timeout(cmd, None, Duration::from_secs(60));
        assert!(out.success(), "{}", out.describe());
        out.stdout()
    };
    held_and_run(
        db,
        &proxy,
        || node(&["hold", &url]),
        |id| node(&["run", &url, id]),
        "driver reason node",
        4,
        "node",
    );
    resend_runs_the_approved_statement(
        db,
        &proxy,
        || node(&["hold", &url]),
        || node(&["resend", &url]),
        4,
        "node",
    );
}

#[test]
fn pgjdbc_proxy_commands() {
    assert!(
        std::path::Path::new(PGJDBC_JAR).exists(),
        "{PGJDBC_JAR} missing (.ci/run installs it)"
    );
    let db = "airlock_t_pcmd_jdbc";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let classes = tempfile::tempdir().expect("tempdir");
    let mut javac = Command::new("javac");
    javac
        .args(["-cp", PGJDBC_JAR, "-d"])
        .arg(classes.path())
        .arg(workspace_root().join("tests/jdbc/ProxyCommands.java"));
    run_with_timeout(javac, None, Duration::from_secs(180)).assert_success("javac ProxyCommands");
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/{db}-prod?sslmode=disable",
        proxy.pg_port
    );
    let password = proxy.conn("alice", "x").password;
    let java = |args: &[&str]| {
        let mut java = Command::new("java");
        java.arg("-cp")
            .arg(format!("{}:{PGJDBC_JAR}", classes.path().display()))
            .arg("ProxyCommands")
            .arg(args[0])
            .args([url.as_str(), "alice", password.as_str()])
            .args(&args[1..]);
        let out = run_with_timeout(java, None, Duration::from_secs(120));
        assert!(out.success(), "{}", out.describe());
        out.stdout()
    };
    held_and_run(
        db,
        &proxy,
        || java(&["hold", "jdbc", "3"]),
        |id| java(&["run", id]),
        "driver reason jdbc",
        3,
        "jdbc",
    );
}

#[test]
fn bad_directives_fail_loudly_in_the_session() {
    let db = "airlock_t_pcmd_directives";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    for (sql, names) in [
        ("/* airlock: max_rows=abc */ DELETE FROM t", "max_rows"),
        ("/* airlock: reasn=typo */ DELETE FROM t", "reasn"),
    ] {
        let out = alice.psql(&["-v", "VERBOSITY=verbose", "-c", sql]);
        assert!(!out.success(), "{}", out.describe());
        assert!(
            out.stderr().contains("AL002") && out.stderr().contains(names),
            "{sql}: {}",
            out.describe()
        );
    }
    let out = alice.psql(&["-c", "SET airlock.max_rows = 'many'"]);
    assert!(
        !out.success() && out.stderr().contains("max_rows"),
        "{}",
        out.describe()
    );
    assert_eq!(admin_query(db, "SELECT count(*) FROM t"), "4");
    assert!(request_count_is_zero(&proxy));
}

fn request_count_is_zero(proxy: &Proxy) -> bool {
    let out = cli(proxy, &["list", "--json"]);
    out.success() && !out.stdout().contains("\"id\"")
}
