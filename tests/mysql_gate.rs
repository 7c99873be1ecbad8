//! The gate of a protected MariaDB target: a corpus of tricky statements,
//! each proven to change state when run directly, changes nothing through
//! airlock (as a text query, inside a multi-statement packet and as a
//! binary prepared statement), with read
//! credentials that can write and the read-only backstop off, so the
//! classifier alone holds them. Reads and mysqldump are identical to direct.

mod common;
use common::requests::requests_cli;
use common::*;
use std::process::Command;
use std::time::Duration;

fn protected(tag: &str) -> (Proxy, String) {
    let schema = format!("airlock_t_myg_{tag}");
    fresh_schema(&schema);
    let mut config = ProxyConfig::for_mariadb(&schema);
    let t = &mut config.targets[0];
    t.protected = true;
    t.read_only_backstop = Some(false);
    (Proxy::start(config), schema)
}

#[test]
fn tricky_corpus_changes_nothing_through_airlock() {
    let (mut proxy, schema) = protected("corpus");
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("tests/mysql_gate_corpus.py"))
        .arg(proxy.mysql_port.to_string())
        .arg("alice")
        .arg(proxy.config.password("alice"))
        .arg(&schema);
    let out = run_with_timeout(cmd, None, Duration::from_secs(600));
    out.assert_success("corpus");
    let report: serde_json::Value = serde_json::from_str(out.stdout().trim())
        .unwrap_or_else(|e| panic!("corpus output: {e}: {}", out.describe()));
    let failures = report["failures"].as_array().cloned().unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{} failures: {:#?}",
        failures.len(),
        failures
    );
    let checked = report["checked"].as_u64().unwrap_or(0);
    let unpreparable = report["unpreparable"].as_array().map_or(0, Vec::len) as u64;
    eprintln!("corpus: {checked} checked, {unpreparable} cases the server cannot prepare");
    // 80+ cases as text and in a multi-statement packet, and every case the
    // server can prepare as a binary prepared statement too.
    assert!(
        checked >= 160 + 40 && checked + unpreparable >= 240,
        "{checked} checks and {unpreparable} unpreparable cases: {report}"
    );
    proxy.assert_alive("the corpus");
}

#[test]
fn reads_and_mysqldump_of_a_protected_target_match_direct() {
    let (proxy, schema) = protected("reads");
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(10), d DECIMAL(8,2));
         INSERT INTO `{schema}`.t VALUES (1, 'a', 1.5), (2, NULL, NULL)"
    ));
    let script = "SELECT * FROM t ORDER BY id;
SHOW TABLES;
SHOW CREATE TABLE t;
DESCRIBE t;
EXPLAIN SELECT * FROM t WHERE id = 1;
SELECT COUNT(*), SUM(d), GROUP_CONCAT(v) FROM t;
BEGIN; SELECT v FROM t WHERE id = 2; COMMIT;
SET @a = 2; SELECT @a + 1;
SELECT * FROM nope;
";
    let args = ["--force", "-t", "--column-type-info", schema.as_str()];
    let direct = mysql_direct(&args, Some(script.as_bytes()));
    let proxied = proxy.mysql("alice", &args, Some(script.as_bytes()));
    assert_eq!(proxied.stdout(), direct.stdout());
    assert_eq!(proxied.stderr(), direct.stderr());
    let dump = |port: u16, user: &str, pw: &str| {
        mysqldump(port, user, pw, &schema, &["--single-transaction"])
    };
    let d = dump(MARIADB_PORT, MARIADB_USER, "");
    d.assert_success("direct mysqldump");
    let p = dump(proxy.mysql_port, "alice", &proxy.config.password("alice"));
    p.assert_success("mysqldump of a protected target through airlock");
    assert_eq!(p.stdout(), d.stdout());
}

