//! The MySQL listener on an unprotected MariaDB target: the mysql CLI,
//! mysqldump and PyMySQL get through the proxy exactly what they get
//! directly (column types, NULLs, BLOB, DECIMAL, DATETIME(6), utf8mb4,
//! warnings, errors with their codes and SQLSTATEs, multi-results, 100k
//! rows); logins are checked against the users' verifiers.

mod common;
use common::*;
use std::time::Duration;

/// Each test has its own schema (tests run in parallel).
fn setup(tag: &str) -> (Proxy, String) {
    let schema = format!("airlock_t_my_{tag}");
    let schema = schema.as_str();
    fresh_schema(schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.kinds (
            id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(12,4), at DATETIME(6),
            blobby BLOB, doc JSON, ratio DOUBLE, flag BIT(3), mood ENUM('ok','meh'), big BIGINT UNSIGNED);
         INSERT INTO `{schema}`.kinds VALUES
            (1, 'héllo 🚀 wörld', 1234.5678, '2026-01-02 03:04:05.678901', x'00ff10', '{{\"a\": [1, 2]}}', 0.1, b'101', 'ok', 18446744073709551615),
            (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (3, '', -0.0001, '1000-01-01 00:00:00', '', 'null', -1e300, b'0', 'meh', 0);"
    ));
    mariadb_admin(&format!(
        "DELIMITER //\nCREATE PROCEDURE `{schema}`.two_results() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; END//"
    ));
    (
        Proxy::start(ProxyConfig::for_mariadb(schema)),
        schema.to_string(),
    )
}

/// What the mysql CLI prints for `script` (batch mode, column types, keep
/// going after errors), directly and through the proxy.
fn both(proxy: &Proxy, schema: &str, args: &[&str], script: &str) -> (Out, Out) {
    let mut all = vec![
        "--force",
        "-t",
        "--column-type-info",
        "--show-warnings",
        schema,
    ];
    all.extend_from_slice(args);
    let direct = mysql_direct(&all, Some(script.as_bytes()));
    let proxied = proxy.mysql("alice", &all, Some(script.as_bytes()));
    (direct, proxied)
}

const SCRIPT: &str = "
SELECT * FROM kinds ORDER BY id;
SELECT 1/0, CAST('x' AS INT);
SELECT * FROM no_such_table;
SELEC broken syntax;
SELECT DATABASE(), @@session.autocommit, CHARSET('é'), LENGTH('🚀');
CALL two_results();
SELECT id, name FROM kinds WHERE id > 100;
INSERT INTO kinds (id) VALUES (1);
SET @v = 5; SELECT @v * 2;
";

#[test]
fn mysql_cli_batch_output_matches_direct() {
    let (proxy, schema) = setup("batch");
    let (direct, proxied) = both(&proxy, &schema, &[], SCRIPT);
    assert!(
        direct.stdout().contains("Type:       NEWDECIMAL"),
        "the script shows column types: {}",
        direct.describe()
    );
    assert!(
        direct.stderr().contains("ERROR 1146 (42S02)"),
        "{}",
        direct.describe()
    );
    assert_eq!(proxied.stdout(), direct.stdout(), "stdout differs");
    assert_eq!(proxied.stderr(), direct.stderr(), "errors differ");
    assert_eq!(proxied.success(), direct.success());
}

#[test]
fn mysql_cli_dash_e_and_a_large_result_match_direct() {
    let (proxy, schema) = setup("dash_e");
    let schema = schema.as_str();
    for sql in [
        "SELECT seq, REPEAT('x', seq % 300), seq * 1.5 FROM seq_1_to_100000",
        "SELECT * FROM kinds; SELECT 1/0; SHOW WARNINGS",
        "SELECT REPEAT('y', 20000000) AS big",
    ] {
        let direct = mysql_direct(&["-B", schema, "-e", sql], None);
        let proxied = proxy.mysql("alice", &["-B", schema, "-e", sql], None);
        direct.assert_success(sql);
        assert_eq!(proxied.stdout(), direct.stdout(), "{sql}: stdout differs");
        assert_eq!(proxied.stderr(), direct.stderr(), "{sql}: stderr differs");
    }
    let e = proxy.mysql("alice", &[schema, "-e", "SELECT * FROM nope"], None);
    assert!(
        e.stderr().contains("ERROR 1146 (42S02)"),
        "an upstream error keeps its code and SQLSTATE: {}",
        e.describe()
    );
}

