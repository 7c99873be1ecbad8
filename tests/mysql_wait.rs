//! Wait mode on a protected MariaDB target (`SET @airlock_wait`): the
//! mysql CLI's statement blocks until a decision and gets the real result
//! when approved, the reviewer's reason when rejected; its Ctrl-C (a KILL
//! QUERY on a second connection) cancels the request; a client that goes
//! away cancels it too, audited, unless `airlock.on_disconnect = 'keep'`.

mod common;
use common::requests::requests_cli;
use common::*;
use std::time::Duration;

const ALICE_TOKEN: &str = "alk_alice_mywait_token_0123456789";
const BOB_TOKEN: &str = "alk_bob_mywait_token_0123456789";

fn setup(tag: &str) -> (Proxy, String) {
    let schema = format!("airlock_t_mywait_{tag}");
    fresh_schema(&schema);
    mariadb_admin(&format!(
        "CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT);
         INSERT INTO `{schema}`.t VALUES (1, 10), (2, 20), (3, 30), (4, 40)"
    ));
    let mut config = ProxyConfig::for_mariadb(&schema)
        .with_api_token("alice", ALICE_TOKEN)
        .with_api_token("bob", BOB_TOKEN);
    config.targets[0].protected = true;
    (Proxy::start(config), schema)
}

/// The mysql CLI as alice, waiting up to a minute on `sql` after `extra`.
fn waiting(proxy: &Proxy, schema: &str, extra: &str, sql: &str) -> Background {
    let mut cmd = mysql_cmd(proxy.mysql_port, "alice", &proxy.config.password("alice"));
    cmd.args([
        "-vvv",
        schema,
        "-e",
        &format!("SET @airlock_wait = '60s'; {extra} {sql}"),
    ]);
    Background::spawn(cmd)
}

fn show(proxy: &Proxy, id: u32) -> String {
    requests_cli(proxy, BOB_TOKEN, &["show", &id.to_string(), "--json"]).stdout()
}

/// Waits until request `id` exists; panics after 30 s.
fn held(proxy: &Proxy, id: u32, session: &Background) {
    let found = wait_until(Duration::from_secs(30), || {
        requests_cli(proxy, BOB_TOKEN, &["show", &id.to_string(), "--json"]).success()
    });
    assert!(
        found,
        "request #{id} never appeared: {:?}",
        session.output_so_far()
    );
}

fn values(schema: &str) -> String {
    mariadb_admin(&format!(
        "SELECT GROUP_CONCAT(v ORDER BY id) FROM `{schema}`.t"
    ))
    .trim()
    .to_string()
}

#[test]
fn a_waiting_statement_gets_the_decision() {
    let (proxy, schema) = setup("decide");
    // Approved while it waits: the session gets the affected rows.
    let session = waiting(&proxy, &schema, "", "UPDATE t SET v = 11 WHERE id = 1;");
    held(&proxy, 1, &session);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !session.output_so_far().0.contains("affected"),
        "nothing returns before a decision"
    );
    assert_eq!(
        values(&schema),
        "10,20,30,40",
        "nothing runs before approval"
    );
    requests_cli(&proxy, BOB_TOKEN, &["approve", "1"]).assert_success("approve");
    let out = session.wait(Duration::from_secs(30));
    out.assert_success("the waiting session");
    assert!(
        out.stdout().contains("1 row affected"),
        "{}",
        out.describe()
    );
    assert_eq!(values(&schema), "11,20,30,40");
    assert!(
        show(&proxy, 1).contains("\"executed\""),
        "{}",
        show(&proxy, 1)
    );

    // Rejected while it waits: the reviewer's reason.
    let session = waiting(&proxy, &schema, "", "UPDATE t SET v = 21 WHERE id = 2;");
    held(&proxy, 2, &session);
    requests_cli(
        &proxy,
        BOB_TOKEN,
        &["reject", "2", "--reason", "not on a Friday"],
    )
    .assert_success("reject");
    let out = session.wait(Duration::from_secs(30));
    assert!(!out.success());
    assert!(
        out.stderr().contains("ERROR 50003 (AL003)") && out.stderr().contains("not on a Friday"),
        "{}",
        out.describe()
    );
    assert_eq!(values(&schema), "11,20,30,40");
}

#[test]
fn ctrl_c_of_the_mysql_cli_cancels_the_request() {
    let (proxy, schema) = setup("ctrlc");
    let session = waiting(&proxy, &schema, "", "UPDATE t SET v = 31 WHERE id = 3;");
    held(&proxy, 1, &session);
    std::thread::sleep(Duration::from_millis(300));
    // The CLI's SIGINT handler opens a second connection and sends
    // KILL QUERY <airlock's connection id>.
    session.signal("INT");
    let out = session.wait(Duration::from_secs(30));
    assert!(
        out.stderr().contains("ERROR 1317 (70100)")
            && out.stderr().contains("request #1 was cancelled"),
        "{}",
        out.describe()
    );
    assert!(
        show(&proxy, 1).contains("\"cancelled\""),
        "{}",
        show(&proxy, 1)
    );
    assert_eq!(values(&schema), "10,20,30,40");
}

#[test]
fn a_waiting_client_that_goes_away_cancels_unless_kept() {
    let (proxy, schema) = setup("gone");
    let session = waiting(&proxy, &schema, "", "UPDATE t SET v = 41 WHERE id = 4;");
    held(&proxy, 1, &session);
    std::thread::sleep(Duration::from_millis(300));
    signal_pid(session.pid(), "KILL");
    let cancelled = wait_until(Duration::from_secs(20), || {
        show(&proxy, 1).contains("\"cancelled\"")
    });
    assert!(cancelled, "{}", show(&proxy, 1));
    let audit = requests_cli(&proxy, BOB_TOKEN, &["show", "1"]).stdout();
    assert!(
        audit.contains("disconnected while waiting"),
        "the cancellation says why: {audit}"
    );

    let keep = waiting(
        &proxy,
        &schema,
        "SET @airlock_on_disconnect = 'keep';",
        "UPDATE t SET v = 42 WHERE id = 4;",
    );
    held(&proxy, 2, &keep);
    std::thread::sleep(Duration::from_millis(300));
    signal_pid(keep.pid(), "KILL");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        show(&proxy, 2).contains("\"pending\""),
        "{}",
        show(&proxy, 2)
    );
    assert_eq!(values(&schema), "10,20,30,40");
}