#[test]
fn a_held_change_becomes_a_request_and_says_so() {
    let (proxy, schema) = protected("held");
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT); INSERT INTO `{schema}`.t VALUES (1, 10)"
    ));
    let out = proxy.mysql(
        "alice",
        &[schema.as_str(), "-e", "UPDATE t SET v = 11 WHERE id = 1"],
        None,
    );
    assert!(!out.success());
    assert!(
        out.stderr().contains("ERROR 50001 (AL001)") && out.stderr().contains("request #"),
        "{}",
        out.describe()
    );
    assert_eq!(
        mariadb_admin(&format!("SELECT v FROM `{schema}`.t")).trim(),
        "10",
        "nothing ran"
    );
    // The same statement again: still pending, no duplicate.
    let again = proxy.mysql(
        "alice",
        &[schema.as_str(), "-e", "UPDATE t SET v = 11 WHERE id = 1"],
        None,
    );
    assert!(
        again.stderr().contains("still pending"),
        "{}",
        again.describe()
    );
    // The session stays usable after a held statement.
    let both = proxy.mysql(
        "alice",
        &["-N", "--force", schema.as_str()],
        Some(b"UPDATE t SET v = 12;\nSELECT v FROM t;\n"),
    );
    assert_eq!(both.stdout().trim(), "10", "{}", both.describe());
    // Under another sql_mode than the server's, an approved change would
    // be read otherwise when it runs: no request.
    let moded = proxy.mysql(
        "alice",
        &["--force", schema.as_str()],
        Some(b"SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES';\nUPDATE t SET v = 14 WHERE id = 1;\n"),
    );
    assert!(
        moded.stderr().contains("ERROR 50002 (AL002)") && moded.stderr().contains("sql_mode"),
        "{}",
        moded.describe()
    );
    // SHOW WARNINGS after a held statement: the error, then its context.
    let warned = proxy.mysql(
        "alice",
        &["-N", "--force", schema.as_str()],
        Some(b"UPDATE t SET v = 13 WHERE id = 1;\nSHOW WARNINGS;\nSHOW ERRORS;\nSELECT 1;\nSHOW WARNINGS;\n"),
    );
    let stdout = warned.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.len() >= 5
            && lines[0].starts_with("Error\t50001\tairlock: held for approval as request #")
            && lines[1].starts_with("Note\t50001\tairlock: request #")
            && lines
                .iter()
                .any(|l| l.starts_with("Note\t50001\tairlock: risk "))
            && lines
                .iter()
                .any(|l| l.contains("no earlier run of this statement")),
        "{}",
        warned.describe()
    );
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("Error\t")).collect();
    assert_eq!(
        errors.len(),
        2,
        "SHOW ERRORS lists the error only: {}",
        warned.describe()
    );
    // After a statement the upstream answered, SHOW WARNINGS is the server's.
    assert_eq!(lines.last(), Some(&"1"), "{}", warned.describe());
}

const ALICE_TOKEN: &str = "alk_alice_mysql_token_0123456789";
const BOB_TOKEN: &str = "alk_bob_mysql_token_0123456789";

