//! `cargo xtask soak --minutes N`: the release service for N minutes under a steady load,
//! against a throwaway PostgreSQL that is restarted every few minutes, watched for growth.
//!
//! The load, all from this process:
//! - Prometheus-style scrapes: `/metrics` with Prometheus 3.x's `Accept` (OpenMetrics) and
//!   `/metrics/prometheus`, each twice a second;
//! - one `/metrics/history` every two seconds, in turn: the default hour, the last hour and
//!   the last day by relative `start`, a week (beyond memory: PostgreSQL, or `partial` while
//!   it is down), and explicit `start`/`end`/`step` at the persist step and at the live step;
//! - `--streams` (100) SSE clients on `/metrics/stream`, each reading every event (one that
//!   is cut off resumes with `Last-Event-ID`, and the cut is counted as a failure);
//! - the database stopped, kept down `--db-down` seconds and started again, every
//!   `--db-every` seconds.
//!
//! Once a minute the load pauses (the streams stay open: an idle service with subscribers
//! is what is measured), the database is waited on until it is connected with nothing
//! pending, and over a quiet window (`--quiet`) the service's CPU time is read (schedstat
//! of each thread, in ns; utime+stime when a thread ended in the window), then its RSS
//! (`VmRSS`), open fds (`/proc/PID/fd`) and threads, `/health` and `/metrics/prometheus`.
//!
//! The memory ring fills for the first hour (one live sample per interval, each with its
//! encoded event, and one window per persist interval), which is growth by design: RSS is
//! also shown net of it (bytes per sample estimated from the event's size, see
//! [`ring_bytes`]).
//!
//! The mark of minute 0 is taken before the requests and the database restarts begin, so
//! it is shown but not judged: the baseline is minute 1's, the first under load. The noise
//! is each figure's spread (max − min) over the marks of minutes 1–10; a figure passes when
//! its growth (last mark − minute 1's) is within that noise (or within its resolution,
//! [`FLOORS`], when the noise is smaller). At the end: every request 2xx, every
//! stream event received once by every client, no stream cut, and no window lost (rows in
//! `metrics_cpu` = windows written, none dropped, as many as the uptime has closed).
//!
//! Prints a markdown table (the marks at 0, 10, 20 … minutes and the last) and a verdict
//! line; the per-minute marks, the report and the service's log stay in
//! `<target>/soak/<time>/`. The service and the database are stopped by their guards, also
//! on error; every wait is bounded.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::bench::{
    PROMETHEUS_ACCEPT, Servers, clock_ticks_per_second, cpu_ticks, each_flag, free_port, http_get,
    http_get_with, sched_ns, status_field, target_dir,
};
use crate::pg;
use crate::util::{self, cargo};

const USAGE: &str =
    "usage: cargo xtask soak [--minutes N] [--streams N] [--interval S] [--persist S]
                        [--db-every S] [--db-down S] [--quiet S] [--bin PATH]
  --minutes N    length of the run (default 60); marks every minute, table rows every ten
  --streams N    SSE clients on /metrics/stream, each reading every event (default 100)
  --interval S   METRICS_INTERVAL_LIVE, seconds (default 1)
  --persist S    METRICS_INTERVAL_PERSIST, seconds (default 5)
  --db-every S   seconds between database restarts (default 180)
  --db-down S    seconds the database stays down each time (default 5)
  --quiet S      the quiet window of each mark, seconds (default 15)
  --bin PATH     soak this binary instead of building the workspace's release one";

/// How long one request may take (a history request that reads PostgreSQL included).
const REQUEST_WITHIN: Duration = Duration::from_secs(10);
/// A stream that sends no byte for this long is stalled (keep-alives come every 15 s).
const STALL: Duration = Duration::from_secs(20);
/// How long every stream client may take to get its first event.
const STREAMS_WITHIN: Duration = Duration::from_secs(30);
/// How long the database may take to be connected again with nothing pending.
const SETTLED_WITHIN: Duration = Duration::from_secs(60);
/// Between the database settling and the quiet window.
const SETTLE: Duration = Duration::from_secs(1);
/// Minutes whose marks define the noise.
const NOISE_MINUTES: u64 = 10;
/// The smallest growth each figure is judged against (its resolution): RSS (KiB, the ring
/// estimate's uncertainty), fds, threads, idle CPU (ms per minute).
const FLOORS: [f64; 4] = [256.0, 1.0, 1.0, 1.0];

#[derive(Debug, Clone)]
struct Options {
    minutes: u64,
    streams: usize,
    interval: f64,
    persist: f64,
    db_every: Duration,
    db_down: Duration,
    quiet: Duration,
    bin: Option<std::path::PathBuf>,
}

fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut o = Options {
        minutes: 60,
        streams: 100,
        interval: 1.0,
        persist: 5.0,
        db_every: Duration::from_secs(180),
        db_down: Duration::from_secs(5),
        quiet: Duration::from_secs(15),
        bin: None,
    };
    let go_on = each_flag(args, USAGE, |flag, value| {
        let v = value()?;
        let secs = |range: std::ops::RangeInclusive<f64>| -> anyhow::Result<f64> {
            match v.parse::<f64>() {
                Ok(s) if range.contains(&s) => Ok(s),
                _ => bail!("{flag} {v:?}: expected seconds from {range:?}"),
            }
        };
        match flag {
            "--minutes" => match v.parse::<u64>() {
                Ok(n) if (1..=24 * 60).contains(&n) => o.minutes = n,
                _ => bail!("--minutes {v:?}: expected 1 to 1440"),
            },
            "--streams" => match v.parse::<usize>() {
                Ok(n) if n <= 1000 => o.streams = n,
                _ => bail!("--streams {v:?}: expected 0 to 1000"),
            },
            "--interval" => o.interval = secs(0.1..=60.0)?,
            "--persist" => o.persist = secs(0.1..=3600.0)?,
            "--db-every" => o.db_every = Duration::from_secs_f64(secs(10.0..=86_400.0)?),
            "--db-down" => o.db_down = Duration::from_secs_f64(secs(0.0..=600.0)?),
            "--quiet" => o.quiet = Duration::from_secs_f64(secs(1.0..=50.0)?),
            "--bin" => {
                o.bin = Some(std::fs::canonicalize(&v).with_context(|| format!("--bin {v:?}"))?);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
        Ok(())
    })?;
    if !go_on {
        return Ok(None);
    }
    if o.persist < o.interval {
        bail!("--persist must be at least --interval");
    }
    Ok(Some(o))
}

// --- what the load threads share ------------------------------------------------------------

/// Requests of one kind: answered 2xx, answered otherwise (by status), not answered.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    non_2xx: HashMap<u16, u64>,
    failed: u64,
    last_failure: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    /// Every load action holds it for reading; a mark holds it for writing (the quiet).
    gate: RwLock<()>,
    /// Per request kind (`/metrics`, `/metrics/prometheus`, `/metrics/history`).
    tallies: Mutex<HashMap<&'static str, Tally>>,
    restarts: AtomicU64,
    restart_errors: Mutex<Vec<String>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps until `until` or until asked to stop; whether to go on.
    fn pause_until(&self, until: Instant) -> bool {
        while Instant::now() < until {
            if self.stopped() {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
        }
        !self.stopped()
    }

    fn record(&self, kind: &'static str, result: anyhow::Result<(u16, Vec<u8>)>) {
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        let tally = tallies.entry(kind).or_default();
        match result {
            Ok((code, _)) if (200..300).contains(&code) => tally.ok += 1,
            Ok((code, body)) => {
                *tally.non_2xx.entry(code).or_default() += 1;
                tally.last_failure = Some(format!(
                    "HTTP {code}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
            }
            Err(e) => {
                tally.failed += 1;
                tally.last_failure = Some(format!("{e:#}"));
            }
        }
    }

    /// (2xx, non-2xx, not answered) over every kind.
    fn totals(&self) -> (u64, u64, u64) {
        self.tallies.lock().map_or((0, 0, 0), |t| {
            t.values().fold((0, 0, 0), |(ok, bad, failed), x| {
                (
                    ok + x.ok,
                    bad + x.non_2xx.values().sum::<u64>(),
                    failed + x.failed,
                )
            })
        })
    }
}

/// One stream client's record.
#[derive(Debug, Default)]
struct Client {
    /// Every sample event's id, in arrival order.
    ids: Vec<u64>,
    /// Events whose id was not newer than the one before.
    out_of_order: u64,
    /// Samples the server said it skipped (`event: lag`).
    lagged: u64,
    resets: u64,
    /// Connections that ended, stalled or failed (each resumed).
    cuts: u64,
    last_error: Option<String>,
    /// Bytes of the newest sample event (`id:` and `data:` lines with their newlines).
    event_bytes: usize,
}

// --- the run --------------------------------------------------------------------------------

/// One mark: the service at one moment, quiet.
#[derive(Debug, Clone, Default)]
struct Mark {
    minute: u64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    idle_cpu_ms_per_min: f64,
    ring_samples: u64,
    ring_windows: u64,
    written: u64,
    dropped: u64,
    events: u64,
    ok: u64,
    non_2xx: u64,
    failed: u64,
    restarts: u64,
    event_bytes: usize,
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(options) = parse_args(args)? else {
        return Ok(());
    };
    let target = target_dir()?;
    let bin = if let Some(bin) = &options.bin {
        bin.clone()
    } else {
        eprintln!("xtask: building the release service");
        util::run(cargo().args(["build", "--release", "-p", "metrics-collector"]))?;
        target.join("release/metrics-collector")
    };
    if !bin.is_file() {
        bail!("{} was not built where expected", bin.display());
    }
    let out = target.join("soak").join(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
    );
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let cluster = pg::start("soak")?;
    let pg_port = cluster.port();
    let mut servers = Servers::default();
    let port = free_port()?;
    let mut service = Command::new(&bin);
    service
        .env("METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .env("POSTGRES_HOST", "127.0.0.1")
        .env("POSTGRES_PORT", pg_port.to_string())
        .env("POSTGRES_USER", "postgres")
        .env("POSTGRES_DB", "postgres")
        .env("METRICS_INTERVAL_LIVE", options.interval.to_string())
        .env("METRICS_INTERVAL_PERSIST", options.persist.to_string())
        .env("RUST_LOG", "info")
        // A fresh folder: no developer's `.env` changes what is measured.
        .current_dir(&out);
    servers.start("service", service, port, &out)?;
    servers.0[0].wait_ready()?;
    let pid = servers.0[0].pid();
    let log = servers.0[0].log.clone();
    let started = Instant::now();
    wait_settled(port)?;
    eprintln!(
        "xtask: soak: service pid {pid} on 127.0.0.1:{port}, PostgreSQL on 127.0.0.1:{pg_port}, \
         {} min, {} streams, live {} s, persist {} s, database restarted every {} s ({} s down)",
        options.minutes,
        options.streams,
        options.interval,
        options.persist,
        options.db_every.as_secs_f64(),
        options.db_down.as_secs_f64(),
    );

    let shared = Arc::new(Shared::default());
    let clients: Vec<Arc<Mutex<Client>>> = (0..options.streams)
        .map(|_| Arc::new(Mutex::new(Client::default())))
        .collect();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for client in &clients {
        let (shared, client) = (Arc::clone(&shared), Arc::clone(client));
        threads.push(
            std::thread::Builder::new()
                .name("soak-stream".into())
                .stack_size(256 * 1024)
                .spawn(move || stream_client(port, &shared, &client))
                .context("starting a stream client")?,
        );
    }
    util::wait_for(
        "every stream client's first event",
        STREAMS_WITHIN,
        Duration::from_millis(100),
        || {
            Ok(clients
                .iter()
                .all(|c| c.lock().is_ok_and(|c| !c.ids.is_empty())))
        },
    )?;
    {
        let shared = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("soak-scrape".into())
                .spawn(move || scraper(port, &shared))
                .context("starting the scraper")?,
        );
    }
    {
        let shared = Arc::clone(&shared);
        let persist = options.persist;
        let interval = options.interval;
        threads.push(
            std::thread::Builder::new()
                .name("soak-history".into())
                .spawn(move || historian(port, persist, interval, &shared))
                .context("starting the history client")?,
        );
    }
    // The marks, once a minute from now.
    let t0 = Instant::now();
    let restarter = {
        let shared = Arc::clone(&shared);
        let (every, down) = (options.db_every, options.db_down);
        // No restart starts in the last minute: the last mark and the end checks see the
        // database as it settled after the one before.
        let last = t0 + Duration::from_secs(60 * options.minutes.saturating_sub(1));
        std::thread::Builder::new()
            .name("soak-restart".into())
            .spawn(move || restarter(cluster, every, down, last, &shared))
            .context("starting the database restarter")?
    };

    let mut marks = Vec::new();
    let mut lines = String::new();
    let result = (|| -> anyhow::Result<()> {
        for minute in 0..=options.minutes {
            let due = t0 + Duration::from_secs(60 * minute);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mark = take_mark(minute, pid, port, &options, &shared, &clients)?;
            let line = mark_line(&mark);
            eprintln!("xtask: soak: {line}");
            let _ = writeln!(lines, "{line}");
            let _ = std::fs::write(out.join("marks.txt"), &lines);
            marks.push(mark);
        }
        Ok(())
    })();

    shared.stop.store(true, Ordering::Release);
    for t in threads {
        let _ = t.join();
    }
    let cluster = restarter
        .join()
        .map_err(|_| anyhow::anyhow!("the database restarter panicked"))?;
    result.with_context(|| {
        format!(
            "the soak stopped early; the service's log: {}",
            log.display()
        )
    })?;
    let cluster = cluster?;

    // Nothing lost: once the database has everything, its rows against the counters.
    let windows = check_windows(port, pg_port, started, options.persist)?;
    let streams = check_streams(&clients);
    let tallies = shared
        .tallies
        .lock()
        .map_err(|_| anyhow::anyhow!("the tallies' lock is poisoned"))?;
    let restart_errors = shared
        .restart_errors
        .lock()
        .map_err(|_| anyhow::anyhow!("the restart errors' lock is poisoned"))?
        .clone();
    let (report, pass) = report(
        &options,
        &marks,
        &windows,
        &streams,
        &tallies,
        &restart_errors,
    );
    drop(tallies);
    let path = out.join("soak.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    crate::bench::print_report(&report);
    eprintln!(
        "xtask: soak: marks, report and the service's log in {}",
        out.display()
    );
    drop(servers);
    drop(cluster);
    if !pass {
        bail!("the soak failed (see the verdict above)");
    }
    Ok(())
}

// --- load ------------------------------------------------------------------------------------

fn scraper(port: u16, shared: &Shared) {
    let accept = vec![format!("Accept: {PROMETHEUS_ACCEPT}")];
    let mut next = Instant::now();
    while shared.pause_until(next) {
        next += Duration::from_millis(500);
        let Ok(_load) = shared.gate.read() else {
            return;
        };
        shared.record(
            "/metrics",
            http_get_with(port, "/metrics", &accept, REQUEST_WITHIN),
        );
        shared.record(
            "/metrics/prometheus",
            http_get(port, "/metrics/prometheus", REQUEST_WITHIN),
        );
    }
}

fn historian(port: u16, persist: f64, interval: f64, shared: &Shared) {
    let mut next = Instant::now();
    let mut turn = 0usize;
    while shared.pause_until(next) {
        next += Duration::from_secs(2);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = match turn % 6 {
            0 => "/metrics/history".to_owned(),
            1 => "/metrics/history?start=-3600".to_owned(),
            2 => "/metrics/history?start=-86400".to_owned(),
            3 => "/metrics/history?start=-604800&step=3600".to_owned(),
            4 => format!(
                "/metrics/history?start={}&end={now}&step={persist}",
                now.saturating_sub(900)
            ),
            _ => format!(
                "/metrics/history?start={}&end={now}&step={interval}&metrics=cpu,ram",
                now.saturating_sub(300)
            ),
        };
        turn += 1;
        let Ok(_load) = shared.gate.read() else {
            return;
        };
        shared.record("/metrics/history", http_get(port, &path, REQUEST_WITHIN));
    }
}

/// Stops the database, keeps it down, starts it again, every `every`; gives it back.
fn restarter(
    mut cluster: devpg::Cluster,
    every: Duration,
    down: Duration,
    last: Instant,
    shared: &Shared,
) -> anyhow::Result<devpg::Cluster> {
    let mut next = Instant::now() + every;
    while next < last && shared.pause_until(next) {
        next += every;
        let Ok(_load) = shared.gate.read() else {
            break;
        };
        eprintln!(
            "xtask: soak: stopping the database for {} s",
            down.as_secs_f64()
        );
        let stopped = cluster.stop();
        // The outage itself: the database is down on purpose for this long.
        std::thread::sleep(down);
        let result = stopped
            .map_err(anyhow::Error::from)
            .and_then(|()| cluster.restart().map_err(anyhow::Error::from));
        match result {
            Ok(()) => {
                shared.restarts.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => {
                if let Ok(mut errors) = shared.restart_errors.lock() {
                    errors.push(format!("{e:#}"));
                }
                // Whatever failed, try to leave it running.
                let _ = cluster.restart();
            }
        }
    }
    Ok(cluster)
}

/// One SSE client: reads every event until told to stop, resuming after any cut.
fn stream_client(port: u16, shared: &Shared, client: &Mutex<Client>) {
    let mut last_id = None;
    while !shared.stopped() {
        match read_stream(port, shared, client, &mut last_id) {
            Ok(()) => return,
            Err(e) => {
                if let Ok(mut c) = client.lock() {
                    c.cuts += 1;
                    c.last_error = Some(format!("{e:#}"));
                }
                if !shared.pause_until(Instant::now() + Duration::from_secs(1)) {
                    return;
                }
            }
        }
    }
}

fn read_stream(
    port: u16,
    shared: &Shared,
    client: &Mutex<Client>,
    last_id: &mut Option<u64>,
) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut socket =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).context("connecting")?;
    socket.set_read_timeout(Some(Duration::from_millis(500)))?;
    socket.set_write_timeout(Some(Duration::from_secs(5)))?;
    let resume = last_id.map_or_else(String::new, |id| format!("Last-Event-ID: {id}\r\n"));
    write!(
        socket,
        "GET /metrics/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .context("sending the request")?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::with_capacity(1024);
    let mut head = true;
    let mut first_line = true;
    let mut named: Option<Vec<u8>> = None;
    let mut id_bytes = 0;
    let mut last_bytes = Instant::now();
    loop {
        if shared.stopped() {
            return Ok(());
        }
        let n = match socket.read(&mut buf) {
            Ok(0) => bail!("closed by the server"),
            Ok(n) => n,
            // A signal to this process (a child's exit) interrupts a read: not the server's.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if last_bytes.elapsed() > STALL {
                    bail!("no byte for {} s", STALL.as_secs());
                }
                continue;
            }
            Err(e) => return Err(e).context("reading"),
        };
        last_bytes = Instant::now();
        let mut rest = &buf[..n];
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if head {
                if first_line {
                    first_line = false;
                    let text = String::from_utf8_lossy(&line);
                    if !text.starts_with("HTTP/1.1 200") {
                        bail!("answered {text:?}");
                    }
                }
                if line.is_empty() {
                    head = false;
                }
            } else if let Some(event) = line.strip_prefix(b"event: ") {
                named = Some(event.to_vec());
            } else if let Some(id) = line
                .strip_prefix(b"id: ")
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                id_bytes = line.len() + 1;
                let mut c = client
                    .lock()
                    .map_err(|_| anyhow::anyhow!("a client's lock is poisoned"))?;
                if c.ids.last().is_some_and(|last| *last >= id) {
                    c.out_of_order += 1;
                }
                c.ids.push(id);
                *last_id = Some(id);
            } else if let Some(data) = line.strip_prefix(b"data: ") {
                let mut c = client
                    .lock()
                    .map_err(|_| anyhow::anyhow!("a client's lock is poisoned"))?;
                match named.take().as_deref() {
                    Some(b"lag") => c.lagged += json_u64(data, "dropped").unwrap_or(1),
                    Some(b"reset") => c.resets += 1,
                    Some(_) => {}
                    None => c.event_bytes = id_bytes + line.len() + 2,
                }
            }
            line.clear();
        }
        line.extend_from_slice(rest);
    }
}

