//! TLS and connection fidelity with real drivers (issue 13): the client leg
//! is TLS (`sslmode=verify-full` against the test CA, `[tls] require =
//! true`), as a real deployment has it.
//!
//! - Large results: psycopg (sync and async; both drive libpq in
//!   non-blocking mode), asyncpg and pgJDBC each run, 20 times in a row on
//!   one connection, a text `COPY (SELECT ...) TO STDOUT` of 50,688,895 bytes
//!   and a 100,000-row SELECT of ~300-byte rows, checked against values the
//!   program computes itself (byte count + MD5, row count + sums). A stall
//!   (libpq waiting on a socket that never becomes readable again because a
//!   TLS record larger than its buffer sits decrypted inside OpenSSL) is
//!   caught by a watchdog in the program (`STALLED ...`, 45 s per operation)
//!   and by the process timeout.
//! - Cancel: psycopg `cancel_safe()` (libpq 18 sends the CancelRequest inside
//!   TLS) and `cancel()` from another thread; asyncio cancellation with
//!   psycopg's AsyncConnection and with asyncpg (whose cancel also opens a
//!   TLS connection); interactive psql Ctrl-C under script(1). None may
//!   report an error ("cancellation failed", "SSL error", "Could not send
//!   cancel request"), the statement must end with 57014 and the session
//!   must go on.
//! - TLS record sizes on the wire (a record-counting TCP forwarder that
//!   decrypts nothing, in front of airlock or of PostgreSQL): every record
//!   airlock writes, to clients (SSLRequest and direct TLS) and to
//!   upstreams, carries at most 8 KB of plaintext, as PostgreSQL's own do.
//!   This is the deterministic guard for the stall above: whether a given
//!   libpq actually stalls on a larger record depends on its version and on
//!   how the last record of a response falls.
//! - A FATAL during startup over TLS (wrong password) reaches psycopg as the
//!   server's message, without an SSL error (the proxy closes with
//!   close_notify).
//! - `application_name`: the client reads back what it set (startup and
//!   `SET`) with `SHOW` and from its driver's ParameterStatus tracking
//!   (psycopg, asyncpg, pgJDBC), while `pg_stat_activity` on a direct
//!   connection shows the developer's label `airlock:alice:<value>`.
//!
//! The check programs are `tests/tls_drivers_check.py` (psycopg, asyncpg)
//! and `tests/jdbc/TlsCheck.java` (pgJDBC); each prints a deterministic
//! transcript that is compared here with the expected one, line for line.

mod common;
mod drivers;

use common::*;
use drivers::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rounds of (COPY TO + large SELECT) per driver.
const ROUNDS: usize = 20;
/// Watchdog deadline per operation inside the check programs (seconds). An
/// operation takes well under a second on loopback; this is generous.
const STEP_SECONDS: &str = "45";

/// The large-result tests move ~1.6 GB each; run them one at a time so
/// that on a small machine they do not starve each other into timeouts.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A proxy for `db` with client TLS required, and its PKI.
struct TlsProxy {
    proxy: Proxy,
    pki: Pki,
    _dir: tempfile::TempDir,
    db: String,
}

impl TlsProxy {
    fn start(db: &str) -> TlsProxy {
        fresh_db(db);
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path(), "tlsdrv-");
        let proxy =
            Proxy::start(ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, true));
        TlsProxy {
            proxy,
            pki,
            _dir: dir,
            db: db.into(),
        }
    }

    fn target(&self) -> String {
        format!("{}-dev", self.db)
    }

    /// alice on `<db>-dev`, verify-full against the test CA (password in the conninfo).
    fn conn(&self) -> Conn {
        self.proxy
            .conn("alice", &self.target())
            .with("password", password_of("alice"))
            .with("sslmode", "verify-full")
            .with("sslrootcert", self.pki.ca_cert.to_str().unwrap())
    }

    fn conninfo(&self) -> String {
        self.conn().conninfo()
    }

    /// pgJDBC URL for alice on `<db>-dev`, verify-full against the test CA.
    fn jdbc_url(&self) -> String {
        format!(
            "jdbc:postgresql://127.0.0.1:{}/{}?ssl=true&sslmode=verify-full&sslrootcert={}",
            self.proxy.pg_port,
            self.target(),
            self.pki.ca_cert.display()
        )
    }
}

