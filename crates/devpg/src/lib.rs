//! A throwaway PostgreSQL cluster: `initdb` into a scratch directory, `postgres` on a free
//! loopback port, stopped and deleted on drop. For `cargo xtask dev`, `cargo xtask test`
//! and the tests that must stop and restart a server of their own.
//!
//! Owns: finding the server binaries (`METRICS_PG_BIN`, `pg_config --bindir`,
//! `/usr/lib/postgresql/<newest>/bin`, `PATH`), running them as the `postgres` user when
//! we are root (`initdb` refuses root), and waiting (bounded) until the server accepts.
//! Does not own: installing PostgreSQL (xtask does that) or any schema.

mod bouncer;

pub use bouncer::{Bouncer, find_pgbouncer};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no PostgreSQL server binaries found (install them: apt-get install postgresql)")]
    NotInstalled,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {output}")]
    Failed { what: String, output: String },
    #[error("PostgreSQL did not accept connections within {0:?}; log: {1}")]
    NotReady(Duration, String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The directory holding `initdb`, `postgres` and `pg_ctl`.
pub fn find_bindir() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("METRICS_PG_BIN")
        .map(PathBuf::from)
        .filter(|d| has(d))
    {
        return Some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&dir) {
            return Some(dir);
        }
    }
    // Debian keeps server binaries off PATH, one folder per major version: take the newest.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| has(d))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A running throwaway cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    server: Option<Child>,
    options: Options,
}

/// How a cluster differs from the default one: where it lives, extra server settings,
/// `pg_hba.conf` lines, and files put into its data directory (certificates).
#[derive(Clone, Debug, Default)]
pub struct Options {
    parent: Option<PathBuf>,
    settings: Vec<(String, String)>,
    hba: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
}

impl Options {
    /// The cluster's directory goes under `dir` (a small tmpfs, say) instead of the temp
    /// directory.
    pub fn under(mut self, dir: impl Into<PathBuf>) -> Self {
        self.parent = Some(dir.into());
        self
    }

    /// A `-c name=value` server setting (after the defaults, so it wins).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `pg_hba.conf` lines that replace the default (trust for everyone).
    pub fn hba(mut self, line: &str) -> Self {
        self.hba.push(line.to_owned());
        self
    }

    /// A file written into the data directory, readable by the server only (a key).
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.to_owned(), contents.into()));
        self
    }
}

/// Free loopback port (the kernel's choice; released for the server to take).
fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

impl Cluster {
    /// `initdb` a new cluster under the system's temp directory and start it.
    pub fn start(tag: &str) -> Result<Self, Error> {
        Self::start_with(tag, Options::default())
    }

