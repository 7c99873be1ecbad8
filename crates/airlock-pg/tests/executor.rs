//! The change executor against the real local PostgreSQL (127.0.0.1:5432,
//! role postgres, trust authentication as the machine ships it).

use airlock_core::request::Param;
use airlock_core::Credentials;
use airlock_pg::executor::{execute, xact_status, ExecPlan};
use airlock_pg::upstream::Endpoint;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fresh_db(name: &str) {
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    psql("postgres", &format!("CREATE DATABASE {name}"));
    psql(name, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g");
}

fn endpoint() -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: 5432,
        tls: None,
        tls_optional: false,
        scram: Default::default(),
    }
}

fn creds() -> Credentials {
    Credentials {
        user: "postgres".into(),
        password_env: None,
        password_file: None,
        password: None,
    }
}

fn plan(db: &str, sql: &str) -> ExecPlan {
    ExecPlan {
        database: db.into(),
        sql: sql.into(),
        params: vec![],
        statement_timeout: Some(Duration::from_secs(10)),
        lock_timeout: Some(Duration::from_secs(2)),
        max_rows: None,
        in_transaction: true,
        application_name: "airlock:exec:test".into(),
    }
}

async fn ok_record(_session: airlock_core::UpstreamSession) -> Result<(), String> {
    Ok(())
}

#[tokio::test]
async fn a_change_commits_once_and_its_xid_is_recorded_before_commit() {
    let db = "airlock_exec_t_commit";
    fresh_db(db);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let out = execute(
        &endpoint(),
        &creds(),
        &plan(db, "UPDATE t SET v = 'x' WHERE id <= 2"),
        |xid| async move {
            *s.lock().map_err(|e| e.to_string())? = Some(xid);
            Ok(())
        },
    )
    .await
    .expect("runs");
    assert_eq!(out.error, None);
    assert_eq!(out.rows_affected, Some(2));
    assert_eq!(out.command_tag.as_deref(), Some("UPDATE 2"));
    let session: airlock_core::UpstreamSession = seen
        .lock()
        .expect("lock")
        .clone()
        .expect("session recorded");
    let xid = session.xid.clone().expect("xid recorded");
    assert_eq!(out.xid.as_deref(), Some(xid.as_str()));
    // The recorded backend is `<pid>@<backend_start epoch>` of that session.
    let backend = session.backend.clone().expect("backend recorded");
    let (pid, start) = backend.split_once('@').expect("pid@start");
    assert!(
        pid.parse::<u32>().is_ok() && start.parse::<f64>().is_ok(),
        "{session:?}"
    );
    assert_eq!(psql(db, "SELECT count(*) FROM t WHERE v = 'x'"), "2");
    let status = xact_status(&endpoint(), &creds(), db, &xid)
        .await
        .expect("asks");
    assert_eq!(status.as_deref(), Some("committed"));
}

#[tokio::test]
async fn the_row_guard_rolls_back_and_reports_the_counts() {
    let db = "airlock_exec_t_guard";
    fresh_db(db);
    let mut p = plan(db, "UPDATE t SET v = 'y'");
    p.max_rows = Some(1);
    let out = execute(&endpoint(), &creds(), &p, ok_record)
        .await
        .expect("runs");
    let err = out.error.expect("guard trips");
    assert!(
        err.contains("3 rows") && err.contains("limit of 1"),
        "{err}"
    );
    // The xid was recorded before the change ran; it ended aborted.
    let xid = out.xid.expect("xid recorded before the run");
    let status = xact_status(&endpoint(), &creds(), db, &xid)
        .await
        .expect("asks");
    assert_eq!(status.as_deref(), Some("aborted"));
    assert_eq!(psql(db, "SELECT count(*) FROM t WHERE v = 'y'"), "0");
}

#[tokio::test]
async fn the_row_guard_counts_what_really_changed_not_command_tags() {
    let db = "airlock_exec_t_guard_real";
    fresh_db(db);
    psql(
        db,
        "CREATE TABLE many (id int PRIMARY KEY); INSERT INTO many SELECT generate_series(1, 10); \
         CREATE TABLE audit (n int); \
         CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (1); RETURN OLD; END $$; \
         CREATE TRIGGER many_log AFTER DELETE ON many FOR EACH ROW EXECUTE FUNCTION log_it()",
    );
    // A CTE delete whose tag is `SELECT 1`: 10 deleted + 10 written by the trigger.
    let mut p = plan(
        db,
        "WITH d AS (DELETE FROM many RETURNING 1) SELECT count(*) FROM d",
    );
    p.max_rows = Some(5);
    let out = execute(&endpoint(), &creds(), &p, ok_record)
        .await
        .expect("runs");
    let err = out.error.expect("guard trips on the real count");
    assert!(
        err.contains("20 rows") && err.contains("limit of 5"),
        "{err}"
    );
    assert_eq!(out.rows_affected, Some(20));
    assert_eq!(psql(db, "SELECT count(*) FROM many"), "10", "rolled back");
    assert_eq!(psql(db, "SELECT count(*) FROM audit"), "0");
    // Without a limit it commits and reports the real count.
    p.max_rows = None;
    let out = execute(&endpoint(), &creds(), &p, ok_record)
        .await
        .expect("runs");
    assert_eq!(out.error, None);
    assert_eq!(out.rows_affected, Some(20));
}

