//! The idle cost of a hang that is over. Our service reads its disk on a FUSE mount
//! (bindfs): idle for a window, then the mount hangs (its daemon stopped, as a dead NFS
//! server) until the disk read has timed out and a spare thread has taken the ticks over,
//! then the mount comes back and, once the spare has retired, the service idles for a
//! second window. Each window also runs the raw-read floor, so the machine's own drift
//! between the windows is in the figures. Reported per window: idle CPU (schedstat), the
//! floor's, threads, and how often the probe threads woke per tick.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{Floor, Options, SETTLE, Servers, free_port, http_get, sched_ns, status_field};
use crate::util;

/// The goal: the typical idle tick after the hang at most this much above the one before.
const GOAL_AFTER_OVER_BEFORE: f64 = 1.2;

/// One idle window's figures.
#[derive(Debug)]
struct Window {
    cpu_ms_per_min: f64,
    floor_ms_per_min: f64,
    threads: u64,
    probe_threads: usize,
    ticks: u64,
    probe_wakeups: u64,
    /// The median tick, ours and the floor's (µs): what the hypervisor's noise leaves alone.
    median_tick_us: f64,
    floor_median_tick_us: f64,
}

#[derive(Debug)]
pub(super) struct Hang {
    before: Window,
    after: Window,
    threads_during: u64,
    hung_s: f64,
}

/// A bindfs mount of a scratch folder; on drop the daemon is resumed and the mount removed.
struct Mount {
    mnt: PathBuf,
    daemon: u32,
}