/// Direct libpq conninfo to PostgreSQL (superuser role, plaintext) to read
/// `pg_stat_activity`.
fn admin_conninfo() -> String {
    Conn::direct("postgres")
        .with("password", UPSTREAM_PASSWORD)
        .with("sslmode", "disable")
        .conninfo()
}

// ---------------------------------------------------------------------------
// Running the check programs
// ---------------------------------------------------------------------------

/// Environment of libpq / the JVM / python that must not leak into a run.
const CLEAN_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGOPTIONS",
    "PGCLIENTENCODING",
    "PGAPPNAME",
    "PGREQUIRESSL",
    "PGTARGETSESSIONATTRS",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "PYTHONPATH",
];

fn clean(cmd: &mut Command) {
    for v in CLEAN_ENV {
        cmd.env_remove(v);
    }
    cmd.env("PGGSSENCMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONIOENCODING", "utf-8")
        .env("TLS_CHECK_STEP_SECONDS", STEP_SECONDS);
}

fn script() -> PathBuf {
    workspace_root().join("tests/tls_drivers_check.py")
}

/// Panics with instructions unless python3 can import asyncpg.
fn require_asyncpg() {
    let mut cmd = Command::new("python3");
    clean(&mut cmd);
    cmd.args(["-c", "import asyncpg"]);
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    assert!(
        out.success(),
        "python3 cannot import asyncpg: python3 -m pip install asyncpg (done by .ci/run): {}",
        out.describe()
    );
}

/// `python3 tests/tls_drivers_check.py MODE CONNINFO ARGS…`, killed after `timeout`.
fn python_check(mode: &str, conninfo: &str, args: &[&str], timeout: Duration) -> Out {
    let mut cmd = Command::new("python3");
    clean(&mut cmd);
    cmd.arg(script()).arg(mode).arg(conninfo).args(args);
    run_with_timeout(cmd, None, timeout)
}

/// `tests/jdbc/TlsCheck.java`, compiled against Debian's pgJDBC.
struct TlsCheck {
    dir: tempfile::TempDir,
}

impl TlsCheck {
    fn compile() -> TlsCheck {
        assert!(
            Path::new(PGJDBC_JAR).exists(),
            "{PGJDBC_JAR} is missing: apt-get install -y libpostgresql-jdbc-java (done by .ci/run)"
        );
        let dir = tempfile::Builder::new()
            .prefix("airlock-tlscheck-")
            .tempdir()
            .unwrap();
        let src = workspace_root().join("tests/jdbc/TlsCheck.java");
        let mut cmd = Command::new("javac");
        clean(&mut cmd);
        cmd.arg("-encoding")
            .arg("UTF-8")
            .arg("-cp")
            .arg(PGJDBC_JAR)
            .arg("-d")
            .arg(dir.path())
            .arg(&src);
        let out = run_with_timeout(cmd, None, Duration::from_secs(180));
        assert!(
            out.success(),
            "javac {} failed (is a JDK installed? .ci/run installs default-jdk-headless): {}",
            src.display(),
            out.describe()
        );
        TlsCheck { dir }
    }

    fn run(&self, url: &str, user: &str, password: &str, args: &[&str], timeout: Duration) -> Out {
        let mut cmd = Command::new("java");
        clean(&mut cmd);
        cmd.arg("-Dfile.encoding=UTF-8")
            .arg("-cp")
            .arg(format!("{}:{PGJDBC_JAR}", self.dir.path().display()))
            .arg("TlsCheck")
            .arg(url)
            .arg(user)
            .arg(password)
            .args(args);
        run_with_timeout(cmd, None, timeout)
    }
}