// --- marks -----------------------------------------------------------------------------------

/// Pauses the load, waits for the database to settle, and reads the service over a quiet
/// window.
fn take_mark(
    minute: u64,
    pid: u32,
    port: u16,
    options: &Options,
    shared: &Shared,
    clients: &[Arc<Mutex<Client>>],
) -> anyhow::Result<Mark> {
    let _quiet = shared
        .gate
        .write()
        .map_err(|_| anyhow::anyhow!("the load gate is poisoned"))?;
    wait_settled(port)?;
    std::thread::sleep(SETTLE);
    let clk_tck = clock_ticks_per_second();
    let (sched0, ticks0) = (sched_ns(pid)?, cpu_ticks(pid)?);
    let window = Instant::now();
    std::thread::sleep(options.quiet);
    let (sched1, ticks1) = (sched_ns(pid)?, cpu_ticks(pid)?);
    let secs = window.elapsed().as_secs_f64();
    let by_sched: u64 = sched1
        .iter()
        .map(|(tid, end)| end.saturating_sub(sched0.get(tid).copied().unwrap_or(0)))
        .sum();
    let by_ticks = (ticks1.saturating_sub(ticks0) as f64 * 1e9 / clk_tck) as u64;
    let ended = sched0.keys().any(|tid| !sched1.contains_key(tid));
    let cpu_ns = if ended {
        by_sched.max(by_ticks)
    } else {
        by_sched
    };
    let fd_dir = format!("/proc/{pid}/fd");
    let fds = std::fs::read_dir(&fd_dir)
        .with_context(|| format!("listing {fd_dir}"))?
        .count() as u64;
    let rss_kib = status_field(pid, "VmRSS")?;
    let threads = status_field(pid, "Threads")?;
    let (_, health) = http_get(port, "/health", REQUEST_WITHIN).context("GET /health")?;
    let (code, prometheus) =
        http_get(port, "/metrics/prometheus", REQUEST_WITHIN).context("GET /metrics/prometheus")?;
    if code != 200 {
        bail!("GET /metrics/prometheus answered {code}");
    }
    let ring = json_section(&health, "ring");
    let (events, event_bytes) = clients.iter().fold((0, 0), |(n, bytes), c| {
        c.lock().map_or((n, bytes), |c| {
            (n + c.ids.len() as u64, bytes.max(c.event_bytes))
        })
    });
    let (ok, non_2xx, failed) = shared.totals();
    Ok(Mark {
        minute,
        rss_kib,
        fds,
        threads,
        idle_cpu_ms_per_min: cpu_ns as f64 / 1e6 * 60.0 / secs,
        ring_samples: json_u64(ring, "samples").unwrap_or(0),
        ring_windows: json_u64(ring, "windows").unwrap_or(0),
        written: prometheus_value(&prometheus, "metrics_collector_windows_written_total")
            .unwrap_or(0),
        dropped: json_u64(json_section(&health, "database"), "dropped_windows").unwrap_or(0),
        events,
        ok,
        non_2xx,
        failed,
        restarts: shared.restarts.load(Ordering::Acquire),
        event_bytes,
    })
}

