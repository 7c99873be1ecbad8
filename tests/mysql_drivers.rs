//! Drivers through the MySQL listener: MariaDB Connector/J (server-side
//! prepared statements with parameters of several types, DatabaseMetaData,
//! 100k rows streamed) and mysql-connector-python (binary prepared
//! statements) see through airlock what they see directly; on a protected
//! target a prepared read passes and a prepared write changes nothing.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BOB_TOKEN: &str = "alk_bob_mydrivers_token_0123456789";

const MARIADB_JDBC_JAR: &str = "/usr/share/java/mariadb-java-client.jar";

fn seed(schema: &str) {
    fresh_schema(schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.kinds (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(12,4),
            at DATETIME(6), blobby BLOB, big BIGINT UNSIGNED);
         INSERT INTO `{schema}`.kinds VALUES
            (1, 'héllo 🚀', 1234.5678, '2026-01-02 03:04:05.678901', x'00ff10', 18446744073709551615),
            (2, NULL, NULL, NULL, NULL, NULL),
            (3, '', -0.0001, '1000-01-01 00:00:00', '', 0)"
    ));
}

#[test]
fn mariadb_connector_j_sees_the_same_through_airlock() {
    assert!(
        Path::new(MARIADB_JDBC_JAR).exists(),
        "{MARIADB_JDBC_JAR} is missing: apt-get install -y libmariadb-java (done by .ci/run)"
    );
    let schema = "airlock_t_myd_jdbc";
    seed(schema);
    let proxy = Proxy::start(ProxyConfig::for_mariadb(schema));
    let dir = tempfile::Builder::new()
        .prefix("airlock-myjdbc-")
        .tempdir()
        .unwrap();
    let mut javac = Command::new("javac");
    javac
        .args(["-encoding", "UTF-8", "-cp", MARIADB_JDBC_JAR, "-d"])
        .arg(dir.path())
        .arg(workspace_root().join("tests/jdbc/MysqlCheck.java"));
    run_with_timeout(javac, None, Duration::from_secs(180)).assert_success("javac MysqlCheck");
    let run = |port: u16, user: &str, pw: &str| {
        let mut cmd = Command::new("java");
        cmd.arg("-Dfile.encoding=UTF-8")
            .arg("-cp")
            .arg(format!("{}:{MARIADB_JDBC_JAR}", dir.path().display()))
            .arg("MysqlCheck")
            .arg(format!(
                "jdbc:mariadb://127.0.0.1:{port}/{schema}?useServerPrepStmts=true&characterEncoding=UTF-8"
            ))
            .arg(user)
            .arg(pw);
        let out = run_with_timeout(cmd, None, Duration::from_secs(120));
        out.assert_success("MysqlCheck");
        out.stdout()
    };
    let direct = run(MARIADB_PORT, MARIADB_USER, "");
    assert!(direct.contains("streamed 100000 5000050000"), "{direct}");
    assert!(direct.contains("error 1146 42S02"), "{direct}");
    let proxied = run(proxy.mysql_port, "alice", &proxy.config.password("alice"));
    assert_eq!(proxied, direct);
}

const PY_PREPARED: &str = r#"
import sys, json, mysql.connector
port, user, pw, db, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
c = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db,
                            use_pure=True, autocommit=True)
out = {}
cur = c.cursor(prepared=True)
cur.execute("SELECT id, name, price, at, big FROM kinds WHERE id <= %s ORDER BY id", (3,))
out["rows"] = [[repr(v) for v in r] for r in cur.fetchall()]
cur.execute("SELECT %s + 1, CONCAT(%s, 'x')", (41, "é"))
out["params"] = [repr(v) for v in cur.fetchone()]
if mode in ("write", "resend"):
    import datetime, decimal
    params = (decimal.Decimal("0.5000"), "it's \\ é", datetime.datetime(2024, 1, 2, 3, 4, 5, 600),
              b"\x00\xfe", None, 1)
    try:
        cur.execute("UPDATE kinds SET price = %s, name = %s, at = %s, blobby = %s, big = %s WHERE id = %s",
                    params)
        out["write"] = "ran %d" % cur.rowcount
    except mysql.connector.Error as e:
        out["write"] = "refused %s %s" % (e.errno, e.sqlstate)
        out["message"] = e.msg
print(json.dumps(out, sort_keys=True))
"#;

fn py(port: u16, user: &str, pw: &str, schema: &str, mode: &str) -> serde_json::Value {
    let out = python(PY_PREPARED, &[&port.to_string(), user, pw, schema, mode]);
    out.assert_success("mysql-connector-python");
    serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.describe()))
}