/// Asserts a check program printed exactly `expected` (and exited 0). A
/// stall, a timeout, FAIL lines and the first differing line are named
/// first in the message; the whole output follows.
fn assert_transcript(what: &str, out: &Out, expected: &[String]) {
    let stdout = out.stdout();
    let got: Vec<&str> = stdout.lines().collect();
    let mut why = Vec::new();
    if out.timed_out {
        why.push(format!(
            "killed after {:?}: it hung (last line: {:?})",
            out.elapsed,
            got.last()
        ));
    }
    for l in got
        .iter()
        .filter(|l| l.starts_with("STALLED") || l.starts_with("FAIL"))
    {
        why.push(l.to_string());
    }
    if !out.success() && why.is_empty() {
        why.push(format!("exit status {:?}", out.status));
    }
    if got != expected.iter().map(String::as_str).collect::<Vec<_>>() {
        let i = (0..got.len().max(expected.len()))
            .find(|&i| got.get(i).copied() != expected.get(i).map(String::as_str))
            .unwrap_or(0);
        why.push(format!(
            "transcript differs at line {}: expected {:?}, got {:?}",
            i + 1,
            expected.get(i),
            got.get(i)
        ));
    }
    assert!(
        why.is_empty(),
        "{what}:\n  {}\n\n{}",
        why.join("\n  "),
        out.describe()
    );
}

/// Asserts no line of stdout or stderr reports a TLS or cancellation error.
fn assert_no_tls_error(what: &str, out: &Out) {
    let all = format!("{}\n{}", out.stdout(), out.stderr());
    for bad in [
        "SSL error",
        "SSL SYSCALL",
        "unexpected eof",
        "cancellation failed",
        "Could not send cancel request",
    ] {
        assert!(
            !all.contains(bad),
            "{what}: output mentions {bad:?}:\n{}",
            out.describe()
        );
    }
}

fn large_expected(mode: &str, connected: &str) -> Vec<String> {
    let mut v = vec![format!("mode {mode}"), connected.to_string()];
    for r in 1..=ROUNDS {
        v.push(format!("round {r} copy ok"));
        v.push(format!("round {r} select ok"));
    }
    v.push("session usable after the large results".into());
    v.push("done".into());
    v
}

/// Timeout of a whole large-results run: ~1 s per operation on loopback.
const LARGE_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------
// a. / b. Large results over TLS
// ---------------------------------------------------------------------------

fn python_large(db: &str, mode: &str) {
    require_psycopg();
    if mode.contains("asyncpg") {
        require_asyncpg();
    }
    let _g = heavy();
    let p = TlsProxy::start(db);
    let t0 = Instant::now();
    let out = python_check(mode, &p.conninfo(), &[&ROUNDS.to_string()], LARGE_TIMEOUT);
    eprintln!("{mode}: {:?}\n{}", t0.elapsed(), out.stderr());
    assert_transcript(
        &format!(
            "{mode} over TLS through airlock ({ROUNDS} rounds of COPY TO 50 MB + 100k-row SELECT)"
        ),
        &out,
        &large_expected(mode, "connected ssl_in_use=True"),
    );
}

#[test]
fn psycopg_sync_large_results_over_tls() {
    python_large("airlock_t_tlsdrv_sync", "large-sync");
}

#[test]
fn psycopg_async_large_results_over_tls() {
    python_large("airlock_t_tlsdrv_async", "large-async");
}

#[test]
fn asyncpg_large_results_over_tls() {
    python_large("airlock_t_tlsdrv_asyncpg", "large-asyncpg");
}

#[test]
fn pgjdbc_large_results_over_tls() {
    let jdbc = TlsCheck::compile();
    let _g = heavy();
    let p = TlsProxy::start("airlock_t_tlsdrv_jdbc");
    let t0 = Instant::now();
    let out = jdbc.run(
        &p.jdbc_url(),
        "alice",
        password_of("alice"),
        &["large", &ROUNDS.to_string()],
        LARGE_TIMEOUT,
    );
    eprintln!("pgjdbc large: {:?}\n{}", t0.elapsed(), out.stderr());
    assert_transcript(
        &format!(
            "pgJDBC over TLS through airlock ({ROUNDS} rounds of COPY TO 50 MB + 100k-row SELECT)"
        ),
        &out,
        &large_expected("large", "connected"),
    );
}