fn mark_line(m: &Mark) -> String {
    format!(
        "min {:>3}: RSS {} KiB, {} fds, {} threads, idle CPU {:.1} ms/min, ring {} samples {} \
         windows, windows written {} dropped {}, {} stream events, requests {} 2xx {} non-2xx \
         {} failed, {} database restarts",
        m.minute,
        m.rss_kib,
        m.fds,
        m.threads,
        m.idle_cpu_ms_per_min,
        m.ring_samples,
        m.ring_windows,
        m.written,
        m.dropped,
        m.events,
        m.ok,
        m.non_2xx,
        m.failed,
        m.restarts
    )
}

/// Waits until `/health` says the database is connected with no rows pending.
fn wait_settled(port: u16) -> anyhow::Result<()> {
    let mut last = String::new();
    let result = util::wait_for(
        "the database to be connected with nothing pending",
        SETTLED_WITHIN,
        Duration::from_millis(200),
        || {
            let Ok((_, body)) = http_get(port, "/health", REQUEST_WITHIN) else {
                return Ok(false);
            };
            let db = json_section(&body, "database");
            last = String::from_utf8_lossy(db).chars().take(300).collect();
            Ok(json_str(db, "state") == Some("connected")
                && json_u64(db, "pending_rows") == Some(0))
        },
    );
    result.with_context(|| format!("/health's database: {last}"))
}

