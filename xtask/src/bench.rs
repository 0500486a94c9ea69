//! `cargo xtask bench`: our service against a bare hyper server, same load, same run.
//!
//! Builds both in release (`metrics-collector`, and `api`'s `bare_server` example), starts
//! them on free loopback ports, and measures each the same way: idle RSS and idle CPU over
//! a quiet window (both idle at once), then `wrk -t2 -c64` and `wrk -t1 -c1` on `/metrics`
//! after a 2 s warm-up, with the server's CPU time per request and its RSS after load.
//! `--rounds N` repeats the load part N times, alternating which server goes first, and
//! reports medians: on a noisy 2-core VM one round can be off by 20 %.
//! Prints a markdown table with the ratios ours / baseline and the goals.
//!
//! Then (`--hang-secs`, default 120; 0 skips it) the cost of a hang that is over: our
//! service with its disk on a FUSE mount, idle before the mount hangs and again after it
//! comes back (`bench/hang.rs`), beside the raw-read floor in each window.
//!
//! `--scrape` measures what a Prometheus scrape costs instead: every request carries
//! Prometheus 3.x's `Accept` (so ours answers OpenMetrics) and the baseline serves a copy of
//! our OpenMetrics body, of the same size, fixed.
//!
//! `cargo xtask bench stream` (`bench/stream.rs`) measures `/metrics/stream` fan-out instead:
//! CPU per delivered sample, latency and RSS per subscriber beside a bare-socket floor.
//!
//! `cargo xtask bench fleet` (`bench/fleet.rs`) measures one PostgreSQL serving a simulated
//! fleet of collectors instead: window commit latency, throughput and what bounds it.
//!
//! `cargo xtask bench fuzz` (`bench/fuzz.rs`) plays the HTTP fuzzer's cases against a release
//! build instead: cases per second, the answers, problems, and `/metrics` latency meanwhile.
//!
//! Both servers are stopped by PID at the end, also on error (a guard's `Drop`). Every wait
//! is bounded in time. Raw `wrk` outputs and server logs stay in `<target>/bench/<time>/`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::util::{self, cargo};

mod fleet;
mod fuzz;
mod hang;
mod stream;

