//! Starting the real binary; HTTP/1.1 to it with plain sockets comes from `testkit`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use testkit::{TempDir, get, request, wait_for};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_metrics-collector");

/// The binary with a clean environment (no .env of the repository, no database) run in
/// its own scratch directory.
pub(crate) fn command(dir: &Path, env: &[(&str, &str)]) -> Command {
    command_of(BIN, dir, env)
}

/// `program` (the binary, or something that `exec`s it) with the binary's clean
/// environment, in `dir`.
pub(crate) fn command_of(program: &str, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c.env("POSTGRES_HOST", "")
        .env("METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// A running service; killed on drop.
pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) stderr: Arc<Mutex<String>>,
    _dir: Option<TempDir>,
}

impl Service {
    /// Starts the service with these settings on a free loopback port and waits until it
    /// says where it listens.
    pub(crate) fn start(env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("svc");
        let mut s = Self::start_in(&dir.0, env);
        s._dir = Some(dir);
        s
    }

    pub(crate) fn start_in(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(command(dir, env))
    }

    /// Starts `command` (the binary, or something that `exec`s it) and waits until the
    /// service says where it listens.
    pub(crate) fn spawn(command: Command) -> Self {
        let (mut service, line) = Self::spawn_until(command, " listen=");
        let addr = line
            .split_once(" listen=")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        match addr {
            Some(a) => service.addr = a,
            None => panic!("no address in {line:?}"),
        }
        service
    }

    /// Starts `command` and waits for a line of its log containing `needle`; returns the
    /// service (its address unknown yet) and that line.
    pub(crate) fn spawn_until(mut command: Command, needle: &str) -> (Self, String) {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        let needle = needle.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains(&needle) {
                    let _ = tx.send(line.clone());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the service did not start; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let service = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr,
            _dir: None,
        };
        (service, line)
    }

    /// Waits until `/metrics` answers 200 (the first sample is published).
    pub(crate) fn ready(self) -> Self {
        wait_for(Duration::from_secs(10), "the first sample", || {
            (get(self.addr, "/metrics").status == 200).then_some(())
        });
        self
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the process is still running (not exited, and not a zombie waiting to be
    /// reaped: `try_wait` reaps it and says so).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Its threads, as the kernel lists them.
    pub(crate) fn threads(&self) -> Vec<Thread> {
        let dir = format!("/proc/{}/task", self.pid());
        let mut threads: Vec<Thread> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let comm = std::fs::read_to_string(path.join("comm")).ok()?;
                let status = std::fs::read_to_string(path.join("status")).ok()?;
                let switches = status
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                    .trim()
                    .parse()
                    .ok()?;
                Some(Thread {
                    tid: e.file_name().to_string_lossy().parse().ok()?,
                    name: comm.trim().to_owned(),
                    wakeups: switches,
                })
            })
            .collect();
        threads.sort_by_key(|t| t.tid);
        threads
    }

    /// Open file descriptors.
    pub(crate) fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    pub(crate) fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for the process to exit, at most `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for(timeout, "the service to exit", || {
            self.child.try_wait().unwrap()
        })
    }

    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn json(&self, path: &str) -> serde_json::Value {
        let r = get(self.addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One thread of the service: its name and how often it has gone to sleep voluntarily
/// (each wake-up from a wait is one such switch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Thread {
    pub(crate) tid: u32,
    pub(crate) name: String,
    pub(crate) wakeups: u64,
}

/// Raises this test process's open-files limit so it can hold thousands of sockets.
pub(crate) fn allow_fds(wanted: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= wanted,
        "this test needs {wanted} open files; the hard limit is {hard} (raise it: ulimit -Hn)"
    );
    limit.current = Some(wanted.max(limit.current.unwrap_or(0)));
    setrlimit(Resource::Nofile, limit).unwrap();
}

/// The program a test runs: `$env_var` when set (what `cargo xtask test` provides), else
/// `default` on `PATH`. Fails the test, naming `cargo xtask test` and what it installs,
/// when the program cannot run: a missing tool is never a pass.
pub(crate) fn tool(env_var: &str, default: &str, installs: &str) -> std::ffi::OsString {
    let program = std::env::var_os(env_var)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| default.into());
    let runs = Command::new(&program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = runs {
        panic!(
            "{default} not found: run `cargo xtask test` (it installs {installs}); tried {program:?}: {e}"
        );
    }
    program
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh database on the PostgreSQL `cargo xtask test` started: the service's settings
/// for it, a client connected to it, and the runtime that client runs on.
pub(crate) fn database(
    tag: &str,
) -> (
    Vec<(&'static str, String)>,
    tokio_postgres::Client,
    tokio::runtime::Runtime,
) {
    use tokio_postgres::NoTls;
    let info = std::env::var("METRICS_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "METRICS_TEST_POSTGRES is not set: run the tests with `cargo xtask test`, which starts a PostgreSQL"
        )
    });
    let field = |k: &str| {
        info.split_whitespace()
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in METRICS_TEST_POSTGRES={info:?}"))
            .to_owned()
    };
    let name = format!("bin_{tag}_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let (admin, conn) = tokio_postgres::connect(&format!("{info} dbname=postgres"), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin
            .execute(&format!("DROP DATABASE IF EXISTS {name}"), &[])
            .await
            .unwrap();
        admin
            .execute(&format!("CREATE DATABASE {name}"), &[])
            .await
            .unwrap();
        let (client, conn) = tokio_postgres::connect(&format!("{info} dbname={name}"), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    });
    let env = vec![
        ("POSTGRES_HOST", field("host")),
        ("POSTGRES_PORT", field("port")),
        ("POSTGRES_USER", field("user")),
        ("POSTGRES_DB", name),
    ];
    (env, client, rt)
}

/// The Python that can import `module`: `METRICS_TEST_PYTHON` (the venv `cargo xtask test`
/// makes from tests/openapi/requirements.txt), else `python3`. Fails the test, naming
/// `cargo xtask test`, when it cannot.
pub(crate) fn python_with(module: &str) -> String {
    let python = std::env::var("METRICS_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let found = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{module} not found in {python}: run `cargo xtask test` (it makes a venv from tests/openapi/requirements.txt)"
    );
    python
}