/// The request number in a held statement's error.
fn request_number(err: &str) -> String {
    let at = err
        .find("request #")
        .unwrap_or_else(|| panic!("no request number in {err}"));
    err[at + 9..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[test]
fn approved_change_runs_once_on_resend_and_from_the_cli() {
    let schema = "airlock_t_myg_flow".to_string();
    fresh_schema(&schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT);
         INSERT INTO `{schema}`.t VALUES (1, 10), (2, 20), (3, 30)"
    ));
    let mut config = ProxyConfig::for_mariadb(&schema)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN);
    config.targets[0].protected = true;
    let proxy = Proxy::start(config);
    let update = "UPDATE t SET v = v + 1 WHERE id <= 2";
    let held = proxy.mysql("alice", &[schema.as_str(), "-e", update], None);
    assert!(
        held.stderr().contains("ERROR 50001 (AL001)"),
        "{}",
        held.describe()
    );
    let id = request_number(&held.stderr());
    // Alice cannot approve her own change; bob can.
    let own = requests_cli(&proxy, ALICE_TOKEN, &["approve", &id]);
    assert!(!own.success(), "{}", own.describe());
    requests_cli(&proxy, BOB_TOKEN, &["approve", &id]).assert_success("approve");
    assert_eq!(
        mariadb_admin(&format!(
            "SELECT GROUP_CONCAT(v ORDER BY id) FROM `{schema}`.t"
        ))
        .trim(),
        "10,20,30",
        "approval alone runs nothing"
    );
    // The re-send runs the stored text once and reports the affected rows.
    let ran = proxy.mysql("alice", &["-vvv", schema.as_str(), "-e", update], None);
    ran.assert_success("re-send after approval");
    assert!(
        ran.stdout().contains("2 rows affected"),
        "{}",
        ran.describe()
    );
    assert_eq!(
        mariadb_admin(&format!(
            "SELECT GROUP_CONCAT(v ORDER BY id) FROM `{schema}`.t"
        ))
        .trim(),
        "11,21,30"
    );
    // A re-send after it ran is a new request, not a second run.
    let again = proxy.mysql("alice", &[schema.as_str(), "-e", update], None);
    assert!(
        again.stderr().contains("ERROR 50001 (AL001)"),
        "{}",
        again.describe()
    );
    let second = request_number(&again.stderr());
    assert_ne!(second, id);
    // The CLI runs an approved MySQL request through the same executor.
    requests_cli(&proxy, BOB_TOKEN, &["approve", &second]).assert_success("approve");
    let run = requests_cli(&proxy, ALICE_TOKEN, &["run", &second]);
    run.assert_success("run from the CLI");
    assert_eq!(
        mariadb_admin(&format!(
            "SELECT GROUP_CONCAT(v ORDER BY id) FROM `{schema}`.t"
        ))
        .trim(),
        "12,22,30"
    );
    let twice = requests_cli(&proxy, ALICE_TOKEN, &["run", &second]);
    assert!(
        !twice.success(),
        "a second run is refused: {}",
        twice.describe()
    );
    // A change over its row guard is rolled back (the comment form; the
    // mysql CLI keeps comments only with --comments).
    let guarded = proxy.mysql(
        "alice",
        &[
            "--comments",
            schema.as_str(),
            "-e",
            "/* airlock: max_rows=1 */ DELETE FROM t",
        ],
        None,
    );
    let third = request_number(&guarded.stderr());
    requests_cli(&proxy, BOB_TOKEN, &["approve", &third]).assert_success("approve");
    let over = requests_cli(&proxy, ALICE_TOKEN, &["run", &third]);
    assert!(
        over.stdout().contains("row guard") || over.stderr().contains("row guard"),
        "{}",
        over.describe()
    );
    assert_eq!(
        mariadb_admin(&format!("SELECT COUNT(*) FROM `{schema}`.t")).trim(),
        "3",
        "the guarded delete was rolled back"
    );
    // The session form: SET @airlock_max_rows, consumed by the proxy.
    let set = proxy.mysql(
        "alice",
        &["--force", schema.as_str()],
        Some(b"SET @airlock_max_rows = 1;\nSET airlock.reason = 'trim';\nDELETE FROM t WHERE id >= 2;\nSHOW airlock.requests;\n"),
    );
    let fourth = request_number(&set.stderr());
    assert!(
        set.stdout().contains(&fourth) && set.stdout().contains("pending"),
        "{}",
        set.describe()
    );
    requests_cli(&proxy, BOB_TOKEN, &["approve", &fourth]).assert_success("approve");
    let show = requests_cli(&proxy, BOB_TOKEN, &["show", &fourth]);
    assert!(
        show.stdout().contains("trim"),
        "the reason is in the request: {}",
        show.describe()
    );
    let over = proxy.mysql(
        "alice",
        &[
            schema.as_str(),
            "-e",
            &format!("CALL airlock.run({fourth})"),
        ],
        None,
    );
    assert!(over.stderr().contains("row guard"), "{}", over.describe());
    assert_eq!(
        mariadb_admin(&format!("SELECT COUNT(*) FROM `{schema}`.t")).trim(),
        "3",
        "rolled back by the guard"
    );
    // The user variable never reached the upstream session.
    let var = proxy.mysql(
        "alice",
        &[
            "-N",
            schema.as_str(),
            "-e",
            "SET @airlock_reason = 'x'; SELECT @airlock_reason IS NULL",
        ],
        None,
    );
    assert_eq!(var.stdout().trim(), "1", "{}", var.describe());
}

