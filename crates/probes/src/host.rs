//! All host probes together, read one after the other: the simple way to take a
//! [`Sample`](crate::Sample) for a one-off script. There is no deadline here: a read that
//! hangs (statvfs on a dead network mount) hangs the caller. A program that must keep
//! going, the self-healing agent among them, hands these probes to the `sampler` crate's
//! `Engine`, which reads each family on its own thread under a deadline
//! (`crates/sampler/examples/agent.rs`).

use std::path::Path;
use std::time::SystemTime;

use crate::{Cpu, Disk, Memory, Probe, Roots, Sample, Thermal};

/// One of each probe, reading the host at `roots`.
#[derive(Debug)]
pub struct HostProbes {
    pub cpu: Cpu,
    pub memory: Memory,
    pub disk: Disk,
    pub thermal: Thermal,
}

impl HostProbes {
    /// Probes for the host at `roots`, reporting the filesystem holding `disk_path` (a
    /// path as the host sees it, e.g. `/`).
    pub fn new(roots: &Roots, disk_path: &Path) -> Self {
        Self {
            cpu: Cpu::new(&roots.procfs),
            memory: Memory::new(&roots.procfs),
            disk: Disk::new(&roots.host_path(disk_path)),
            thermal: Thermal::new(&roots.sysfs),
        }
    }

    /// Reads every family now. The CPU percentage covers the time since the previous call
    /// (or since `new`).
    pub fn sample(&mut self) -> Sample {
        let taken_at = SystemTime::now();
        let (cpu_percent, cpu_times) = match self.cpu.read() {
            Ok(usage) => (usage.percent, Some(usage.times)),
            Err(e) => (Err(e.into()), None),
        };
        Sample {
            taken_at,
            cpu_percent,
            cpu_times,
            memory: self.memory.read().map_err(Into::into),
            disk: self.disk.read().map_err(Into::into),
            cpu_celsius: self.thermal.read().map_err(Into::into),
        }
    }
}
