//! Child processes: captured output, background commands, signals, polling.

#![allow(dead_code)]

use super::*;

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

/// Runs the Python snippet `script` with `args` (as `sys.argv[1:]`); two
/// minutes at most.
pub fn python(script: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    run_with_timeout(cmd, None, Duration::from_secs(120))
}
