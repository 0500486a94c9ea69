//! `cargo xtask bench fuzz`: the HTTP fuzzer's cases, many of them, against a release build.
//!
//! The cases are the integration test's (`crates/testkit/src/fuzz.rs`, compiled in here by
//! path: `testkit` is a development crate and xtask may not depend on it), played by the
//! same client with the same judge and the same `GET /metrics` watcher; only the number of
//! cases and the build differ. The service runs as the test runs it: no database, a 1 s
//! live interval, four stream slots (so SPEC §7's cap is met). Reports cases per second,
//! what the answers were, the problems (with how to replay each), the watcher's latency,
//! and the service's RSS and open descriptors before and after. Fails when the service
//! died, panicked or answered a case wrongly.
//!
//! The service is stopped by PID at the end, also on error (the `Servers` guard).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use super::{Servers, each_flag, free_port, machine, print_report, status_field, target_dir};
use crate::util::{self, cargo};

// Shared with the integration test, item for item; not every item is used here.
#[allow(unreachable_pub, dead_code)]
#[path = "../../../crates/testkit/src/fuzz.rs"]
mod generator;

const USAGE: &str = "usage: cargo xtask bench fuzz [--cases N] [--seed S] [--workers N]
  --cases N    cases to play (default 200000)
  --seed S     the generator's seed, decimal or 0x hex (default: the one CI runs with)
  --workers N  connections played at once (default 4, as in CI)";

#[derive(Debug)]
struct Options {
    cases: u64,
    seed: u64,
    workers: usize,
}

fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        cases: 200_000,
        seed: generator::CI_SEED,
        workers: 4,
    };
    let go_on = each_flag(args, USAGE, |flag, value| {
        let number = |v: String| -> anyhow::Result<u64> {
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
                None => v.replace('_', "").parse(),
            };
            parsed.with_context(|| format!("{flag} {v:?}: expected a whole number"))
        };
        match flag {
            "--cases" => options.cases = number(value()?)?.max(1),
            "--seed" => options.seed = number(value()?)?,
            "--workers" => {
                let n = number(value()?)?;
                if !(1..=256).contains(&n) {
                    bail!("--workers {n}: expected 1 to 256");
                }
                options.workers = n as usize;
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
        Ok(())
    })?;
    Ok(go_on.then_some(options))
}

pub(super) fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(options) = parse_args(args)? else {
        return Ok(());
    };
    eprintln!("xtask: building the release service");
    util::run(cargo().args(["build", "--release", "-p", "metrics-collector"]))?;
    let target = target_dir()?;
    let bin = target.join("release/metrics-collector");
    if !bin.is_file() {
        bail!("{} was not built where expected", bin.display());
    }
    let out = target.join("bench").join(format!(
        "fuzz-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    ));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut servers = Servers::default();
    let port = free_port()?;
    let mut service = Command::new(&bin);
    service
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .env("POSTGRES_HOST", "")
        .env("METRICS_INTERVAL_LIVE", "1")
        .env("METRICS_MAX_STREAMS", "4")
        .env("RUST_LOG", "info")
        // A fresh folder: no developer's `.env` changes what is measured.
        .current_dir(&out);
    servers.start("ours", service, port, &out)?;
    let ready_ms = servers.0[0].wait_ready()?;
    let pid = servers.0[0].child.id();
    let before = Footprint::of(pid)?;
    eprintln!(
        "xtask: the service (pid {pid}) answers on 127.0.0.1:{port} after {ready_ms} ms; playing {} cases of seed {:#x}",
        options.cases, options.seed
    );

    let plan = generator::Plan {
        seed: options.seed,
        first: 0,
        cases: options.cases,
        workers: options.workers,
        deadline: Duration::from_secs(5),
    };
    let report = generator::run(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), &plan);
    let exited = servers.0[0].child.try_wait()?;
    let after = match exited {
        None => Some(Footprint::of(pid)?),
        Some(_) => None,
    };
    // Streams whose clients closed are freed at the next sample: wait (bounded) for the
    // descriptors to come back to where they were, so a leak shows as one.
    let settled = match exited {
        None => settle(pid, before.fds)?,
        Some(_) => None,
    };
    let log = std::fs::read_to_string(&servers.0[0].log).unwrap_or_default();
    let panicked = log.lines().filter(|l| l.contains("panicked")).count();

    let text = render(
        &options,
        &report,
        &before,
        after.as_ref(),
        settled,
        panicked,
    );
    let path = out.join("fuzz.md");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    print_report(&text);
    eprintln!("xtask: report and the service's log in {}", out.display());
    if let Some(status) = exited {
        bail!(
            "the service exited during the run ({status}): see {}",
            log_path(&out)
        );
    }
    if panicked > 0 {
        bail!(
            "the service panicked {panicked} time(s): see {}",
            log_path(&out)
        );
    }
    if settled.is_none() {
        bail!(
            "the service held more descriptors {} s after the run than before it",
            SETTLE_WITHIN.as_secs()
        );
    }
    if !report.problems.is_empty() || !report.watch.failures.is_empty() {
        bail!(
            "{} problem(s) in {} case(s), {} watcher failure(s)",
            report.problems.len(),
            report.failed_cases,
            report.watch.failures.len()
        );
    }
    Ok(())
}

