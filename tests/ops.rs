//! Operations: `check-config`, `passwd`, `/healthz`, JSON logs without
//! secrets, and the SIGTERM drain.

mod common;

use common::*;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn airlock(args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(args);
    run_with_timeout(cmd, stdin, Duration::from_secs(30))
}

#[test]
fn check_config_checks_trusted_functions_against_the_targets_catalog() {
    let db = "airlock_check_trusted";
    fresh_db_with(
        db,
        "CREATE SCHEMA report; \
         CREATE FUNCTION report.total() RETURNS int STABLE LANGUAGE sql AS $$ SELECT 1 $$",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trusted.toml");
    let write = |trusted: &[&str]| {
        let mut config = ProxyConfig::for_db(db);
        config.target_mut(&format!("{db}-prod")).trusted_functions =
            trusted.iter().map(|t| t.to_string()).collect();
        std::fs::write(&path, config.to_toml(1, 2)).expect("write");
    };
    let check = |extra: &[&str]| {
        let mut cmd = Command::new(airlock_bin());
        cmd.arg("check-config")
            .arg(&path)
            .args(extra)
            .env(UPSTREAM_PASSWORD_ENV, UPSTREAM_PASSWORD);
        run_with_timeout(cmd, None, Duration::from_secs(30))
    };
    write(&["report.total"]);
    let out = check(&[]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    write(&["report.total", "report.gone"]);
    let out = check(&[]);
    assert_eq!(out.code(), 1, "{}", out.describe());
    assert!(
        out.stdout()
            .contains("targets[1].trusted_functions: report.gone: target \"airlock_check_trusted-prod\" has no such function"),
        "{}",
        out.describe()
    );
    assert!(
        !out.stdout().contains("report.total:"),
        "{}",
        out.describe()
    );
    // Without the network, only the spelling is checked.
    let out = check(&["--offline"]);
    assert_eq!(out.code(), 0, "{}", out.describe());
    // A target that cannot be asked is a problem, not a silent pass.
    let mut config = ProxyConfig::for_db(db);
    let prod = config.target_mut(&format!("{db}-prod"));
    prod.trusted_functions = vec!["report.total".into()];
    prod.port = 1;
    std::fs::write(&path, config.to_toml(1, 2)).expect("write");
    let out = check(&[]);
    assert_eq!(out.code(), 1, "{}", out.describe());
    assert!(
        out.stdout()
            .contains("cannot be checked against the catalog"),
        "{}",
        out.describe()
    );
}

#[test]
fn check_config_lists_every_problem_with_its_key_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"
[server]
postgres_listen = "not an address"

[[families]]
name = "orders"
environments = ["dev", "prod"]

[[users]]
name = "alice"
groups = ["developers"]
scram_verifier = "md5deadbeef"

[[targets]]
name = "orders-prod"
family = "orders"
environment = "staging"
protected = true
allowed_groups = ["developers", "nobody"]
upstream = { host = "127.0.0.1", database = "orders" }
read_credentials = { user = "reader", password_env = "AIRLOCK_TEST_SURELY_UNSET_VAR" }
"#,
    )
    .expect("write");
    let out = airlock(&["check-config", path.to_str().expect("utf8")], None);
    assert_eq!(out.code(), 1, "{}", out.describe());
    let text = out.stdout();
    for key in [
        "server.postgres_listen",
        "users[0].scram_verifier",
        "targets[0].environment",
        "targets[0].allowed_groups[1]",
        "targets[0].read_credentials.password_env",
    ] {
        assert!(text.contains(key), "missing {key} in:\n{text}");
    }

    // A TOML syntax error or an unknown key is reported too, with its place.
    std::fs::write(&path, "[server]\npostgres_listn = \"127.0.0.1:1\"\n").expect("write");
    let out = airlock(&["check-config", path.to_str().expect("utf8")], None);
    assert_eq!(out.code(), 1, "{}", out.describe());
    assert!(
        out.stdout().contains("postgres_listn"),
        "{}",
        out.describe()
    );

    let example = workspace_root().join("proxy.toml.example");
    let out = airlock(&["check-config", example.to_str().expect("utf8")], None);
    assert_eq!(
        out.code(),
        0,
        "proxy.toml.example must be valid: {}",
        out.describe()
    );
}

#[test]
fn passwd_prints_a_verifier_never_the_password() {
    let out = airlock(&["passwd"], Some(b"correct horse battery\n"));
    assert!(out.success(), "{}", out.describe());
    let line = out.stdout();
    assert!(line.starts_with("SCRAM-SHA-256$4096:"), "{line}");
    assert!(!line.contains("correct horse"), "{line}");
    let again = airlock(&["passwd"], Some(b"correct horse battery\n"));
    assert_ne!(line, again.stdout(), "salt must be random");
    let empty = airlock(&["passwd"], Some(b""));
    assert!(!empty.success(), "an empty password must be refused");
}

