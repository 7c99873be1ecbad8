//! The local PostgreSQL: admin queries, fresh databases and stores, psql/pgbench connections.

#![allow(dead_code)]

use super::*;

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
