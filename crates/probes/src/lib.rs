//! Host probes: the data model of one host sample and the readers that fill it.
//!
//! Owns: CPU busy percentage (`/proc/stat`), memory use (`/proc/meminfo`), disk usage
//! (`statvfs`, with `df` semantics) and the CPU package temperature (hwmon and thermal
//! zones under sysfs). Each family is a [`Probe`] reading from roots given as values
//! ([`Roots`]), so a container can point them at the host's mounts and tests at fixture
//! trees.
//!
//! Does not own: scheduling, deadlines, threads, serialisation, HTTP or SQL. This crate is
//! synchronous and knows nothing about tokio; the self-healing agent links it directly.
//!
//! Every reading is a [`Reading`]: a value, or the reason it is unavailable. A reading that
//! cannot be taken is never replaced with 0.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub mod cpu;
pub mod disk;
mod error;
pub mod host;
pub mod memory;
pub mod mount;
mod procfile;
pub mod thermal;

pub use cpu::{Cpu, CpuTimes, CpuUsage, NoPercent};
pub use disk::{Disk, DiskUsage};
pub use error::Error;
pub use host::HostProbes;
pub use memory::{Memory, MemoryUsage};
pub use mount::Mount;
pub use thermal::Thermal;

/// A value, or why it could not be read.
pub type Reading<T> = Result<T, Unavailable>;

/// Why a reading is missing: shown to operators (in `/health`), never turned into a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    reason: String,
    absent: bool,
}

impl Unavailable {
    /// The reading failed: something that should work does not (a degraded service).
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            absent: false,
        }
    }

    /// This host has no such thing (no temperature sensor, no GPU): not a fault.
    pub fn absent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            absent: true,
        }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// True when the host simply lacks the hardware, so the service is not degraded by it.
    pub fn is_absent(&self) -> bool {
        self.absent
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<Error> for Unavailable {
    fn from(e: Error) -> Self {
        // These two are their message and have no source: moved, not formatted again (a
        // sensorless host converts one every tick).
        let e = match e {
            Error::Absent(reason) => return Self::absent(reason),
            Error::NotAvailable(reason) => return Self::new(reason),
            other => other,
        };
        // Keep the whole source chain: "reading /proc/stat: No such file or directory".
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        Self::new(reason)
    }
}

/// One family of host metrics. `read` is cheap and synchronous; a reader that keeps state
/// between reads (CPU needs two snapshots of its counters) keeps it inside `self`.
pub trait Probe: Send {
    type Output;

    /// The family's short name, used as its key in `/health` (`cpu`, `memory`, ...).
    fn name(&self) -> &'static str;

    fn read(&mut self) -> Result<Self::Output, Error>;
}

/// Where the host's filesystems are mounted. `/`, `/proc` and `/sys` on a host; somewhere
/// like `/host/proc` in a container (node_exporter's `--path.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roots {
    pub rootfs: PathBuf,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            rootfs: PathBuf::from("/"),
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
        }
    }
}

impl Roots {
    /// `path` as seen from the host, resolved under `rootfs` (`/data` → `/host/data`).
    pub fn host_path(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        if relative.as_os_str().is_empty() {
            self.rootfs.clone()
        } else {
            self.rootfs.join(relative)
        }
    }
}

/// Every host reading of one moment. GPU readings come from the `gpu` crate.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When the sample was taken (the moment the probes started).
    pub taken_at: SystemTime,
    /// % of all CPU time busy since the previous read (psutil `cpu_percent`).
    pub cpu_percent: Reading<f64>,
    /// The aggregate `/proc/stat` counters as read now (`None` when they could not be
    /// read).
    pub cpu_times: Option<CpuTimes>,
    pub memory: Reading<MemoryUsage>,
    pub disk: Reading<DiskUsage>,
    /// Hottest CPU package sensor, °C.
    pub cpu_celsius: Reading<f64>,
}

/// `value` quoted the way `{:?}` does, cut after its first 64 characters (with its length
/// in bytes) when longer: an error names the offending text without echoing a huge one.
pub(crate) fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    match value.char_indices().nth(MAX_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

#[cfg(test)]
pub(crate) use testkit::proptest_config;

/// A percentage with one decimal, the way the seed service printed them.
pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// `part / whole * 100`, or `None` when `whole` is zero (no made-up 0 %).
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    if whole > 0.0 && part.is_finite() {
        Some((part / whole * 100.0).clamp(0.0, 100.0))
    } else {
        None
    }
}