#[test]
fn a_held_change_shows_its_earlier_runs_on_the_dev_target() {
    let dev_schema = "airlock_t_myg_fam_dev";
    let prod_schema = "airlock_t_myg_fam_prod";
    for s in [dev_schema, prod_schema] {
        fresh_schema(s);
        mariadb_admin(&format!(
            "CREATE TABLE `{s}`.t (id INT PRIMARY KEY, n INT); INSERT INTO `{s}`.t VALUES (1, 0), (2, 0)"
        ));
    }
    let proxy = Proxy::start(ProxyConfig::mariadb_family(dev_schema, prod_schema));
    let ran = proxy.mysql(
        "alice",
        &[dev_schema, "-e", "UPDATE t SET n = n + 1 WHERE id = 2"],
        None,
    );
    ran.assert_success("the change on dev");
    std::thread::sleep(Duration::from_millis(500));
    let held = proxy.mysql(
        "alice",
        &[prod_schema, "-e", "UPDATE t SET n = n + 5 WHERE id = 1"],
        None,
    );
    assert!(
        held.stderr().contains(&format!(
            "Earlier runs: {dev_schema} (dev) by alice: 1 row(s), succeeded"
        )),
        "{}\n{}",
        held.describe(),
        proxy.stderr()
    );
}

#[test]
fn an_executed_change_rolls_back_and_the_audit_chain_verifies() {
    let schema = "airlock_t_myg_rollback".to_string();
    fresh_schema(&schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT); INSERT INTO `{schema}`.t VALUES (1, 10), (2, 20)"
    ));
    let mut config = ProxyConfig::for_mariadb(&schema)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN);
    config.targets[0].protected = true;
    let proxy = Proxy::start(config);
    let held = proxy.mysql(
        "alice",
        &["--force", schema.as_str()],
        Some(b"SET @airlock_rollback = 'UPDATE t SET v = v - 5';\nSET @airlock_reason = 'bump';\nUPDATE t SET v = v + 5;\n"),
    );
    let id = request_number(&held.stderr());
    requests_cli(&proxy, BOB_TOKEN, &["approve", &id]).assert_success("approve");
    proxy
        .mysql(
            "alice",
            &[schema.as_str(), "-e", &format!("CALL airlock.run({id})")],
            None,
        )
        .assert_success("run");
    let values = || {
        mariadb_admin(&format!(
            "SELECT GROUP_CONCAT(v ORDER BY id) FROM `{schema}`.t"
        ))
        .trim()
        .to_string()
    };
    assert_eq!(values(), "15,25");
    proxy
        .mysql(
            "alice",
            &[
                schema.as_str(),
                "-e",
                &format!("CALL airlock.rollback({id})"),
            ],
            None,
        )
        .assert_success("rollback");
    assert_eq!(values(), "10,20", "the approved rollback ran");
    let show = requests_cli(&proxy, BOB_TOKEN, &["show", &id]);
    assert!(
        show.stdout().contains("rolled_back") || show.stdout().contains("rolled back"),
        "{}",
        show.describe()
    );
    proxy.assert_audit_verifies();
}