/// Bytes the memory ring holds for `samples` live samples and `windows` windows: each
/// sample's fixed part (72 B) and its event, in a buffer reserved at 320 B and doubled as
/// needed, plus the allocator's 16 B and the shared header a stream's clone adds (about
/// 48 B); each window 80 B in an array reserved at start, touched as it fills.
fn ring_bytes(samples: u64, windows: u64, event_bytes: usize) -> f64 {
    let mut buffer = 320usize;
    while buffer < event_bytes {
        buffer *= 2;
    }
    samples as f64 * (72 + buffer + 16 + 48) as f64 + windows as f64 * 80.0
}

// --- the end checks -----------------------------------------------------------------------------

#[derive(Debug)]
struct Windows {
    uptime_s: f64,
    closed_by_uptime: u64,
    written: u64,
    dropped: u64,
    rows: u64,
    lost: u64,
    ok: bool,
}

/// Once the database is connected with nothing queued: rows in `metrics_cpu` against the
/// windows written, dropped, and those the uptime has closed.
fn check_windows(
    port: u16,
    pg_port: u16,
    started: Instant,
    persist: f64,
) -> anyhow::Result<Windows> {
    wait_settled(port)?;
    util::wait_for(
        "the persist queue to be empty",
        SETTLED_WITHIN,
        Duration::from_millis(200),
        || {
            let (_, body) = http_get(port, "/metrics/prometheus", REQUEST_WITHIN)?;
            let queued = prometheus_value(&body, "metrics_collector_persist_queue_windows");
            Ok(queued == Some(0))
        },
    )?;
    // Windows keep closing, and a row is in the table a moment before its window counts
    // as written (the reply is on its way): the count is taken between two reads of the
    // counter that agree, until it agrees with them too (a few tries; a mismatch that
    // stays is a window lost or written twice).
    let counters = || -> anyhow::Result<(u64, u64)> {
        let (_, body) = http_get(port, "/metrics/prometheus", REQUEST_WITHIN)?;
        Ok((
            prometheus_value(&body, "metrics_collector_windows_written_total")
                .context("no metrics_collector_windows_written_total")?,
            prometheus_value(&body, "metrics_collector_windows_dropped_total")
                .context("no metrics_collector_windows_dropped_total")?,
        ))
    };
    let mut tries = 0;
    let (uptime_s, written, dropped, rows) = loop {
        let uptime_s = started.elapsed().as_secs_f64();
        let (before, _) = counters()?;
        let rows = cpu_rows(pg_port)?;
        let (written, dropped) = counters()?;
        tries += 1;
        if (before == written && rows == written) || tries == 10 {
            break (uptime_s, written, dropped, rows);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Windows that began after the service started and have ended: at least the uptime
    // over the persist interval, less the first (partial) and the one closing now.
    let closed_by_uptime = (uptime_s / persist).floor() as u64;
    let lost = closed_by_uptime.saturating_sub(2).saturating_sub(rows) + dropped;
    let ok = dropped == 0 && rows == written && lost == 0 && rows <= closed_by_uptime + 1;
    Ok(Windows {
        uptime_s,
        closed_by_uptime,
        written,
        dropped,
        rows,
        lost,
        ok,
    })
}

/// Rows in `metrics_cpu` (one per window whose CPU mean is known).
fn cpu_rows(pg_port: u16) -> anyhow::Result<u64> {
    let psql = devpg::find_bindir()
        .map(|d| d.join("psql"))
        .filter(|p| p.is_file())
        .map_or_else(|| "psql".into(), |p| p.into_os_string());
    let output = Command::new(&psql)
        .args(["-h", "127.0.0.1", "-p", &pg_port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-tA", "-c"])
        .arg("SELECT count(*) FROM metrics_cpu")
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("psql's count")
}

#[derive(Debug, Default)]
struct Streams {
    clients: usize,
    received: u64,
    expected: u64,
    missing: u64,
    out_of_order: u64,
    lagged: u64,
    resets: u64,
    cuts: u64,
    distinct: usize,
    last_error: Option<String>,
}

/// Every sample event any client got, against what each client got between its first and
/// its last event.
fn check_streams(clients: &[Arc<Mutex<Client>>]) -> Streams {
    let records: Vec<_> = clients
        .iter()
        .filter_map(|c| c.lock().ok())
        .map(|c| {
            (
                c.ids.clone(),
                c.out_of_order,
                c.lagged,
                c.resets,
                c.cuts,
                c.last_error.clone(),
            )
        })
        .collect();
    let all: BTreeSet<u64> = records.iter().flat_map(|r| r.0.iter().copied()).collect();
    let mut s = Streams {
        clients: records.len(),
        distinct: all.len(),
        ..Streams::default()
    };
    for (ids, out_of_order, lagged, resets, cuts, error) in records {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            s.cuts += cuts.max(1);
            continue;
        };
        let got: BTreeSet<u64> = ids.iter().copied().collect();
        let expected = all.range(first..=last).count() as u64;
        s.expected += expected;
        s.received += ids.len() as u64;
        s.missing += expected.saturating_sub(got.len() as u64);
        s.out_of_order += out_of_order;
        s.lagged += lagged;
        s.resets += resets;
        s.cuts += cuts;
        if error.is_some() {
            s.last_error = error;
        }
    }
    s
}

// --- the report --------------------------------------------------------------------------------

/// The four figures judged for growth, each mark's: RSS net of the ring (KiB), fds,
/// threads, idle CPU (ms per minute).
fn figures(m: &Mark, first: &Mark, event_bytes: usize) -> [f64; 4] {
    let ring = ring_bytes(
        m.ring_samples.saturating_sub(first.ring_samples),
        m.ring_windows.saturating_sub(first.ring_windows),
        event_bytes,
    );
    [
        m.rss_kib as f64 - ring / 1024.0,
        m.fds as f64,
        m.threads as f64,
        m.idle_cpu_ms_per_min,
    ]
}

fn report(
    options: &Options,
    marks: &[Mark],
    windows: &Windows,
    streams: &Streams,
    tallies: &HashMap<&'static str, Tally>,
    restart_errors: &[String],
) -> (String, bool) {
    let mut r = String::new();
    let (Some(first), Some(last)) = (marks.first(), marks.last()) else {
        return ("no marks were taken\n".to_owned(), false);
    };
    let event_bytes = marks.iter().map(|m| m.event_bytes).max().unwrap_or(0);
    let _ = writeln!(
        r,
        "`cargo xtask soak --minutes {}`: {} SSE clients, 2 scrapes/s of `/metrics` \
         (OpenMetrics) and of `/metrics/prometheus`, one `/metrics/history` every 2 s, live \
         interval {} s, persist interval {} s, the database stopped for {} s every {} s. Each \
         mark is taken with the requests paused (streams open) and the database settled; idle \
         CPU over a {} s quiet window.\n",
        options.minutes,
        options.streams,
        options.interval,
        options.persist,
        options.db_down.as_secs_f64(),
        options.db_every.as_secs_f64(),
        options.quiet.as_secs_f64(),
    );
    let _ = writeln!(
        r,
        "| min | RSS | RSS net of ring | fds | threads | idle CPU ms/min | ring samples | windows written / dropped | stream events | requests 2xx / non-2xx / failed | DB restarts |"
    );
    let _ = writeln!(
        r,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in marks
        .iter()
        .filter(|m| m.minute % 10 == 0 || m.minute == last.minute)
    {
        let f = figures(m, first, event_bytes);
        let _ = writeln!(
            r,
            "| {} | {:.2} MiB | {:.2} MiB | {} | {} | {:.1} | {} | {} / {} | {} | {} / {} / {} | {} |",
            m.minute,
            m.rss_kib as f64 / 1024.0,
            f[0] / 1024.0,
            m.fds,
            m.threads,
            m.idle_cpu_ms_per_min,
            m.ring_samples,
            m.written,
            m.dropped,
            m.events,
            m.ok,
            m.non_2xx,
            m.failed,
            m.restarts
        );
    }
    // Minute 0 is before the load: the baseline is the first mark under load (minute 1).
    // Noise: the spread of the marks from it to minute 10; growth: last − baseline.
    let base = marks.iter().find(|m| m.minute >= 1).unwrap_or(first);
    let noise_marks: Vec<[f64; 4]> = marks
        .iter()
        .filter(|m| m.minute >= base.minute && m.minute <= NOISE_MINUTES.max(base.minute))
        .map(|m| figures(m, first, event_bytes))
        .collect();
    let (f0, f1) = (
        figures(base, first, event_bytes),
        figures(last, first, event_bytes),
    );
    let names = ["RSS net of ring", "fds", "threads", "idle CPU"];
    let units = ["KiB", "", "", "ms/min"];
    let mut pass = true;
    let mut verdicts = Vec::new();
    for i in 0..4 {
        let lo = noise_marks
            .iter()
            .map(|f| f[i])
            .fold(f64::INFINITY, f64::min);
        let hi = noise_marks
            .iter()
            .map(|f| f[i])
            .fold(f64::NEG_INFINITY, f64::max);
        let noise = hi - lo;
        let growth = f1[i] - f0[i];
        let ok = growth <= noise.max(FLOORS[i]);
        pass &= ok;
        let unit = if units[i].is_empty() {
            String::new()
        } else {
            format!(" {}", units[i])
        };
        verdicts.push(format!(
            "{} {growth:+.1}{unit} (noise {noise:.1}{unit}) {}",
            names[i],
            if ok { "ok" } else { "GROWS" }
        ));
    }
    let _ = writeln!(
        r,
        "\nMinute 0 is before the requests and restarts begin (not judged). Noise: each \
         figure's spread over the marks of minutes {}–{} ({} marks); growth: last mark − \
         minute {}'s; RSS net of ring subtracts the samples and windows the ring gained \
         (about {:.0} B per sample, the event being {} B).\n",
        base.minute,
        NOISE_MINUTES.max(base.minute).min(last.minute),
        noise_marks.len(),
        base.minute,
        ring_bytes(1, 0, event_bytes),
        event_bytes
    );
    let (ok, non_2xx, failed) = tallies.values().fold((0, 0, 0), |(a, b, c), t| {
        (a + t.ok, b + t.non_2xx.values().sum::<u64>(), c + t.failed)
    });
    let mut kinds: Vec<_> = tallies.iter().collect();
    kinds.sort_by_key(|(k, _)| *k);
    for (kind, t) in kinds {
        let mut codes: Vec<_> = t.non_2xx.iter().collect();
        codes.sort();
        let _ = writeln!(
            r,
            "- `{kind}`: {} 2xx, non-2xx {:?}, {} not answered{}",
            t.ok,
            codes,
            t.failed,
            t.last_failure
                .as_ref()
                .map_or_else(String::new, |f| format!(" (last: {f})"))
        );
    }
    let requests_ok = non_2xx == 0 && failed == 0 && ok > 0;
    let _ = writeln!(
        r,
        "- streams: {} clients, {} events received of {} expected ({} distinct samples), {} \
         missing, {} out of order, {} skipped (lag), {} resets, {} cuts{}",
        streams.clients,
        streams.received,
        streams.expected,
        streams.distinct,
        streams.missing,
        streams.out_of_order,
        streams.lagged,
        streams.resets,
        streams.cuts,
        streams
            .last_error
            .as_ref()
            .map_or_else(String::new, |e| format!(" (last: {e})"))
    );
    let streams_ok = streams.missing == 0
        && streams.out_of_order == 0
        && streams.lagged == 0
        && streams.cuts == 0
        && streams.received == streams.expected;
    let _ = writeln!(
        r,
        "- windows: {} rows in metrics_cpu, {} written, {} dropped, {} closed by the uptime \
         ({:.0} s / {} s): {} lost",
        windows.rows,
        windows.written,
        windows.dropped,
        windows.closed_by_uptime,
        windows.uptime_s,
        options.persist,
        windows.lost
    );
    let _ = writeln!(
        r,
        "- database restarts: {}{}",
        last.restarts,
        if restart_errors.is_empty() {
            String::new()
        } else {
            format!(
                ", {} failed: {}",
                restart_errors.len(),
                restart_errors.join("; ")
            )
        }
    );
    pass &= requests_ok && streams_ok && windows.ok && restart_errors.is_empty();
    let _ = writeln!(
        r,
        "\n**Verdict: {}** after {} min: {}; requests {} ({non_2xx} non-2xx, {failed} failed); \
         streams {} ({} missing); windows lost {}.",
        if pass { "PASS" } else { "FAIL" },
        last.minute,
        verdicts.join(", "),
        if requests_ok { "ok" } else { "FAIL" },
        if streams_ok { "ok" } else { "FAIL" },
        streams.missing,
        windows.lost,
    );
    (r, pass)
}

// --- tiny readers --------------------------------------------------------------------------------

/// The text after `"key":` (the object or value it starts), or empty.
fn json_section<'a>(body: &'a [u8], key: &str) -> &'a [u8] {
    let needle = format!("\"{key}\":");
    body.windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .map_or(&[][..], |i| &body[i + needle.len()..])
}

/// The first unsigned number after `"key":` in `body`.
fn json_u64(body: &[u8], key: &str) -> Option<u64> {
    let rest = json_section(body, key);
    let digits = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b' ')
        .filter(|b| b.is_ascii_digit())
        .map(|b| char::from(*b))
        .collect::<String>();
    digits.parse().ok()
}

/// The first string after `"key":` in `body`.
fn json_str<'a>(body: &'a [u8], key: &str) -> Option<&'a str> {
    let rest = json_section(body, key).strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// A sample's value in a Prometheus text body (`name value`, no labels).
