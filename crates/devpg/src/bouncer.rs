//! A throwaway PgBouncer in transaction mode in front of a [`Cluster`](crate::Cluster):
//! how a fleet reaches one PostgreSQL, for the tests that prove the collector works
//! through it. Run as the `postgres` user when we are root (PgBouncer refuses root), with
//! the open-files limit of the process that starts it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, free_port, io, is_root, unique};

/// A running PgBouncer; stopped and its directory removed on drop.
#[derive(Debug)]
pub struct Bouncer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// Where the `pgbouncer` binary is: `PATH`, or Debian's `/usr/sbin`.
pub fn find_pgbouncer() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

impl Bouncer {
    /// Starts PgBouncer on a free loopback port, every database name routed to the server
    /// on `127.0.0.1:upstream_port`, `pool_mode = transaction`, trusting user `postgres`.
    /// `max_client_conn` clients may connect; `pool_size` server connections per database.
    pub fn start(upstream_port: u16, max_client_conn: u32, pool_size: u32) -> Result<Self, Error> {
        let exe = find_pgbouncer().ok_or_else(|| Error::Failed {
            what: "finding pgbouncer".into(),
            output: "not installed (apt-get install pgbouncer)".into(),
        })?;
        let dir = std::env::temp_dir().join(format!(
            "metrics-collector-pgbouncer-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let port = free_port()?;
        let ini = format!(
            "[databases]\n\
             * = host=127.0.0.1 port={upstream_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             listen_backlog = 4096\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {users}\n\
             pool_mode = transaction\n\
             max_client_conn = {max_client_conn}\n\
             default_pool_size = {pool_size}\n\
             max_db_connections = {pool_size}\n\
             logfile = {log}\n\
             pidfile = {pid}\n\
             admin_users = postgres\n\
             stats_users = postgres\n\
             log_connections = 0\n\
             log_disconnections = 0\n\
             server_reset_query =\n",
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
            pid = dir.join("pgbouncer.pid").display(),
        );
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))
        };
        write("pgbouncer.ini", &ini)?;
        write("users.txt", "\"postgres\" \"\"\n")?;
        let mut command = if is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(io("chown"))?;
            if !chown.success() {
                return Err(Error::Failed {
                    what: "chown".into(),
                    output: dir.display().to_string(),
                });
            }
            // Its own `-u`, not runuser: runuser's PAM session would reset the open-files
            // limit to 1024, which a fleet's client connections exceed.
            let mut c = Command::new(&exe);
            c.args(["-u", "postgres"]);
            c
        } else {
            Command::new(&exe)
        };
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().map_err(io("starting pgbouncer"))?;
        let mut bouncer = Self {
            dir,
            port,
            child: Some(child),
        };
        bouncer.wait_listening()?;
        Ok(bouncer)
    }

    fn wait_listening(&mut self) -> Result<(), Error> {
        let deadline = Duration::from_secs(15);
        let started = Instant::now();
        while started.elapsed() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::Failed {
                    what: format!("pgbouncer ({status})"),
                    output: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Failed {
            what: format!("pgbouncer listening within {deadline:?}"),
            output: self.log(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// libpq-style connection settings for the pooler.
    pub fn conninfo(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres", self.port)
    }

    /// What PgBouncer logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PgBouncer's pid, from its pidfile.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pgbouncer.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
