//! `cargo xtask bench stream`: the cost of `/metrics/stream` fan-out, each figure beside a
//! floor measured in the same run.
//!
//! For each subscriber count N: the release service (no database, `RUST_LOG=info,
//! sampler=debug`) idles for K samples with no stream open (its RSS and the tick-to-publish
//! times of those ticks are the "none" figures), then N stream connections are opened from
//! this process (a 2-worker tokio runtime, paced in batches) and, once every one has its
//! first event, the service's CPU time (schedstat, ns) is read around K samples delivered
//! to every subscriber. Each subscriber records when each event arrives; latency is the
//! arrival time minus the event's `id:` (the sample's Unix ms, at or before publish).
//!
//! The floor is this same binary in a hidden mode (`--floor-server`), a child process: a
//! plain blocking TCP server that accepts the same number of connections from the same
//! client harness, answers each with the bytes the service sent (captured from a real
//! stream), and every interval writes one real event's bytes (its `id:` set to the floor's
//! clock) to each socket in one loop. Its CPU is read the same way.
//!
//! Then `wrk -t2 -c64 -d10s` on `/metrics` and on `/metrics/history` (the default hour),
//! alternating, on one service at a 5 s interval.
//!
//! Every child is stopped by a guard's `Drop`, also on error; every wait is bounded.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    Servers, cpu_ticks, free_port, http_get, machine, median, print_report, sched_ns, status_field,
    stop, target_dir, wrk,
};
use crate::util::{self, cargo};

const USAGE: &str =
    "usage: cargo xtask bench stream [--subscribers N,N] [--samples N] [--interval S]
  --subscribers N,N  stream connections per run (default 1000,10000)
  --samples N        samples in each measured window (default 30)
  --interval S       METRICS_INTERVAL_LIVE of the service and the floor's, seconds (default 1,
                     at least 0.1)";

/// The issue's goals.
const GOAL_CPU_RATIO: f64 = 1.5;
const GOAL_P99_LATENCY_MS: f64 = 100.0;
const GOAL_RSS_PER_SUB_KIB: f64 = 8.0;
const GOAL_TICK_P99_RATIO: f64 = 1.1;
const GOAL_HISTORY_RATIO: f64 = 0.25;
/// The subscriber count the latency and tick-to-publish goals are stated for.
const GOAL_AT: usize = 10_000;

/// Subscribers started at once; the next batch waits for this one's first events (bounded).
const BATCH: usize = 250;
/// How long one batch may take to get its first events before pacing gives up waiting.
const BATCH_WITHIN: Duration = Duration::from_secs(5);
/// How long, after the last batch started, every subscriber may take to get its first event.
const FIRST_EVENT_WITHIN: Duration = Duration::from_secs(30);
/// One subscriber's connect.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// How often the main thread looks at the subscribers' progress.
const POLL: Duration = Duration::from_millis(2);
/// How long the client runtime may take to drop its tasks and sockets.
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(5);
/// The floor server exits by itself after this long, whatever happens to its parent.
const FLOOR_LIFETIME_SECS: u64 = 900;
/// `/metrics/history` load.
const HISTORY_INTERVAL: &str = "5";
const HISTORY_RUNNING_BEFORE: Duration = Duration::from_secs(10);
const HISTORY_ROUNDS: usize = 3;
const HISTORY_WRK_SECS: u64 = 10;

#[derive(Debug)]
struct Options {
    subscribers: Vec<usize>,
    samples: usize,
    interval: String,
    interval_s: f64,
}

fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        subscribers: vec![1000, 10_000],
        samples: 30,
        interval: "1".to_owned(),
        interval_s: 1.0,
    };
    let go_on = super::each_flag(args, USAGE, |flag, value| {
        match flag {
            "--subscribers" => {
                let v = value()?;
                options.subscribers = v
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(n) if (1..=19_000).contains(&n) => Ok(n),
                        _ => bail!("--subscribers {v:?}: expected counts from 1 to 19000"),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--samples" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(n) if (1..=10_000).contains(&n) => options.samples = n,
                    _ => bail!("--samples {v:?}: expected 1 to 10000"),
                }
            }
            "--interval" => {
                let v = value()?;
                match v.parse::<f64>() {
                    Ok(s) if (0.1..=60.0).contains(&s) => {
                        options.interval = v;
                        options.interval_s = s;
                    }
                    _ => bail!("--interval {v:?}: expected 0.1 to 60 seconds"),
                }
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
        Ok(())
    })?;
    if !go_on {
        return Ok(None);
    }
    Ok(Some(options))
}

