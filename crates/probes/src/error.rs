use std::path::PathBuf;

/// Why a probe could not read its family.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {}: {what}", path.display())]
    Parse { path: PathBuf, what: String },
    #[error("statvfs {}", path.display())]
    Statvfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The reading failed for a reason given in words (a transient or a fault).
    #[error("{0}")]
    NotAvailable(String),
    /// The host has no such hardware (no CPU temperature sensor): not a fault.
    #[error("{0}")]
    Absent(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Self::Parse {
            path: path.into(),
            what: what.into(),
        }
    }
}
