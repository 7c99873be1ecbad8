//! pgbench through the proxy on an unprotected target: `-i` (COPY, DDL,
//! VACUUM), then `-S` with 8 clients in the simple, extended and prepared
//! query modes. Every run must exit 0, report no failed transactions and no
//! error, and process transactions.

mod common;

use common::*;
use std::time::Duration;

fn number_after(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
}

fn assert_no_error(what: &str, out: &Out) {
    for line in out.stdout().lines().chain(out.stderr().lines()) {
        let l = line.to_ascii_lowercase();
        assert!(
            !(l.contains("error") || l.contains("fatal") || l.contains("aborted")),
            "{what}: error line {line:?}\n{}",
            out.describe()
        );
    }
}

#[test]
fn pgbench_init_and_select_only_in_every_query_mode() {
    let db = "airlock_t_pgbench";
    fresh_db(db);
    let proxy = Proxy::start(ProxyConfig::for_db(db));
    let conn = proxy.conn("alice", &format!("{db}-dev"));

    let init = run_with_timeout(
        conn.pgbench_cmd(&["-i", "-s", "1"]),
        None,
        Duration::from_secs(180),
    );
    assert!(
        init.success(),
        "pgbench -i through the proxy failed: {}",
        init.describe()
    );
    assert_no_error("pgbench -i", &init);
    assert!(init.stderr().contains("done in"), "{}", init.describe());
    // The data really is upstream.
    let direct = Conn::direct(db);
    assert_eq!(
        direct.query("SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    assert_eq!(direct.query("SELECT count(*) FROM pgbench_branches"), "1");
    assert_eq!(
        direct.query("SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'pgbench_%'"),
        "3"
    );

    let mut failures = Vec::new();
    for mode in ["simple", "extended", "prepared"] {
        let out = run_with_timeout(
            conn.pgbench_cmd(&["-n", "-S", "-c", "8", "-j", "2", "-T", "5", "-M", mode]),
            None,
            Duration::from_secs(90),
        );
        let text = out.stdout();
        let processed = number_after(&text, "number of transactions actually processed:");
        let failed = number_after(&text, "number of failed transactions:");
        let ok = out.success()
            && processed.is_some_and(|n| n > 0)
            && failed == Some(0)
            && text.contains(&format!("query mode: {mode}"))
            && text.contains("number of clients: 8")
            && !out.stdout().lines().chain(out.stderr().lines()).any(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("error") || l.contains("fatal") || l.contains("aborted")
            });
        eprintln!(
            "pgbench -S -M {mode}: processed={processed:?} failed={failed:?} exit={:?}",
            out.status
        );
        if !ok {
            failures.push(format!(
                "-M {mode}: processed={processed:?} failed={failed:?}\n{}",
                out.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "pgbench through the proxy failed:\n{}",
        failures.join("\n\n")
    );
    proxy_still_serves(&proxy, db);
}

fn proxy_still_serves(proxy: &Proxy, db: &str) {
    let n = proxy
        .conn("bob", &format!("{db}-dev"))
        .query("SELECT count(*) FROM pgbench_accounts WHERE aid <= 10");
    assert_eq!(n, "10");
}
