//! What the self-healing agent does with the engine: sample the host every few seconds,
//! every read under a deadline, and compare each number with a threshold. A read that
//! hangs (statvfs on a dead NFS mount, a GPU driver call) costs its own field for that
//! round, never the agent: the round ends within about the deadline whatever hangs.
//!
//! ```text
//! cargo run -p sampler --example agent -- [--disk PATH] [--every S] [--rounds N]
//!                                         [--deadline S] [cpu%] [ram%] [disk%] [°C]
//! ```
//! Defaults: `/`, every 5 s, 3 rounds, deadline 2 s; thresholds 90 90 90 85. Exit status 1
//! when something was over its threshold in the last round.
//!
//! No tokio runtime, no HTTP: the engine runs its reads on plain threads, and
//! `Engine::sample` blocks the caller for at most about the deadline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use probes::{HostProbes, Reading, Roots, Unavailable};
use sampler::{Engine, Snapshot};

struct Options {
    disk: PathBuf,
    every: Duration,
    rounds: u32,
    deadline: Duration,
    limits: Vec<f64>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        disk: PathBuf::from("/"),
        every: Duration::from_secs(5),
        rounds: 3,
        deadline: Duration::from_secs(2),
        limits: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    let seconds = |v: Option<String>, flag: &str| {
        v.and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or(format!("{flag}: expected seconds > 0"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--disk" => o.disk = args.next().ok_or("--disk: expected a path")?.into(),
            "--every" => o.every = seconds(args.next(), "--every")?,
            "--deadline" => o.deadline = seconds(args.next(), "--deadline")?,
            "--rounds" => {
                o.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--rounds: expected a count")?;
            }
            other => o.limits.push(
                other
                    .parse()
                    .map_err(|_| format!("{other:?}: expected a threshold"))?,
            ),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("agent: {e}");
            return ExitCode::from(2);
        }
    };
    let limit = |i: usize, default: f64| o.limits.get(i).copied().unwrap_or(default);
    let probes = HostProbes::new(&Roots::default(), &o.disk);
    let gpu = match sampler::discover_gpu(gpu::Choice::Auto, &Roots::default(), o.deadline) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut engine = match Engine::new(probes.into(), gpu, o.deadline) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("agent: cannot start the probe threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    // CPU % is measured between two reads of the counters.
    std::thread::sleep(sampler::first_tick_delay(o.every));
    let mut over = false;
    for round in 1..=o.rounds {
        let started = Instant::now();
        let s = engine.sample();
        eprintln!(
            "round {round}: sampled in {:.0} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        let checks: [(&str, Reading<f64>, f64); 4] = [
            ("cpu %", s.sample.cpu_percent.clone(), limit(0, 90.0)),
            ("ram %", ram(&s), limit(1, 90.0)),
            ("disk %", disk(&s), limit(2, 90.0)),
            (
                "°C",
                s.temperature().ok_or_else(|| why_no_temperature(&s)),
                limit(3, 85.0),
            ),
        ];
        over = false;
        for (name, reading, threshold) in checks {
            match reading {
                Ok(v) if v > threshold => {
                    over = true;
                    eprintln!("  OVER    {name:<6} {v:6.1} > {threshold}");
                }
                Ok(v) => eprintln!("  ok      {name:<6} {v:6.1} <= {threshold}"),
                // Unknown is not "fine" and not "0": the agent decides what to do with it.
                Err(why) => eprintln!("  unknown {name:<6} {why}"),
            }
        }
        if round < o.rounds {
            std::thread::sleep(o.every.saturating_sub(started.elapsed()));
        }
    }
    if over {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn ram(s: &Snapshot) -> Reading<f64> {
    let memory = s.sample.memory.as_ref().map_err(Clone::clone)?;
    memory
        .percent()
        .ok_or_else(|| Unavailable::new("no memory total"))
}

fn disk(s: &Snapshot) -> Reading<f64> {
    let disk = s.sample.disk.as_ref().map_err(Clone::clone)?;
    disk.percent()
        .ok_or_else(|| Unavailable::new("no disk total"))
}

fn why_no_temperature(s: &Snapshot) -> Unavailable {
    match &s.sample.cpu_celsius {
        Err(e) => e.clone(),
        Ok(_) => Unavailable::new("no temperature"),
    }
}