#[test]
fn healthz_answers_and_json_logs_never_carry_a_password() {
    let db = "airlock_t_ops_health";
    fresh_db(db);
    let mut cfg = ProxyConfig::for_db(db);
    cfg.server_extra
        .push(("log_format".into(), "\"json\"".into()));
    let mut proxy = Proxy::start(cfg);
    for (path, want) in [("/healthz", 200), ("/readyz", 200), ("/nope", 404)] {
        let (status, head, body) = http_raw(proxy.http_port, "GET", path, &[], "");
        assert_eq!(status, want, "{path}: {head}\n{body}");
        assert!(head.starts_with("HTTP/1.1 "), "{head}");
    }
    let conn = proxy.conn("alice", &format!("{db}-dev"));
    conn.psql(&["-c", "SELECT 1"])
        .assert_success("query through the proxy");
    let wrong = conn
        .clone()
        .with_password("wrong-password-xyz")
        .psql(&["-c", "SELECT 1"]);
    assert!(!wrong.success());
    proxy.assert_alive("a failed login");

    let logs = proxy.stderr();
    assert!(
        logs.lines().any(|l| l.contains("session started")),
        "expected a session log line:\n{logs}"
    );
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON log line: {line}"
        );
    }
    for secret in [
        UPSTREAM_PASSWORD,
        conn.password.as_str(),
        "wrong-password-xyz",
    ] {
        assert!(
            !logs.contains(secret),
            "a password reached the log:\n{logs}"
        );
    }
}

#[test]
fn sigterm_stops_accepting_and_lets_running_sessions_finish() {
    let db = "airlock_t_ops_drain";
    fresh_db(db);
    let mut proxy = Proxy::start(ProxyConfig::for_db(db));
    let conn = proxy.conn("alice", &format!("{db}-dev"));
    let mut cmd = conn.psql_cmd(&["-At", "-c", "SELECT pg_sleep(3)", "-c", "SELECT 'finished'"]);
    cmd.env("PGPASSWORD", &conn.password);
    let running = Background::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(15);
    while admin_query(
        "postgres",
        &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query = 'SELECT pg_sleep(3)'"),
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the sleep never started upstream");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.signal("TERM");
    // New connections are refused at once...
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", proxy.pg_port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...while the running session completes its work.
    let out = running.wait(Duration::from_secs(20));
    assert!(
        out.success(),
        "session cut by the drain: {}",
        out.describe()
    );
    assert!(out.stdout().contains("finished"), "{}", out.describe());
    let status = proxy
        .wait_exit(Duration::from_secs(20))
        .expect("airlock exits after draining");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        proxy.stderr()
    );
}