fn prometheus_value(body: &[u8], name: &str) -> Option<u64> {
    String::from_utf8_lossy(body).lines().find_map(|l| {
        let value = l.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_health_and_prometheus_say() {
        let health = br#"{"status":"ok","probes":{"cpu":{"state":"ok"}},"database":{"state":"connected","pending_rows":0,"dropped_windows":3,"error":null},"ring":{"samples":61,"sample_capacity":3601,"windows":12}}"#;
        let db = json_section(health, "database");
        assert_eq!(json_str(db, "state"), Some("connected"));
        assert_eq!(json_u64(db, "pending_rows"), Some(0));
        assert_eq!(json_u64(db, "dropped_windows"), Some(3));
        let ring = json_section(health, "ring");
        assert_eq!(json_u64(ring, "samples"), Some(61));
        assert_eq!(json_u64(ring, "windows"), Some(12));
        let text = b"# TYPE metrics_collector_windows_written counter\nmetrics_collector_windows_written_total 42\nmetrics_collector_windows_dropped_total 0\n";
        assert_eq!(
            prometheus_value(text, "metrics_collector_windows_written_total"),
            Some(42)
        );
        assert_eq!(prometheus_value(text, "metrics_collector_windows"), None);
    }

    #[test]
    fn a_growth_within_the_noise_passes_and_one_beyond_it_fails() {
        let options = parse_args(&[]).ok().flatten();
        let Some(options) = options else {
            panic!("the defaults parse");
        };
        let mark = |minute, rss_kib, fds| Mark {
            minute,
            rss_kib,
            fds,
            threads: 5,
            idle_cpu_ms_per_min: 50.0,
            ok: 10,
            ..Mark::default()
        };
        let windows = Windows {
            uptime_s: 60.0,
            closed_by_uptime: 12,
            written: 11,
            dropped: 0,
            rows: 11,
            lost: 0,
            ok: true,
        };
        let streams = Streams::default();
        let steady: Vec<Mark> = (0..=20)
            .map(|m| mark(m, 8000 + (m % 3) * 100, 110))
            .collect();
        let (text, pass) = report(&options, &steady, &windows, &streams, &HashMap::new(), &[]);
        assert!(!pass, "no request answered is a failure:\n{text}");
        let mut tallies = HashMap::new();
        tallies.insert(
            "/metrics",
            Tally {
                ok: 10,
                ..Tally::default()
            },
        );
        let (text, pass) = report(&options, &steady, &windows, &streams, &tallies, &[]);
        assert!(pass, "{text}");
        let mut leaking = steady.clone();
        if let Some(last) = leaking.last_mut() {
            last.fds = 140;
        }
        let (text, pass) = report(&options, &leaking, &windows, &streams, &tallies, &[]);
        assert!(!pass, "{text}");
        assert!(text.contains("fds +30.0 (noise 0.0) GROWS"), "{text}");
    }
}