// ---------------------------------------------------------------------------
// TLS record sizes on the wire
// ---------------------------------------------------------------------------

/// Largest record length field (ciphertext bytes) allowed: 8 KB of
/// plaintext plus TLS 1.3's maximum expansion (256). PostgreSQL's own
/// records are 8192 + 17 = 8209 bytes; airlock's 16 KB records were 16401.
const MAX_RECORD_LEN: u64 = 8192 + 256;

/// `tls_drivers_check.py forward PORT`: a TCP forwarder to 127.0.0.1:PORT
/// that counts TLS records per direction from their headers.
struct Forwarder {
    bg: Background,
    port: u16,
}

/// Record statistics of one direction.
#[derive(Debug)]
struct Records {
    records: u64,
    max_len: u64,
}

impl Forwarder {
    fn start(target_port: u16) -> Forwarder {
        let mut cmd = Command::new("python3");
        clean(&mut cmd);
        cmd.arg(script())
            .arg("forward")
            .arg("-")
            .arg(target_port.to_string());
        let bg = Background::spawn(cmd);
        assert!(
            bg.wait_for_output("listening ", Duration::from_secs(30)),
            "the forwarder did not start: {:?}",
            bg.output_so_far()
        );
        let (out, _) = bg.output_so_far();
        let port = out
            .lines()
            .find_map(|l| l.strip_prefix("listening "))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in the forwarder's output: {out}"));
        Forwarder { bg, port }
    }

    /// Stops forwarding; (client_to_server, server_to_client).
    fn finish(self) -> (Records, Records, Out) {
        let out = self.bg.wait(Duration::from_secs(30));
        let stdout = out.stdout();
        let get = |dir: &str| -> Records {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("{dir} ")))
                .unwrap_or_else(|| panic!("no {dir} line from the forwarder: {}", out.describe()));
            let num = |key: &str| -> u64 {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            };
            Records {
                records: num("records="),
                max_len: num("max_len="),
            }
        };
        let c2s = get("client_to_server");
        let s2c = get("server_to_client");
        (c2s, s2c, out)
    }
}

#[test]
fn tls_records_to_clients_at_most_8k() {
    require_psycopg();
    let _g = heavy();
    let p = TlsProxy::start("airlock_t_tlsdrv_rec_client");
    for negotiation in ["postgres", "direct"] {
        let fwd = Forwarder::start(p.proxy.pg_port);
        let mut conn = p.conn().with("sslnegotiation", negotiation);
        conn.port = fwd.port;
        let out = python_check("large-sync", &conn.conninfo(), &["1"], LARGE_TIMEOUT);
        let (_, s2c, fwd_out) = fwd.finish();
        let what = format!(
            "psycopg through a record-counting forwarder to airlock (sslnegotiation={negotiation})"
        );
        assert_transcript(&what, &out, &{
            let mut v = large_expected("large-sync", "connected ssl_in_use=True");
            v.retain(|l| !l.starts_with("round ") || l.starts_with("round 1 "));
            v
        });
        eprintln!("{what}: airlock -> client {s2c:?}");
        assert!(
            s2c.records > 1000,
            "{what}: the forwarder saw no TLS records from airlock ({s2c:?}): {}",
            fwd_out.describe()
        );
        assert!(
            s2c.max_len <= MAX_RECORD_LEN,
            "{what}: airlock sent a TLS record of {} bytes to the client (at most {MAX_RECORD_LEN}: 8 KB of plaintext, as PostgreSQL's own records)",
            s2c.max_len
        );
    }
}