/// How long the service took to hold no more than `fds` descriptors again (at most
/// [`SETTLE_WITHIN`]); `None` if it did not.
fn settle(pid: u32, fds: usize) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    while started.elapsed() < SETTLE_WITHIN {
        if Footprint::of(pid)?.fds <= fds {
            return Ok(Some(started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

/// Two live intervals and then some.
const SETTLE_WITHIN: Duration = Duration::from_secs(5);

fn log_path(out: &Path) -> String {
    out.join("ours.server.log").display().to_string()
}

/// What the service holds: resident memory and open descriptors.
#[derive(Debug)]
struct Footprint {
    rss_kib: u64,
    fds: usize,
}

impl Footprint {
    fn of(pid: u32) -> anyhow::Result<Self> {
        let dir = format!("/proc/{pid}/fd");
        let fds = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {dir}"))?
            .count();
        Ok(Self {
            rss_kib: status_field(pid, "VmRSS")?,
            fds,
        })
    }
}

fn render(
    options: &Options,
    report: &generator::Report,
    before: &Footprint,
    after: Option<&Footprint>,
    settled: Option<Duration>,
    panicked: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## cargo xtask bench fuzz --cases {} --seed {:#x} --workers {}\n",
        options.cases, options.seed, options.workers
    );
    let _ = writeln!(s, "{}\n", machine());
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let alive = match after {
        Some(_) => "alive, same pid",
        None => "EXITED",
    };
    let capped = report.outcomes.get("503").copied().unwrap_or(0);
    let rows = [
        (
            "cases".to_owned(),
            format!(
                "{} in {:.1} s: {:.0} cases/s",
                report.plan.cases,
                report.elapsed.as_secs_f64(),
                report.cases_per_second()
            ),
        ),
        (
            "service".to_owned(),
            format!("{alive}; {panicked} panic(s) in its log"),
        ),
        (
            "problems".to_owned(),
            format!(
                "{} in {} case(s)",
                report.problems.len(),
                report.failed_cases
            ),
        ),
        (
            "5xx answers".to_owned(),
            format!(
                "{} ({capped} of them the stream cap's 503 with Retry-After, SPEC §7; any other is a problem above)",
                report.count_5xx()
            ),
        ),
        (
            "watcher GET /metrics".to_owned(),
            format!(
                "{} asked, max {}, p99 {}, p50 {}, {} not 200 within 1 s",
                report.watch.latencies.len(),
                ms(report.watch.max()),
                ms(report.watch.percentile(99.0)),
                ms(report.watch.percentile(50.0)),
                report.watch.failures.len()
            ),
        ),
        (
            "RSS".to_owned(),
            match after {
                Some(a) => format!("{} KiB before, {} KiB after", before.rss_kib, a.rss_kib),
                None => format!("{} KiB before", before.rss_kib),
            },
        ),
        (
            "open descriptors".to_owned(),
            match (after, settled) {
                (Some(a), Some(t)) => format!(
                    "{} before, {} right after, back to {} or fewer {:.0} ms later",
                    before.fds,
                    a.fds,
                    before.fds,
                    t.as_secs_f64() * 1e3
                ),
                (Some(a), None) => format!(
                    "{} before, {} right after, still more {} s later",
                    before.fds,
                    a.fds,
                    SETTLE_WITHIN.as_secs()
                ),
                (None, _) => format!("{} before", before.fds),
            },
        ),
    ];
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\n| answer (or how a connection without one ended) | count |\n|---|---|"
    );
    for (k, n) in &report.outcomes {
        let _ = writeln!(s, "| {k} | {n} |");
    }
    let _ = writeln!(s, "\n| generator family | cases |\n|---|---|");
    for (k, n) in &report.families {
        let _ = writeln!(s, "| {k} | {n} |");
    }
    if !report.problems.is_empty() || !report.watch.failures.is_empty() {
        let _ = writeln!(
            s,
            "\n### Problems (the first 20)\n\n{}",
            report.failures(20)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let args: Vec<String> = ["--cases", "10", "--seed=0x10", "--workers", "2"]
            .map(String::from)
            .to_vec();
        let o = parse_args(&args).unwrap().unwrap();
        assert_eq!((o.cases, o.seed, o.workers), (10, 16, 2));
        let o = parse_args(&[]).unwrap().unwrap();
        assert_eq!((o.cases, o.seed), (200_000, generator::CI_SEED));
        assert!(parse_args(&["--workers".into(), "0".into()]).is_err());
        assert!(parse_args(&["--bogus".into()]).is_err());
    }
}
