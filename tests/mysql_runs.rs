//! Runs of approved MySQL changes across two replicas sharing a PostgreSQL
//! store: twenty racing `run` calls run the change once; a replica killed
//! (SIGKILL) while its change runs is settled by the other replica's
//! reconciler from the target (the XA transaction was never prepared: the
//! server rolled it back → failed), and nothing is re-run.

mod common;
use common::requests::{requests_cli, requests_cli_cmd};
use common::*;
use std::time::Duration;

const ALICE_TOKEN: &str = "alk_alice_myruns_token_0123456789";
const BOB_TOKEN: &str = "alk_bob_myruns_token_0123456789";

fn setup(schema: &str, store: &str) -> (ProxyConfig, String) {
    fresh_schema(schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0);
         INSERT INTO `{schema}`.t (id) VALUES (1), (2), (3)"
    ));
    let mut cfg = ProxyConfig::for_mariadb(schema)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN);
    cfg.targets[0].protected = true;
    cfg.store_url = Some(fresh_pg_store(store));
    cfg.server_extra
        .push(("reconcile_interval".into(), "\"1s\"".into()));
    (cfg, format!("airlock_state_t_{store}"))
}

fn status(store_db: &str, id: &str) -> String {
    admin_query(
        store_db,
        &format!("SELECT status FROM requests WHERE id = {id}"),
    )
}

/// Holds `sql` as alice on `proxy` and has bob approve it; the request number.
fn held_and_approved(proxy: &Proxy, schema: &str, sql: &str) -> String {
    let out = proxy.mysql("alice", &[schema, "-e", sql], None);
    let err = out.stderr();
    let at = err
        .find("request #")
        .unwrap_or_else(|| panic!("not held: {}", out.describe()));
    let id: String = err[at + 9..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    requests_cli(proxy, BOB_TOKEN, &["approve", &id]).assert_success("approve");
    id
}

fn n(schema: &str) -> String {
    mariadb_admin(&format!("SELECT n FROM `{schema}`.t WHERE id = 1"))
        .trim()
        .to_string()
}

#[test]
fn twenty_racing_runs_over_two_replicas_run_once() {
    let schema = "airlock_t_myr_race";
    let (cfg, store_db) = setup(schema, "myr_race");
    let a = Proxy::start(cfg.clone());
    let b = Proxy::start(cfg);
    let id = held_and_approved(&a, schema, "UPDATE t SET n = n + 1 WHERE id = 1");
    let runs: Vec<Background> = (0..20)
        .map(|i| {
            let p = if i % 2 == 0 { &a } else { &b };
            Background::spawn(requests_cli_cmd(p, ALICE_TOKEN, &["run", &id]))
        })
        .collect();
    let outs: Vec<Out> = runs
        .into_iter()
        .map(|r| r.wait(Duration::from_secs(60)))
        .collect();
    let won = outs.iter().filter(|o| o.success()).count();
    assert_eq!(
        won,
        1,
        "exactly one run call wins: {:#?}",
        outs.iter().map(|o| o.describe()).collect::<Vec<_>>()
    );
    assert_eq!(n(schema), "1", "the change ran once");
    assert_eq!(status(&store_db, &id), "executed");
}

#[test]
fn kill_9_mid_run_is_settled_from_the_target_and_never_rerun() {
    let schema = "airlock_t_myr_kill";
    let (cfg, store_db) = setup(schema, "myr_kill");
    let reconciler = Proxy::start(cfg.clone());
    assert!(
        wait_until(Duration::from_secs(10), || admin_query(
            &store_db,
            "SELECT count(*) FROM leases WHERE name = 'reconciler-mysql'"
        ) == "1"),
        "no replica took the mysql reconciler's lease"
    );
    let mut runner = Proxy::start(cfg);
    let id = held_and_approved(
        &runner,
        schema,
        "UPDATE t SET n = n + 1 WHERE id = 1 AND SLEEP(3) = 0",
    );
    let run = Background::spawn(requests_cli_cmd(&runner, ALICE_TOKEN, &["run", &id]));
    let active = wait_until(Duration::from_secs(20), || {
        mariadb_admin(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE t SET n = n + 1%'",
        )
        .trim()
            == "1"
    });
    assert!(active, "the run never reached the target");
    signal_pid(runner.pid(), "KILL");
    let _ = run.wait(Duration::from_secs(30));
    let settled = wait_until(Duration::from_secs(60), || {
        status(&store_db, &id) != "running"
    });
    assert!(
        settled,
        "request #{id} still running: {}",
        reconciler.stderr()
    );
    assert_eq!(status(&store_db, &id), "failed");
    let error = admin_query(
        &store_db,
        &format!("SELECT coalesce(run_error, '') FROM requests WHERE id = {id}"),
    );
    assert!(error.contains("never prepared"), "{error}");
    // The server rolled the change back; nothing re-ran it.
    let rolled_back = wait_until(Duration::from_secs(10), || n(schema) == "0");
    assert!(rolled_back, "n = {}", n(schema));
    assert_eq!(
        admin_query(
            &store_db,
            &format!("SELECT count(*) FROM audit_events WHERE request_id = {id} AND kind = 'request.running'")
        ),
        "1",
        "never re-run"
    );
    let _ = runner.wait_exit(Duration::from_secs(5));
}
