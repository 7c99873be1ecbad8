//! A running `airlock serve` on free ports, killed on drop (stderr printed when the test panicked).

#![allow(dead_code)]

use super::*;

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
    /// The MySQL listener's port (0 without MySQL targets).
    pub mysql_port: u16,
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

    fn try_start(mut config: ProxyConfig) -> Result<Proxy, (String, bool)> {
        let dir = tempfile::Builder::new()
            .prefix("airlock-e2e-")
            .tempdir()
            .expect("tempdir");
        let pg_port = free_port();
        let mut http_port = free_port();
        while http_port == pg_port {
            http_port = free_port();
        }
        if config.has_mysql() {
            config.mysql_port = free_port();
        }
        let mysql_port = config.mysql_port;
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
            mysql_port,
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
            if accepts(pg_port) && accepts(http_port) && (mysql_port == 0 || accepts(mysql_port)) {
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