#[test]
fn tls_records_to_upstreams_at_most_8k() {
    require_psycopg();
    let _g = heavy();
    let db = "airlock_t_tlsdrv_rec_upstream";
    fresh_db_with(db, "CREATE TABLE sink (v text)");
    let fwd = Forwarder::start(PG_PORT);
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "tlsdrv-up-");
    let mut cfg = ProxyConfig::for_db(db).with_tls(&pki.server_cert, &pki.server_key, true);
    {
        let t = cfg.target_mut(&format!("{db}-dev"));
        t.port = fwd.port;
        t.tls = "require".into();
    }
    let proxy = Proxy::start(cfg);
    let conninfo = proxy
        .conn("alice", &format!("{db}-dev"))
        .with("password", password_of("alice"))
        .with("sslmode", "verify-full")
        .with("sslrootcert", pki.ca_cert.to_str().unwrap())
        .conninfo();
    let out = python_check("copy-in", &conninfo, &["32"], LARGE_TIMEOUT);
    let (c2s, _, fwd_out) = fwd.finish();
    let what = "COPY FROM STDIN of 32 MiB through airlock, TLS upstream through a record-counting forwarder";
    assert_transcript(
        what,
        &out,
        &[
            "mode copy-in".to_string(),
            "connected ssl_in_use=True".to_string(),
            "copy-in ok".to_string(),
            "done".to_string(),
        ],
    );
    eprintln!("{what}: airlock -> upstream {c2s:?}");
    assert!(
        c2s.records > 1000,
        "{what}: the forwarder saw no TLS records from airlock ({c2s:?}): {}",
        fwd_out.describe()
    );
    assert!(
        c2s.max_len <= MAX_RECORD_LEN,
        "{what}: airlock sent a TLS record of {} bytes to the upstream (at most {MAX_RECORD_LEN}: 8 KB of plaintext)",
        c2s.max_len
    );
}

// ---------------------------------------------------------------------------
// c. Cancel over TLS
// ---------------------------------------------------------------------------

const CANCEL_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn psycopg_cancel_safe_over_tls() {
    require_psycopg();
    let p = TlsProxy::start("airlock_t_tlsdrv_cancel");
    let out = python_check("cancel-sync", &p.conninfo(), &[], CANCEL_TIMEOUT);
    let mut expected = vec![
        "mode cancel-sync".to_string(),
        "connected ssl_in_use=True".to_string(),
    ];
    for how in ["cancel_safe", "cancel"] {
        for r in 1..=3 {
            expected.push(format!("{how} round {r}: ok"));
            expected.push(format!("{how} round {r} query: QueryCanceled"));
            expected.push(format!("{how} round {r} query ended within 6 s: True"));
            expected.push(format!("{how} round {r} after cancel: usable"));
        }
    }
    expected.push("done".into());
    assert_transcript("psycopg cancel_safe()/cancel() over TLS", &out, &expected);
    assert_no_tls_error("psycopg cancel_safe()/cancel() over TLS", &out);
}

fn async_cancel_expected(mode: &str, asyncpg: bool) -> Vec<String> {
    let mut v = vec![format!("mode {mode}"), "connected ssl_in_use=True".into()];
    for r in 1..=3 {
        v.push(format!("round {r} wait_for: TimeoutError/CancelledError"));
        if asyncpg {
            v.push(format!("round {r} after cancel: usable"));
            v.push(format!("round {r} cancel and next query within 6 s: True"));
        } else {
            v.push(format!("round {r} ended within 6 s: True"));
            v.push(format!("round {r} after cancel: usable"));
            v.push(format!("round {r} connection broken: False"));
        }
    }
    v.push("done".into());
    v
}

#[test]
fn psycopg_asyncio_cancel_over_tls() {
    require_psycopg();
    let p = TlsProxy::start("airlock_t_tlsdrv_acancel");
    let out = python_check("cancel-async", &p.conninfo(), &[], CANCEL_TIMEOUT);
    assert_transcript(
        "psycopg AsyncConnection: asyncio.wait_for(execute(pg_sleep(10)), 0.5) over TLS",
        &out,
        &async_cancel_expected("cancel-async", false),
    );
    assert_no_tls_error("psycopg asyncio cancellation over TLS", &out);
}

