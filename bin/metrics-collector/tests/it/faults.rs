//! The database faults that really happen, against a real PostgreSQL of each test's own:
//! a crash in the middle of a batch, a server that hangs, a network that silently drops
//! every packet, lost COMMIT replies, a full disk, and a server restarted over and over.
//!
//! Each scenario checks what the service promises: no window lost or written twice (rows
//! against the persist grid), sampling on time throughout (sample age never above 2
//! intervals), `/health` saying what is wrong while it is wrong, and `connected` again
//! within 10 s of the fault's end. Each prints a row for docs/RELIABILITY.md.
//!
//! Faults last `METRICS_FAULT_SECS` (8 s by default, so CI stays short; the table in
//! docs/RELIABILITY.md is from 60 s) and `METRICS_FAULT_CUTS` replies are lost (20; 100
//! for the table). Needs root: network namespaces, iptables and tmpfs mounts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::Signal;
use serde_json::Value;

use crate::harness::{Service, TempDir, command_of, wait_for};
use crate::pgproxy::{Mode, PgProxy};

fn fault_length() -> Duration {
    let secs = std::env::var("METRICS_FAULT_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(8.0);
    Duration::from_secs_f64(secs)
}

fn cuts() -> u32 {
    std::env::var("METRICS_FAULT_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// Back to `connected` within this long after a fault ends.
const RECOVERY: Duration = Duration::from_secs(10);

/// The live and persist intervals of a scenario.
#[derive(Clone, Copy)]
struct Intervals {
    live: f64,
    persist: f64,
}

const STEADY: Intervals = Intervals {
    live: 1.0,
    persist: 2.0,
};

/// One `GET /health` that never panics: `None` when there is no answer.
fn health(addr: SocketAddr) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).ok()?;
    let r = testkit::parse_response(&bytes);
    Some((r.status, serde_json::from_slice(&r.body).ok()?))
}

/// Polls `/health` every 100 ms for as long as it lives: the worst sample age, every
/// status code, and the latest answer.
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Seen {
    polls: u64,
    unanswered: u64,
    not_ok: Vec<u16>,
    max_age: f64,
    max_pending_rows: u64,
    /// Database errors `/health` showed, each once, in order.
    errors: Vec<String>,
    latest: Option<Value>,
}

impl Watcher {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let answer = health(addr);
                let mut seen = s.lock().unwrap();
                seen.polls += 1;
                match answer {
                    Some((code, h)) => {
                        if code != 200 {
                            seen.not_ok.push(code);
                        }
                        if let Some(age) = h["last_sample_age_seconds"].as_f64() {
                            seen.max_age = seen.max_age.max(age);
                        }
                        let pending = h["database"]["pending_rows"].as_u64().unwrap_or(0);
                        seen.max_pending_rows = seen.max_pending_rows.max(pending);
                        if let Some(e) = h["database"]["error"].as_str()
                            && !seen.errors.iter().any(|s| s == e)
                        {
                            seen.errors.push(e.to_owned());
                        }
                        seen.latest = Some(h);
                    }
                    None => seen.unanswered += 1,
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn database(&self) -> Value {
        self.seen
            .lock()
            .unwrap()
            .latest
            .as_ref()
            .map_or(Value::Null, |h| h["database"].clone())
    }

    /// Waits (at most `timeout`) until the latest `/health` has a database part that
    /// `accept`s.
    fn wait_database(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(timeout, what, || {
            let db = self.database();
            accept(&db).then_some(db)
        })
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs `sql` on a fresh connection (the server may have restarted since the last one).
pub(crate) fn query(conninfo: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    try_query(conninfo, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub(crate) fn try_query(conninfo: &str, sql: &str) -> Result<Vec<tokio_postgres::Row>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to {conninfo}: {e}"))?;
        let driver = tokio::spawn(conn);
        let rows = client.query(sql, &[]).await;
        drop(client);
        let _ = driver.await;
        rows.map_err(|e| format!("{e:?}"))
    })
}

/// What a table holds for the scenario's host, against the persist grid.
#[derive(Debug)]
struct Count {
    rows: i64,
    distinct: i64,
    /// Grid lines between the first and the last on-grid row with no row.
    missing: i64,
    /// Rows off the grid: the window shutdown closed early (at most one).
    off_grid: i64,
    first: f64,
    last: f64,
}

fn count(conninfo: &str, table: &str, host: &str, persist: f64) -> Count {
    let step_ms = (persist * 1000.0).round() as i64;
    let sql = format!(
        "WITH t AS (SELECT round(extract(epoch FROM timestamp) * 1000)::int8 AS ms
                      FROM {table} WHERE host = '{host}')
         SELECT count(*), count(DISTINCT ms),
                count(*) FILTER (WHERE ms % {step_ms} <> 0),
                coalesce(min(ms) FILTER (WHERE ms % {step_ms} = 0), 0),
                coalesce(max(ms) FILTER (WHERE ms % {step_ms} = 0), 0),
                count(DISTINCT ms) FILTER (WHERE ms % {step_ms} = 0)
           FROM t"
    );
    let row = &query(conninfo, &sql)[0];
    let (first, last, on_grid): (i64, i64, i64) = (row.get(3), row.get(4), row.get(5));
    let expected = if on_grid == 0 {
        0
    } else {
        (last - first) / step_ms + 1
    };
    Count {
        rows: row.get(0),
        distinct: row.get(1),
        missing: expected - on_grid,
        off_grid: row.get(2),
        first: first as f64 / 1000.0,
        last: last as f64 / 1000.0,
    }
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A fault scenario from start to verdict.
struct Scenario {
    name: &'static str,
    intervals: Intervals,
    host: String,
    /// How the test reaches the database to count (not through any proxy).
    conninfo: String,
    svc: Service,
    watcher: Option<Watcher>,
    started: SystemTime,
    fault_began: Option<Instant>,
    /// The fault's size, for the table: its length, or how many replies were lost.
    fault: String,
    during: Option<Value>,
    /// From the fault's start to `/health` saying so.
    noticed_after: Option<Duration>,
    recovered_after: Option<Duration>,
    _dir: Option<TempDir>,
}

impl Scenario {
    /// The service started against `db_host:db_port`, writing as a host of its own, and
    /// the first window written.
    fn start(
        name: &'static str,
        intervals: Intervals,
        cluster: &devpg::Cluster,
        db: (&str, u16),
        launch: impl FnOnce(Vec<(String, String)>) -> (Service, Option<TempDir>),
    ) -> Self {
        let host = format!(
            "fault-{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                .to_lowercase()
        );
        let env = vec![
            ("POSTGRES_HOST".to_owned(), db.0.to_owned()),
            ("POSTGRES_PORT".to_owned(), db.1.to_string()),
            ("POSTGRES_USER".to_owned(), "postgres".to_owned()),
            ("POSTGRES_DB".to_owned(), "postgres".to_owned()),
            ("METRICS_HOST".to_owned(), host.clone()),
            (
                "METRICS_INTERVAL_LIVE".to_owned(),
                intervals.live.to_string(),
            ),
            (
                "METRICS_INTERVAL_PERSIST".to_owned(),
                intervals.persist.to_string(),
            ),
        ];
        let started = SystemTime::now();
        let (svc, dir) = launch(env);
        let svc = svc.ready();
        let watcher = Watcher::start(svc.addr);
        let conninfo = format!("{} dbname=postgres", cluster.conninfo());
        let s = Self {
            name,
            intervals,
            host,
            conninfo,
            svc,
            watcher: Some(watcher),
            started,
            fault_began: None,
            fault: format!("{:.0} s", fault_length().as_secs_f64()),
            during: None,
            noticed_after: None,
            recovered_after: None,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.cpu_rows_over(1).is_none() {
            assert!(
                Instant::now() < deadline,
                "{name}: no two windows written within 30 s; /health database: {}; log:\n{}",
                s.watcher().database(),
                s.svc.log()
            );
        }
        s
    }

    /// `Some` once more than `n` cpu rows are there; else a pause, so polling stays light
    /// (each look is a new connection).
    fn cpu_rows_over(&self, n: i64) -> Option<()> {
        let over = self.cpu_rows() > n;
        if !over {
            std::thread::sleep(Duration::from_millis(200));
        }
        over.then_some(())
    }

    fn cpu_rows(&self) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM metrics_cpu WHERE host = '{}'",
            self.host
        );
        // Before the first migration the table is not there yet.
        try_query(&self.conninfo, &sql).map_or(0, |rows| rows[0].get(0))
    }

    /// The service on loopback, as a plain process.
    fn local(env: Vec<(String, String)>) -> (Service, Option<TempDir>) {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        (Service::start(&env), None)
    }

    fn watcher(&self) -> &Watcher {
        self.watcher.as_ref().unwrap()
    }

    fn fault_begins(&mut self) {
        self.fault_began = Some(Instant::now());
        // Only what `/health` says from now on describes the fault.
        self.watcher().seen.lock().unwrap().errors.clear();
    }

    /// During the fault: `/health` says the database is unreachable, with an error, while
    /// rows wait in memory. Must be seen before `by`.
    fn expect_unreachable(&mut self, by: Instant) {
        let timeout = by.saturating_duration_since(Instant::now());
        let db = self.watcher().wait_database(
            timeout,
            "/health saying unreachable during the fault",
            |db| {
                db["state"] == "unreachable"
                    && db["error"].as_str().is_some_and(|e| !e.is_empty())
                    && db["pending_rows"].as_u64() > Some(0)
            },
        );
        self.during = Some(db);
        self.noticed_after = self.fault_began.map(|t| t.elapsed());
    }

    /// The fault is over: `connected` with nothing waiting, within [`RECOVERY`].
    fn fault_ends(&mut self) {
        let ended = Instant::now();
        self.watcher()
            .wait_database(RECOVERY, "connected again with nothing waiting", |db| {
                db["state"] == "connected" && db["pending_rows"].as_u64() == Some(0)
            });
        self.recovered_after = Some(ended.elapsed());
    }

    /// Stops the service (SIGTERM flushes the open window), counts, asserts and reports.
    fn verdict(mut self, notes: &str) {
        // One more window after recovery, so the last grid line is after the fault.
        let written = self.cpu_rows();
        wait_for(Duration::from_secs(10), "a window after recovery", || {
            self.cpu_rows_over(written)
        });
        let seen = self.watcher.take().unwrap().finish();
        let last_health = seen.latest.clone().unwrap_or(Value::Null);
        self.svc.signal(Signal::TERM);
        let status = self.svc.wait_exit(Duration::from_secs(15));
        let stopped = SystemTime::now();
        let log = self.svc.log();
        assert_eq!(status.code(), Some(0), "{}: exit; log:\n{log}", self.name);
        let p = self.intervals.persist;
        let mut counts = Vec::new();
        for table in ["metrics_cpu", "metrics_ram", "metrics_disk"] {
            let c = count(&self.conninfo, table, &self.host, p);
            assert!(
                c.rows > 0,
                "{}: {table} has no rows; log:\n{log}",
                self.name
            );
            assert_eq!(
                c.rows, c.distinct,
                "{}: {table} has duplicates: {c:?}",
                self.name
            );
            assert_eq!(
                c.missing, 0,
                "{}: {table} lost windows: {c:?}; log:\n{log}",
                self.name
            );
            assert!(c.off_grid <= 1, "{}: {table}: {c:?}", self.name);
            // The grid is whole from the first window after start to the last before stop.
            assert!(
                c.first <= epoch(self.started) + 2.0 * p + 1.0,
                "{}: {table}: the first windows are missing: {c:?}, started {}",
                self.name,
                epoch(self.started)
            );
            assert!(
                c.last >= epoch(stopped) - 2.0 * p - 1.0,
                "{}: {table}: the last windows are missing: {c:?}, stopped {}",
                self.name,
                epoch(stopped)
            );
            counts.push(c);
        }
        assert_eq!(
            last_health["database"]["dropped_windows"], 0,
            "{}: {last_health}",
            self.name
        );
        let live = self.intervals.live;
        assert!(
            seen.max_age <= 2.0 * live,
            "{}: a sample {:.2} s old (interval {live} s): sampling stalled",
            self.name,
            seen.max_age
        );
        assert!(
            seen.not_ok.is_empty() && seen.unanswered == 0,
            "{}: /health answered {:?} and {} times not at all",
            self.name,
            seen.not_ok,
            seen.unanswered
        );
        let kept_once = log.matches("kept once").count();
        let error = match &self.during {
            Some(db) => db["error"].as_str().unwrap_or("-").to_owned(),
            None => seen
                .errors
                .first()
                .cloned()
                .unwrap_or_else(|| "-".to_owned()),
        }
        .replace('|', "/");
        // The table row, for docs/RELIABILITY.md (shown with --nocapture).
        eprintln!(
            "FAULT | {} | {} | {} | 0 | 0 | {} | {:.2} s ({:.2}×) | {} | {} rows waiting, \"{}\" | {:.1} s | {} |",
            self.name,
            self.fault,
            counts[0].rows,
            kept_once,
            seen.max_age,
            seen.max_age / live,
            self.noticed_after
                .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            seen.max_pending_rows,
            error,
            self.recovered_after.map_or(f64::NAN, |d| d.as_secs_f64()),
            notes,
        );
    }
}

fn cluster(tag: &str, options: devpg::Options) -> devpg::Cluster {
    // A commit is acknowledged only once its WAL is written, as on a real server: with
    // devpg's `synchronous_commit=off`, a crash would lose commits the collector was told
    // had succeeded, and no client could help that. (`fsync=off` stays: the OS outlives
    // a server process, and no scenario here loses power.)
    let options = options.setting("synchronous_commit", "on");
    devpg::Cluster::start_with(tag, options)
        .unwrap_or_else(|e| panic!("a PostgreSQL for this test: {e}"))
}

fn loopback(cluster: &devpg::Cluster) -> (&'static str, u16) {
    ("127.0.0.1", cluster.port())
}

#[test]
fn postgres_killed_in_the_middle_of_a_batch() {
    let mut pg = cluster("fault-kill", devpg::Options::default());
    let mut s = Scenario::start(
        "kill -9 mid-batch",
        STEADY,
        &pg,
        loopback(&pg),
        Scenario::local,
    );
    // Hold a lock the batch needs, so it is certainly in flight when the server dies.
    let conninfo = s.conninfo.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let locker = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("BEGIN; LOCK TABLE metrics_disk IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        client
    });
    wait_for(
        Duration::from_secs(10),
        "the batch waiting on the lock",
        || {
            let rows = rt
                .block_on(locker.query(
                    // By the lock it waits for, not by pg_stat_activity's query and
                    // state: a statement that waits while it is parsed is shown there
                    // as the one before it, idle.
                    "SELECT count(*) FROM pg_stat_activity a
                       JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
                      WHERE a.application_name = 'metrics-collector'
                        AND l.relation = 'metrics_disk'::regclass",
                    &[],
                ))
                .unwrap();
            (rows[0].get::<_, i64>(0) > 0).then_some(())
        },
    );
    s.fault_begins();
    pg.crash().unwrap();
    drop(locker);
    // A crashed server is restarted at once (systemd's Restart=, a supervisor): the
    // fault is the crash, not a long absence, which the other scenarios cover.
    let down = fault_length().min(Duration::from_secs(5));
    s.fault = format!("down {:.0} s", down.as_secs_f64());
    let by = Instant::now() + down;
    s.expect_unreachable(by);
    std::thread::sleep(by.saturating_duration_since(Instant::now()));
    pg.restart().unwrap();
    s.fault_ends();
    assert!(
        pg.log().contains("database system was interrupted")
            || pg.log().contains("not properly shut down"),
        "the server went through crash recovery:\n{}",
        pg.log()
    );
    s.verdict("batch held on a lock, then every server process SIGKILLed; crash recovery");
}

#[test]
fn postgres_hung_then_continued() {
    let pg = cluster("fault-hang", devpg::Options::default());
    let mut s = Scenario::start("SIGSTOP", STEADY, &pg, loopback(&pg), Scenario::local);
    s.fault_begins();
    let resumed = Resume(&pg);
    pg.signal_all("STOP").unwrap();
    let ends = Instant::now() + fault_length();
    s.expect_unreachable(ends);
    std::thread::sleep(ends.saturating_duration_since(Instant::now()));
    drop(resumed);
    s.fault_ends();
    s.verdict("every server process stopped, then continued");
}

/// Continues a stopped server however the test ends.
struct Resume<'a>(&'a devpg::Cluster);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let _ = self.0.signal_all("CONT");
    }
}

