//! Runners for the driver check programs used by the end-to-end tests:
//! `tests/jdbc/JdbcCheck.java` (pgJDBC from Debian's `libpostgresql-jdbc-java`)
//! and `tests/psycopg_check.py` (psycopg 3 from PyPI). Both print a
//! deterministic transcript on stdout; see the programs for their modes.
//!
//! Shared by `pg_jdbc.rs`, `pg_psycopg.rs` and `pg_protected.rs` (include with
//! `mod drivers;` after `mod common;`).
#![allow(dead_code)]

use crate::common::{run_with_timeout, workspace_root, Out};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where Debian installs pgJDBC.
pub const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Environment variables of libpq / the JVM that must not leak into a run.
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
    "PGTZ",
    "PGDATESTYLE",
    "PGAPPNAME",
    "PGREQUIRESSL",
    "PGGSSENCMODE",
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
        .env("PYTHONIOENCODING", "utf-8");
}

/// The compiled `JdbcCheck` program (classes in a temporary directory).
pub struct Jdbc {
    dir: tempfile::TempDir,
}

impl Jdbc {
    /// Compiles `tests/jdbc/JdbcCheck.java` against Debian's pgJDBC. Panics
    /// with instructions when the JDK or the driver is missing (the tests
    /// must not pass by skipping: `.ci/run` installs both).
    pub fn compile() -> Jdbc {
        assert!(
            Path::new(PGJDBC_JAR).exists(),
            "{PGJDBC_JAR} is missing: apt-get install -y libpostgresql-jdbc-java (done by .ci/run)"
        );
        let dir = tempfile::Builder::new()
            .prefix("airlock-jdbc-")
            .tempdir()
            .expect("tempdir");
        let src = workspace_root().join("tests/jdbc/JdbcCheck.java");
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
        Jdbc { dir }
    }

    /// Runs `JdbcCheck URL USER PASSWORD MODE [FILE]` (5 min timeout).
    pub fn run(
        &self,
        url: &str,
        user: &str,
        password: &str,
        mode: &str,
        file: Option<&Path>,
    ) -> Out {
        let mut cmd = Command::new("java");
        clean(&mut cmd);
        cmd.arg("-Dfile.encoding=UTF-8")
            .arg("-Duser.language=en")
            .arg("-Duser.country=US")
            .arg("-cp")
            .arg(format!("{}:{PGJDBC_JAR}", self.dir.path().display()))
            .arg("JdbcCheck")
            .arg(url)
            .arg(user)
            .arg(password)
            .arg(mode);
        if let Some(f) = file {
            cmd.arg(f);
        }
        run_with_timeout(cmd, None, Duration::from_secs(300))
    }
}

/// Path of `tests/psycopg_check.py`.
pub fn psycopg_script() -> PathBuf {
    workspace_root().join("tests/psycopg_check.py")
}

/// Panics with instructions unless `python3` can import psycopg 3.
pub fn require_psycopg() {
    let mut cmd = Command::new("python3");
    clean(&mut cmd);
    cmd.args(["-c", "import psycopg, sys; v = tuple(int(x) for x in psycopg.__version__.split('.')[:2]); sys.exit(0 if v >= (3, 2) else 1)"]);
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    assert!(
        out.success(),
        "python3 cannot import psycopg >= 3.2: python3 -m pip install 'psycopg[binary]' (done by .ci/run): {}",
        out.describe()
    );
}

/// Runs `python3 tests/psycopg_check.py CONNINFO MODE [ARG]` (5 min timeout).
pub fn run_psycopg(conninfo: &str, mode: &str, arg: Option<&str>) -> Out {
    let mut cmd = Command::new("python3");
    clean(&mut cmd);
    cmd.arg(psycopg_script()).arg(conninfo).arg(mode);
    if let Some(a) = arg {
        cmd.arg(a);
    }
    run_with_timeout(cmd, None, Duration::from_secs(300))
}

/// Asserts that a check program ran to its end ("done" as last line) and
/// printed none of the "…?!" lines that mark an expected error that did not
/// happen. Use on the direct run: it proves the program and the database
/// behave as the transcript expects before the proxy is compared with it.
pub fn assert_complete(what: &str, out: &Out) {
    assert!(out.success(), "{what} failed: {}", out.describe());
    let stdout = out.stdout();
    assert_eq!(
        stdout.lines().last(),
        Some("done"),
        "{what} did not run to its end: {}",
        out.describe()
    );
    assert!(
        !stdout.contains("?!"),
        "{what}: an expected error did not happen: {}",
        out.describe()
    );
}

/// Asserts two transcripts are identical line by line (stdout and exit code);
/// shows the first differing line and both transcripts on failure.
pub fn assert_same_transcript(what: &str, direct: &Out, proxied: &Out) {
    let (d, p) = (direct.stdout(), proxied.stdout());
    if d != p || direct.code() != proxied.code() {
        let dl: Vec<&str> = d.lines().collect();
        let pl: Vec<&str> = p.lines().collect();
        let mut first = String::from("(same lines, exit code differs)");
        for i in 0..dl.len().max(pl.len()) {
            if dl.get(i) != pl.get(i) {
                first = format!(
                    "first difference at line {}:\n  direct:  {:?}\n  proxied: {:?}",
                    i + 1,
                    dl.get(i).map(|s| crate::common::cut(s, 600)),
                    pl.get(i).map(|s| crate::common::cut(s, 600))
                );
                break;
            }
        }
        panic!(
            "{what}: transcripts differ between direct and proxy\n{first}\n\n== direct ==\n{}\n\n== proxied ==\n{}",
            direct.describe(),
            proxied.describe()
        );
    }
}
