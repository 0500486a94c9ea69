//! Desktop and server GPUs through NVML (`libnvidia-ml.so.1`, loaded at run time), behind
//! the `nvml` cargo feature. Without the feature, `Nvml::open` says so and callers carry on
//! with another backend: no `cfg` outside this module.

#[cfg(not(feature = "nvml"))]
mod disabled;
#[cfg(feature = "nvml")]
mod enabled;

#[cfg(not(feature = "nvml"))]
pub use disabled::Nvml;
#[cfg(feature = "nvml")]
pub use enabled::Nvml;

/// Why NVML could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// No driver library on this machine (or not built in): no NVIDIA GPU to speak of.
    Missing(String),
    /// The library is there but does not work now (driver not loaded, version mismatch,
    /// no permission): a fault worth retrying.
    Failed(String),
}

impl OpenError {
    pub fn reason(&self) -> &str {
        match self {
            Self::Missing(r) | Self::Failed(r) => r,
        }
    }
}