#[test]
fn a_held_change_carries_the_planner_estimate() {
    let schema = "airlock_t_myg_estimate".to_string();
    fresh_schema(&schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT);
         INSERT INTO `{schema}`.t SELECT seq, seq FROM `{schema}`.seq_1_to_200;
         ANALYZE TABLE `{schema}`.t"
    ));
    let mut config = ProxyConfig::for_mariadb(&schema).with_api_token("bob", BOB_TOKEN);
    config.targets[0].protected = true;
    let proxy = Proxy::start(config);
    let estimate_of = |sql: &str| -> (String, Option<f64>) {
        let out = proxy.mysql("alice", &[schema.as_str(), "-e", sql], None);
        assert!(out.stderr().contains("ERROR 50001"), "{}", out.describe());
        let id = request_number(&out.stderr());
        let shown = requests_cli(&proxy, BOB_TOKEN, &["show", &id, "--json"]);
        shown.assert_success("show");
        let v: serde_json::Value = serde_json::from_str(&shown.stdout()).expect("json");
        (out.stderr(), v["request"]["row_estimate"].as_f64())
    };
    // A primary-key range: the planner knows it closely.
    let (said, rows) = estimate_of("UPDATE t SET v = 0 WHERE id <= 50");
    assert!(rows.is_some_and(|r| (40.0..=60.0).contains(&r)), "{rows:?}");
    assert!(said.contains("The planner estimates"), "{said}");
    assert_eq!(
        estimate_of("DELETE FROM t WHERE v > 0 LIMIT 5").1,
        Some(5.0)
    );
    assert_eq!(
        estimate_of("INSERT INTO t VALUES (1001, 1), (1002, 2), (1003, 3)").1,
        Some(3.0)
    );
    assert_eq!(estimate_of("DELETE FROM t WHERE id = 7").1, Some(1.0));
    // A side-effect function: nothing derived from it is sent anywhere.
    assert_eq!(
        estimate_of("UPDATE t SET v = GET_LOCK('airlock_est', 0)").1,
        None
    );
    assert_eq!(
        mariadb_admin(&format!("SELECT COUNT(*), SUM(v) FROM `{schema}`.t")).trim(),
        "200\t20100",
        "nothing ran"
    );
}

#[test]
fn other_schemas_are_for_reading_where_the_target_allows_them() {
    let (own, other, denied) = (
        "airlock_t_myg_schemas",
        "airlock_t_myg_schemas_other",
        "airlock_t_myg_schemas_denied",
    );
    for (s, v) in [(own, 1), (other, 2), (denied, 3)] {
        fresh_schema(s);
        mariadb_admin(&format!(
            "CREATE TABLE `{s}`.t (id INT PRIMARY KEY, v INT); INSERT INTO `{s}`.t VALUES (1, {v})"
        ));
    }
    let mut config = ProxyConfig::for_mariadb(own);
    config.targets[0].protected = true;
    config.targets[0].mysql_schemas = vec![other.to_string()];
    let proxy = Proxy::start(config);
    // `use x` is the CLI's COM_INIT_DB; `/**/ USE x` a text USE.
    let script = format!(
        "use {other}\nSELECT v FROM t;\nUPDATE t SET v = 0;\nuse {own}\nUPDATE t SET v = 0;\n\
         /**/ USE {other};\nSELECT v FROM t;\nuse {denied}\n/**/ USE {denied};\nSELECT v FROM t;\n"
    );
    let out = proxy.mysql("alice", &["-N", "--force", own], Some(script.as_bytes()));
    assert_eq!(
        out.stdout().lines().collect::<Vec<_>>(),
        ["2", "2", "2"],
        "reads on the allowed schema, never on the denied one: {}",
        out.describe()
    );
    let err = out.stderr();
    assert!(
        err.contains(&format!(
            "ERROR 50002 (AL002) at line 3: airlock: this session is on schema '{other}'"
        )),
        "{}",
        out.describe()
    );
    assert!(
        err.contains("ERROR 50001 (AL001) at line 5"),
        "{}",
        out.describe()
    );
    assert_eq!(
        err.matches("ERROR 1044 (42000)").count(),
        2,
        "{}",
        out.describe()
    );
    for (s, v) in [(own, "1"), (other, "2"), (denied, "3")] {
        assert_eq!(mariadb_admin(&format!("SELECT v FROM `{s}`.t")).trim(), v);
    }
}