#[test]
fn mysqldump_through_the_proxy_matches_direct() {
    let (proxy, schema) = setup("dump");
    let schema = schema.as_str();
    let dump = |port: u16, user: &str, pw: &str| mysqldump(port, user, pw, schema, &["--routines"]);
    let direct = dump(MARIADB_PORT, MARIADB_USER, "");
    direct.assert_success("direct mysqldump");
    let proxied = dump(proxy.mysql_port, "alice", &proxy.config.password("alice"));
    proxied.assert_success("mysqldump through airlock");
    assert!(direct.stdout().contains("INSERT INTO `kinds`"));
    assert_eq!(proxied.stdout(), direct.stdout());
}

#[test]
fn logins_are_checked_and_refusals_say_why() {
    let (proxy, schema) = setup("logins");
    let schema = schema.as_str();
    let bad = run_with_timeout(
        {
            let mut c = mysql_cmd(proxy.mysql_port, "alice", "wrong");
            c.args([schema, "-e", "SELECT 1"]);
            c
        },
        None,
        Duration::from_secs(30),
    );
    assert!(
        bad.stderr().contains("ERROR 1045 (28000)"),
        "{}",
        bad.describe()
    );
    assert!(
        bad.stderr().contains("airlock passwd"),
        "names the command: {}",
        bad.describe()
    );
    let nobody = run_with_timeout(
        {
            let mut c = mysql_cmd(proxy.mysql_port, "nobody", "x");
            c.args([schema, "-e", "SELECT 1"]);
            c
        },
        None,
        Duration::from_secs(30),
    );
    assert!(
        nobody.stderr().contains("ERROR 1045 (28000)"),
        "{}",
        nobody.describe()
    );
    let unknown = proxy.mysql("alice", &["no_such_target", "-e", "SELECT 1"], None);
    assert!(
        unknown.stderr().contains("ERROR 1049 (42000)"),
        "{}",
        unknown.describe()
    );
    let outsider = proxy.mysql("mallory", &[schema, "-e", "SELECT 1"], None);
    assert!(
        outsider.stderr().contains("ERROR 1044 (42000)"),
        "{}",
        outsider.describe()
    );
    // The one target alice may reach is picked when she names none.
    let implicit = proxy.mysql("alice", &["-N", "-e", "SELECT DATABASE()"], None);
    implicit.assert_success("no schema named");
    assert_eq!(implicit.stdout().trim(), schema);
    // Another schema of the server is not this target.
    let other = proxy.mysql("alice", &[schema, "-e", "USE mysql"], None);
    assert!(
        other.stderr().contains("ERROR 1044"),
        "{}",
        other.describe()
    );
    let ok = proxy.mysql(
        "alice",
        &["-N", schema, "-e", "SELECT @airlock_developer"],
        None,
    );
    ok.assert_success("labelled session");
    assert_eq!(
        ok.stdout().trim(),
        "alice",
        "the upstream session carries the developer"
    );
}

#[test]
fn passwd_prints_the_verifiers_mariadb_computes() {
    let lines = mysql_verifier_lines("correct horse");
    let native = mariadb_admin("SELECT PASSWORD('correct horse')");
    assert!(
        lines.contains(&format!("mysql_native_verifier = \"{}\"", native.trim())),
        "{lines:?} vs {native}"
    );
    let sha2 = mariadb_admin("SELECT LOWER(SHA2(UNHEX(SHA2('correct horse', 256)), 256))");
    assert!(
        lines.contains(&format!("mysql_sha2_verifier = \"{}\"", sha2.trim())),
        "{lines:?} vs {sha2}"
    );
}