#[test]
fn an_idle_session_does_not_keep_the_process_past_the_grace_period() {
    let db = "airlock_t_ops_idle";
    fresh_db(db);
    // The harness configures shutdown_grace = "5s".
    let mut proxy = Proxy::start(ProxyConfig::for_db(db));
    let conn = proxy.conn("alice", &format!("{db}-dev"));
    let mut cmd = conn.psql_cmd(&["-At"]);
    cmd.env("PGPASSWORD", &conn.password);
    let mut idle = Background::spawn(cmd);
    idle.write_stdin(b"SELECT 'connected';\n");
    assert!(
        idle.wait_for_output("connected", Duration::from_secs(15)),
        "{:?}",
        idle.output_so_far()
    );
    // Idle raw sessions on the unprotected and the protected target.
    let mut raws: Vec<common::raw::RawConn> = ["dev", "prod"]
        .iter()
        .map(|env| {
            let c = common::raw::login(
                &proxy.addr(),
                "alice",
                password_of("alice"),
                &format!("{db}-{env}"),
            );
            c.assert_ready(env);
            c
        })
        .collect();
    let started = Instant::now();
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(Duration::from_secs(20))
        .expect("airlock exits after the grace period");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(4500),
        "exited before the grace period"
    );
    // Each idle session was ended as Postgres ends one at an admin
    // shutdown, so drivers know to reconnect.
    for c in &mut raws {
        let (tag, body) = common::raw::read_message(&mut c.stream)
            .unwrap_or_else(|e| panic!("no FATAL before the close: {e}"));
        assert_eq!(tag, b'E', "{}", String::from_utf8_lossy(&body));
        let error = common::raw::PgError::parse(&body);
        assert_eq!(
            (error.severity(), error.code()),
            ("FATAL", "57P01"),
            "{error:?}"
        );
        assert!(
            error.message().contains("administrator command"),
            "{error:?}"
        );
    }
    // psql finds the FATAL waiting when it next uses the connection.
    idle.write_stdin(b"SELECT 'after';\n");
    let out = idle.wait(Duration::from_secs(10));
    assert!(
        out.stderr()
            .contains("terminating connection due to administrator command"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_unix_socket_upstream_works_like_tcp() {
    let db = "airlock_t_ops_unix";
    fresh_db(db);
    let socket_dir = admin_query("postgres", "SHOW unix_socket_directories");
    let socket_dir = socket_dir
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    assert!(
        socket_dir.starts_with('/'),
        "no socket directory: {socket_dir:?}"
    );
    let mut cfg = ProxyConfig::for_db(db);
    let mut local = TargetSpec::local(&format!("{db}-local"), db, false);
    local.host = socket_dir;
    cfg = cfg.with_target(local);
    let proxy = Proxy::start(cfg);
    let via_socket = proxy.conn("alice", &format!("{db}-local"));
    let out = via_socket.psql(&[
        "-At",
        "-c",
        "SELECT current_database(), inet_server_addr() IS NULL, current_setting('application_name')",
    ]);
    out.assert_success("query through a Unix-socket upstream");
    // inet_server_addr() is NULL only on a Unix-socket connection.
    assert_eq!(out.stdout().trim(), format!("{db}|t|airlock:alice:psql"));
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for _ in 0..3 {
        let mut child = Command::new(airlock_bin())
            .args(["token", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("airlock token");
        // The reader goes away before the command writes (`| head -0`).
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{stderr}"
        );
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "ends by SIGPIPE or normally, not with an error: {:?}",
            out.status
        );
    }
}

/// The README's quick start, on `proxy.toml.example` as shipped but for the
/// listeners' ports and a fresh database behind orders-prod: alice's change
/// is held, bob approves it from the CLI with his demo token, alice's
/// re-send runs it.
#[test]
fn the_quick_start_loop_completes_on_the_example_config() {
    let db = "airlock_t_ops_example";
    fresh_db(db);
    let example = std::fs::read_to_string(workspace_root().join("proxy.toml.example"))
        .expect("proxy.toml.example");
    let prod_upstream =
        "[targets.upstream]\nhost = \"127.0.0.1\"\nport = 5432\ndatabase = \"postgres\"";
    assert!(
        example.contains(prod_upstream),
        "orders-prod's upstream moved"
    );
    let raw = example
        .replace("127.0.0.1:6432", "127.0.0.1:{PG}")
        .replace("127.0.0.1:6480", "127.0.0.1:{HTTP}")
        .replace("127.0.0.1:3307", "127.0.0.1:{MYSQL}")
        .replace(
            prod_upstream,
            &prod_upstream.replace("\"postgres\"", &format!("\"{db}\"")),
        );
    let mut config = ProxyConfig::for_db(db);
    config.raw_toml = Some(raw);
    let proxy = Proxy::start(config);
    let psql = |args: &[&str]| {
        let mut cmd = Command::new("psql");
        cmd.arg(format!(
            "host=127.0.0.1 port={} user=alice dbname=orders-prod",
            proxy.pg_port
        ))
        .args(["-X", "-v", "ON_ERROR_STOP=0"])
        .args(args)
        .env("PGPASSWORD", "alice-dev-password");
        run_with_timeout(cmd, None, Duration::from_secs(60))
    };
    let create = "CREATE TABLE airlock_demo (id int PRIMARY KEY, note text)";
    let no_reason = psql(&["-c", create]);
    assert!(
        no_reason.stderr().contains("requires a reason for changes"),
        "{}",
        no_reason.describe()
    );
    let reason = "SET airlock.reason = 'try airlock'";
    let held = psql(&["-c", reason, "-c", create]);
    assert!(
        held.stderr()
            .contains("held for approval as request #1 on protected target \"orders-prod\""),
        "{}",
        held.describe()
    );
    let cli = |token: &str, args: &[&str]| common::requests::requests_cli(&proxy, token, args);
    let listed = cli("alk_demo_alice_not_for_production", &["list"]);
    listed.assert_success("alice lists her requests with her demo token");
    assert!(
        listed.stdout().contains("airlock_demo"),
        "{}",
        listed.describe()
    );
    let approved = cli("alk_demo_bob_not_for_production", &["approve", "1"]);
    approved.assert_success("bob approves with his demo token");
    assert!(
        approved.stdout().contains("approved #1"),
        "{}",
        approved.describe()
    );
    let ran = psql(&["-c", reason, "-c", create]);
    assert!(ran.stdout().contains("CREATE TABLE"), "{}", ran.describe());
    assert_eq!(
        admin_query(
            db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'airlock_demo'"
        ),
        "1"
    );
}