    /// [`start`](Self::start), with `options`.
    pub fn start_with(tag: &str, options: Options) -> Result<Self, Error> {
        let bindir = find_bindir().ok_or(Error::NotInstalled)?;
        let parent = options.parent.clone().unwrap_or_else(std::env::temp_dir);
        let dir = parent.join(format!(
            "metrics-collector-pg-{tag}-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let as_postgres = is_root();
        let mut cluster = Self {
            bindir,
            dir,
            port: 0,
            as_postgres,
            server: None,
            options,
        };
        if as_postgres {
            cluster.run(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&cluster.dir),
            )?;
        }
        let data = cluster.data();
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-locale",
            "-E",
            "UTF8",
        ]);
        cluster.run("initdb", &mut initdb)?;
        cluster.write_files()?;
        cluster.port = free_port()?;
        cluster.launch()?;
        Ok(cluster)
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes the options' files and `pg_hba.conf` lines into the new data directory.
    fn write_files(&self) -> Result<(), Error> {
        let data = self.data();
        let mut files = self.options.files.clone();
        if !self.options.hba.is_empty() {
            let mut hba = self.options.hba.join("\n");
            hba.push('\n');
            files.push(("pg_hba.conf".to_owned(), hba.into_bytes()));
        }
        for (name, contents) in &files {
            let path = data.join(name);
            std::fs::write(&path, contents).map_err(io(format!("writing {}", path.display())))?;
            // The server refuses a key readable by others; as root, the file is chowned.
            self.run("chmod", Command::new("chmod").arg("0600").arg(&path))?;
            if self.as_postgres {
                self.run(
                    "chown",
                    Command::new("chown").arg("postgres:postgres").arg(&path),
                )?;
            }
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, what: &str, command: &mut Command) -> Result<(), Error> {
        let out = command.output().map_err(io(format!("running {what}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                what: what.to_owned(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }

    /// Starts the server on its port and waits until it accepts connections.
    fn launch(&mut self) -> Result<(), Error> {
        // Appended to, so a restart keeps what the server said before (a crash, say).
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .map_err(io("creating server.log"))?;
        let log2 = log.try_clone().map_err(io("creating server.log"))?;
        let mut postgres = self.command("postgres");
        postgres
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            // Throwaway data: durability buys nothing here.
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
            ])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
        for (name, value) in &self.options.settings {
            postgres.arg("-c").arg(format!("{name}={value}"));
        }
        postgres.stdin(Stdio::null()).stdout(log).stderr(log2);
        self.server = Some(postgres.spawn().map_err(io("starting postgres"))?);
        let deadline = Duration::from_secs(30);
        let started = Instant::now();
        while started.elapsed() < deadline {
            let ready = Command::new(self.bindir.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if let Some(child) = self.server.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(Error::NotReady(deadline, log))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// libpq-style connection settings (`host=127.0.0.1 port=… user=postgres`).
    pub fn conninfo(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping its data.
    pub fn stop(&mut self) -> Result<(), Error> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "fast", "-w", "-t", "20"]);
        let result = self.run("pg_ctl stop", &mut pg_ctl);
        if result.is_ok()
            && let Some(mut child) = self.server.take()
        {
            let _ = child.wait();
        }
        result
    }

    /// Starts a stopped server again on the same port, with the same data.
    pub fn restart(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.launch()
    }

    /// The postmaster's pid, from `postmaster.pid` (the child we spawned may be `runuser`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        // The file outlives a crashed server, and its pid may be another process's now.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let data = self.data();
        let data = data.to_string_lossy();
        (cmdline.windows(data.len()).any(|w| w == data.as_bytes())).then_some(pid)
    }

    /// The postmaster and every process it started (backends, checkpointer, walwriter…).
    pub fn pids(&self) -> Vec<u32> {
        let Some(postmaster) = self.postmaster_pid() else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            // The parent is the field after the parenthesised command name.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, `"KILL"`…) to every process of the server at
    /// once: SIGSTOP is a server that hangs, SIGKILL one that crashes.
    pub fn signal_all(&self, signal: &str) -> Result<(), Error> {
        let mut pids = self.pids();
        // As root the server runs under `runuser`, which stops itself when its child
        // stops (as su does) and would then never reap it: it gets the signal too.
        if self.as_postgres
            && !pids.is_empty()
            && let Some(child) = &self.server
        {
            pids.push(child.id());
        }
        if pids.is_empty() {
            return Err(Error::Failed {
                what: format!("kill -{signal}"),
                output: "no server process".to_owned(),
            });
        }
        // One at a time: a backend may end between the listing and the signal, and that
        // must not keep the signal from the others. Only the postmaster must get it.
        for (i, pid) in pids.iter().enumerate() {
            let mut kill = Command::new("kill");
            kill.arg(format!("-{signal}")).arg(pid.to_string());
            let sent = self.run(&format!("kill -{signal} {pid}"), &mut kill);
            if i == 0 {
                sent?;
            }
        }
        Ok(())
    }

    /// Kills every server process with SIGKILL (a crash: no shutdown checkpoint, crash
    /// recovery on the next start) and waits until they are gone.
    pub fn crash(&mut self) -> Result<(), Error> {
        let pids = self.pids();
        self.signal_all("KILL")?;
        if let Some(mut child) = self.server.take() {
            let _ = child.wait();
        }
        let started = Instant::now();
        while pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}/stat")).exists() && !is_zombie(*p))
        {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(Error::Failed {
                    what: "kill -KILL".to_owned(),
                    output: "server processes still there after 10 s".to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether the postmaster is alive (it may exit by itself, on a full disk say).
    pub fn is_running(&mut self) -> bool {
        self.server
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.server.is_some() {
            // A test may end (or panic) with the server stopped by SIGSTOP: resume it, or
            // it could never shut down.
            let _ = self.signal_all("CONT");
            if self.stop().is_err() {
                let _ = self.signal_all("KILL");
            }
            if let Some(mut child) = self.server.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