#[test]
fn pymysql_reads_match_direct_with_caching_sha2() {
    let (proxy, schema) = setup("pymysql");
    let schema = schema.as_str();
    let script = r#"
import sys, pymysql, json
port, user, pw, db = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db,
                    client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
out = {"plugin": c._auth_plugin_name}
cur = c.cursor()
cur.execute("SELECT * FROM kinds WHERE id <= %s ORDER BY id", (3,))
out["rows"] = [[repr(v) for v in r] for r in cur.fetchall()]
out["desc"] = [list(d) for d in cur.description]
cur.execute("SELECT 1 AS a; SELECT 2 AS b, 'two' AS c")
out["multi1"] = [list(r) for r in cur.fetchall()]
cur.nextset()
out["multi2"] = [list(r) for r in cur.fetchall()]
cur.execute("SELECT 1/0")
out["warnings"] = c.show_warnings()
try:
    cur.execute("SELECT * FROM nope")
except pymysql.MySQLError as e:
    out["error"] = list(e.args)
cur = c.cursor(pymysql.cursors.SSCursor)
cur.execute("SELECT seq FROM seq_1_to_100000")
out["streamed"] = sum(r[0] for r in cur)
print(json.dumps(out, default=str, sort_keys=True))
"#;
    let run = |port: u16, user: &str, pw: &str| {
        let out = python(script, &[&port.to_string(), user, pw, schema]);
        out.assert_success("pymysql");
        out.stdout()
    };
    let direct = run(MARIADB_PORT, MARIADB_USER, "");
    let proxied = run(proxy.mysql_port, "alice", &proxy.config.password("alice"));
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        let plugin = v["plugin"].take();
        (v, plugin)
    };
    let (d, _) = strip(&direct);
    let (p, plugin) = strip(&proxied);
    assert_eq!(
        plugin, "caching_sha2_password",
        "the proxy's login used caching_sha2"
    );
    assert_eq!(p, d);
}

#[test]
fn mysql_cli_over_tls_matches_direct_and_tls_can_be_required() {
    let schema = "airlock_t_my_tls";
    fresh_schema(schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO `{schema}`.t VALUES (1, 'héllo'), (2, NULL)"
    ));
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "my-");
    let ca = pki.ca_cert.to_string_lossy().into_owned();
    let proxy = Proxy::start(ProxyConfig::for_mariadb(schema).with_tls(
        &pki.server_cert,
        &pki.server_key,
        true,
    ));
    let sql = "SELECT * FROM t ORDER BY id; SELECT seq FROM seq_1_to_20000; SHOW STATUS LIKE 'Ssl_cipher'";
    let tls = proxy.mysql(
        "alice",
        &[
            "--ssl",
            "--ssl-ca",
            &ca,
            "--ssl-verify-server-cert",
            "-B",
            schema,
            "-e",
            sql,
        ],
        None,
    );
    tls.assert_success("mysql --ssl through airlock");
    let direct = mysql_direct(
        &[
            "-B",
            schema,
            "-e",
            "SELECT * FROM t ORDER BY id; SELECT seq FROM seq_1_to_20000",
        ],
        None,
    );
    assert!(
        tls.stdout().starts_with(&direct.stdout()),
        "{}",
        tls.describe()
    );
    // The client's session to airlock is encrypted (the cipher the proxy
    // negotiated is airlock's, the upstream's own status is relayed as is).
    let cipher = proxy.mysql(
        "alice",
        &["--ssl", "--ssl-ca", &ca, "-N", schema, "-e", "\\s"],
        None,
    );
    assert!(
        cipher.stdout().contains("Cipher in use") || cipher.stdout().contains("SSL:"),
        "{}",
        cipher.describe()
    );
    assert!(
        !cipher.stdout().contains("Not in use"),
        "{}",
        cipher.describe()
    );
    // With [tls] require = true a plaintext login is refused.
    let plain = proxy.mysql("alice", &["--skip-ssl", schema, "-e", "SELECT 1"], None);
    assert!(!plain.success());
    assert!(
        plain.stderr().contains("requires an encrypted connection"),
        "{}",
        plain.describe()
    );
}

