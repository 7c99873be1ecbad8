//! pgJDBC and psycopg (extended protocol, bound parameters) on a protected
//! target: they see the held SQLSTATE, a held UPDATE aborts a transaction
//! block and makes one request, and an approved request runs when the same
//! prepared statement is executed again with the same parameters.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";
const BOB_TOKEN: &str = "bob-api-token-drivers-4c2e";

fn cli(proxy: &Proxy, args: &[&str]) -> Out {
    common::requests::requests_cli(proxy, BOB_TOKEN, args)
}

fn seed(db: &str) {
    fresh_db_with(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g",
    );
}

fn open_requests(proxy: &Proxy) -> usize {
    let out = cli(proxy, &["list", "--json"]);
    assert!(out.success(), "{}", out.describe());
    out.stdout().matches("\"status\":\"pending\"").count()
        + out.stdout().matches("\"status\": \"pending\"").count()
}

#[test]
fn pgjdbc_sees_the_held_state_aborts_its_block_and_runs_the_approved_statement() {
    assert!(
        std::path::Path::new(PGJDBC_JAR).exists(),
        "{PGJDBC_JAR} missing (.ci/run installs it)"
    );
    let db = "airlock_t_held_jdbc";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let classes = tempfile::tempdir().expect("tempdir");
    let mut javac = Command::new("javac");
    javac
        .args(["-cp", PGJDBC_JAR, "-d"])
        .arg(classes.path())
        .arg(workspace_root().join("tests/jdbc/HeldFlow.java"));
    run_with_timeout(javac, None, Duration::from_secs(180)).assert_success("javac HeldFlow");
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/{db}-prod?sslmode=disable",
        proxy.pg_port
    );
    let password = proxy.conn("alice", "x").password;
    let run = |mode: &str, value: &str, id: &str| {
        let mut java = Command::new("java");
        java.arg("-cp")
            .arg(format!("{}:{PGJDBC_JAR}", classes.path().display()))
            .args(["HeldFlow", mode, &url, "alice", &password, value, id]);
        let out = run_with_timeout(java, None, Duration::from_secs(120));
        assert!(out.success(), "{}", out.describe());
        out.stdout()
    };

    // In a transaction block: held (AL001), the block is aborted (25P02), one request.
    assert_eq!(
        run("txn", "t", "2"),
        "SELECT 1\nSQLSTATE AL001\nSQLSTATE 25P02\nSELECT 1\n"
    );
    assert_eq!(open_requests(&proxy), 1);

    // Autocommit, bound parameters: held, approved, executed once on re-execution.
    assert_eq!(run("update", "j", "1"), "SQLSTATE AL001\n");
    assert_eq!(open_requests(&proxy), 2);
    assert!(cli(&proxy, &["approve", "2"]).success());
    assert_eq!(run("update", "j", "1"), "UPDATED 1\n");
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 1"), "j");
    // Other parameter values are another request.
    assert_eq!(run("update", "k", "1"), "SQLSTATE AL001\n");
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 1"), "j");
}

const PSYCOPG_FLOW: &str = r#"
import sys, psycopg
conninfo, value, ident = sys.argv[1], sys.argv[2], int(sys.argv[3])
with psycopg.connect(conninfo, autocommit=True) as c:
    try:
        cur = c.execute("UPDATE t SET v = %s WHERE id = %s", (value, ident), prepare=True)
        print("UPDATED", cur.rowcount)
    except psycopg.Error as e:
        print("SQLSTATE", e.sqlstate)
"#;

#[test]
fn psycopg_runs_the_approved_statement_with_its_bound_parameters() {
    let db = "airlock_t_held_psycopg";
    seed(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db).with_api_token("bob", BOB_TOKEN));
    let alice = proxy.conn("alice", &format!("{db}-prod"));
    let conninfo = format!("{} password={}", alice.conninfo(), alice.password);
    let run = |value: &str, id: &str| {
        let mut py = Command::new("python3");
        py.args(["-c", PSYCOPG_FLOW, &conninfo, value, id]);
        let out = run_with_timeout(py, None, Duration::from_secs(60));
        assert!(out.success(), "{}", out.describe());
        out.stdout()
    };
    assert_eq!(run("p", "3"), "SQLSTATE AL001\n");
    assert!(cli(&proxy, &["approve", "1"]).success());
    assert_eq!(run("p", "3"), "UPDATED 1\n");
    assert_eq!(admin_query(db, "SELECT v FROM t WHERE id = 3"), "p");
    assert_eq!(
        run("p", "3"),
        "SQLSTATE AL001\n",
        "a further run is a new request"
    );
}