const USAGE: &str =
    "usage: cargo xtask bench [--idle-secs N] [--duration N] [--rounds N] [--interval S]
  --idle-secs N   idle window for RSS and CPU, seconds (default 180: three minutes of ticks, because
                  this kind of VM's floor moves by half from one minute to the next)
  --duration N    seconds of the measured wrk -c64 run (default 10; the c1 run is min(N, 5))
  --rounds N      load rounds per server, order alternating, medians reported (default 3)
  --interval S    METRICS_INTERVAL_LIVE of the service, seconds (default 5)
  --hang-secs N   each idle window before and after a released hang, seconds (default 120;
                  0 skips that part; needs bindfs)
  --scrape        every request sends Prometheus' Accept; the baseline serves our OpenMetrics
                  body, fixed
       cargo xtask bench stream [--subscribers N,N] [--samples N] [--interval S]
                  stream fan-out instead (see `cargo xtask bench stream --help`)
       cargo xtask bench fuzz [--cases N] [--seed S] [--workers N]
                  the HTTP fuzzer's cases against a release build (see `--help`)
       cargo xtask bench fleet [--collectors N] [--interval S] [--minutes M]
                  one durable PostgreSQL behind PgBouncer serving N simulated collectors
                  (the real store code) (see `--help`)";

/// How long a server may take to answer its first 200.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Pause between both servers being ready and the idle window.
const SETTLE: Duration = Duration::from_secs(5);
/// Unmeasured `wrk -c64` run before each measured one.
const WARM_UP_SECS: u64 = 2;
/// How long a stopped server may take to exit on SIGTERM before it gets SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// The goals.
const GOAL_RPS_RATIO: f64 = 0.9;
const GOAL_P99_RATIO: f64 = 1.1;
const GOAL_IDLE_RSS_MIB: f64 = 8.0;
const GOAL_IDLE_CPU_MS_PER_MIN: f64 = 3.0;

#[derive(Debug)]
struct Options {
    idle_secs: u64,
    duration: u64,
    interval: String,
    rounds: usize,
    hang_secs: u64,
    /// Requests send Prometheus' `Accept`; the baseline serves our OpenMetrics body.
    scrape: bool,
}

/// What a Prometheus 3.x server sends with its default settings.
pub(crate) const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Options {
    /// The header lines every request sends.
    fn headers(&self) -> Vec<String> {
        if self.scrape {
            vec![format!("Accept: {PROMETHEUS_ACCEPT}")]
        } else {
            Vec::new()
        }
    }
}

fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        idle_secs: 180,
        duration: 10,
        interval: "5".to_owned(),
        rounds: 3,
        hang_secs: 120,
        scrape: false,
    };
    let go_on = each_flag(args, USAGE, |flag, value| {
        let seconds = |v: String| -> anyhow::Result<u64> {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{flag} {v:?}: expected whole seconds > 0"),
            }
        };
        match flag {
            "--scrape" => options.scrape = true,
            "--idle-secs" => options.idle_secs = seconds(value()?)?,
            "--duration" => options.duration = seconds(value()?)?,
            "--hang-secs" => {
                let v = value()?;
                options.hang_secs = v
                    .parse()
                    .with_context(|| format!("--hang-secs {v:?}: expected whole seconds"))?;
            }
            "--rounds" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(n) if (1..=20).contains(&n) => options.rounds = n,
                    _ => bail!("--rounds {v:?}: expected 1 to 20"),
                }
            }
            "--interval" => {
                let v = value()?;
                match v.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => options.interval = v,
                    _ => bail!("--interval {v:?}: expected seconds > 0"),
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

/// Walks `--flag value` and `--flag=value` arguments, handing each flag to `each` with a
/// way to take its value. `Ok(false)` when `-h`/`--help` was given (`usage` printed).
pub(crate) fn each_flag(
    args: &[String],
    usage: &str,
    mut each: impl FnMut(&str, &mut dyn FnMut() -> anyhow::Result<String>) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        if matches!(flag, "-h" | "--help") {
            eprintln!("{usage}");
            return Ok(false);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .with_context(|| format!("{flag} needs a value\n{usage}"))
        };
        each(flag, &mut value)?;
    }
    Ok(true)
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().map(String::as_str) == Some("stream") {
        return stream::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("fuzz") {
        return fuzz::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("fleet") {
        return fleet::run(&args[1..]);
    }
    let Some(options) = parse_args(args)? else {
        return Ok(());
    };
    util::ensure_tool("wrk", "wrk")?;

    eprintln!("xtask: building release binaries");
    util::run(cargo().args(["build", "--release", "-p", "metrics-collector"]))?;
    util::run(cargo().args([
        "build",
        "--release",
        "--example",
        "bare_server",
        "-p",
        "api",
    ]))?;
    util::run(cargo().args([
        "build",
        "--release",
        "--example",
        "raw_floor",
        "-p",
        "probes",
    ]))?;
    let target = target_dir()?;
    let ours_bin = target.join("release/metrics-collector");
    let bare_bin = target.join("release/examples/bare_server");
    let floor_bin = target.join("release/examples/raw_floor");
    for bin in [&ours_bin, &bare_bin, &floor_bin] {
        if !bin.is_file() {
            bail!("{} was not built where expected", bin.display());
        }
    }
    let out = target.join("bench").join(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
    );
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let clk_tck = clock_ticks_per_second();

    // Started in this order, stopped by the guard whatever happens below.
    let mut servers = Servers::default();
    let ours_port = free_port()?;
    let mut ours = Command::new(&ours_bin);
    ours.env("METRICS_LISTEN", format!("127.0.0.1:{ours_port}"))
        .env("POSTGRES_HOST", "")
        .env("METRICS_INTERVAL_LIVE", &options.interval)
        .env("RUST_LOG", "warn")
        // A fresh folder: no developer's `.env` changes what is measured.
        .current_dir(&out);
    servers.start("ours", ours, ours_port, &out)?;
    let ours_ready_ms = servers.0[0].wait_ready()?;
    let bare_port = free_port()?;
    let mut bare = Command::new(&bare_bin);
    bare.arg(format!("127.0.0.1:{bare_port}")).current_dir(&out);
    if options.scrape {
        // The baseline's fixed body: our OpenMetrics body as a scrape gets it now.
        let (_, body) = http_get_with(
            ours_port,
            "/metrics",
            &options.headers(),
            Duration::from_secs(2),
        )?;
        let file = out.join("openmetrics.body");
        std::fs::write(&file, &body).with_context(|| format!("writing {}", file.display()))?;
        bare.arg(&file).arg(OPENMETRICS);
    }
    servers.start("baseline", bare, bare_port, &out)?;

    let mut ready_ms = Vec::new();
    let mut body_bytes = Vec::new();
    for server in &mut servers.0 {
        let ms = match server.name {
            "ours" => ours_ready_ms,
            _ => server.wait_ready()?,
        };
        let (_, body) = http_get_with(
            server.port,
            "/metrics",
            &options.headers(),
            Duration::from_secs(2),
        )?;
        eprintln!(
            "xtask: {} (pid {}) answers 200 on 127.0.0.1:{} after {ms} ms ({} byte body)",
            server.name,
            server.child.id(),
            server.port,
            body.len()
        );
        ready_ms.push(ms);
        body_bytes.push(body.len());
    }

    // The idle floor: the raw reads of a sample on the same schedule, in the same window.
    let floor = Floor::start(&floor_bin, &options.interval)?;

    // Idle: all at once, nothing requesting.
    std::thread::sleep(SETTLE);
    let idle = Duration::from_secs(options.idle_secs);
    eprintln!(
        "xtask: idle window {} s (nothing requesting)",
        options.idle_secs
    );
    let before: Vec<_> = servers
        .0
        .iter()
        .map(|s| Ok((cpu_ticks(s.pid())?, sched_ns(s.pid())?)))
        .collect::<anyhow::Result<_>>()?;
    let floor_before: u64 = sched_ns(floor.0.id())?.values().sum();
    let ticks = watch_ticks(&[servers.0[0].pid(), floor.0.id()], idle)?;
    let floor_ns = sched_ns(floor.0.id())?
        .values()
        .sum::<u64>()
        .saturating_sub(floor_before);
    let floor_ms_per_min = floor_ns as f64 / 1e6 * 60.0 / idle.as_secs_f64();
    drop(floor);
    let mut idles = Vec::new();
    for (server, (ticks0, sched0)) in servers.0.iter().zip(before) {
        let pid = server.pid();
        let ticks = cpu_ticks(pid)?.saturating_sub(ticks0);
        let sched1 = sched_ns(pid)?;
        eprintln!(
            "xtask: {} idle, by thread: {}",
            server.name,
            by_thread(pid, &sched0, &sched1)
        );
        // Threads alive at the end; one born during the window counts from 0. Threads that
        // exited during the window are missing here (they are in the tick figure).
        let ns: u64 = sched1
            .iter()
            .map(|(tid, end)| end.saturating_sub(sched0.get(tid).copied().unwrap_or(0)))
            .sum();
        let exited = sched0
            .keys()
            .filter(|tid| !sched1.contains_key(tid))
            .count();
        let per_min = 60.0 / idle.as_secs_f64();
        idles.push(Idle {
            exited_threads: exited,
            rss_kib: status_field(pid, "VmRSS")?,
            threads: status_field(pid, "Threads")?,
            cpu_ms_per_min_ticks: ticks as f64 * 1000.0 / clk_tck * per_min,
            cpu_ms_per_min_sched: ns as f64 / 1e6 * per_min,
        });
    }

    // Load: one server at a time, the other one idle. With several rounds the order
    // alternates (ours first, then the baseline first, ...) and medians are reported.
    let c1_secs = options.duration.min(5);
    let mut rounds: [Vec<Load>; 2] = [Vec::new(), Vec::new()];
    for round in 0..options.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let load = measure_load(&servers.0[i], round, &options, c1_secs, clk_tck, &out)?;
            rounds[i].push(load);
        }
    }
    let [ours_rounds, bare_rounds] = rounds;
    let per_round: Vec<f64> = ours_rounds
        .iter()
        .zip(&bare_rounds)
        .map(|(o, b)| o.c64.rps_2xx / b.c64.rps_2xx)
        .collect();
    let loads = [Load::median(&ours_rounds)?, Load::median(&bare_rounds)?];
    drop(servers);

    let figures: Vec<Figures> = ["ours (metrics-collector)", "baseline (bare hyper)"]
        .into_iter()
        .zip(idles)
        .zip(loads)
        .zip(ready_ms.into_iter().zip(body_bytes))
        .map(|(((name, idle), load), (ready_ms, body_bytes))| Figures {
            name,
            idle,
            load,
            ready_ms,
            body_bytes,
        })
        .collect();
    let [ours, bare] = figures.as_slice() else {
        bail!("expected figures for two servers");
    };
    let mut report = report(&options, c1_secs, ours, bare, &per_round, floor_ms_per_min);
    report.push_str(&typical_ticks(&options, &ticks));
    if options.hang_secs > 0 {
        let hang = hang::measure(&options, &ours_bin, &floor_bin, &out)?;
        report.push_str(&hang.report(&options));
    }
    std::fs::write(out.join("table.md"), &report)
        .with_context(|| format!("writing {}", out.join("table.md").display()))?;
    print_report(&report);
    eprintln!(
        "xtask: raw wrk outputs and server logs in {}",
        out.display()
    );
    Ok(())
}

