//! Disk usage of one filesystem through `statvfs`, with the meanings `df` gives them.
//!
//! Owns: the statvfs call and the arithmetic. Does not own: the deadline around it (a
//! dead network mount can block `statvfs` forever; the caller runs it off its workers).

use std::path::{Path, PathBuf};

use crate::{Error, Probe};

#[cfg(test)]
mod tests;

/// The `statvfs` fields `df` uses, already in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    /// f_blocks * f_frsize: the filesystem's size.
    pub total_bytes: u64,
    /// (f_blocks - f_bfree) * f_frsize: what is in use.
    pub used_bytes: u64,
    /// f_bavail * f_frsize: what an unprivileged user can still write (reserved blocks
    /// excluded, which is why used + free is less than total on ext4).
    pub free_bytes: u64,
}

impl DiskUsage {
    /// From raw statvfs counters (block counts and the fragment size).
    pub fn from_blocks(frsize: u64, blocks: u64, bfree: u64, bavail: u64) -> Self {
        Self {
            total_bytes: blocks.saturating_mul(frsize),
            used_bytes: blocks.saturating_sub(bfree).saturating_mul(frsize),
            free_bytes: bavail.saturating_mul(frsize),
        }
    }

    /// df: percent = used / (used + avail) * 100, not used / total. `None` for a
    /// filesystem with no blocks at all (a pseudo filesystem).
    pub fn percent(&self) -> Option<f64> {
        let used = self.used_bytes as f64;
        crate::percent(used, used + self.free_bytes as f64)
    }
}

/// The disk probe for one path (any path inside the filesystem).
#[derive(Debug)]
pub struct Disk {
    path: PathBuf,
}

impl Disk {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `statvfs(path)` in `df`'s terms.
pub fn usage(path: &Path) -> Result<DiskUsage, Error> {
    let st = rustix::fs::statvfs(path).map_err(|e| Error::Statvfs {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(DiskUsage::from_blocks(
        st.f_frsize,
        st.f_blocks,
        st.f_bfree,
        st.f_bavail,
    ))
}

impl Probe for Disk {
    type Output = DiskUsage;

    fn name(&self) -> &'static str {
        "disk"
    }

    fn read(&mut self) -> Result<DiskUsage, Error> {
        usage(&self.path)
    }
}