impl Mount {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        let (src, mnt) = (dir.join("hang-src"), dir.join("hang-mnt"));
        std::fs::create_dir_all(&src)?;
        std::fs::create_dir_all(&mnt)?;
        util::run(Command::new("bindfs").arg(&src).arg(&mnt))?;
        let pattern = format!("bindfs .* {}$", mnt.display());
        let started = Instant::now();
        loop {
            let out = Command::new("pgrep").args(["-f", &pattern]).output()?;
            if let Some(pid) = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .and_then(|l| l.trim().parse().ok())
            {
                return Ok(Self { mnt, daemon: pid });
            }
            if started.elapsed() > Duration::from_secs(5) {
                bail!("the bindfs daemon for {} was not found", mnt.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.daemon.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {} failed", self.daemon);
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.signal("CONT");
        let _ = Command::new("fusermount")
            .arg("-u")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status();
    }
}

/// The service's `/health` as text (empty when it does not answer).
fn health(port: u16) -> String {
    http_get(port, "/health", Duration::from_secs(2))
        .map(|(_, body)| String::from_utf8_lossy(&body).into_owned())
        .unwrap_or_default()
}

fn sample_seq(port: u16) -> anyhow::Result<u64> {
    let text = health(port);
    let key = "\"sample_seq\":";
    text.find(key)
        .and_then(|i| {
            text[i + key.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .context("no sample_seq in /health")
}

/// The disk family's state in `/health` (`ok`, `error`, ...).
fn disk_state(port: u16) -> String {
    let text = health(port);
    let Some(at) = text.find("\"disk\":{\"state\":\"") else {
        return String::new();
    };
    text[at + 17..].split('"').next().unwrap_or("").to_owned()
}

fn wait(
    what: &str,
    within: Duration,
    ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    util::wait_for(what, within, Duration::from_millis(100), ready)
}

/// Voluntary context switches of the threads named `probe` (each wait they return from is
/// one), and how many such threads there are.
fn probe_wakeups(pid: u32) -> anyhow::Result<(u64, usize)> {
    let mut total = 0;
    let mut threads = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if name.trim() != "probe" {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        if let Some(n) = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            total += n;
            threads += 1;
        }
    }
    Ok((total, threads))
}

fn median_us(ticks: Option<&Vec<u64>>) -> f64 {
    super::median(ticks.into_iter().flatten().map(|ns| *ns as f64 / 1e3))
}

fn window(pid: u32, port: u16, floor_bin: &Path, options: &Options) -> anyhow::Result<Window> {
    let floor = Floor::start(floor_bin, &options.interval)?;
    std::thread::sleep(SETTLE);
    let secs = Duration::from_secs(options.hang_secs);
    // The HTTP calls that count ticks fall outside the CPU figures (they wake the
    // service's HTTP workers); at most one tick of a window may fall between them.
    let seq0 = sample_seq(port)?;
    let (ours0, floor0) = (sched_ns(pid)?, sched_ns(floor.0.id())?);
    let (woke0, _) = probe_wakeups(pid)?;
    let looks = super::watch_ticks(&[pid, floor.0.id()], secs)?;
    let (woke1, probe_threads) = probe_wakeups(pid)?;
    let (ours1, floor1) = (sched_ns(pid)?, sched_ns(floor.0.id())?);
    let seq1 = sample_seq(port)?;
    eprintln!(
        "xtask: hang: idle by thread: {}",
        super::by_thread(pid, &ours0, &ours1)
    );
    let spent = |a: &std::collections::HashMap<u32, u64>,
                 b: &std::collections::HashMap<u32, u64>| {
        b.iter()
            .map(|(tid, end)| end.saturating_sub(a.get(tid).copied().unwrap_or(0)))
            .sum::<u64>() as f64
            / 1e6
            * 60.0
            / secs.as_secs_f64()
    };
    Ok(Window {
        cpu_ms_per_min: spent(&ours0, &ours1),
        floor_ms_per_min: spent(&floor0, &floor1),
        threads: status_field(pid, "Threads")?,
        probe_threads,
        ticks: seq1.saturating_sub(seq0),
        probe_wakeups: woke1.saturating_sub(woke0),
        median_tick_us: median_us(looks.first()),
        floor_median_tick_us: median_us(looks.get(1)),
    })
}

pub(super) fn measure(
    options: &Options,
    ours_bin: &Path,
    floor_bin: &Path,
    out: &Path,
) -> anyhow::Result<Hang> {
    util::ensure_tool("bindfs", "bindfs")?;
    util::ensure_tool("fusermount", "fuse3")?;
    let mount = Mount::new(out)?;
    let mut servers = Servers::default();
    let port = free_port()?;
    let mut ours = Command::new(ours_bin);
    ours.env("METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .env("POSTGRES_HOST", "")
        .env("METRICS_INTERVAL_LIVE", &options.interval)
        .env("METRICS_DISK_PATH", &mount.mnt)
        .env("RUST_LOG", "warn")
        .current_dir(out);
    servers.start("ours-hang", ours, port, out)?;
    servers.0[0].wait_ready()?;
    let pid = servers.0[0].pid();
    eprintln!(
        "xtask: hang: idle window {} s with the disk on a FUSE mount",
        options.hang_secs
    );
    let before = window(pid, port, floor_bin, options)?;

    eprintln!("xtask: hang: the mount hangs");
    let hung_at = Instant::now();
    mount.signal("STOP")?;
    let interval: f64 = options.interval.parse().unwrap_or(5.0);
    let tick = Duration::from_secs_f64(interval);
    wait(
        "the disk read to time out",
        tick * 3 + Duration::from_secs(10),
        || Ok(disk_state(port) == "error"),
    )?;
    // A few ticks on the spare thread, with the read still stuck.
    let seq = sample_seq(port)?;
    wait(
        "three ticks while the disk hangs",
        tick * 6 + Duration::from_secs(10),
        || Ok(sample_seq(port)? >= seq + 3),
    )?;
    let threads_during = status_field(pid, "Threads")?;
    mount.signal("CONT")?;
    let hung_s = hung_at.elapsed().as_secs_f64();
    eprintln!("xtask: hang: the mount is back after {hung_s:.1} s");
    wait(
        "the disk to read again",
        tick * 3 + Duration::from_secs(10),
        || Ok(disk_state(port) == "ok"),
    )?;
    wait(
        "the spare thread to retire",
        tick * 3 + Duration::from_secs(10),
        || Ok(status_field(pid, "Threads")? <= before.threads),
    )?;
    let after = window(pid, port, floor_bin, options)?;
    drop(servers);
    drop(mount);
    Ok(Hang {
        before,
        after,
        threads_during,
        hung_s,
    })
}

impl Hang {
    pub(super) fn report(&self, options: &Options) -> String {
        let row = |name: &str, w: &Window| {
            format!(
                "| {name} | {:.2} | {:.2} | {:.2}× | {:.0} | {:.0} | {} | {} | {:.2} |\n",
                w.cpu_ms_per_min,
                w.floor_ms_per_min,
                w.cpu_ms_per_min / w.floor_ms_per_min,
                w.median_tick_us,
                w.floor_median_tick_us,
                w.threads,
                w.probe_threads,
                w.probe_wakeups as f64 / w.ticks.max(1) as f64,
            )
        };
        // Judged on the typical tick: a window's total moves with whatever the hypervisor
        // steals (the floor beside it moves by half between windows here); the mean is in
        // the table.
        let ratio = self.after.median_tick_us / self.before.median_tick_us;
        let same_threads = self.after.threads == self.before.threads;
        let met = ratio <= GOAL_AFTER_OVER_BEFORE && same_threads;
        format!(
            "\nafter a released hang: the service's disk on a FUSE mount (bindfs), idle {s} s, the \
             mount hung {h:.1} s (threads {d} while hung), back, idle {s} s again; the raw-read floor \
             beside it in each window\n\n\
             | window | idle CPU ms/min | floor ms/min | ours / floor | median tick µs | floor median tick µs | threads | probe threads | probe wake-ups per tick |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n{b}{a}\n\
             | goal | target | measured | |\n|---|---|---:|---|\n\
             | idle CPU after a released hang | median tick ≤ {GOAL_AFTER_OVER_BEFORE}× before, same threads | {ratio:.2}×, threads {tb} → {ta} | {v} |\n",
            s = options.hang_secs,
            h = self.hung_s,
            d = self.threads_during,
            b = row("before the hang", &self.before),
            a = row("after it", &self.after),
            tb = self.before.threads,
            ta = self.after.threads,
            v = if met { "met" } else { "**MISSED**" },
        )
    }
}