#[test]
fn prepared_statements_pass_reads_and_hold_writes_on_a_protected_target() {
    let schema = "airlock_t_myd_prep";
    seed(schema);
    let mut config = ProxyConfig::for_mariadb(schema).with_api_token("bob", BOB_TOKEN);
    config.targets[0].protected = true;
    config.targets[0].read_only_backstop = Some(false);
    let proxy = Proxy::start(config);
    let direct = py(MARIADB_PORT, MARIADB_USER, "", schema, "read");
    let proxied = py(
        proxy.mysql_port,
        "alice",
        &proxy.config.password("alice"),
        schema,
        "write",
    );
    assert_eq!(proxied["rows"], direct["rows"]);
    assert_eq!(proxied["params"], direct["params"]);
    // The prepared change is held as the text it means, its parameters as
    // literals.
    assert_eq!(proxied["write"], "refused 50001 AL001", "{proxied}");
    let row = || {
        mariadb_admin(&format!(
            "SELECT price, name, at, HEX(blobby), big FROM `{schema}`.kinds WHERE id = 1"
        ))
        .trim()
        .to_string()
    };
    assert_eq!(
        row(),
        "1234.5678\théllo 🚀\t2026-01-02 03:04:05.678901\t00FF10\t18446744073709551615",
        "the prepared write changed nothing"
    );
    let shown = common::requests::requests_cli(&proxy, BOB_TOKEN, &["show", "1", "--json"]);
    shown.assert_success("show");
    let v: serde_json::Value = serde_json::from_str(&shown.stdout()).expect("json");
    assert_eq!(
        v["request"]["statement"],
        "UPDATE kinds SET price = 0.5000, name = 'it''s \\\\ é', at = '2024-01-02 03:04:05.000600', blobby = X'00FE', big = NULL WHERE id = 1",
        "{v}"
    );
    common::requests::requests_cli(&proxy, BOB_TOKEN, &["approve", "1"]).assert_success("approve");
    // The same execute again runs the approved text once.
    let again = py(
        proxy.mysql_port,
        "alice",
        &proxy.config.password("alice"),
        schema,
        "resend",
    );
    assert_eq!(again["write"], "ran 1", "{again}");
    assert_eq!(
        row(),
        "0.5000\tit's \\\\ é\t2024-01-02 03:04:05.000600\t00FE\tNULL"
    );
}

#[test]
fn reset_connection_keeps_the_backstop_and_the_label() {
    let schema = "airlock_t_myd_reset";
    seed(schema);
    let mut config = ProxyConfig::for_mariadb(schema);
    config.targets[0].protected = true;
    let proxy = Proxy::start(config);
    let script = r#"
import sys, json, mysql.connector
port, pw, db = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = mysql.connector.connect(host="127.0.0.1", port=port, user="alice", password=pw, database=db, use_pure=True)
cur = c.cursor()
cur.execute("SET @x = 5")
c.cmd_reset_connection()
cur = c.cursor()
cur.execute("SELECT @@session.tx_read_only, @airlock_developer, @x IS NULL")
print(json.dumps([str(v) for v in cur.fetchone()]))
"#;
    let (port, alice) = (proxy.mysql_port.to_string(), proxy.config.password("alice"));
    let out = python(script, &[&port, &alice, schema]);
    out.assert_success("reset connection");
    assert_eq!(out.stdout().trim(), r#"["1", "alice", "1"]"#);
}

#[test]
fn change_user_authenticates_the_new_user_and_resets_the_session() {
    let schema = "airlock_t_myd_chuser";
    seed(schema);
    let mut config = ProxyConfig::for_mariadb(schema);
    config.targets[0].protected = true;
    let proxy = Proxy::start(config);
    let script = r#"
import sys, json, mysql.connector
port, alice, bob, db = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = mysql.connector.connect(host="127.0.0.1", port=port, user="alice", password=alice, database=db, use_pure=True)
cur = c.cursor()
cur.execute("SET @x = 1")
c.cmd_change_user(username="bob", password=bob, database=db)
cur = c.cursor()
cur.execute("SELECT @airlock_developer, @@session.tx_read_only, @x IS NULL")
out = {"after": [str(v) for v in cur.fetchone()]}
try:
    c.cmd_change_user(username="alice", password="wrong", database=db)
    out["wrong"] = "accepted"
except mysql.connector.Error as e:
    out["wrong"] = e.errno
print(json.dumps(out))
"#;
    let port = proxy.mysql_port.to_string();
    let (alice, bob) = (proxy.config.password("alice"), proxy.config.password("bob"));
    let out = python(script, &[&port, &alice, &bob, schema]);
    out.assert_success("change user");
    assert_eq!(
        out.stdout().trim(),
        r#"{"after": ["bob", "1", "1"], "wrong": 1045}"#
    );
}