/// A network namespace joined to this one by a veth pair: the collector runs inside, the
/// database listens on this side. Removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    inner_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) is needed for this test");
    assert!(
        out.status.success(),
        "ip {}: {} (this test needs root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn new() -> Self {
        // Unique per test process; one namespace per process is all this file makes.
        let n = std::process::id() % 250 + 1;
        let name = format!("mcfault{}", std::process::id());
        let (host_if, inner_if) = (format!("mcf{n}h"), format!("mcf{n}c"));
        let (host_ip, inner_ip) = (format!("10.231.{n}.1"), format!("10.231.{n}.2"));
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self {
            name,
            host_if,
            host_ip,
            inner_ip,
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &inner_if,
        ]);
        ip(&["link", "set", &inner_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ns.exec_ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.inner_ip),
            "dev",
            &inner_if,
        ]);
        ns.exec_ip(&["link", "set", &inner_if, "up"]);
        ns.exec_ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn exec_ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend(args);
        ip(&all);
    }

    /// Drops (`-I`) or stops dropping (`-D`) every packet to and from `port` inside the
    /// namespace: no RST, no FIN, just silence.
    fn drop_port(&self, action: &str, port: u16) {
        let port = port.to_string();
        for rule in [
            ["OUTPUT", "--dport", port.as_str()],
            ["INPUT", "--sport", port.as_str()],
        ] {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.name, "iptables", action, rule[0]])
                .args(["-p", "tcp", rule[1], rule[2], "-j", "DROP"])
                .output()
                .expect("iptables is needed for this test (apt-get install iptables)");
            assert!(
                out.status.success(),
                "iptables {action}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
fn the_network_to_postgres_drops_every_packet() {
    let ns = Netns::new();
    let pg = cluster(
        "fault-net",
        devpg::Options::default()
            .setting("listen_addresses", &format!("127.0.0.1,{}", ns.host_ip))
            .hba("local all all trust")
            .hba("host all all 127.0.0.1/32 trust")
            .hba(&format!("host all all {}/32 trust", ns.inner_ip)),
    );
    let (ns_name, inner_ip) = (ns.name.clone(), ns.inner_ip.clone());
    let launch = move |env: Vec<(String, String)>| {
        let dir = TempDir::new("netns");
        let listen = format!("{inner_ip}:0");
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("METRICS_LISTEN", &listen));
        let mut command = command_of("ip", &dir.0, &env);
        command.args(["netns", "exec", &ns_name, crate::harness::BIN]);
        (Service::spawn(command), Some(dir))
    };
    let host_ip = ns.host_ip.clone();
    let mut s = Scenario::start(
        "half-open network",
        STEADY,
        &pg,
        (&host_ip, pg.port()),
        launch,
    );
    s.fault_begins();
    ns.drop_port("-I", pg.port());
    let ends = Instant::now() + fault_length();
    s.expect_unreachable(ends);
    std::thread::sleep(ends.saturating_duration_since(Instant::now()));
    ns.drop_port("-D", pg.port());
    s.fault_ends();
    s.verdict("collector in its own network namespace; iptables DROP both ways");
}

