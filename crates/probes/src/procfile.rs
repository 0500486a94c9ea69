//! A procfs file kept open and read again from offset 0 on every sample: procfs generates
//! the content anew for a read at the start, and keeping the descriptor saves the path
//! lookup and the open/close of every sample (procps and node_exporter do the same).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Error;

#[derive(Debug)]
pub(crate) struct ProcFile {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl ProcFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            buf: Vec::new(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, read now. A descriptor that stopped working (procfs remounted) is
    /// dropped and the file opened again, once.
    pub(crate) fn read(&mut self) -> Result<&str, Error> {
        let mut reopened = false;
        let len = loop {
            let file = match self.file.take() {
                Some(f) => f,
                None => {
                    reopened = true;
                    File::open(&self.path).map_err(|e| Error::io(&self.path, e))?
                }
            };
            match read_from_start(&file, &mut self.buf) {
                Ok(len) => {
                    self.file = Some(file);
                    break len;
                }
                Err(e) if reopened => return Err(Error::io(&self.path, e)),
                Err(_) => continue,
            }
        };
        std::str::from_utf8(&self.buf[..len]).map_err(|e| {
            Error::parse(
                &self.path,
                format!("not UTF-8 (at byte {})", e.valid_up_to()),
            )
        })
    }
}

/// Reads `file` from offset 0 to its end into `buf`, growing it as needed; returns the length.
/// Only for procfs files made by a single show call (see the comment below).
fn read_from_start(file: &File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize((buf.len() * 2).max(8192), 0);
        }
        let room = buf.len() - len;
        let n = file.read_at(&mut buf[len..], len as u64)?;
        len += n;
        // `/proc/stat` and `/proc/meminfo` are generated whole by one show call, and a
        // read with room to spare returns all of it: a short read is the end, and asking
        // again for the zero-length one would be a wasted system call every sample.
        if n == 0 || n < room {
            return Ok(len);
        }
    }
}
