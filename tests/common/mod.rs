//! Shared harness for airlock's end-to-end tests against the real local
//! PostgreSQL (see `tests/setup-postgres.sh` for what it expects).
//!
//! - [`ensure_postgres`] prepares PostgreSQL once per test binary;
//! - [`fresh_db`] gives a test its own empty database;
//! - [`ProxyConfig`] + [`Proxy`] write a `proxy.toml` and run `airlock serve`
//!   on free ports, killing it on drop (its stderr is printed when the test
//!   panicked);
//! - [`Conn`] runs `psql` / `pgbench` against the proxy or directly;
//! - [`raw`] is a tiny Postgres wire client (startup, SCRAM-SHA-256, simple
//!   query, CancelRequest) for checks that need SQLSTATEs and raw bytes;
//! - [`fake_slack`] is an in-process fake Slack (Web API, Socket Mode) plus
//!   signed interaction payloads to post to airlock.
//!
//! Tests run in parallel: every test uses its own database name and ports.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod fake_slack;
pub mod raw;
pub mod reload;
pub mod requests;

/// Upstream role created by `tests/setup-postgres.sh` (LOGIN SUPERUSER, SCRAM).
pub const UPSTREAM_USER: &str = "airlock_scram";
/// Its password.
pub const UPSTREAM_PASSWORD: &str = "airlock-scram-pw";
/// Environment variable through which the proxy gets that password.
pub const UPSTREAM_PASSWORD_ENV: &str = "AIRLOCK_TEST_UPSTREAM_PW";
/// Local PostgreSQL.
pub const PG_HOST: &str = "127.0.0.1";
/// Local PostgreSQL port.
pub const PG_PORT: u16 = 5432;
/// `application_name` every psql in the tests sends (direct and proxied alike).
pub const APP_NAME: &str = "psql";

/// Default proxy users: (name, team, groups, password).
pub const DEFAULT_USERS: &[(&str, &str, &[&str], &str)] = &[
    ("alice", "payments", &["developers"], "alice-pw-Xq7"),
    ("bob", "platform", &["developers", "dba"], "bob-pw-9Lm"),
    ("mallory", "outside", &["contractors"], "mallory-pw-3Zt"),
];

/// Password of a default user.
pub fn password_of(user: &str) -> &'static str {
    DEFAULT_USERS
        .iter()
        .find(|u| u.0 == user)
        .map(|u| u.3)
        .unwrap_or_else(|| panic!("{user} is not a default test user"))
}

/// The workspace root (where `tests/` and `Cargo.toml` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The `airlock` binary built for these tests.
pub fn airlock_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlock"))
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Result of a finished command.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit status (`None` when it was killed on timeout).
    pub status: Option<ExitStatus>,
    /// Raw stdout.
    pub stdout_bytes: Vec<u8>,
    /// Raw stderr.
    pub stderr_bytes: Vec<u8>,
    /// Wall time.
    pub elapsed: Duration,
    /// Killed because it ran past its timeout.
    pub timed_out: bool,
}

impl Out {
    /// Stdout as text (lossy).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout_bytes).into_owned()
    }
    /// Stderr as text (lossy).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr_bytes).into_owned()
    }
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    /// Exit code (-1 when killed or signalled).
    pub fn code(&self) -> i32 {
        self.status.and_then(|s| s.code()).unwrap_or(-1)
    }
    /// A readable dump for assertion messages (long streams are cut).
    pub fn describe(&self) -> String {
        format!(
            "exit={:?} timed_out={} elapsed={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.timed_out,
            self.elapsed,
            cut(&self.stdout(), 6000),
            cut(&self.stderr(), 6000)
        )
    }
    /// Panics (with everything captured) unless the command exited 0.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(self.success(), "{what} failed: {}", self.describe());
        self
    }
}

/// Keeps the head and the tail of a long text.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut head = max / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - max / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[... {} bytes cut ...]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