#[test]
fn upstream_tls_verify_full_is_used_and_a_wrong_ca_refused() {
    let schema = "airlock_t_my_uptls";
    fresh_schema(schema);
    let ca = std::path::PathBuf::from("/etc/mysql/airlock-ssl/ca.pem");
    assert!(
        ca.exists(),
        "tests/setup-mariadb.sh enables TLS on the local MariaDB"
    );
    let dir = tempfile::tempdir().unwrap();
    let other = make_pki(dir.path(), "wrong-");
    let mut config = ProxyConfig::for_mariadb(schema);
    config.targets[0].tls = "verify-full".into();
    config.targets[0].ca_file = Some(ca);
    let mut wrong = TargetSpec::mariadb("wrong_ca", schema, false);
    wrong.tls = "verify-full".into();
    wrong.ca_file = Some(other.ca_cert.clone());
    config.targets.push(wrong);
    let proxy = Proxy::start(config);
    let out = proxy.mysql(
        "alice",
        &["-N", schema, "-e", "SHOW SESSION STATUS LIKE 'Ssl_version'"],
        None,
    );
    out.assert_success("a session over upstream TLS");
    assert!(
        out.stdout().contains("TLSv1."),
        "the upstream session is encrypted: {}",
        out.describe()
    );
    let refused = proxy.mysql("alice", &["wrong_ca", "-e", "SELECT 1"], None);
    assert!(!refused.success());
    assert!(refused.stderr().contains("TLS"), "{}", refused.describe());
}

#[test]
fn kill_query_reaches_only_the_users_own_sessions() {
    let (proxy, schema) = setup("kill");
    let schema = schema.as_str();
    let mut sleeper_cmd = mysql_cmd(proxy.mysql_port, "alice", &proxy.config.password("alice"));
    sleeper_cmd.args([schema, "-e", "SELECT SLEEP(30)"]);
    let sleeper = Background::spawn(sleeper_cmd);
    let mut thread = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            thread = mariadb_admin(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'",
            )
            .trim()
            .to_string();
            !thread.is_empty()
        }),
        "the sleep never reached the upstream"
    );
    // Bob may use the target, but the session is alice's.
    let bob = proxy.mysql(
        "bob",
        &[schema, "-e", &format!("KILL QUERY {thread}")],
        None,
    );
    assert!(bob.stderr().contains("ERROR 1094"), "{}", bob.describe());
    // Relaying the number would have ended another user's thread upstream.
    let root_thread = mariadb_admin("SELECT CONNECTION_ID()").trim().to_string();
    let other = proxy.mysql(
        "alice",
        &[schema, "-e", &format!("KILL {root_thread}")],
        None,
    );
    assert!(
        other.stderr().contains("ERROR 1094"),
        "{}",
        other.describe()
    );
    let kill = proxy.mysql(
        "alice",
        &[schema, "-e", &format!("KILL QUERY {thread}")],
        None,
    );
    kill.assert_success("alice kills her own query");
    let out = sleeper.wait(Duration::from_secs(20));
    assert!(
        out.stdout().contains('1') || out.stderr().contains("1317"),
        "the sleep was interrupted: {}",
        out.describe()
    );
    assert!(out.elapsed < Duration::from_secs(25), "{}", out.describe());
}

/// A login snippet's outcome.
fn py_login(script: &str, port: u16, user: &str, pw: &str, schema: &str) -> Out {
    python(script, &[&port.to_string(), user, pw, schema])
}