#[tokio::test]
async fn a_script_is_atomic_and_a_failure_in_the_third_write_changes_nothing() {
    let db = "airlock_exec_t_script";
    fresh_db(db);
    let script = "UPDATE t SET v = 'a' WHERE id = 1; INSERT INTO t VALUES (10, 'new'); INSERT INTO t VALUES (1, 'duplicate'); SELECT 1";
    let out = execute(&endpoint(), &creds(), &plan(db, script), ok_record)
        .await
        .expect("runs");
    let err = out.error.expect("third write fails");
    assert!(err.starts_with("23505"), "{err}");
    assert_eq!(
        psql(
            db,
            "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM t"
        ),
        "1=v1,2=v2,3=v3"
    );

    let ok = "UPDATE t SET v = 'a' WHERE id = 1; INSERT INTO t VALUES (10, 'new'); DELETE FROM t WHERE id = 3; SELECT 1";
    let out = execute(&endpoint(), &creds(), &plan(db, ok), ok_record)
        .await
        .expect("runs");
    assert_eq!(out.error, None);
    assert_eq!(out.rows_affected, Some(3), "writes counted, the SELECT not");
    assert_eq!(
        psql(
            db,
            "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM t"
        ),
        "1=a,2=v2,10=new"
    );
}

#[tokio::test]
async fn stored_parameters_are_bound_as_they_were_sent() {
    let db = "airlock_exec_t_params";
    fresh_db(db);
    let mut p = plan(db, "UPDATE t SET v = $1 WHERE id = $2");
    p.params = vec![
        Param {
            type_id: 25,
            binary: false,
            value: Some(b"it's bound".to_vec()),
        },
        Param {
            type_id: 23,
            binary: true,
            value: Some(2i32.to_be_bytes().to_vec()),
        },
    ];
    let out = execute(&endpoint(), &creds(), &p, ok_record)
        .await
        .expect("runs");
    assert_eq!(out.error, None);
    assert_eq!(out.rows_affected, Some(1));
    assert_eq!(psql(db, "SELECT v FROM t WHERE id = 2"), "it's bound");
}

#[tokio::test]
async fn statements_that_cannot_run_in_a_transaction_run_alone() {
    let db = "airlock_exec_t_concurrently";
    fresh_db(db);
    let mut p = plan(db, "CREATE INDEX CONCURRENTLY t_v_idx ON t (v)");
    p.in_transaction = false;
    let out = execute(&endpoint(), &creds(), &p, ok_record)
        .await
        .expect("runs");
    assert_eq!(out.error, None);
    assert_eq!(out.command_tag.as_deref(), Some("CREATE INDEX"));
    assert_eq!(
        psql(
            db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 't_v_idx'"
        ),
        "1"
    );
}

#[tokio::test]
async fn a_failed_xid_record_means_nothing_commits() {
    let db = "airlock_exec_t_norecord";
    fresh_db(db);
    let err = execute(
        &endpoint(),
        &creds(),
        &plan(db, "DELETE FROM t"),
        |_xid| async { Err::<(), String>("store unavailable".into()) },
    )
    .await
    .expect_err("must not commit");
    assert!(err.to_string().contains("store unavailable"), "{err}");
    assert_eq!(psql(db, "SELECT count(*) FROM t"), "3");
}

#[tokio::test]
async fn statement_timeout_applies() {
    let db = "airlock_exec_t_timeout";
    fresh_db(db);
    let mut p = plan(
        db,
        "UPDATE t SET v = 'z' WHERE id = 1 AND pg_sleep(3) IS NOT NULL",
    );
    p.statement_timeout = Some(Duration::from_millis(300));
    let out = execute(&endpoint(), &creds(), &p, ok_record)
        .await
        .expect("runs");
    let err = out.error.expect("times out");
    assert!(err.starts_with("57014"), "{err}");
    assert_eq!(psql(db, "SELECT count(*) FROM t WHERE v = 'z'"), "0");
}