#[test]
fn commit_replies_lost() {
    let pg = cluster("fault-commit", devpg::Options::default());
    let times = cuts();
    let proxy = PgProxy::start(
        SocketAddr::from(([127, 0, 0, 1], pg.port())),
        Mode::LoseCommitReplies { times },
    );
    let fast = Intervals {
        live: 0.5,
        persist: 0.5,
    };
    let mut s = Scenario::start(
        "COMMIT reply lost",
        fast,
        &pg,
        ("127.0.0.1", proxy.addr.port()),
        Scenario::local,
    );
    s.fault_begins();
    s.fault = format!("{times} replies");
    // Each lost reply costs a window; allow two persist intervals and a back-off each.
    let bound = Duration::from_secs_f64(f64::from(times) * (2.0 * fast.persist + 1.0) + 10.0);
    wait_for(bound, "every reply lost", || {
        (proxy.lost() >= times).then_some(())
    });
    s.fault_ends();
    // The log is read from the service's stderr by a thread: wait for it, not assume it.
    wait_for(
        Duration::from_secs(10),
        "each lost reply's batch retried and its rows found already there",
        || (s.svc.log().matches("kept once").count() as u32 >= times).then_some(()),
    );
    s.verdict(&format!(
        "{times} replies dropped after the server committed, connection closed"
    ));
}

