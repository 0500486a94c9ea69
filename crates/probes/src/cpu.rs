//! CPU busy percentage from the aggregate `cpu` line of `/proc/stat`, computed the way
//! psutil's `cpu_percent()` does on Linux, and the raw counters of that line (the
//! host's CPU seconds per mode).
//!
//! Owns: reading, parsing and the busy formula. Does not own: when reads happen; the
//! percentage covers whatever time passed between two reads.

use std::path::Path;

use crate::procfile::ProcFile;
use crate::{Error, Probe, Reading, Unavailable};

#[cfg(test)]
mod tests;

/// The aggregate CPU counters of `/proc/stat`, in clock ticks ([`ticks_per_second`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    /// psutil `_cpu_tot_time`: every field, less guest time (already counted in user/nice).
    /// Summed in 128 bits: eight counters read from a file can add up past `u64::MAX`.
    fn total(&self) -> u128 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .into_iter()
        .map(u128::from)
        .sum()
    }

    /// psutil `_cpu_busy_time` on Linux: busy = total - idle - iowait (both inside total,
    /// so this never goes below zero).
    fn busy(&self) -> u128 {
        self.total() - u128::from(self.idle) - u128::from(self.iowait)
    }

    /// The eight counters node_exporter exports as `node_cpu_seconds_total{mode}`, with
    /// its mode names (guest time is already inside `user` and `nice`).
    pub fn modes(&self) -> [(&'static str, u64); 8] {
        let [
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            _guest,
            _guest_nice,
        ] = self.named();
        [user, nice, system, idle, iowait, irq, softirq, steal]
    }

    /// Every counter with its name as `/proc/stat` documents it (proc(5)).
    fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
            ("guest", self.guest),
            ("guest_nice", self.guest_nice),
        ]
    }

    /// Per-field difference; only called once no field has stepped back.
    fn delta(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
            guest: self.guest.saturating_sub(earlier.guest),
            guest_nice: self.guest_nice.saturating_sub(earlier.guest_nice),
        }
    }
}

/// Why two readings of the counters give no percentage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPercent {
    /// No CPU time passed between them.
    NoTimeElapsed,
    /// A counter is lower in the later reading: CPUs taken offline (hotplug) and some
    /// hypervisors step the aggregate back. Clamping it at zero, as psutil does, makes up
    /// a busy percentage (a false 100 % when idle steps back); the interval is unknown.
    SteppedBack {
        counter: &'static str,
        earlier: u64,
        later: u64,
    },
}

/// How many clock ticks make a second in `/proc/stat` (`sysconf(_SC_CLK_TCK)`, USER_HZ:
/// 100 on every mainstream kernel).
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// Parses the aggregate `cpu ` line of `/proc/stat`. Kernels before 2.6.33 print fewer
/// columns; missing trailing columns read as 0.
pub fn parse_stat(text: &str) -> Result<CpuTimes, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| "no aggregate \"cpu\" line".to_owned())?;
    parse_columns(line)
}

/// The counters of a `cpu` line (its label first).
fn parse_columns(line: &str) -> Result<CpuTimes, String> {
    const NAMES: [&str; 10] = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guest_nice",
    ];
    let mut fields = [0u64; 10];
    let mut count = 0;
    for ((slot, name), word) in fields
        .iter_mut()
        .zip(NAMES)
        .zip(line.split_ascii_whitespace().skip(1))
    {
        let column = count + 1;
        *slot = word.parse().map_err(|e: std::num::ParseIntError| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow => "is larger than a 64-bit counter",
                _ => "is not a counter",
            };
            format!(
                "cpu column {column} ({name}) {why}: {}",
                crate::quoted(word)
            )
        })?;
        count += 1;
    }
    if count < 4 {
        return Err(format!("cpu line has {count} columns, expected at least 4"));
    }
    let [
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    ] = fields;
    Ok(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    })
}

/// Busy % between two readings (psutil `cpu_percent`), or why there is none.
pub fn busy_percent(earlier: &CpuTimes, later: &CpuTimes) -> Result<f64, NoPercent> {
    for ((counter, earlier), (_, later)) in earlier.named().into_iter().zip(later.named()) {
        if later < earlier {
            return Err(NoPercent::SteppedBack {
                counter,
                earlier,
                later,
            });
        }
    }
    let d = later.delta(earlier);
    // As f64 the sums lose digits past 2^53 ticks, far below what a percentage shows.
    crate::percent(d.busy() as f64, d.total() as f64).ok_or(NoPercent::NoTimeElapsed)
}

/// One read of the CPU probe: the busy percentage since the previous read, and the
/// counters as read now.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuUsage {
    /// % of all CPU time busy since the previous read (psutil `cpu_percent`), or why
    /// there is none (the first read; a counter that stepped back).
    pub percent: Reading<f64>,
    /// The aggregate counters as read now: every online CPU's time summed.
    pub times: CpuTimes,
}

/// The CPU probe: keeps the previous counters, so each read covers the time since the last.
#[derive(Debug)]
pub struct Cpu {
    stat: ProcFile,
    previous: Option<CpuTimes>,
}

impl Cpu {
    /// A probe reading `<procfs>/stat`. Takes its first counters now (if it can), so the
    /// first `read` already measures the time since construction.
    pub fn new(procfs: &Path) -> Self {
        let mut cpu = Self {
            stat: ProcFile::new(procfs.join("stat")),
            previous: None,
        };
        cpu.previous = cpu.times().ok();
        cpu
    }

    /// The raw aggregate counters, read now.
    pub fn times(&mut self) -> Result<CpuTimes, Error> {
        let text = self.stat.read()?;
        parse_stat(text).map_err(|what| Error::parse(self.stat.path(), what))
    }

    /// The busy percentage between two aggregate readings, or why there is none.
    fn percent(&self, previous: Option<CpuTimes>, now: &CpuTimes) -> Reading<f64> {
        let Some(previous) = previous else {
            return Err(Unavailable::new(
                "first read of the CPU counters: a percentage needs two",
            ));
        };
        busy_percent(&previous, now).map_err(|why| match why {
            NoPercent::NoTimeElapsed => {
                Unavailable::new("no CPU time elapsed since the previous read")
            }
            NoPercent::SteppedBack {
                counter,
                earlier,
                later,
            } => Unavailable::new(format!(
                "{}: the {counter} counter went backwards ({earlier} -> {later}; CPU hotplug \
                 or the hypervisor): no percentage for this interval",
                self.stat.path().display()
            )),
        })
    }
}

impl Probe for Cpu {
    type Output = CpuUsage;

    fn name(&self) -> &'static str {
        "cpu"
    }

    /// Fails only when `/proc/stat` cannot be read or parsed; a missing percentage is in
    /// the reading.
    fn read(&mut self) -> Result<CpuUsage, Error> {
        let now = self.times()?;
        // The counters just read are the next interval's start either way: after a step
        // back, the interval that follows is measured from the new values.
        let previous = self.previous.replace(now);
        Ok(CpuUsage {
            percent: self.percent(previous, &now),
            times: now,
        })
    }
}