#[test]
fn asyncpg_asyncio_cancel_over_tls() {
    require_psycopg();
    require_asyncpg();
    let p = TlsProxy::start("airlock_t_tlsdrv_apgcancel");
    let out = python_check("cancel-asyncpg", &p.conninfo(), &[], CANCEL_TIMEOUT);
    assert_transcript(
        "asyncpg: asyncio.wait_for(execute(pg_sleep(10)), 0.5) over TLS",
        &out,
        &async_cancel_expected("cancel-asyncpg", true),
    );
    assert_no_tls_error("asyncpg asyncio cancellation over TLS", &out);
}

fn running_queries(db: &str, query: &str) -> i64 {
    admin_query(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active' AND query = '{}'",
            query.replace('\'', "''")
        ),
    )
    .parse()
    .unwrap()
}

/// Interactive psql over TLS (`[tls] require = true`, verify-full), Ctrl-C
/// on a pseudo-terminal. psql 15's libpq sends the CancelRequest on a new
/// plaintext connection (PQcancel), which PostgreSQL accepts whatever
/// hostssl says; so must airlock with TLS required.
#[test]
fn psql_ctrl_c_over_tls() {
    let p = TlsProxy::start("airlock_t_tlsdrv_psql");
    let db = p.db.clone();
    let conn = p.conn();
    // See tests/pg_cancel.rs for why script(1) and `exec`.
    let psql_line = format!(
        "exec psql -X -P pager=off -v VERBOSITY=verbose -d \"{}\"",
        conn.conninfo()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &psql_line, "/dev/null"])
        .env("PGAPPNAME", APP_NAME)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb")
        .env("PSQL_HISTORY", "/dev/null")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE")
        .env_remove("PGOPTIONS");
    let mut term = Background::spawn(cmd);
    assert!(
        term.wait_for_output("=>", Duration::from_secs(20))
            || term.wait_for_output("=#", Duration::from_secs(1)),
        "psql gave no prompt through the proxy over TLS: {:?}",
        term.output_so_far()
    );
    term.write_stdin(b"\\conninfo\n");
    assert!(
        term.wait_for_output("SSL connection (protocol: TLSv1.", Duration::from_secs(10)),
        "psql's session is not TLS: {:?}",
        term.output_so_far()
    );
    let sleep_sql = "SELECT pg_sleep(30);";
    term.write_stdin(format!("{sleep_sql}\n").as_bytes());
    assert!(
        wait_until(Duration::from_secs(15), || running_queries(&db, sleep_sql)
            == 1),
        "the sleep never ran upstream: {:?}",
        term.output_so_far()
    );
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    term.write_stdin(b"\x03");
    let cancelled = term.wait_for_output(
        "canceling statement due to user request",
        Duration::from_secs(10),
    );
    let took = t0.elapsed();
    let (so_far, err_so_far) = term.output_so_far();
    assert!(
        cancelled,
        "no cancel error within 10 s of Ctrl-C over TLS:\n{so_far}\n{err_so_far}"
    );
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    assert!(
        so_far.contains("57014"),
        "SQLSTATE 57014 expected: {so_far}"
    );
    for bad in [
        "Could not send cancel request",
        "cancellation failed",
        "SSL error",
        "SSL SYSCALL",
    ] {
        assert!(
            !so_far.contains(bad) && !err_so_far.contains(bad),
            "psql reported {bad:?} on Ctrl-C over TLS:\n{so_far}\n{err_so_far}"
        );
    }
    assert_eq!(
        running_queries(&db, sleep_sql),
        0,
        "the upstream query is still running"
    );
    term.write_stdin(b"SELECT 'still ' || 'alive' AS status;\n");
    assert!(
        term.wait_for_output("still alive", Duration::from_secs(10)),
        "session not usable after cancel over TLS: {:?}",
        term.output_so_far()
    );
    term.write_stdin(b"\\q\n");
    let done = term.wait(Duration::from_secs(10));
    assert!(done.success(), "{}", done.describe());
    assert_no_tls_error("psql Ctrl-C over TLS", &done);
}