pub(super) fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().map(String::as_str) == Some("--floor-server") {
        return floor_server(&args[1..]);
    }
    let Some(options) = parse_args(args)? else {
        return Ok(());
    };
    util::ensure_tool("wrk", "wrk")?;
    let most = options.subscribers.iter().copied().max().unwrap_or(0);
    raise_open_files(most as u64 + 256)?;

    eprintln!("xtask: building the release service");
    util::run(cargo().args(["build", "--release", "-p", "metrics-collector"]))?;
    let target = target_dir()?;
    let bin = target.join("release/metrics-collector");
    if !bin.is_file() {
        bail!("{} was not built where expected", bin.display());
    }
    let out = target.join("bench").join(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
    );
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut runs = Vec::new();
    for &n in &options.subscribers {
        let dir = out.join(format!("n{n}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ours = measure_ours(n, &options, &bin, &dir)?;
        let floor = measure_floor(ours.fanout.served, &options, &ours.capture, &dir)?;
        runs.push(Run { n, ours, floor });
    }
    let history = measure_history(&bin, &out.join("history"))?;

    let report = report(&options, &runs, &history);
    let path = out.join("stream.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    print_report(&report);
    eprintln!(
        "xtask: report, server logs and wrk outputs in {}",
        out.display()
    );
    Ok(())
}

/// Raises this process's open-files soft limit to at least `want` (within the hard limit).
fn raise_open_files(want: u64) -> anyhow::Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= want {
        return Ok(());
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if hard < want {
        bail!("{want} open files are needed; the hard limit is {hard} (raise it: ulimit -Hn)");
    }
    limit.current = Some(hard);
    setrlimit(Resource::Nofile, limit)
        .with_context(|| format!("raising the open-files soft limit from {soft} to {hard}"))?;
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

// --- the client harness -------------------------------------------------------------------

/// One subscriber's state, shared between its task and the main thread.
#[derive(Debug, Default)]
struct Slot {
    /// The newest event id it has seen; 0 before its first event.
    last_id: AtomicU64,
    /// The HTTP status of its response; 0 before the head arrived.
    status: AtomicU16,
    /// Every event: (id, arrival in Unix µs).
    events: Mutex<Vec<(u64, u64)>>,
    /// Set once its connection failed or ended.
    ended: AtomicBool,
    error: Mutex<Option<String>>,
}

/// N subscribers on a 2-worker tokio runtime; dropping it drops their sockets (RST: zero
/// linger, so no TIME_WAIT piles up between runs).
#[derive(Debug)]
struct Harness {
    runtime: Option<tokio::runtime::Runtime>,
    slots: Vec<Arc<Slot>>,
}

impl Harness {
    fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the client runtime")?;
        Ok(Self {
            runtime: Some(runtime),
            slots: Vec::new(),
        })
    }

    /// Opens `n` subscribers to `port` in batches, each batch waiting (bounded) for its
    /// first events; then waits (bounded) for every one to have its first event or to have
    /// failed. How long it took.
    fn open(&mut self, port: u16, n: usize) -> anyhow::Result<Duration> {
        let runtime = self.runtime.as_ref().context("runtime already shut down")?;
        let started = Instant::now();
        let mut pacing = true;
        while self.slots.len() < n {
            let from = self.slots.len();
            let to = (from + BATCH).min(n);
            for _ in from..to {
                let slot = Arc::new(Slot::default());
                runtime.spawn(subscribe(port, Arc::clone(&slot)));
                self.slots.push(slot);
            }
            if pacing {
                let batch = &self.slots[from..to];
                let deadline = Instant::now() + BATCH_WITHIN;
                while !batch.iter().all(|s| settled(s)) {
                    if Instant::now() > deadline {
                        eprintln!(
                            "xtask: subscribers {from}..{to} not all served within {} s; \
                             opening the rest without waiting",
                            BATCH_WITHIN.as_secs()
                        );
                        pacing = false;
                        break;
                    }
                    std::thread::sleep(POLL);
                }
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let deadline = Instant::now() + FIRST_EVENT_WITHIN;
        while !self.slots.iter().all(|s| settled(s)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(started.elapsed())
    }

    /// Subscribers that have had an event and are still connected.
    fn live(&self) -> Vec<&Slot> {
        self.slots
            .iter()
            .map(Arc::as_ref)
            .filter(|s| s.last_id.load(Ordering::Acquire) > 0 && !s.ended.load(Ordering::Acquire))
            .collect()
    }

    /// Why subscribers failed: each distinct error (or state) with its count.
    fn failures(&self) -> String {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for s in &self.slots {
            let why = if let Some(e) = s.error.lock().ok().and_then(|e| e.clone()) {
                e
            } else if s.last_id.load(Ordering::Acquire) > 0 {
                continue;
            } else {
                match s.status.load(Ordering::Acquire) {
                    0 => "no response head (not accepted?)".to_owned(),
                    200 => "200 but no event".to_owned(),
                    code => format!("HTTP {code}"),
                }
            };
            *counts.entry(why).or_default() += 1;
        }
        let mut rows: Vec<_> = counts.into_iter().collect();
        rows.sort_by_key(|row| std::cmp::Reverse(row.1));
        rows.iter()
            .map(|(why, n)| format!("{n} × {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(SHUTDOWN_WITHIN);
        }
    }
}

/// Served (has an event) or given up (failed).
fn settled(s: &Slot) -> bool {
    s.last_id.load(Ordering::Acquire) > 0 || s.ended.load(Ordering::Acquire)
}

async fn subscribe(port: u16, slot: Arc<Slot>) {
    let result = read_stream(port, &slot).await;
    if let Err(e) = result
        && let Ok(mut error) = slot.error.lock()
    {
        *error = Some(format!("{e:#}"));
    }
    slot.ended.store(true, Ordering::Release);
}

async fn read_stream(port: u16, slot: &Slot) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut socket = tokio::time::timeout(CONNECT_WITHIN, tokio::net::TcpStream::connect(addr))
        .await
        .context("connect timed out")?
        .context("connect")?;
    socket.set_zero_linger().context("SO_LINGER")?;
    socket.set_nodelay(true).context("TCP_NODELAY")?;
    let request = format!(
        "GET /metrics/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .context("sending the request")?;
    let mut buf = vec![0u8; 2048];
    let mut line: Vec<u8> = Vec::with_capacity(64);
    let mut head = true;
    loop {
        let n = socket.read(&mut buf).await.context("reading")?;
        if n == 0 {
            bail!("closed by the server");
        }
        let arrived = now_us();
        let mut rest = &buf[..n];
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            if head {
                if slot.status.load(Ordering::Relaxed) == 0 {
                    let code = std::str::from_utf8(&line)
                        .ok()
                        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
                        .and_then(|l| l.get(..3))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1);
                    slot.status.store(code, Ordering::Release);
                }
                if line == b"\r" {
                    head = false;
                }
            } else if let Some(id) = line
                .strip_prefix(b"id: ")
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim_end().parse::<u64>().ok())
            {
                if let Ok(mut events) = slot.events.lock() {
                    events.push((id, arrived));
                }
                slot.last_id.store(id, Ordering::Release);
            }
            line.clear();
        }
        line.extend_from_slice(rest);
    }
}

/// What one window of K samples delivered to every live subscriber gave.
#[derive(Debug, Default)]
struct Fanout {
    requested: usize,
    /// Subscribers that had their first event and stayed connected through the window.
    served: usize,
    /// Why the others were not served.
    failures: String,
    connect_s: f64,
    samples: usize,
    window_s: f64,
    cpu_ns: u64,
    cpu_ticks_ns: u64,
    /// Latency of every (subscriber, sample) pair in the window, ms.
    latencies_ms: Vec<f64>,
    /// Pairs that never arrived (a subscriber that missed a sample of the window).
    missing: usize,
}

impl Fanout {
    fn us_per_delivery(&self) -> f64 {
        self.cpu_ns as f64 / 1e3 / (self.samples * self.served).max(1) as f64
    }
}

/// A process's CPU time at one moment: schedstat of each live thread (ns) and utime+stime
/// (clock ticks, which also count threads that have ended).
#[derive(Debug)]
struct CpuMark {
    sched: HashMap<u32, u64>,
    ticks: u64,
}

fn cpu_now(pid: u32) -> anyhow::Result<CpuMark> {
    Ok(CpuMark {
        sched: sched_ns(pid)?,
        ticks: cpu_ticks(pid)?,
    })
}

/// CPU between two marks, ns: by schedstat (threads born in between count from 0) and by
/// ticks. A thread that ended in between took its schedstat along; then the larger figure.
fn cpu_spent(a: &CpuMark, b: &CpuMark, clk_tck: f64) -> (u64, u64) {
    let sched: u64 = b
        .sched
        .iter()
        .map(|(tid, end)| end.saturating_sub(a.sched.get(tid).copied().unwrap_or(0)))
        .sum();
    let ticks = (b.ticks.saturating_sub(a.ticks) as f64 * 1e9 / clk_tck) as u64;
    let ended = a.sched.keys().any(|tid| !b.sched.contains_key(tid));
    (if ended { sched.max(ticks) } else { sched }, ticks)
}

/// Waits until every live subscriber has seen `id` (or a newer one); bounded.
fn wait_all(live: &[&Slot], id: u64, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let behind = live
            .iter()
            .filter(|s| s.last_id.load(Ordering::Acquire) < id && !s.ended.load(Ordering::Acquire))
            .count();
        if behind == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{behind} of {} subscribers did not get event {id} within {within:?}",
                live.len()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until `slot` sees an event newer than `after`; its id. Bounded.
fn next_id(slot: &Slot, after: u64, within: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + within;
    loop {
        let id = slot.last_id.load(Ordering::Acquire);
        if id > after {
            return Ok(id);
        }
        if slot.ended.load(Ordering::Acquire) || Instant::now() > deadline {
            bail!("no event after {after} within {within:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Syncs on a sample delivered to every live subscriber, then reads `pid`'s CPU time around
/// the next `samples` samples delivered to all. `mark` is called at the window's start and
/// end (the caller notes its log offset there).
fn measure_window(
    harness: &Harness,
    pid: u32,
    options: &Options,
    requested: usize,
    connect: Duration,
    mut mark: impl FnMut(),
) -> anyhow::Result<Fanout> {
    let clk_tck = super::clock_ticks_per_second();
    let live = harness.live();
    let Some(lead) = live.first().copied() else {
        bail!("no subscriber got an event; why: {}", harness.failures());
    };
    let tick = Duration::from_secs_f64(options.interval_s);
    let within = tick * 2 + Duration::from_secs(10);
    let newest = live
        .iter()
        .map(|s| s.last_id.load(Ordering::Acquire))
        .max()
        .unwrap_or(0);
    wait_all(&live, newest, within)?;
    let first = next_id(lead, newest, within)?;
    wait_all(&live, first, within)?;
    let cpu0 = cpu_now(pid)?;
    let t0 = Instant::now();
    mark();
    let mut ids = Vec::with_capacity(options.samples);
    let mut last = first;
    for _ in 0..options.samples {
        last = next_id(lead, last, within)?;
        wait_all(&live, last, within)?;
        ids.push(last);
    }
    let cpu1 = cpu_now(pid)?;
    let (cpu_ns, cpu_ticks_ns) = cpu_spent(&cpu0, &cpu1, clk_tck);
    let window_s = t0.elapsed().as_secs_f64();
    mark();
    let live = harness.live();
    let mut latencies_ms = Vec::with_capacity(live.len() * ids.len());
    let mut missing = 0;
    for slot in &live {
        let events = slot
            .events
            .lock()
            .map_err(|_| anyhow::anyhow!("a subscriber's events lock is poisoned"))?;
        let in_window: HashMap<u64, u64> = events
            .iter()
            .filter(|(id, _)| *id > first && *id <= last)
            .copied()
            .collect();
        for id in &ids {
            match in_window.get(id) {
                Some(arrived) => {
                    latencies_ms.push((*arrived as f64 - *id as f64 * 1000.0) / 1000.0);
                }
                None => missing += 1,
            }
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Fanout {
        requested,
        served: live.len(),
        failures: harness.failures(),
        connect_s: connect.as_secs_f64(),
        samples: ids.len(),
        window_s,
        cpu_ns,
        cpu_ticks_ns,
        latencies_ms,
        missing,
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// --- our service --------------------------------------------------------------------------

/// The bytes a real stream starts with and one real per-sample event, as sent (chunked).
#[derive(Debug)]
struct Capture {
    /// The response head and every chunk up to the first event.
    prologue: Vec<u8>,
    /// One later event's chunk, framing included.
    event: Vec<u8>,
}

#[derive(Debug)]
struct OursRun {
    capture: Capture,
    fanout: Fanout,
    /// CPU of the ticks with no stream open, per tick (µs), schedstat.
    idle_us_per_tick: f64,
    rss_none_kib: u64,
    rss_open_kib: u64,
    streams_open: String,
    ticks_none_us: Vec<f64>,
    ticks_open_us: Vec<f64>,
    /// CPU time the hypervisor gave other guests during each window (ms, all CPUs): a
    /// tick's tail in a window with much more steal is the machine's, not the service's.
    steal_none_ms: f64,
    steal_open_ms: f64,
}

/// The machine's steal time so far (ms, all CPUs), from `/proc/stat`.
fn steal_ms(clk_tck: f64) -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("cpu "))?;
            line.split_ascii_whitespace().nth(8)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |ticks| ticks * 1000.0 / clk_tck)
}

fn service(bin: &Path, port: u16, interval: &str, max_streams: usize, log: &str) -> Command {
    let persist = interval.parse::<f64>().unwrap_or(1.0).max(30.0);
    let mut command = Command::new(bin);
    command
        .env("METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .env("POSTGRES_HOST", "")
        .env("METRICS_INTERVAL_LIVE", interval)
        .env("METRICS_INTERVAL_PERSIST", persist.to_string())
        .env("METRICS_MAX_STREAMS", max_streams.to_string())
        .env("RUST_LOG", log);
    command
}

fn measure_ours(n: usize, options: &Options, bin: &Path, dir: &Path) -> anyhow::Result<OursRun> {
    let clk_tck = super::clock_ticks_per_second();
    let mut servers = Servers::default();
    let port = free_port()?;
    let mut command = service(
        bin,
        port,
        &options.interval,
        n.max(1024),
        "info,sampler=debug",
    );
    // A fresh folder: no developer's `.env` changes what is measured.
    command.current_dir(dir);
    servers.start("ours", command, port, dir)?;
    let server = &mut servers.0[0];
    server.wait_ready()?;
    let pid = server.pid();
    let log = server.log.clone();
    let tick = Duration::from_secs_f64(options.interval_s);
    eprintln!("xtask: stream n={n}: ours (pid {pid}) on port {port}");

    let capture = capture(port, tick)?;
    util::wait_for(
        "the capturing stream to close",
        tick * 3 + Duration::from_secs(5),
        Duration::from_millis(50),
        || Ok(streams_open(port)?.starts_with("0/")),
    )?;

    eprintln!(
        "xtask: stream n={n}: {} samples with no stream open",
        options.samples
    );
    let off0 = log_len(&log)?;
    let cpu0 = cpu_now(pid)?;
    let steal0 = steal_ms(clk_tck);
    std::thread::sleep(tick * u32::try_from(options.samples).unwrap_or(u32::MAX));
    let steal_none_ms = steal_ms(clk_tck) - steal0;
    let cpu1 = cpu_now(pid)?;
    let off1 = log_len(&log)?;
    let idle_us_per_tick = cpu_spent(&cpu0, &cpu1, clk_tck).0 as f64 / 1e3 / options.samples as f64;
    let ticks_none_us = since_due(&log, off0, off1)?;
    let rss_none_kib = status_field(pid, "VmRSS")?;

    eprintln!("xtask: stream n={n}: opening {n} streams");
    let mut harness = Harness::new()?;
    let connect = harness.open(port, n)?;
    let live = harness.live().len();
    eprintln!(
        "xtask: stream n={n}: {live} of {n} subscribers served after {:.1} s; /health streams {}{}",
        connect.as_secs_f64(),
        streams_or_why(port),
        if live < n {
            format!("; the others: {}", harness.failures())
        } else {
            String::new()
        }
    );
    let mut offsets = Vec::new();
    let mut steals = Vec::new();
    let fanout = measure_window(&harness, pid, options, n, connect, || {
        offsets.push(log_len(&log).unwrap_or(0));
        steals.push(steal_ms(clk_tck));
    })?;
    let steal_open_ms = match steals.as_slice() {
        [a, b] => b - a,
        _ => f64::NAN,
    };
    // Between samples: the last one has reached everyone, the next is most of a tick away.
    std::thread::sleep(tick.mul_f64(0.3));
    let rss_open_kib = status_field(pid, "VmRSS")?;
    let streams_open = streams_or_why(port);
    let ticks_open_us = match offsets.as_slice() {
        [a, b] => since_due(&log, *a, *b)?,
        _ => Vec::new(),
    };
    eprintln!(
        "xtask: stream n={n}: ours {:.2} µs CPU per delivery ({} samples × {} subscribers, \
         {:.1} ms CPU by schedstat, {:.0} ms by ticks)",
        fanout.us_per_delivery(),
        fanout.samples,
        fanout.served,
        fanout.cpu_ns as f64 / 1e6,
        fanout.cpu_ticks_ns as f64 / 1e6
    );
    drop(harness);
    drop(servers);
    Ok(OursRun {
        capture,
        fanout,
        idle_us_per_tick,
        rss_none_kib,
        rss_open_kib,
        streams_open,
        ticks_none_us,
        ticks_open_us,
        steal_none_ms,
        steal_open_ms,
    })
}

/// `/health`'s `streams` as `open/max`.
fn streams_open(port: u16) -> anyhow::Result<String> {
    let (_, body) = http_get(port, "/health", Duration::from_secs(2))?;
    let text = String::from_utf8_lossy(&body);
    let number = |key: &str| -> Option<u64> {
        let at = text.find("\"streams\":")?;
        let rest = &text[at..];
        let i = rest.find(key)? + key.len();
        rest[i..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    match (number("\"open\":"), number("\"max\":")) {
        (Some(open), Some(max)) => Ok(format!("{open}/{max}")),
        _ => bail!("no streams in /health"),
    }
}

/// [`streams_open`], or why `/health` gave none (with every connection permit taken by
/// streams, the service accepts no other connection).
fn streams_or_why(port: u16) -> String {
    streams_open(port).unwrap_or_else(|e| format!("no answer ({e})"))
}

fn log_len(log: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(log)
        .with_context(|| format!("reading {}", log.display()))?
        .len())
}

/// The `since_due_us=` values of the tick lines written between two offsets of the log, µs.
fn since_due(log: &Path, from: u64, to: u64) -> anyhow::Result<Vec<f64>> {
    let bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let to = usize::try_from(to).unwrap_or(usize::MAX).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[from..to.max(from)]);
    Ok(parse_since_due(&text))
}

fn parse_since_due(text: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.contains("tick published"))
        .filter_map(|l| {
            let at = l.find("since_due_us=")? + "since_due_us=".len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Reads a real stream's first bytes: the head, the chunks up to the first event, and one
/// later event's chunk. Bounded by three ticks and some.
fn capture(port: u16, tick: Duration) -> anyhow::Result<Capture> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .context("connecting to capture a stream")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    write!(
        socket,
        "GET /metrics/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let deadline = Instant::now() + tick * 3 + Duration::from_secs(5);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(capture) = split_capture(&bytes)? {
            return Ok(capture);
        }
        if Instant::now() > deadline {
            bail!(
                "no second event within {:?}; got {:?}",
                tick * 3,
                String::from_utf8_lossy(&bytes)
            );
        }
        match socket.read(&mut chunk) {
            Ok(0) => bail!("the stream closed while capturing"),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("reading the captured stream"),
        }
    }
}

/// Splits a chunked SSE response into prologue and one later event, once it holds two
/// events.
fn split_capture(bytes: &[u8]) -> anyhow::Result<Option<Capture>> {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    if !bytes.starts_with(b"HTTP/1.1 200") {
        bail!(
            "the stream answered {:?}",
            String::from_utf8_lossy(&bytes[..head_end])
        );
    }
    let mut at = head_end + 4;
    let mut prologue_end = None;
    while let Some(line) = bytes[at..].windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&bytes[at..at + line]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        let data = at + line + 2;
        let end = data + size + 2;
        if size == 0 || end > bytes.len() {
            return Ok(None);
        }
        let is_event = bytes[data..data + size].windows(4).any(|w| w == b"id: ");
        if is_event {
            match prologue_end {
                None => prologue_end = Some(end),
                Some(p) => {
                    return Ok(Some(Capture {
                        prologue: bytes[..p].to_vec(),
                        event: bytes[at..end].to_vec(),
                    }));
                }
            }
        }
        at = end;
    }
    Ok(None)
}

// --- the floor ----------------------------------------------------------------------------

/// The floor server child; stopped on drop.
#[derive(Debug)]
struct FloorServer(Child);

impl Drop for FloorServer {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

#[derive(Debug)]
struct FloorRun {
    fanout: Fanout,
}

fn measure_floor(
    n: usize,
    options: &Options,
    capture: &Capture,
    dir: &Path,
) -> anyhow::Result<FloorRun> {
    if n == 0 {
        bail!("ours served no subscriber: no floor to compare with");
    }
    let prologue = dir.join("floor-prologue.bin");
    let event = dir.join("floor-event.bin");
    std::fs::write(&prologue, &capture.prologue)
        .with_context(|| format!("writing {}", prologue.display()))?;
    std::fs::write(&event, &capture.event)
        .with_context(|| format!("writing {}", event.display()))?;
    let ready = dir.join("floor.ready");
    let _ = std::fs::remove_file(&ready);
    let port = free_port()?;
    let log = dir.join("floor.log");
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let exe = std::env::current_exe().context("finding this xtask binary")?;
    let child = Command::new(&exe)
        .args(["bench", "stream", "--floor-server"])
        .arg(dir)
        .args([
            port.to_string(),
            options.interval.clone(),
            FLOOR_LIFETIME_SECS.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {} --floor-server", exe.display()))?;
    let mut floor = FloorServer(child);
    let pid = floor.0.id();
    util::wait_for(
        "the floor server to listen",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            if let Some(status) = floor.0.try_wait()? {
                bail!("the floor server exited ({status}): {}", super::tail(&log));
            }
            Ok(ready.exists())
        },
    )?;
    eprintln!("xtask: stream n={n}: floor (pid {pid}) on port {port}, opening {n} connections");
    let mut harness = Harness::new()?;
    let connect = harness.open(port, n)?;
    let fanout = measure_window(&harness, pid, options, n, connect, || {})?;
    eprintln!(
        "xtask: stream n={n}: floor {:.2} µs CPU per delivery ({} samples × {} subscribers)",
        fanout.us_per_delivery(),
        fanout.samples,
        fanout.served
    );
    drop(harness);
    drop(floor);
    Ok(FloorRun { fanout })
}

/// The hidden `--floor-server DIR PORT INTERVAL LIFETIME` mode: accepts connections on
/// 127.0.0.1:PORT (one thread, blocking), sends each `DIR/floor-prologue.bin`, and every
/// INTERVAL seconds writes `DIR/floor-event.bin` (its id set to now, Unix ms) to every
/// socket in one loop. Exits after LIFETIME seconds.
fn floor_server(args: &[String]) -> anyhow::Result<()> {
    let [dir, port, interval, lifetime] = args else {
        bail!("usage: --floor-server DIR PORT INTERVAL LIFETIME_SECS");
    };
    let dir = PathBuf::from(dir);
    let port: u16 = port.parse().context("PORT")?;
    let interval = Duration::from_secs_f64(interval.parse().context("INTERVAL")?);
    let lifetime = Duration::from_secs(lifetime.parse().context("LIFETIME_SECS")?);
    let prologue = std::fs::read(dir.join("floor-prologue.bin")).context("floor-prologue.bin")?;
    let template = std::fs::read(dir.join("floor-event.bin")).context("floor-event.bin")?;
    let id_at = template
        .windows(4)
        .position(|w| w == b"id: ")
        .map(|i| i + 4)
        .context("no id in floor-event.bin")?;
    let id_len = template[id_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let accepted = Arc::clone(&sockets);
    std::thread::Builder::new()
        .name("floor-accept".to_owned())
        .spawn(move || {
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { continue };
                let _ = socket.set_nodelay(true);
                let _ = socket.set_write_timeout(Some(Duration::from_secs(2)));
                if socket.write_all(&prologue).is_ok()
                    && let Ok(mut all) = accepted.lock()
                {
                    all.push(socket);
                }
            }
        })
        .context("starting the accept thread")?;
    std::fs::write(dir.join("floor.ready"), b"").context("writing floor.ready")?;

    let started = Instant::now();
    let mut event = template.clone();
    let mut next = started + interval;
    while started.elapsed() < lifetime {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += interval;
        let ms = now_us() / 1000;
        let id = format!("{ms:0id_len$}");
        if id.len() == id_len {
            event[id_at..id_at + id_len].copy_from_slice(id.as_bytes());
        }
        let mut all = sockets
            .lock()
            .map_err(|_| anyhow::anyhow!("the sockets lock is poisoned"))?;
        all.retain_mut(|socket| socket.write_all(&event).is_ok());
    }
    Ok(())
}

// --- /metrics/history ---------------------------------------------------------------------

#[derive(Debug)]
struct History {
    metrics_rps: Vec<f64>,
    history_rps: Vec<f64>,
    non_2xx: u64,
    socket_errors: u64,
    metrics_bytes: usize,
    history_bytes: usize,
}

fn measure_history(bin: &Path, dir: &Path) -> anyhow::Result<History> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut servers = Servers::default();
    let port = free_port()?;
    let started = Instant::now();
    let mut command = service(bin, port, HISTORY_INTERVAL, 1024, "warn");
    command.current_dir(dir);
    servers.start("ours", command, port, dir)?;
    servers.0[0].wait_ready()?;
    std::thread::sleep(HISTORY_RUNNING_BEFORE.saturating_sub(started.elapsed()));
    let (code_m, metrics) = http_get(port, "/metrics", Duration::from_secs(2))?;
    let (code_h, history) = http_get(port, "/metrics/history", Duration::from_secs(5))?;
    if code_m != 200 || code_h != 200 {
        bail!("/metrics answered {code_m}, /metrics/history {code_h}");
    }
    eprintln!(
        "xtask: history: /metrics {} B, /metrics/history {} B",
        metrics.len(),
        history.len()
    );
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let d = format!("-d{HISTORY_WRK_SECS}s");
    wrk(
        dir,
        "metrics.warm",
        &["-t2", "-c64", "-d2s"],
        &url("/metrics"),
    )?;
    wrk(
        dir,
        "history.warm",
        &["-t2", "-c64", "-d2s"],
        &url("/metrics/history"),
    )?;
    let mut result = History {
        metrics_rps: Vec::new(),
        history_rps: Vec::new(),
        non_2xx: 0,
        socket_errors: 0,
        metrics_bytes: metrics.len(),
        history_bytes: history.len(),
    };
    for round in 1..=HISTORY_ROUNDS {
        for (name, path) in [("metrics", "/metrics"), ("history", "/metrics/history")] {
            let w = wrk(
                dir,
                &format!("{name}.r{round}"),
                &["-t2", "-c64", &d, "--latency"],
                &url(path),
            )?;
            eprintln!(
                "xtask: history: {path} round {round}: {:.0} req/s",
                w.rps_2xx
            );
            result.non_2xx += w.non_2xx;
            result.socket_errors += w.socket_errors;
            match name {
                "metrics" => result.metrics_rps.push(w.rps_2xx),
                _ => result.history_rps.push(w.rps_2xx),
            }
        }
    }
    drop(servers);
    Ok(result)
}

// --- the report ---------------------------------------------------------------------------

#[derive(Debug)]
struct Run {
    n: usize,
    ours: OursRun,
    floor: FloorRun,
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn report(options: &Options, runs: &[Run], history: &History) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "**MISSED**" };
    let mut s = String::new();
    let _ = writeln!(s, "{}", machine());
    let _ = writeln!(
        s,
        "stream fan-out: METRICS_INTERVAL_LIVE={iv}, {k} samples per window, \
         RUST_LOG=info,sampler=debug, no database; clients: this process, a 2-worker tokio \
         runtime, connections opened in batches of {BATCH}; floor: a one-thread blocking TCP \
         server (a child of xtask) writing the captured event bytes to each socket in one loop; \
         CPU by schedstat (ns)\n",
        iv = options.interval,
        k = options.samples,
    );

    s.push_str("**1. CPU per sample delivered** (service CPU over the window / (samples × subscribers))\n\n");
    s.push_str(
        "| subscribers | served ours / floor | event bytes | ours CPU ms per sample | ours µs / delivery | \
         floor µs / delivery | ours / floor | ours idle tick µs (no streams) | goal ≤ 1.5× |\n",
    );
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in runs {
        let (o, f) = (&r.ours.fanout, &r.floor.fanout);
        let ratio = o.us_per_delivery() / f.us_per_delivery();
        let _ = writeln!(
            s,
            "| {} | {} / {} | {} | {:.2} | {:.2} | {:.2} | {:.2}× | {:.0} | {} |",
            r.n,
            o.served,
            f.served,
            r.ours.capture.event.len(),
            o.cpu_ns as f64 / 1e6 / o.samples.max(1) as f64,
            o.us_per_delivery(),
            f.us_per_delivery(),
            ratio,
            r.ours.idle_us_per_tick,
            verdict(ratio <= GOAL_CPU_RATIO && o.served == r.n),
        );
    }

    s.push_str("\n**2. Delivery latency** (arrival − event id, every (subscriber, sample) pair in the window)\n\n");
    s.push_str(
        "| subscribers | pairs (missing) | ours p50 ms | ours p99 ms | ours max ms | floor p50 ms | \
         floor p99 ms | floor max ms | goal p99 ≤ 100 ms at 10,000 |\n",
    );
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in runs {
        let (o, f) = (&r.ours.fanout.latencies_ms, &r.floor.fanout.latencies_ms);
        let p99 = percentile(o, 99.0);
        let goal = if r.n == GOAL_AT {
            verdict(p99 <= GOAL_P99_LATENCY_MS && r.ours.fanout.served == r.n).to_owned()
        } else {
            "(n/a)".to_owned()
        };
        let _ = writeln!(
            s,
            "| {} | {} ({}) | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {goal} |",
            r.n,
            o.len(),
            r.ours.fanout.missing,
            percentile(o, 50.0),
            p99,
            o.last().copied().unwrap_or(f64::NAN),
            percentile(f, 50.0),
            percentile(f, 99.0),
            f.last().copied().unwrap_or(f64::NAN),
        );
    }

    s.push_str("\n**3. RSS per idle subscriber** (VmRSS with the streams open, between samples, − VmRSS before any was opened)\n\n");
    s.push_str(
        "| subscribers | /health streams | RSS none MiB | RSS open MiB | KiB per subscriber | goal ≤ 8 KiB |\n",
    );
    s.push_str("|---:|---:|---:|---:|---:|---|\n");
    for r in runs {
        let served = r.ours.fanout.served.max(1) as f64;
        let per = (r.ours.rss_open_kib as f64 - r.ours.rss_none_kib as f64) / served;
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.2} | {} |",
            r.n,
            r.ours.streams_open,
            r.ours.rss_none_kib as f64 / 1024.0,
            r.ours.rss_open_kib as f64 / 1024.0,
            per,
            verdict(per <= GOAL_RSS_PER_SUB_KIB && r.ours.fanout.served == r.n),
        );
    }

    s.push_str("\n**4. Tick-to-publish** (`since_due_us` of the service's own tick lines; the window with none open, then the measured window)\n\n");
    s.push_str(
        "| subscribers | ticks none / open | none p50 µs | none p99 µs | open p50 µs | open p99 µs | \
         p99 open / none | steal ms none / open | goal ≤ 1.1× at 10,000 |\n",
    );
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in runs {
        let (none, open) = (sorted(&r.ours.ticks_none_us), sorted(&r.ours.ticks_open_us));
        let ratio = percentile(&open, 99.0) / percentile(&none, 99.0);
        let goal = if r.n == GOAL_AT {
            verdict(ratio <= GOAL_TICK_P99_RATIO && r.ours.fanout.served == r.n).to_owned()
        } else {
            "(n/a)".to_owned()
        };
        let _ = writeln!(
            s,
            "| {} | {} / {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× | {:.0} / {:.0} | {goal} |",
            r.n,
            none.len(),
            open.len(),
            percentile(&none, 50.0),
            percentile(&none, 99.0),
            percentile(&open, 50.0),
            percentile(&open, 99.0),
            ratio,
            r.ours.steal_none_ms,
            r.ours.steal_open_ms,
        );
    }

    let m = median(history.metrics_rps.iter().copied());
    let h = median(history.history_rps.iter().copied());
    let rounds = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "\n**5. History req/s** (`wrk -t2 -c64 -d{HISTORY_WRK_SECS}s`, one service at \
         METRICS_INTERVAL_LIVE={HISTORY_INTERVAL}, no database, after {} s running, {HISTORY_ROUNDS} \
         rounds alternating after a 2 s warm-up each; medians)\n",
        HISTORY_RUNNING_BEFORE.as_secs()
    );
    s.push_str("| path | body bytes | req/s (2xx) median | rounds | \n|---|---:|---:|---|\n");
    let _ = writeln!(
        s,
        "| /metrics | {} | {m:.0} | {} |",
        history.metrics_bytes,
        rounds(&history.metrics_rps)
    );
    let _ = writeln!(
        s,
        "| /metrics/history | {} | {h:.0} | {} |",
        history.history_bytes,
        rounds(&history.history_rps)
    );
    let _ = writeln!(
        s,
        "\nhistory / metrics: {:.2}× (goal ≥ {GOAL_HISTORY_RATIO}×: {}); non-2xx {}, socket errors {}",
        h / m,
        verdict(h / m >= GOAL_HISTORY_RATIO),
        history.non_2xx,
        history.socket_errors
    );

    let notes: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            [("ours", &r.ours.fanout), ("floor", &r.floor.fanout)]
                .into_iter()
                .filter(|(_, f)| f.served < f.requested || !f.failures.is_empty())
                .map(move |(who, f)| {
                    format!(
                        "- n={}: {who} served {} of {} subscribers (connect phase {:.1} s); \
                         the others: {}",
                        r.n,
                        f.served,
                        f.requested,
                        f.connect_s,
                        if f.failures.is_empty() {
                            "none".to_owned()
                        } else {
                            f.failures.clone()
                        }
                    )
                })
        })
        .collect();
    let details: Vec<String> = runs
        .iter()
        .map(|r| {
            let (o, f) = (&r.ours.fanout, &r.floor.fanout);
            format!(
                "- n={}: ours window {:.1} s, CPU {:.1} ms by schedstat ({:.0} ms by ticks); floor \
                 window {:.1} s, CPU {:.1} ms ({:.0} ms by ticks); connect phase ours {:.1} s, \
                 floor {:.1} s",
                r.n,
                o.window_s,
                o.cpu_ns as f64 / 1e6,
                o.cpu_ticks_ns as f64 / 1e6,
                f.window_s,
                f.cpu_ns as f64 / 1e6,
                f.cpu_ticks_ns as f64 / 1e6,
                o.connect_s,
                f.connect_s,
            )
        })
        .collect();
    let _ = writeln!(s, "\nwindows:\n{}", details.join("\n"));
    if !notes.is_empty() {
        let _ = writeln!(
            s,
            "\nnot every subscriber was served (a goal is marked missed where ours did not serve \
             all):\n{}",
            notes.join("\n")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_chunked_stream() {
        let ev1 = "id: 1000000000001\ndata: {}\n\n";
        let ev2 = "id: 1000000000002\ndata: {}\n\n";
        let text = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nd\r\nretry: 5000\n\n\r\n{:x}\r\n{ev1}\r\n{:x}\r\n{ev2}\r\n",
            ev1.len(),
            ev2.len()
        );
        let c = split_capture(text.as_bytes()).unwrap().unwrap();
        assert!(c.prologue.ends_with(format!("{ev1}\r\n").as_bytes()));
        assert_eq!(c.event, format!("{:x}\r\n{ev2}\r\n", ev2.len()).as_bytes());
        assert!(
            split_capture(&text.as_bytes()[..text.len() - 3])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn percentiles_and_ticks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert!(percentile(&[], 50.0).is_nan());
        let log = "x DEBUG sampler::schedule: tick published since_due_us=123\nother\n\
                   y DEBUG sampler::schedule: tick published since_due_us=7\n";
        assert_eq!(parse_since_due(log), vec![123.0, 7.0]);
    }

    #[test]
    fn flags() {
        let args: Vec<String> = ["--subscribers", "100,200", "--samples=5"]
            .map(String::from)
            .to_vec();
        let o = parse_args(&args).unwrap().unwrap();
        assert_eq!((o.subscribers, o.samples), (vec![100, 200], 5));
        assert!(parse_args(&["--interval".into(), "0.01".into()]).is_err());
    }
}
