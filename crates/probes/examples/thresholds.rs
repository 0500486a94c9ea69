//! The probes alone: sample the host once, compare each reading with a threshold, and
//! report what is over (or unknown). Without deadlines: a hung mount hangs this program.
//! The self-healing agent samples through the engine instead, every read under a deadline
//! (`cargo run -p sampler --example agent`).
//!
//! ```text
//! cargo run -p probes --example thresholds -- [cpu%] [ram%] [disk%] [°C]
//! ```
//! Defaults: 90 90 90 85. Exit status 1 when something is over its threshold.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use probes::{HostProbes, Reading, Roots};

fn main() -> ExitCode {
    let limits: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let limit = |i: usize, default: f64| limits.get(i).copied().unwrap_or(default);

    let mut host = HostProbes::new(&Roots::default(), Path::new("/"));
    // CPU % is measured between two reads of the counters.
    std::thread::sleep(Duration::from_millis(500));
    let sample = host.sample();

    let checks: [(&str, Reading<f64>, f64); 4] = [
        ("cpu %", sample.cpu_percent.clone(), limit(0, 90.0)),
        (
            "ram %",
            percent(sample.memory.as_ref().map(|m| m.percent())),
            limit(1, 90.0),
        ),
        (
            "disk %",
            percent(sample.disk.as_ref().map(|d| d.percent())),
            limit(2, 90.0),
        ),
        ("cpu °C", sample.cpu_celsius.clone(), limit(3, 85.0)),
    ];
    let mut over = false;
    for (name, reading, threshold) in checks {
        match reading {
            Ok(v) if v > threshold => {
                over = true;
                eprintln!("OVER    {name:<7} {v:6.1} > {threshold}");
            }
            Ok(v) => eprintln!("ok      {name:<7} {v:6.1} <= {threshold}"),
            // Unknown is not "fine" and not "0": the agent decides what to do with it.
            Err(why) => eprintln!("unknown {name:<7} {why}"),
        }
    }
    if over {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn percent(r: Result<Option<f64>, &probes::Unavailable>) -> Reading<f64> {
    match r {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(probes::Unavailable::new("no total to take a percentage of")),
        Err(e) => Err(e.clone()),
    }
}
