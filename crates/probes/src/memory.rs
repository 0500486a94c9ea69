//! Memory use from `/proc/meminfo`: psutil `virtual_memory().percent`, i.e.
//! (MemTotal - MemAvailable) / MemTotal.
//!
//! Owns: reading and parsing meminfo. Does not own: swap, cgroup limits.

use std::path::Path;

use crate::procfile::ProcFile;
use crate::{Error, Probe};

#[cfg(test)]
mod tests;

/// Physical memory, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUsage {
    pub total_bytes: u64,
    /// What can be given to new programs without swapping (MemAvailable).
    pub available_bytes: u64,
}

impl MemoryUsage {
    /// psutil: percent = (total - available) / total * 100.
    pub fn percent(&self) -> Option<f64> {
        let used = self.total_bytes.saturating_sub(self.available_bytes);
        crate::percent(used as f64, self.total_bytes as f64)
    }

    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// Parses `/proc/meminfo`. Values there are in KiB whatever the "kB" says. The first line
/// of a key counts (the kernel writes each once; a repeated one is not read).
pub fn parse_meminfo(text: &str) -> Result<MemoryUsage, String> {
    let (mut total, mut available, mut free, mut buffers, mut cached) =
        (None, None, None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            _ => continue,
        };
        if slot.is_some() {
            continue;
        }
        let number = rest.trim().trim_end_matches("kB").trim();
        let kib: u64 = number.parse().map_err(|e: std::num::ParseIntError| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow => "is larger than a 64-bit count of KiB",
                _ => "is not a number of KiB",
            };
            format!("{key} {why}: {}", crate::quoted(number))
        })?;
        let bytes = kib
            .checked_mul(1024)
            .ok_or_else(|| format!("{key} {kib} kB is more bytes than 64 bits hold"))?;
        *slot = Some(bytes);
        // They are the first lines of the file; the other fifty need not be looked at.
        if total.is_some()
            && available.is_some()
            && free.is_some()
            && buffers.is_some()
            && cached.is_some()
        {
            break;
        }
    }
    let total = total.ok_or("no MemTotal line")?;
    if total == 0 {
        return Err("MemTotal is 0".into());
    }
    // Kernels before 3.14 have no MemAvailable: free + buffers + page cache is the
    // classic estimate of what could be handed out.
    let available = match available {
        Some(a) => a,
        None => match (free, buffers, cached) {
            (Some(f), b, c) => f
                .saturating_add(b.unwrap_or(0))
                .saturating_add(c.unwrap_or(0)),
            _ => return Err("neither MemAvailable nor MemFree".into()),
        },
    };
    Ok(MemoryUsage {
        total_bytes: total,
        available_bytes: available.min(total),
    })
}

/// The memory probe, reading `<procfs>/meminfo`.
#[derive(Debug)]
pub struct Memory {
    meminfo: ProcFile,
}

impl Memory {
    pub fn new(procfs: &Path) -> Self {
        Self {
            meminfo: ProcFile::new(procfs.join("meminfo")),
        }
    }
}

impl Probe for Memory {
    type Output = MemoryUsage;

    fn name(&self) -> &'static str {
        "memory"
    }

    fn read(&mut self) -> Result<MemoryUsage, Error> {
        let text = self.meminfo.read()?;
        parse_meminfo(text).map_err(|what| Error::parse(self.meminfo.path(), what))
    }
}