/// The table is the command's output, meant to be redirected into a file or pasted into
/// docs/BENCHMARKS.md; progress goes to stderr.
#[allow(clippy::print_stdout)]
pub(crate) fn print_report(report: &str) {
    print!("{report}");
}

#[derive(Debug)]
struct Idle {
    rss_kib: u64,
    threads: u64,
    cpu_ms_per_min_ticks: f64,
    /// Threads that ended during the window: their time is only in the tick figure.
    exited_threads: usize,
    cpu_ms_per_min_sched: f64,
}

#[derive(Debug)]
struct Load {
    c64: Wrk,
    c1: Wrk,
    cpu_us_per_request: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

impl Load {
    /// The median of each figure over rounds; error counts summed; RSS after the last
    /// round, peak RSS the highest.
    fn median(rounds: &[Load]) -> anyhow::Result<Load> {
        let last = rounds.last().context("no load round ran")?;
        let wrk = |pick: fn(&Load) -> &Wrk| Wrk {
            requests: rounds.iter().map(|r| pick(r).requests).sum(),
            rps_2xx: median(rounds.iter().map(|r| pick(r).rps_2xx)),
            p50_us: median(rounds.iter().map(|r| pick(r).p50_us)),
            p99_us: median(rounds.iter().map(|r| pick(r).p99_us)),
            non_2xx: rounds.iter().map(|r| pick(r).non_2xx).sum(),
            socket_errors: rounds.iter().map(|r| pick(r).socket_errors).sum(),
        };
        Ok(Load {
            c64: wrk(|r| &r.c64),
            c1: wrk(|r| &r.c1),
            cpu_us_per_request: median(rounds.iter().map(|r| r.cpu_us_per_request)),
            rss_kib: last.rss_kib,
            hwm_kib: rounds.iter().map(|r| r.hwm_kib).max().unwrap_or(0),
        })
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One round on one server: warm-up, `wrk -c64` with the server's CPU time read around
/// it, then `wrk -c1`.
fn measure_load(
    server: &Server,
    round: usize,
    options: &Options,
    c1_secs: u64,
    clk_tck: f64,
    out: &Path,
) -> anyhow::Result<Load> {
    let pid = server.pid();
    let url = format!("http://127.0.0.1:{}/metrics", server.port);
    let tag = format!("{}.r{}", server.name, round + 1);
    let warm = format!("-d{WARM_UP_SECS}s");
    let headers: Vec<String> = options.headers();
    let with_headers = |args: &[&'static str], d: &str| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.push(d.to_owned());
        for h in &headers {
            all.push("-H".to_owned());
            all.push(h.clone());
        }
        all
    };
    wrk(
        out,
        &format!("{tag}.warm"),
        &with_headers(&["-t2", "-c64"], &warm),
        &url,
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let d64 = format!("-d{}s", options.duration);
    let ticks0 = cpu_ticks(pid)?;
    let c64 = wrk(
        out,
        &format!("{tag}.c64"),
        &with_headers(&["-t2", "-c64", "--latency"], &d64),
        &url,
    )?;
    let ticks = cpu_ticks(pid)?.saturating_sub(ticks0);
    std::thread::sleep(Duration::from_secs(1));
    let d1 = format!("-d{c1_secs}s");
    let c1 = wrk(
        out,
        &format!("{tag}.c1"),
        &with_headers(&["-t1", "-c1", "--latency"], &d1),
        &url,
    )?;
    let cpu_us_per_request = if c64.requests > 0 {
        ticks as f64 * 1e6 / clk_tck / c64.requests as f64
    } else {
        f64::NAN
    };
    eprintln!(
        "xtask: {tag}: c64 {:.0} req/s (2xx), p99 {}; c1 p50 {}",
        c64.rps_2xx,
        fmt_us(c64.p99_us),
        fmt_us(c1.p50_us)
    );
    Ok(Load {
        c64,
        c1,
        cpu_us_per_request,
        rss_kib: status_field(pid, "VmRSS")?,
        hwm_kib: status_field(pid, "VmHWM")?,
    })
}

#[derive(Debug)]
struct Figures {
    name: &'static str,
    idle: Idle,
    load: Load,
    ready_ms: u128,
    body_bytes: usize,
}

fn report(
    options: &Options,
    c1_secs: u64,
    ours: &Figures,
    bare: &Figures,
    per_round: &[f64],
    floor_ms_per_min: f64,
) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut s = String::new();
    let _ = writeln!(s, "{}", machine());
    let _ = writeln!(
        s,
        "load: `wrk -t2 -c64 -d{d}s --latency` and `wrk -t1 -c1 -d{c1_secs}s --latency` on /metrics \
         after `wrk -t2 -c64 -d{WARM_UP_SECS}s`{scrape}; idle window {i} s; METRICS_INTERVAL_LIVE={iv}; \
         {r} load round(s), order alternating{m}\n",
        scrape = if options.scrape {
            ", every request with Prometheus 3.x's Accept (the baseline serves our OpenMetrics body)"
        } else {
            ""
        },
        d = options.duration,
        i = options.idle_secs,
        iv = options.interval,
        r = options.rounds,
        m = if options.rounds > 1 {
            let ratios: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            format!(
                "; load figures are medians (error counts summed); req/s c64 ours / baseline per round: {}",
                ratios.join(", ")
            )
        } else {
            String::new()
        },
    );
    s.push_str(
        "| server | req/s c64 (2xx) | p50 c64 | p99 c64 | non-2xx c64 | socket errors c64 | \
         CPU µs/req c64 | req/s c1 | p50 c1 | p99 c1 | idle RSS MiB | idle CPU ms/min (ticks) | \
         idle CPU ms/min (schedstat) | threads idle | RSS after load MiB | peak RSS MiB | body B | start→200 ms |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for f in [ours, bare] {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {} | {} | {} | {:.1} | {:.0} | {} | {} | {:.1} | {:.1} | {:.2} | {} | {:.1} | {:.1} | {} | {} |",
            f.name,
            f.load.c64.rps_2xx,
            fmt_us(f.load.c64.p50_us),
            fmt_us(f.load.c64.p99_us),
            f.load.c64.non_2xx,
            f.load.c64.socket_errors,
            f.load.cpu_us_per_request,
            f.load.c1.rps_2xx,
            fmt_us(f.load.c1.p50_us),
            fmt_us(f.load.c1.p99_us),
            mib(f.idle.rss_kib),
            f.idle.cpu_ms_per_min_ticks,
            f.idle.cpu_ms_per_min_sched,
            f.idle.threads,
            mib(f.load.rss_kib),
            mib(f.load.hwm_kib),
            f.body_bytes,
            f.ready_ms,
        );
    }
    let ratio = |a: f64, b: f64| a / b;
    let _ = writeln!(
        s,
        "| ours / baseline | {:.2}× | {:.2}× | {:.2}× | | | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | | | | {:.2}× | {:.2}× | | |\n",
        ratio(ours.load.c64.rps_2xx, bare.load.c64.rps_2xx),
        ratio(ours.load.c64.p50_us, bare.load.c64.p50_us),
        ratio(ours.load.c64.p99_us, bare.load.c64.p99_us),
        ratio(ours.load.cpu_us_per_request, bare.load.cpu_us_per_request),
        ratio(ours.load.c1.rps_2xx, bare.load.c1.rps_2xx),
        ratio(ours.load.c1.p50_us, bare.load.c1.p50_us),
        ratio(ours.load.c1.p99_us, bare.load.c1.p99_us),
        ratio(ours.idle.rss_kib as f64, bare.idle.rss_kib as f64),
        ratio(ours.load.rss_kib as f64, bare.load.rss_kib as f64),
        ratio(ours.load.hwm_kib as f64, bare.load.hwm_kib as f64),
    );

    // Rounds are paired (ours and the baseline back to back, order alternating) and this
    // machine drifts by a third within a run: the median of the paired ratios is the
    // figure; the ratio of the two medians is in the table above.
    let rps = median(per_round.iter().copied());
    let p99 = ratio(ours.load.c64.p99_us, bare.load.c64.p99_us);
    let rss = mib(ours.idle.rss_kib);
    // schedstat is exact to the nanosecond; utime+stime counts whole 1/CLK_TCK s steps
    // (one 10 ms step lands on a 0.2 ms tick now and then), far too coarse for a 3 ms goal.
    // It is used only when a thread ended during the window and took its schedstat along.
    let cpu = if ours.idle.exited_threads == 0 {
        ours.idle.cpu_ms_per_min_sched
    } else {
        ours.idle
            .cpu_ms_per_min_sched
            .max(ours.idle.cpu_ms_per_min_ticks)
    };
    let at = if options.interval == "5" {
        String::new()
    } else {
        format!(
            " (goal is for a 5 s interval; measured at {} s)",
            options.interval
        )
    };
    let verdict = |ok: bool| if ok { "met" } else { "**MISSED**" };
    s.push_str("| goal | target | measured | |\n|---|---|---:|---|\n");
    let _ = writeln!(
        s,
        "| req/s at c64 | ≥ {GOAL_RPS_RATIO}× baseline (median of paired rounds) | {rps:.2}× | {} |",
        verdict(rps >= GOAL_RPS_RATIO)
    );
    let _ = writeln!(
        s,
        "| p99 at c64 | ≤ {GOAL_P99_RATIO}× baseline | {p99:.2}× | {} |",
        verdict(p99 <= GOAL_P99_RATIO)
    );
    let _ = writeln!(
        s,
        "| idle RSS | ≤ {GOAL_IDLE_RSS_MIB} MiB | {rss:.1} MiB | {} |",
        verdict(rss <= GOAL_IDLE_RSS_MIB)
    );
    let _ = writeln!(
        s,
        "| idle CPU | ≤ {GOAL_IDLE_CPU_MS_PER_MIN} ms/min{at} | {cpu:.2} ms/min | {} |",
        verdict(cpu <= GOAL_IDLE_CPU_MS_PER_MIN)
    );
    let _ = writeln!(
        s,
        "\nidle CPU floor in the same window (`raw_floor`: the raw reads of a sample, one thread, \
         same interval): {floor_ms_per_min:.2} ms/min; ours / floor: {:.2}×",
        cpu / floor_ms_per_min
    );
    s
}

/// How often the idle window looks at the processes' CPU time: far shorter than the
/// interval, far longer than a tick's work, so each tick's work lands in one look.
const TICK_WATCH: Duration = Duration::from_millis(50);

/// Watches `pids` for `window`, every [`TICK_WATCH`]; for each, the CPU time (ns) of every
/// look in which it ran: its ticks, one by one.
fn watch_ticks(pids: &[u32], window: Duration) -> anyhow::Result<Vec<Vec<u64>>> {
    let total = |pid: u32| -> anyhow::Result<u64> { Ok(sched_ns(pid)?.values().sum()) };
    let mut last: Vec<u64> = pids
        .iter()
        .map(|p| total(*p))
        .collect::<anyhow::Result<_>>()?;
    let mut ticks = vec![Vec::new(); pids.len()];
    let started = Instant::now();
    while started.elapsed() < window {
        std::thread::sleep(TICK_WATCH.min(window.saturating_sub(started.elapsed())));
        for (i, pid) in pids.iter().enumerate() {
            let now = total(*pid)?;
            // A thread that ended takes its time along: that look is not a tick's.
            if now > last[i] {
                ticks[i].push(now - last[i]);
            }
            last[i] = now;
        }
    }
    Ok(ticks)
}

/// The typical idle tick, ours and the floor's: the median of the looks in which each ran.
/// A tick the hypervisor stole time from (this VM's noise) moves the mean, not the median.
fn typical_ticks(options: &Options, ticks: &[Vec<u64>]) -> String {
    let (Some(ours), Some(floor)) = (ticks.first(), ticks.get(1)) else {
        return String::new();
    };
    let us = |v: &[u64]| median(v.iter().map(|ns| *ns as f64 / 1e3));
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / 1e3 / v.len().max(1) as f64;
    let per_min = 60.0 / options.interval.parse::<f64>().unwrap_or(5.0);
    format!(
        "\nidle ticks one by one (the window looked every {} ms): ours {} ticks, median {:.0} µs \
         (mean {:.0}), i.e. {:.2} ms/min at the median; the floor {} ticks, median {:.0} µs \
         (mean {:.0}), {:.2} ms/min\n",
        TICK_WATCH.as_millis(),
        ours.len(),
        us(ours),
        mean(ours),
        us(ours) * per_min / 1e3,
        floor.len(),
        us(floor),
        mean(floor),
        us(floor) * per_min / 1e3,
    )
}

/// The `raw_floor` process, killed when the measurement is over or fails.
struct Floor(Child);

impl Floor {
    /// The raw reads of a sample every `interval` seconds, as our service's ticks.
    fn start(bin: &Path, interval: &str) -> anyhow::Result<Self> {
        let child = Command::new(bin)
            .arg(interval)
            .stdin(Stdio::null())
            .spawn()
            .context("starting raw_floor")?;
        Ok(Self(child))
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Date, machine and tool versions, for the record.
pub(crate) fn machine() -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let wrk = Command::new("wrk")
        .arg("-v")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            let first = text.lines().next().unwrap_or("").to_owned();
            first
                .split(" Copyright")
                .next()
                .unwrap_or(&first)
                .to_owned()
        })
        .unwrap_or_default();
    format!(
        "date: {date}; machine: {cores} cores, {model}, Linux {}; {wrk}",
        kernel.trim()
    )
}

// --- the servers -------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    pub(crate) log: PathBuf,
}

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/metrics` until it answers 200; the time it took, in ms.
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<u128> {
        let started = Instant::now();
        let mut last = String::from("no answer");
        while started.elapsed() < READY_WITHIN {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited before answering ({status}); its log:\n{}",
                    self.name,
                    tail(&self.log)
                );
            }
            match http_get(self.port, "/metrics", Duration::from_secs(1)) {
                Ok((200, _)) => return Ok(started.elapsed().as_millis()),
                Ok((code, _)) => last = format!("HTTP {code}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not answer 200 within {} s (last: {last}); its log:\n{}",
            self.name,
            READY_WITHIN.as_secs(),
            tail(&self.log)
        )
    }
}

/// The servers this command started; dropping it stops each by PID.
#[derive(Debug, Default)]
pub(crate) struct Servers(pub(crate) Vec<Server>);

impl Servers {
    pub(crate) fn start(
        &mut self,
        name: &'static str,
        mut command: Command,
        port: u16,
        out: &Path,
    ) -> anyhow::Result<()> {
        let log = out.join(format!("{name}.server.log"));
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        self.0.push(Server {
            name,
            child,
            port,
            log,
        });
        Ok(())
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for server in &mut self.0 {
            stop(&mut server.child);
        }
    }
}

/// SIGTERM, then SIGKILL after [`STOP_WITHIN`]. The child is not reaped until it has
/// exited, so its PID cannot have been reused by another process.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_WITHIN;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A loopback port nobody listens on now (the kernel's pick).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One `GET` with `Connection: close`: the status and the body. Bounded by `timeout` per
/// step and by 2 × `timeout` overall.
pub(crate) fn http_get(port: u16, path: &str, timeout: Duration) -> anyhow::Result<(u16, Vec<u8>)> {
    http_get_with(port, path, &[], timeout)
}

/// `GET path` with these extra header lines (`Name: value`).
pub(crate) fn http_get_with(
    port: u16,
    path: &str,
    headers: &[String],
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
    )?;
    let deadline = Instant::now() + timeout * 2;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if Instant::now() > deadline {
            bail!("response from port {port} took longer than {timeout:?}");
        }
        match stream.read(&mut chunk)? {
            0 => break,
            n => response.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP/1.1 response: {:?}", text.lines().next()))?;
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| response[i + 4..].to_vec());
    Ok((status, body))
}

// --- /proc -------------------------------------------------------------------------------

pub(crate) fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `/proc/PID/stat` from field 3 on (index `i` is proc(5)'s field `i + 3`: 1 the ppid,
/// 11 and 12 utime and stime, 13 and 14 cutime and cstime), as numbers; a field that is
/// not one (the state) reads 0.
pub(crate) fn stat_fields(pid: u32) -> anyhow::Result<Vec<u64>> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Field 2 (comm) is in parentheses and may hold spaces: fields from 3 on follow ") ".
    let (_, rest) = stat
        .rsplit_once(") ")
        .with_context(|| format!("{path}: no command name"))?;
    Ok(rest
        .split_ascii_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

/// utime + stime of the whole process (every thread, dead ones included), in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let fields = stat_fields(pid)?;
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .copied()
            .with_context(|| format!("/proc/{pid}/stat: no field {}", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// Nanoseconds on CPU of each live thread (`/proc/PID/task/TID/schedstat`, first field).
pub(crate) fn sched_ns(pid: u32) -> anyhow::Result<HashMap<u32, u64>> {
    let dir = format!("/proc/{pid}/task");
    let mut times = HashMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread can exit between listing and reading: skip it.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
        {
            times.insert(tid, ns);
        }
    }
    Ok(times)
}

/// Where a window's CPU went, thread by thread (`probe 2.10 ms, probe-watchdog 0.00 ms,
/// ...`), for the log: the figure alone does not say which thread woke.
fn by_thread(pid: u32, before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> String {
    let mut rows: Vec<(u32, String, f64)> = after
        .iter()
        .map(|(tid, end)| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .map_or_else(|_| "?".to_owned(), |n| n.trim().to_owned());
            let ms = end.saturating_sub(before.get(tid).copied().unwrap_or(0)) as f64 / 1e6;
            (*tid, name, ms)
        })
        .collect();
    rows.sort_by_key(|(tid, _, _)| *tid);
    let gone = before.keys().filter(|t| !after.contains_key(t)).count();
    let mut text: Vec<String> = rows
        .into_iter()
        .map(|(tid, name, ms)| {
            let born = if before.contains_key(&tid) {
                ""
            } else {
                " (born)"
            };
            format!("{name} {ms:.2} ms{born}")
        })
        .collect();
    if gone > 0 {
        text.push(format!("{gone} thread(s) ended"));
    }
    text.join(", ")
}