/// A size-limited tmpfs mounted for the test; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(size: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("metrics-tmpfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir)
    }

    /// Writes zeros into `filler` until the filesystem is full.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn postgres_disk_full_then_space_freed() {
    let disk = Tmpfs::new("96m");
    let mut pg = cluster("fault-disk", devpg::Options::default().under(&disk.0));
    let mut s = Scenario::start("disk full", STEADY, &pg, loopback(&pg), Scenario::local);
    let filler = disk.fill();
    s.fault_begins();
    // PostgreSQL writes into WAL it allocated already; a switch to a new segment needs
    // 16 MiB it cannot have, as a busy server soon would.
    let _ = std::panic::catch_unwind(|| query(&s.conninfo, "SELECT pg_switch_wal()"));
    let ends = Instant::now() + fault_length();
    s.expect_unreachable(ends);
    std::thread::sleep(ends.saturating_duration_since(Instant::now()));
    std::fs::remove_file(&filler).unwrap();
    // A server that stopped on the full disk is started again, as systemd would.
    let restarted = !pg.is_running();
    if restarted {
        pg.restart().unwrap();
    }
    s.fault_ends();
    let log = pg.log();
    assert!(
        log.contains("No space left on device"),
        "the server hit the full disk:\n{log}"
    );
    s.verdict(if restarted {
        "WAL could not grow: the server stopped; restarted once space was freed"
    } else {
        "WAL could not grow; writes failed until space was freed"
    });
}

#[test]
fn postgres_restarted_every_few_seconds() {
    let mut pg = cluster("fault-restarts", devpg::Options::default());
    let mut s = Scenario::start("restart loop", STEADY, &pg, loopback(&pg), Scenario::local);
    s.fault_begins();
    let length = fault_length().max(Duration::from_secs(9));
    s.fault = format!("{:.0} s", length.as_secs_f64());
    let ends = Instant::now() + length;
    let mut restarts = 0;
    let mut seen_unreachable = false;
    while Instant::now() < ends {
        pg.stop().unwrap();
        if !seen_unreachable {
            s.expect_unreachable(Instant::now() + Duration::from_secs(5));
            seen_unreachable = true;
        }
        std::thread::sleep(Duration::from_millis(500));
        pg.restart().unwrap();
        restarts += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    s.fault_ends();
    s.verdict(&format!(
        "{restarts} fast shutdowns and starts, 2.5 s apart"
    ));
}