const PYMYSQL_LOGIN: &str = r#"
import sys, pymysql
port, user, pw, db = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db)
    cur = c.cursor()
    cur.execute("SELECT 40 + 2")
    print("ok", cur.fetchone()[0], c._auth_plugin_name)
except pymysql.MySQLError as e:
    print("error", e.args[0], e.args[1])
"#;

const CONNECTOR_LOGIN: &str = r#"
import sys, mysql.connector
port, user, pw, db = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    c = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db,
                                use_pure=True, ssl_disabled=True)
    cur = c.cursor()
    cur.execute("SELECT 40 + 2")
    print("ok", cur.fetchone()[0])
except Exception as e:
    print("error", type(e).__name__, e)
"#;

#[test]
fn caching_sha2_full_authentication_over_tls_and_rsa() {
    let schema = "airlock_t_my_fullauth";
    fresh_schema(schema);
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "fa-");
    let ca = pki.ca_cert.to_string_lossy().into_owned();
    let mut config =
        ProxyConfig::for_mariadb(schema).with_tls(&pki.server_cert, &pki.server_key, false);
    config.salted_mysql_users = vec!["alice".into()];
    let pw = config.password("alice");
    let proxy = Proxy::start(config.clone());
    let cli = |args: &[&str]| {
        let mut all = vec!["-N"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[schema, "-e", "SELECT 40 + 2"]);
        proxy.mysql("alice", &all, None)
    };
    let connector = |port: u16, pw: &str| {
        let out = py_login(CONNECTOR_LOGIN, port, "alice", pw, schema);
        out.assert_success("mysql-connector-python");
        out.stdout().trim().to_string()
    };
    let pymysql = |port: u16, pw: &str| {
        let out = py_login(PYMYSQL_LOGIN, port, "alice", pw, schema);
        out.assert_success("pymysql");
        out.stdout().trim().to_string()
    };
    // A fresh process cannot vouch for a scramble under a salted hash: it
    // asks for the password, and a client that would send it in clear on
    // a plain connection (mysql-connector-python without TLS) is refused.
    let first = connector(proxy.mysql_port, &pw);
    assert!(
        first.contains("1045") && first.contains("needs TLS or the RSA public-key exchange"),
        "{first}"
    );
    // Over TLS the mysql CLI sends it, and it is checked against the hash.
    let tls = cli(&["--ssl", "--ssl-ca", &ca]);
    tls.assert_success("mysql --ssl");
    assert_eq!(tls.stdout().trim(), "42");
    // Now the process knows alice: the fast path answers, even in plain.
    assert_eq!(connector(proxy.mysql_port, &pw), "ok 42");
    assert!(connector(proxy.mysql_port, "wrong").contains("1045"));

    // Another fresh process: on plain connections PyMySQL and the mysql
    // CLI ask for airlock's RSA key and send the password encrypted.
    let mut other = Proxy::start(config);
    assert_eq!(
        pymysql(other.mysql_port, &pw),
        "ok 42 caching_sha2_password"
    );
    assert!(pymysql(other.mysql_port, "wrong").starts_with("error 1045"));
    let plain = other.mysql(
        "alice",
        &["-N", "--skip-ssl", schema, "-e", "SELECT 40 + 2"],
        None,
    );
    plain.assert_success("mysql over plain TCP");
    assert_eq!(plain.stdout().trim(), "42");
    other.assert_alive("full authentication");

    // Without TLS on the listener the mysql CLI answers with the password
    // in clear: never accepted on a plain connection.
    let mut no_tls = ProxyConfig::for_mariadb(schema);
    no_tls.salted_mysql_users = vec!["alice".into()];
    let bare = Proxy::start(no_tls);
    let clear = bare.mysql("alice", &[schema, "-e", "SELECT 1"], None);
    assert!(
        !clear.success()
            && clear
                .stderr()
                .contains("never a clear password on a plain connection"),
        "{}",
        clear.describe()
    );
}