/// A numeric field of `/proc/PID/status` (`VmRSS` in KiB, `Threads`).
pub(crate) fn status_field(pid: u32, key: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_ascii_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("{path}: no {key}"))
}

/// Where cargo puts build outputs (`CARGO_TARGET_DIR`, config or `<root>/target`).
pub(crate) fn target_dir() -> anyhow::Result<PathBuf> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let key = "\"target_directory\":\"";
    let start = text
        .find(key)
        .map(|i| i + key.len())
        .context("cargo metadata: no target_directory")?;
    let end = text[start..]
        .find('"')
        .context("cargo metadata: unterminated target_directory")?;
    Ok(PathBuf::from(
        text[start..start + end].replace("\\\\", "\\"),
    ))
}

// --- wrk ---------------------------------------------------------------------------------

/// What one `wrk` run gives.
#[derive(Debug, Default)]
struct Wrk {
    requests: u64,
    rps_2xx: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
    socket_errors: u64,
}

/// Runs `wrk ARGS URL` (output kept as `<out>/<tag>.wrk`), killing it if it runs 30 s past
/// its `-d`.
fn wrk<S: AsRef<str>>(out: &Path, tag: &str, args: &[S], url: &str) -> anyhow::Result<Wrk> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let secs: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("-d")?.strip_suffix('s')?.parse().ok())
        .unwrap_or(10);
    let path = out.join(format!("{tag}.wrk"));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    eprintln!("xtask: wrk {} {url}", args.join(" "));
    let mut child = Command::new("wrk")
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("starting wrk")?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "wrk ran 30 s past its duration; killed (output in {})",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&path)?;
    if !status.success() {
        bail!("wrk failed ({status}):\n{text}");
    }
    parse_wrk(&text).with_context(|| format!("parsing {}", path.display()))
}