/// A FATAL sent by airlock during startup over TLS (wrong password) must
/// reach libpq as the server's error, not as an SSL error (close_notify).
#[test]
fn startup_fatal_over_tls_is_clean() {
    require_psycopg();
    let p = TlsProxy::start("airlock_t_tlsdrv_fatal");
    let conninfo = p.conn().with("password", "wrong-password").conninfo();
    let mut cmd = Command::new("python3");
    clean(&mut cmd);
    cmd.arg("-c")
        .arg(
            "import sys, psycopg\n\
             try:\n    psycopg.connect(sys.argv[1]).close()\n    print('connected?!')\n\
             except psycopg.OperationalError as e:\n    print('error:', ' '.join(str(e).split()))\n",
        )
        .arg(&conninfo);
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    assert!(out.success(), "{}", out.describe());
    let s = out.stdout();
    assert!(
        s.contains("password authentication failed"),
        "the wrong password must be reported as such: {}",
        out.describe()
    );
    assert_no_tls_error("FATAL during startup over TLS", &out);

    // psql (libpq 15) alike.
    let out = p
        .conn()
        .with("password", "wrong-password")
        .psql(&["-c", "SELECT 1"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr().contains("password authentication failed"),
        "{}",
        out.describe()
    );
    assert_no_tls_error("psql: FATAL during startup over TLS", &out);
}

// ---------------------------------------------------------------------------
// d. application_name
// ---------------------------------------------------------------------------

fn appname_expected(mode: &str, connected: &str, jdbc: bool) -> Vec<String> {
    let mut v = vec![
        format!("mode {mode}"),
        connected.to_string(),
        format!(
            "backend_pid matches pg_backend_pid(): {}",
            if jdbc { "true" } else { "True" }
        ),
    ];
    for (phase, value) in [("startup", "myapp"), ("after SET", "other")] {
        v.push(format!("{phase} SHOW application_name: {value}"));
        v.push(format!(
            "{phase} parameter_status application_name: {value}"
        ));
        if jdbc {
            v.push(format!("{phase} getClientInfo ApplicationName: {value}"));
        }
        v.push(format!(
            "{phase} pg_stat_activity application_name: airlock:alice:{value}"
        ));
    }
    v.push("done".into());
    v
}

#[test]
fn application_name_psycopg_over_tls() {
    require_psycopg();
    let p = TlsProxy::start("airlock_t_tlsdrv_app_pg");
    let out = python_check(
        "appname-psycopg",
        &p.conninfo(),
        &[&admin_conninfo()],
        Duration::from_secs(90),
    );
    assert_transcript(
        "psycopg application_name through airlock",
        &out,
        &appname_expected("appname-psycopg", "connected ssl_in_use=True", false),
    );
}

#[test]
fn application_name_asyncpg_over_tls() {
    require_psycopg();
    require_asyncpg();
    let p = TlsProxy::start("airlock_t_tlsdrv_app_apg");
    let out = python_check(
        "appname-asyncpg",
        &p.conninfo(),
        &[&admin_conninfo()],
        Duration::from_secs(90),
    );
    assert_transcript(
        "asyncpg application_name through airlock",
        &out,
        &appname_expected("appname-asyncpg", "connected ssl_in_use=True", false),
    );
}

#[test]
fn application_name_pgjdbc_over_tls() {
    let jdbc = TlsCheck::compile();
    let p = TlsProxy::start("airlock_t_tlsdrv_app_jdbc");
    let admin_url = format!("jdbc:postgresql://{PG_HOST}:{PG_PORT}/postgres?sslmode=disable");
    let out = jdbc.run(
        &p.jdbc_url(),
        "alice",
        password_of("alice"),
        &["appname", &admin_url, UPSTREAM_USER, UPSTREAM_PASSWORD],
        Duration::from_secs(120),
    );
    assert_transcript(
        "pgJDBC application_name through airlock",
        &out,
        &appname_expected("appname", "connected", true),
    );
}
