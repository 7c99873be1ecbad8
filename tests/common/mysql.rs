//! MariaDB helpers: the local server (started by tests/setup-mariadb.sh),
//! fresh schemas, and the `mysql` CLI directly and through the proxy.

#![allow(dead_code)]

use super::*;

/// Makes sure the local MariaDB answers (runs tests/setup-mariadb.sh once).
pub fn ensure_mariadb() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let script = workspace_root().join("tests/setup-mariadb.sh");
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

/// A `mysql` client command with no option files read.
pub fn mysql_cmd(port: u16, user: &str, password: &str) -> Command {
    let mut cmd = Command::new("mysql");
    cmd.arg("--no-defaults")
        .arg("--protocol=tcp")
        .arg("--default-character-set=utf8mb4")
        .arg("-h")
        .arg(MARIADB_HOST)
        .arg("-P")
        .arg(port.to_string())
        .arg("-u")
        .arg(user);
    if !password.is_empty() {
        cmd.arg(format!("-p{password}"));
    }
    cmd.env_remove("MYSQL_PWD").env_remove("MYSQL_HOST");
    cmd
}

/// Runs `sql` as the local MariaDB's root and returns its tab-separated
/// output (no column names); panics on an error.
pub fn mariadb_admin(sql: &str) -> String {
    ensure_mariadb();
    let mut cmd = mysql_cmd(MARIADB_PORT, MARIADB_USER, "");
    cmd.arg("-N").arg("-B").arg("-e").arg(sql);
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    out.assert_success(&format!("mariadb: {sql}"));
    out.stdout()
}

/// Drops and creates schema `name`.
pub fn fresh_schema(name: &str) {
    mariadb_admin(&format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
    ));
}

/// Runs the `mysql` CLI directly against the local MariaDB as root.
pub fn mysql_direct(args: &[&str], stdin: Option<&[u8]>) -> Out {
    ensure_mariadb();
    let mut cmd = mysql_cmd(MARIADB_PORT, MARIADB_USER, "");
    cmd.args(args);
    run_with_timeout(cmd, stdin, Duration::from_secs(120))
}

impl ProxyConfig {
    /// The default users with the family "shop": `dev` (an unprotected
    /// target on the local schema `dev`) and `prod` (protected, on `prod`).
    pub fn mariadb_family(dev: &str, prod: &str) -> ProxyConfig {
        let mut config = ProxyConfig::for_mariadb(dev);
        config.families = vec![("shop".into(), vec!["dev".into(), "prod".into()])];
        let mut d = TargetSpec::mariadb(dev, dev, false);
        d.family = Some("shop".into());
        d.environment = "dev".into();
        let mut p = TargetSpec::mariadb(prod, prod, true);
        p.family = Some("shop".into());
        p.environment = "prod".into();
        config.targets = vec![d, p];
        config
    }
}

impl Proxy {
    /// `airlock audit verify` on this proxy's config succeeds.
    pub fn assert_audit_verifies(&self) {
        let mut verify = Command::new(airlock_bin());
        verify
            .args(["audit", "verify", "--config"])
            .arg(&self.config_path)
            .env_remove("AIRLOCK_CONFIG")
            .envs(self.config.env.iter().map(|(k, v)| (k, v)));
        run_with_timeout(verify, None, Duration::from_secs(60)).assert_success("audit verify");
    }

    /// Runs the `mysql` CLI through the proxy's MySQL listener as `user`.
    pub fn mysql(&self, user: &str, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut cmd = mysql_cmd(self.mysql_port, user, &self.config.password(user));
        cmd.args(args);
        run_with_timeout(cmd, stdin, Duration::from_secs(120))
    }
}

/// Runs `mysqldump <extra> <schema>` against `port` as `user` (no option
/// files read; the dump date left out so two dumps compare equal).
pub fn mysqldump(port: u16, user: &str, password: &str, schema: &str, extra: &[&str]) -> Out {
    let mut cmd = Command::new("mysqldump");
    cmd.args(["--no-defaults", "--protocol=tcp", "-h", MARIADB_HOST, "-P"])
        .arg(port.to_string())
        .arg("-u")
        .arg(user)
        .arg("--skip-dump-date")
        .args(extra);
    if !password.is_empty() {
        cmd.arg(format!("-p{password}"));
    }
    cmd.arg(schema);
    run_with_timeout(cmd, None, Duration::from_secs(120))
}