fn parse_wrk(text: &str) -> anyhow::Result<Wrk> {
    let mut w = Wrk::default();
    let mut secs = None;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match words.as_slice() {
            // "123456 requests in 10.00s, 30.00MB read"
            [n, "requests", "in", d, ..] => {
                w.requests = n.parse().context("request count")?;
                secs = Some(duration_us(d.trim_end_matches(','))? / 1e6);
            }
            ["50%", v] => w.p50_us = duration_us(v)?,
            ["99%", v] => w.p99_us = duration_us(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => w.non_2xx = n.parse()?,
            // "Socket errors: connect 0, read 0, write 0, timeout 0"
            ["Socket", "errors:", rest @ ..] => {
                w.socket_errors = rest
                    .iter()
                    .filter_map(|v| v.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    let secs = secs.context("no \"requests in\" line")?;
    if secs <= 0.0 {
        bail!("wrk ran for {secs} s");
    }
    w.rps_2xx = w.requests.saturating_sub(w.non_2xx) as f64 / secs;
    Ok(w)
}

/// A wrk duration (`812.00us`, `1.20ms`, `10.00s`, `1.00m`) in microseconds.
fn duration_us(text: &str) -> anyhow::Result<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .with_context(|| format!("not a duration: {text:?}"))?;
    let factor = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => bail!("unknown unit in {text:?}"),
    };
    Ok(n * factor)
}

fn fmt_us(us: f64) -> String {
    if !us.is_finite() {
        "n/a".to_owned()
    } else if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:1/metrics
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  300.00us  12.00ms   90.00%
    Req/Sec    40.00k     2.00k   45.00k    70.00%
  Latency Distribution
     50%  750.00us
     75%    0.90ms
     90%    1.10ms
     99%    2.50ms
  800000 requests in 10.00s, 200.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 1000
Requests/sec:  80000.00
Transfer/sec:     20.00MB
";

    #[test]
    fn parses_wrk_output() {
        let w = parse_wrk(SAMPLE).unwrap();
        assert_eq!(w.requests, 800_000);
        assert_eq!(w.non_2xx, 1000);
        assert_eq!(w.socket_errors, 3);
        assert_eq!(w.p50_us, 750.0);
        assert_eq!(w.p99_us, 2500.0);
        assert_eq!(w.rps_2xx, 79_900.0);
    }

    #[test]
    fn durations() {
        for (text, us) in [
            ("5us", 5.0),
            ("1.5ms", 1500.0),
            ("2.00s", 2e6),
            ("1.00m", 60e6),
        ] {
            assert_eq!(duration_us(text).unwrap(), us, "{text}");
        }
        assert!(duration_us("12").is_err());
    }

    #[test]
    fn flags() {
        let args: Vec<String> = ["--idle-secs", "30", "--duration=5"]
            .map(String::from)
            .to_vec();
        let o = parse_args(&args).unwrap().unwrap();
        assert_eq!((o.idle_secs, o.duration, o.interval.as_str()), (30, 5, "5"));
        assert!(parse_args(&["--idle-secs".into(), "0".into()]).is_err());
        assert!(parse_args(&["--bogus".into()]).is_err());
    }
}