/// A child process whose stdout/stderr are collected in the background.
pub struct Background {
    pub child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
    what: String,
}

fn collect<R: Read + Send + 'static>(mut r: R, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

impl Background {
    /// Spawns `cmd` with piped stdin/stdout/stderr.
    pub fn spawn(mut cmd: Command) -> Background {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Background {
            child,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
            what,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes to the child's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(data).expect("write to child stdin");
        stdin.flush().expect("flush child stdin");
    }

    /// Closes the child's stdin.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Output so far (stdout, stderr).
    pub fn output_so_far(&self) -> (String, String) {
        (
            String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned(),
            String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
        )
    }

    /// Waits until stdout or stderr contains `needle`; false on timeout.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let (o, e) = self.output_so_far();
            if o.contains(needle) || e.contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`INT`, `TERM`, `KILL`…) with kill(1).
    pub fn signal(&self, sig: &str) {
        signal_pid(self.pid(), sig);
    }

    /// Waits for the exit (kills it after `timeout`) and returns everything.
    pub fn wait(mut self, timeout: Duration) -> Out {
        self.close_stdin();
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => break Some(s),
                None if Instant::now() >= deadline => {
                    timed_out = true;
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let elapsed = self.started.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stdout_bytes = std::mem::take(&mut *self.stdout.lock().unwrap());
        let stderr_bytes = std::mem::take(&mut *self.stderr.lock().unwrap());
        if timed_out {
            eprintln!("[harness] killed after {timeout:?}: {}", self.what);
        }
        Out {
            status,
            stdout_bytes,
            stderr_bytes,
            elapsed,
            timed_out,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal by name to a process with kill(1).
pub fn signal_pid(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Runs a command to completion with optional stdin and a timeout; a
/// command that outlives its timeout is killed and reported as timed out.
pub fn run_with_timeout(cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Out {
    let mut bg = Background::spawn(cmd);
    if let Some(data) = stdin {
        // Write from a thread: the child may fill its stdout before reading all stdin.
        let mut pipe = bg.child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    bg.wait(timeout)
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// Runs `tests/setup-postgres.sh` once per test binary (PostgreSQL running,
/// SCRAM role, pg_hba line, ssl on). Panics with its output on failure.
pub fn ensure_postgres() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let script = workspace_root().join("tests/setup-postgres.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script);
        let out = run_with_timeout(cmd, None, Duration::from_secs(180));
        if out.success() {
            Ok(())
        } else {
            Err(format!("{} failed: {}", script.display(), out.describe()))
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// Base `psql` command with a clean libpq environment.
fn base_client_cmd(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in [
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
        "PGTZ",
        "PGDATESTYLE",
        "PGAPPNAME",
        "PGREQUIRESSL",
        "PGGSSENCMODE",
        "PGTARGETSESSIONATTRS",
        "PSQLRC",
        "PAGER",
        "PSQL_PAGER",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .env("PGAPPNAME", APP_NAME)
        .env("PGGSSENCMODE", "disable")
        .env("PSQLRC", "/dev/null");
    cmd
}

/// Runs an administrative SQL command as `postgres` over 127.0.0.1 (trust).
pub fn admin_sql(sql: &str) -> Out {
    let mut cmd = base_client_cmd("psql");
    cmd.args([
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        PG_HOST,
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        sql,
    ]);
    run_with_timeout(cmd, None, Duration::from_secs(60))
}

/// Runs SQL as `postgres` in a given database and returns trimmed stdout.
pub fn admin_query(db: &str, sql: &str) -> String {
    let mut cmd = base_client_cmd("psql");
    cmd.args([
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        PG_HOST,
        "-U",
        "postgres",
        "-d",
        db,
        "-c",
        sql,
    ]);
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    out.assert_success(&format!("admin query {sql:?} on {db}"));
    out.stdout().trim_end_matches('\n').to_string()
}

/// Drops (with FORCE) and creates database `name`, owned by the upstream role.
pub fn fresh_db(name: &str) {
    ensure_postgres();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "keep test database names simple: {name}"
    );
    admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .assert_success("drop database");
    admin_sql(&format!(
        "CREATE DATABASE {name} OWNER {UPSTREAM_USER} TEMPLATE template0 ENCODING 'UTF8'"
    ))
    .assert_success("create database");
}

/// A free TCP port on 127.0.0.1 (bound then released; tiny race accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// SCRAM-SHA-256 verifier for `password`, from `airlock passwd` (cached).
pub fn verifier(password: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(password) {
        return v.clone();
    }
    let mut cmd = Command::new(airlock_bin());
    cmd.arg("passwd");
    let out = run_with_timeout(
        cmd,
        Some(format!("{password}\n").as_bytes()),
        Duration::from_secs(30),
    );
    out.assert_success("airlock passwd");
    let line = out
        .stdout()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SCRAM-SHA-256$"))
        .unwrap_or_else(|| {
            panic!(
                "airlock passwd printed no SCRAM verifier: {}",
                out.describe()
            )
        })
        .to_string();
    assert!(
        !out.stdout().contains(password) && !out.stderr().contains(password),
        "airlock passwd echoed the password"
    );
    cache
        .lock()
        .unwrap()
        .insert(password.to_string(), line.clone());
    line
}

/// A libpq connection description used to run psql/pgbench.
#[derive(Debug, Clone)]
pub struct Conn {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: String,
    /// Extra conninfo keywords (`sslmode`, `sslrootcert`, `hostaddr`…).
    pub params: Vec<(String, String)>,
}

/// Quotes a conninfo value.
fn conninfo_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Conn {
    /// Directly to the local PostgreSQL as the upstream role.
    pub fn direct(db: &str) -> Conn {
        Conn {
            host: PG_HOST.into(),
            port: PG_PORT,
            user: UPSTREAM_USER.into(),
            dbname: db.into(),
            password: UPSTREAM_PASSWORD.into(),
            params: vec![],
        }
    }

    /// Adds a conninfo keyword.
    pub fn with(mut self, key: &str, value: &str) -> Conn {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.into(), value.into()));
        self
    }

    /// Replaces the password.
    pub fn with_password(mut self, pw: &str) -> Conn {
        self.password = pw.into();
        self
    }

    /// The conninfo string.
    pub fn conninfo(&self) -> String {
        let mut s = format!(
            "host={} port={} user={} dbname={}",
            conninfo_value(&self.host),
            self.port,
            conninfo_value(&self.user),
            conninfo_value(&self.dbname)
        );
        for (k, v) in &self.params {
            write!(s, " {k}={}", conninfo_value(v)).unwrap();
        }
        s
    }

    /// `psql -X -d <conninfo> args…` with PGPASSWORD set (not yet run).
    pub fn psql_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = base_client_cmd("psql");
        cmd.env("PGPASSWORD", &self.password)
            .arg("-X")
            .arg("-d")
            .arg(self.conninfo())
            .args(args);
        cmd
    }

    /// Runs psql with `args` (60 s timeout).
    pub fn psql(&self, args: &[&str]) -> Out {
        run_with_timeout(self.psql_cmd(args), None, Duration::from_secs(60))
    }

    /// Runs psql with `args` and `stdin` (120 s timeout).
    pub fn psql_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        run_with_timeout(self.psql_cmd(args), Some(stdin), Duration::from_secs(120))
    }

    /// Runs one query with `-At` and returns stdout (panics on failure).
    pub fn query(&self, sql: &str) -> String {
        let out = self.psql(&["-At", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        out.assert_success(&format!("psql -c {sql:?} on {}", self.conninfo()));
        out.stdout().trim_end_matches('\n').to_string()
    }

    /// `pgbench -h -p -U args… dbname` with PGPASSWORD set (not yet run).
    pub fn pgbench_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = base_client_cmd("pgbench");
        cmd.env("PGPASSWORD", &self.password);
        for (k, v) in &self.params {
            if k == "sslmode" {
                cmd.env("PGSSLMODE", v);
            }
        }
        cmd.arg("-h")
            .arg(&self.host)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(&self.user)
            .args(args)
            .arg(&self.dbname);
        cmd
    }
}

/// Generic psql runner: `args` as given (add `-X` and a connection yourself),
/// `env` on top of a clean libpq environment. 60 s timeout.
pub fn psql(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = base_client_cmd("psql");
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, None, Duration::from_secs(60))
}

/// Asserts two runs of a client (direct and through the proxy) produced the
/// same stdout, stderr and exit status, byte for byte. Shows the first
/// differing line on failure.
pub fn assert_same_output(what: &str, direct: &Out, proxied: &Out) {
    assert!(
        !direct.timed_out,
        "{what}: direct run timed out: {}",
        direct.describe()
    );
    assert!(
        !proxied.timed_out,
        "{what}: proxied run timed out: {}",
        proxied.describe()
    );
    for (stream, d, p) in [
        ("stdout", &direct.stdout_bytes, &proxied.stdout_bytes),
        ("stderr", &direct.stderr_bytes, &proxied.stderr_bytes),
    ] {
        if d != p {
            panic!(
                "{what}: {stream} differs between direct and proxy ({} vs {} bytes)\n{}\n\n== direct ==\n{}\n== proxied ==\n{}",
                d.len(),
                p.len(),
                first_difference(d, p),
                direct.describe(),
                proxied.describe()
            );
        }
    }
    assert_eq!(
        direct.code(),
        proxied.code(),
        "{what}: exit status differs\n== direct ==\n{}\n== proxied ==\n{}",
        direct.describe(),
        proxied.describe()
    );
}

/// Describes where two outputs first differ, line by line.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.split('\n').collect(), b.split('\n').collect());
    for i in 0..al.len().max(bl.len()) {
        let x = al.get(i).copied();
        let y = bl.get(i).copied();
        if x != y {
            let show = |l: Option<&str>| match l {
                Some(l) => format!("{:?}", cut(l, 400)),
                None => "<no line>".into(),
            };
            return format!(
                "first difference at line {}:\n  direct:  {}\n  proxied: {}",
                i + 1,
                show(x),
                show(y)
            );
        }
    }
    "no line differs (trailing bytes?)".into()
}

// ---------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------

/// A test CA and a server certificate for `localhost` / 127.0.0.1 signed by it.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    run_with_timeout(cmd, None, Duration::from_secs(60))
        .assert_success(&format!("openssl {}", args.join(" ")));
}

/// Generates a CA (`<prefix>ca.crt`) and a server cert/key signed by it in
/// `dir` with the openssl CLI (EC P-256).
pub fn make_pki(dir: &Path, prefix: &str) -> Pki {
    let p = |n: &str| dir.join(format!("{prefix}{n}"));
    let s = |n: &str| p(n).to_string_lossy().into_owned();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3",
            "-subj",
            &format!("/CN=airlock test CA {prefix}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &s("ca.key"),
            "-out",
            &s("ca.crt"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &s("server.key"),
            "-out",
            &s("server.csr"),
        ],
    );
    std::fs::write(
        p("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &s("server.csr"),
            "-CA",
            &s("ca.crt"),
            "-CAkey",
            &s("ca.key"),
            "-CAcreateserial",
            "-days",
            "3",
            "-extfile",
            &s("server.ext"),
            "-out",
            &s("server.crt"),
        ],
    );
    Pki {
        ca_cert: p("ca.crt"),
        ca_key: p("ca.key"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
    }
}

// ---------------------------------------------------------------------------
// Proxy configuration
// ---------------------------------------------------------------------------

/// `[[users]]` entry (the verifier is computed from `password`).
#[derive(Debug, Clone)]
pub struct UserSpec {
    pub name: String,
    pub team: String,
    pub groups: Vec<String>,
    pub password: String,
}

/// Upstream credentials.
#[derive(Debug, Clone)]
pub struct CredSpec {
    pub user: String,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl CredSpec {
    /// The SCRAM upstream role, password from [`UPSTREAM_PASSWORD_ENV`].
    pub fn upstream_scram() -> CredSpec {
        CredSpec {
            user: UPSTREAM_USER.into(),
            password_env: Some(UPSTREAM_PASSWORD_ENV.into()),
            password_file: None,
        }
    }
}

/// `[[targets]]` entry.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub name: String,
    pub family: Option<String>,
    pub environment: String,
    pub protected: bool,
    pub allowed_groups: Vec<String>,
    pub read_only_backstop: Option<bool>,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// `disable` | `prefer` | `require` | `verify-full`
    pub tls: String,
    pub ca_file: Option<PathBuf>,
    pub read_credentials: Option<CredSpec>,
    pub write_credentials: Option<CredSpec>,
    /// `trusted_functions` (`schema.name`).
    pub trusted_functions: Vec<String>,
}

impl TargetSpec {
    /// A target on the local PostgreSQL database `database`, reached as the
    /// SCRAM upstream role (read and write credentials alike).
    pub fn local(name: &str, database: &str, protected: bool) -> TargetSpec {
        TargetSpec {
            name: name.into(),
            family: None,
            environment: String::new(),
            protected,
            allowed_groups: vec!["developers".into(), "dba".into()],
            read_only_backstop: None,
            host: PG_HOST.into(),
            port: PG_PORT,
            database: database.into(),
            tls: "disable".into(),
            ca_file: None,
            read_credentials: Some(CredSpec::upstream_scram()),
            write_credentials: Some(CredSpec::upstream_scram()),
            trusted_functions: Vec::new(),
        }
    }
}

/// `[tls]` for the client listener.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub require: bool,
}

/// Everything that goes into the generated `proxy.toml`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub users: Vec<UserSpec>,
    pub families: Vec<(String, Vec<String>)>,
    pub targets: Vec<TargetSpec>,
    pub tls: Option<TlsSpec>,
    /// Extra `key = value` TOML lines for `[server]` (values already TOML).
    pub server_extra: Vec<(String, String)>,
    /// Extra environment for the airlock process.
    pub env: Vec<(String, String)>,
    /// HTTP API tokens: (user, token); the config gets the token's SHA-256.
    pub api_tokens: Vec<(String, String)>,
    /// `[store] url` (default: the SQLite file next to the config).
    pub store_url: Option<String>,
    /// Raw TOML appended at the end of the config (e.g. `[audit]`).
    pub extra_toml: String,
    /// Users' Slack ids: (user, `U…`).
    pub slack_ids: Vec<(String, String)>,
}

/// TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(o, "\\u{:04x}", c as u32).unwrap(),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl ProxyConfig {
    /// Default config for one upstream database `db`: users alice
    /// (developers), bob (developers, dba), mallory (contractors); family
    /// `db` (dev < qa < prod); targets `<db>-dev` (unprotected) and
    /// `<db>-prod` (protected), both for developers and dba, both on the
    /// local database `db` as the SCRAM upstream role.
    pub fn for_db(db: &str) -> ProxyConfig {
        let users = DEFAULT_USERS
            .iter()
            .map(|(n, t, g, p)| UserSpec {
                name: n.to_string(),
                team: t.to_string(),
                groups: g.iter().map(|s| s.to_string()).collect(),
                password: p.to_string(),
            })
            .collect();
        let mut dev = TargetSpec::local(&format!("{db}-dev"), db, false);
        dev.family = Some(db.into());
        dev.environment = "dev".into();
        let mut prod = TargetSpec::local(&format!("{db}-prod"), db, true);
        prod.family = Some(db.into());
        prod.environment = "prod".into();
        ProxyConfig {
            users,
            families: vec![(db.into(), vec!["dev".into(), "qa".into(), "prod".into()])],
            targets: vec![dev, prod],
            tls: None,
            server_extra: vec![],
            env: vec![],
            api_tokens: vec![],
            store_url: None,
            extra_toml: String::new(),
            slack_ids: vec![],
        }
    }

    /// Gives `user` an HTTP API token (builder style).
    pub fn with_api_token(mut self, user: &str, token: &str) -> ProxyConfig {
        self.api_tokens.push((user.into(), token.into()));
        self
    }

    /// The target called `name`, for changes.
    pub fn target_mut(&mut self, name: &str) -> &mut TargetSpec {
        self.targets
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no target {name} in the test config"))
    }

    /// Adds a target (builder style).
    pub fn with_target(mut self, t: TargetSpec) -> ProxyConfig {
        self.targets.push(t);
        self
    }

    /// Sets `[tls]` (builder style).
    pub fn with_tls(mut self, cert: &Path, key: &Path, require: bool) -> ProxyConfig {
        self.tls = Some(TlsSpec {
            cert_file: cert.into(),
            key_file: key.into(),
            require,
        });
        self
    }

    /// Password of a configured user.
    pub fn password(&self, user: &str) -> String {
        self.users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.password.clone())
            .unwrap_or_else(|| panic!("no user {user} in the test config"))
    }

    /// Renders `proxy.toml` for the given listener ports.
    pub fn to_toml(&self, pg_port: u16, http_port: u16) -> String {
        let mut s = String::new();
        writeln!(s, "[server]").unwrap();
        writeln!(s, "postgres_listen = \"127.0.0.1:{pg_port}\"").unwrap();
        writeln!(s, "http_listen = \"127.0.0.1:{http_port}\"").unwrap();
        if !self.server_extra.iter().any(|(k, _)| k == "shutdown_grace") {
            writeln!(s, "shutdown_grace = \"5s\"").unwrap();
        }
        for (k, v) in &self.server_extra {
            writeln!(s, "{k} = {v}").unwrap();
        }
        if let Some(tls) = &self.tls {
            writeln!(s, "\n[tls]").unwrap();
            writeln!(
                s,
                "cert_file = {}",
                toml_str(&tls.cert_file.to_string_lossy())
            )
            .unwrap();
            writeln!(
                s,
                "key_file = {}",
                toml_str(&tls.key_file.to_string_lossy())
            )
            .unwrap();
            writeln!(s, "require = {}", tls.require).unwrap();
        }
        for (name, envs) in &self.families {
            writeln!(
                s,
                "\n[[families]]\nname = {}\nenvironments = {}",
                toml_str(name),
                toml_list(envs)
            )
            .unwrap();
        }
        for u in &self.users {
            writeln!(s, "\n[[users]]").unwrap();
            writeln!(s, "name = {}", toml_str(&u.name)).unwrap();
            writeln!(s, "team = {}", toml_str(&u.team)).unwrap();
            writeln!(s, "groups = {}", toml_list(&u.groups)).unwrap();
            writeln!(s, "scram_verifier = {}", toml_str(&verifier(&u.password))).unwrap();
            for (_, token) in self.api_tokens.iter().filter(|(n, _)| *n == u.name) {
                use sha2::Digest;
                let hash: String = sha2::Sha256::digest(token.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                writeln!(s, "api_token_sha256 = {}", toml_str(&hash)).unwrap();
            }
            for (_, id) in self.slack_ids.iter().filter(|(n, _)| *n == u.name) {
                writeln!(s, "slack_user_id = {}", toml_str(id)).unwrap();
            }
        }
        for t in &self.targets {
            writeln!(s, "\n[[targets]]").unwrap();
            writeln!(s, "name = {}", toml_str(&t.name)).unwrap();
            if let Some(f) = &t.family {
                writeln!(s, "family = {}", toml_str(f)).unwrap();
                writeln!(s, "environment = {}", toml_str(&t.environment)).unwrap();
            }
            writeln!(s, "protected = {}", t.protected).unwrap();
            writeln!(s, "allowed_groups = {}", toml_list(&t.allowed_groups)).unwrap();
            if let Some(b) = t.read_only_backstop {
                writeln!(s, "read_only_backstop = {b}").unwrap();
            }
            if !t.trusted_functions.is_empty() {
                writeln!(s, "trusted_functions = {}", toml_list(&t.trusted_functions)).unwrap();
            }
            writeln!(s, "\n[targets.upstream]").unwrap();
            writeln!(s, "host = {}", toml_str(&t.host)).unwrap();
            writeln!(s, "port = {}", t.port).unwrap();
            writeln!(s, "database = {}", toml_str(&t.database)).unwrap();
            writeln!(s, "tls = {}", toml_str(&t.tls)).unwrap();
            if let Some(ca) = &t.ca_file {
                writeln!(s, "ca_file = {}", toml_str(&ca.to_string_lossy())).unwrap();
            }
            for (key, c) in [
                ("read_credentials", &t.read_credentials),
                ("write_credentials", &t.write_credentials),
            ] {
                let Some(c) = c else { continue };
                writeln!(s, "\n[targets.{key}]").unwrap();
                writeln!(s, "user = {}", toml_str(&c.user)).unwrap();
                if let Some(e) = &c.password_env {
                    writeln!(s, "password_env = {}", toml_str(e)).unwrap();
                }
                if let Some(f) = &c.password_file {
                    writeln!(s, "password_file = {}", toml_str(&f.to_string_lossy())).unwrap();
                }
            }
        }
        if let Some(url) = &self.store_url {
            writeln!(s, "\n[store]\nurl = {}", toml_str(url)).unwrap();
        }
        if !self.extra_toml.is_empty() {
            writeln!(s, "\n{}", self.extra_toml).unwrap();
        }
        s
    }
}

// ---------------------------------------------------------------------------
// The proxy process
// ---------------------------------------------------------------------------

/// A running `airlock serve`; killed on drop. When the test thread is
/// panicking, its stderr is printed on drop.
pub struct Proxy {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: ProxyConfig,
    pub config_path: PathBuf,
    pub stderr_path: PathBuf,
    pub pg_port: u16,
    pub http_port: u16,
}

impl Proxy {
    /// Writes the config and starts `airlock serve`, waiting (30 s at most)
    /// until the Postgres and HTTP ports accept TCP. Retries on another port pair if
    /// the chosen one was taken in the meantime.
    pub fn start(config: ProxyConfig) -> Proxy {
        ensure_postgres();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            match Self::try_start(config.clone()) {
                Ok(p) => return p,
                Err((msg, retry)) => {
                    if !retry {
                        panic!("{msg}");
                    }
                    last_err = msg;
                }
            }
        }
        panic!("airlock did not start after 3 attempts: {last_err}");
    }

    fn try_start(config: ProxyConfig) -> Result<Proxy, (String, bool)> {
        let dir = tempfile::Builder::new()
            .prefix("airlock-e2e-")
            .tempdir()
            .expect("tempdir");
        let pg_port = free_port();
        let mut http_port = free_port();
        while http_port == pg_port {
            http_port = free_port();
        }
        let config_path = dir.path().join("proxy.toml");
        std::fs::write(&config_path, config.to_toml(pg_port, http_port)).expect("write config");
        let stderr_path = dir.path().join("airlock.stderr");
        let stdout_path = dir.path().join("airlock.stdout");
        let mut cmd = Command::new(airlock_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env(UPSTREAM_PASSWORD_ENV, UPSTREAM_PASSWORD)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &config.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", airlock_bin().display()));
        let mut proxy = Proxy {
            child: Some(child),
            dir,
            config,
            config_path,
            stderr_path,
            pg_port,
            http_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = proxy.child.as_mut().unwrap().try_wait().unwrap() {
                let err = proxy.stderr();
                let retry = err.contains("in use") || err.contains("AddrInUse");
                proxy.child = None;
                return Err((
                    format!(
                        "airlock serve exited during startup ({status}); config:\n{}\nstderr:\n{}",
                        std::fs::read_to_string(&proxy.config_path).unwrap_or_default(),
                        err
                    ),
                    retry,
                ));
            }
            // Both listeners: the HTTP one is bound after the Postgres one.
            let accepts = |port: u16| {
                TcpStream::connect_timeout(
                    &format!("127.0.0.1:{port}").parse().unwrap(),
                    Duration::from_millis(200),
                )
                .is_ok()
            };
            if accepts(pg_port) && accepts(http_port) {
                return Ok(proxy);
            }
            if Instant::now() >= deadline {
                return Err((
                    format!(
                        "airlock serve did not accept TCP on 127.0.0.1:{pg_port} within 30 s; stderr:\n{}",
                        proxy.stderr()
                    ),
                    false,
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The proxy's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Process id of airlock.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("proxy not running").id()
    }

    /// Whether the airlock process is still running.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Panics (with its stderr) if airlock has exited.
    pub fn assert_alive(&mut self, after: &str) {
        if !self.is_alive() {
            let status = self.child.as_mut().unwrap().try_wait().unwrap();
            panic!(
                "airlock is no longer running after {after} (status {status:?}); stderr:\n{}",
                cut(&self.stderr(), 20000)
            );
        }
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`…) to airlock.
    pub fn signal(&self, sig: &str) {
        signal_pid(self.pid(), sig);
    }

    /// Waits for airlock to exit; `None` on timeout (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.as_mut()?.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connection as a configured user to a target, through the proxy.
    pub fn conn(&self, user: &str, target: &str) -> Conn {
        let password = self
            .config
            .users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.password.clone())
            .unwrap_or_else(|| "not-a-configured-user".into());
        Conn {
            host: "127.0.0.1".into(),
            port: self.pg_port,
            user: user.into(),
            dbname: target.into(),
            password,
            params: vec![],
        }
    }

    /// Address of the Postgres listener.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.pg_port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "===== airlock stderr ({}) =====\n{}\n===== end of airlock stderr =====",
                self.stderr_path.display(),
                cut(&self.stderr(), 30000)
            );
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request to airlock's HTTP listener on `port`; returns
/// (status, response head, body). `headers` are added as given.
pub fn http_raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String, String) {
    http_request(&format!("127.0.0.1:{port}"), method, path, headers, body)
}

/// A minimal blocking HTTP/1.1 request (`Connection: close`, plain http) to
/// `authority` (`host:port`); returns (status, response head, body), the
/// body decoded when it came chunked.
pub fn http_request(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(authority)
        .unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("send to {authority}{path}: {e}"));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read the answer of {authority}{path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed HTTP answer from {authority}{path}: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let payload = if chunked {
        dechunk(payload)
    } else {
        payload.to_string()
    };
    (status, head.to_string(), payload)
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size in {s:?}"));
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        s = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// An `Authorization: Basic` header value.
pub fn basic_auth(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// A fresh database `db` (see [`fresh_db`]) with `sql` run in it, stopping at the first error.
pub fn fresh_db_with(db: &str, sql: &str) {
    fresh_db(db);
    Conn::direct(db)
        .psql(&["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .assert_success("seeding");
}

/// A fresh, empty PostgreSQL database `airlock_state_t_<name>` for airlock's
/// state store (dropped first if left over); returns its `store.url`.
pub fn fresh_pg_store(name: &str) -> String {
    ensure_postgres();
    let db = format!("airlock_state_t_{name}");
    assert!(
        db.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "keep store database names simple: {db}"
    );
    admin_sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .assert_success("drop store database");
    admin_sql(&format!(
        "CREATE DATABASE {db} TEMPLATE template0 ENCODING 'UTF8'"
    ))
    .assert_success("create store database");
    format!("postgres://postgres@{PG_HOST}:{PG_PORT}/{db}")
}
