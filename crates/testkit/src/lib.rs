//! What the workspace's tests share, so each test crate does not grow its own copy:
//! HTTP/1.1 spoken over plain sockets (blocking, and async for tests that serve in their
//! own runtime), waiting on a condition with a deadline, scratch directories, and where
//! the test PostgreSQL is.
//!
//! A development crate: only ever a `[dev-dependencies]` entry (the tidy tests check it).
//! Its functions panic with a message on failure: they are test steps.

// Test support: a failed step is a failed test, with its reason.
#![allow(clippy::unwrap_used)]

pub mod fuzz;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, failing the test with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("mc-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One HTTP response, as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, &get_request(path))
}

/// Sends raw request bytes on a fresh connection and reads the whole answer (the request
/// must ask to close the connection).
pub fn request(addr: SocketAddr, raw: &str) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    parse_response(&bytes)
}

/// `GET path` on a fresh connection, for tests whose server runs in the same runtime.
pub async fn get_async(addr: SocketAddr, path: &str) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(get_request(path).as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut bytes))
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no complete answer within 10 s"))
        .unwrap();
    parse_response(&bytes)
}

/// Splits a whole HTTP/1.1 response into status, headers and body.
pub fn parse_response(bytes: &[u8]) -> Response {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
    let head = std::str::from_utf8(&bytes[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}

/// The test PostgreSQL that `cargo xtask test` started: its libpq connection string
/// (`host=… port=… user=…`), from `METRICS_TEST_POSTGRES`.
pub fn postgres_conninfo() -> String {
    std::env::var("METRICS_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("METRICS_TEST_POSTGRES is not set: run the tests with `cargo xtask test`, which starts a PostgreSQL for them")
    })
}

/// One `key=value` of [`postgres_conninfo`].
pub fn postgres_setting(key: &str) -> Option<String> {
    postgres_conninfo()
        .split_whitespace()
        .find_map(|p| p.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

/// A FUSE mount (bindfs) that can be made to hang for real: stop its daemon and every
/// `statvfs` on it blocks, as on a dead network mount. On drop the daemon is resumed and
/// the mount removed, whatever happened. Needs `bindfs` and `fusermount` (`cargo xtask
/// test` installs them) and the right to mount FUSE filesystems.
#[derive(Debug)]
pub struct FuseMount {
    dir: TempDir,
    daemon: u32,
}

impl FuseMount {
    pub fn new() -> Self {
        let dir = TempDir::new("fuse");
        std::fs::create_dir_all(dir.0.join("src")).unwrap();
        std::fs::create_dir_all(dir.0.join("mnt")).unwrap();
        let status = std::process::Command::new("bindfs")
            .arg(dir.0.join("src"))
            .arg(dir.0.join("mnt"))
            .status()
            .expect("bindfs is needed for this test: `cargo xtask test` installs it (apt-get install bindfs)");
        assert!(
            status.success(),
            "bindfs could not mount (is /dev/fuse there?)"
        );
        let mnt = dir.0.join("mnt").to_string_lossy().into_owned();
        let daemon = wait_for(Duration::from_secs(5), "the bindfs daemon", || {
            let out = std::process::Command::new("pgrep")
                .args(["-f", &format!("bindfs .* {mnt}$")])
                .output()
                .ok()?;
            String::from_utf8(out.stdout)
                .ok()?
                .lines()
                .next()?
                .trim()
                .parse::<u32>()
                .ok()
        });
        Self { dir, daemon }
    }

    /// The mount point.
    pub fn path(&self) -> PathBuf {
        self.dir.0.join("mnt")
    }

    /// Stops the daemon: from now on, reads of the mount hang.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Resumes the daemon: the hung reads return.
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.daemon.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.daemon);
    }
}

impl Default for FuseMount {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-CONT")
            .arg(self.daemon.to_string())
            .status();
        let _ = std::process::Command::new("fusermount")
            .arg("-u")
            .arg(self.dir.0.join("mnt"))
            .status();
    }
}

/// The configuration of every property test in the workspace: a fixed seed, so a run is
/// repeatable and a failure is found again by the next run (`PROPTEST_RNG_SEED` picks
/// other cases), and no regression files: a failure found becomes a named unit test.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, RngSeed};
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}
