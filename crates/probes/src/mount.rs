//! Which mount a path lives on, from the kernel's mount table (`/proc/<pid>/mountinfo`):
//! the `mountpoint`, `device` and `fstype` that node_exporter labels its filesystem
//! series with.
//!
//! Owns: reading and parsing the table and the longest-prefix match. Does not own: the
//! usage numbers (`disk`). Nothing here touches the mounted filesystem itself, so a dead
//! network mount cannot hang it.

use std::path::{Component, Path};

use crate::{Error, Roots};

#[cfg(test)]
mod tests;

/// One line of the mount table, as the host names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (`/`, `/data`).
    pub mountpoint: String,
    /// The mount source (`/dev/nvme0n1p2`, `overlay`, `server:/export`).
    pub device: String,
    /// The filesystem type (`ext4`, `xfs`, `overlay`).
    pub fstype: String,
}

/// The mount holding `path` (a path as the host sees it). Reads the host's table at
/// `<procfs>/1/mountinfo` (the init process sees the host's mounts, also from a container
/// given the host's `/proc`), else the table of this process.
pub fn mount_of(roots: &Roots, path: &Path) -> Result<Mount, Error> {
    let mut last = None;
    for table in ["1/mountinfo", "self/mountinfo"] {
        let file = roots.procfs.join(table);
        // Read as bytes: the kernel escapes only space, tab, newline and backslash, so a
        // mount point named in Latin-1 puts bytes that are not UTF-8 in the table, and
        // that must not make every other line of it unreadable.
        match std::fs::read(&file) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                return find(&text, path).ok_or_else(|| {
                    Error::parse(&file, format!("no mount holds {}", path.display()))
                });
            }
            Err(e) => last = Some(Error::io(file, e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::NotAvailable("no mount table".into())))
}

/// The last mount (a later one stacks on top) whose mount point is the longest leading
/// part of `path`, component by component (`/data` holds `/data/x`, not `/database`).
pub fn find(mountinfo: &str, path: &Path) -> Option<Mount> {
    let wanted: Vec<Component<'_>> = path.components().collect();
    let mut best: Option<(usize, Mount)> = None;
    for line in mountinfo.lines() {
        let Some(mount) = parse_line(line) else {
            continue;
        };
        let depth = Path::new(&mount.mountpoint).components().count();
        let holds = Path::new(&mount.mountpoint)
            .components()
            .zip(&wanted)
            .all(|(a, b)| a == *b)
            && depth <= wanted.len();
        if holds && best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            best = Some((depth, mount));
        }
    }
    best.map(|(_, m)| m)
}

/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw` (proc(5)):
/// the mount point is the fifth field; type and source follow the `-` after the optional
/// fields.
fn parse_line(line: &str) -> Option<Mount> {
    let mut fields = line.split(' ');
    let mountpoint = fields.nth(4)?;
    let mut rest = fields.skip_while(|f| *f != "-");
    rest.next()?;
    let fstype = rest.next()?;
    let device = rest.next()?;
    Some(Mount {
        mountpoint: unescape(mountpoint),
        device: unescape(device),
        fstype: unescape(fstype),
    })
}

/// The kernel writes space, tab, newline and backslash in the table as `\040`, `\011`,
/// `\012` and `\134`.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
