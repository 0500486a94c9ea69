//! GPU readings behind one trait, [`GpuBackend`], and the types every backend fills:
//! per-device [`Device`] readings and the aggregate view of [`GpuSample`].
//!
//! Owns: choosing a backend ([`select`]) and the null backend ([`NoGpu`]), which says why
//! there is no GPU instead of inventing numbers. NVML (desktops, servers) and Jetson sysfs
//! backends plug in here behind the same trait.
//!
//! Does not own: threads and deadlines (a backend call may block; the caller runs it off
//! its async workers), serialisation, HTTP. Synchronous and runtime-free, like `probes`.

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "fake")]
pub mod fake;
pub mod jetson;
mod none;
pub mod nvml;

pub use none::NoGpu;

/// Which implementation reads the GPUs (`backend` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Nvml,
    Jetson,
    None,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nvml => "nvml",
            Self::Jetson => "jetson",
            Self::None => "none",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator asked for (`METRICS_GPU_BACKEND`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// Whatever this machine has; never fails.
    #[default]
    Auto,
    Nvml,
    Jetson,
    None,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Nvml => "nvml",
            Self::Jetson => "jetson",
            Self::None => "none",
        }
    }
}

impl FromStr for Choice {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "nvml" => Ok(Self::Nvml),
            "jetson" => Ok(Self::Jetson),
            "none" => Ok(Self::None),
            _ => Err(()),
        }
    }
}

/// A backend the operator asked for cannot run on this machine or in this build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {0} GPU backend is not available: {1}")]
    Unavailable(BackendKind, String),
}

/// The readings of one GPU. A field the device cannot report is `None`, never 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Device {
    pub index: u32,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub utilization_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub celsius: Option<f64>,
    pub power_watts: Option<f64>,
    /// The enforced power limit.
    pub power_limit_watts: Option<f64>,
    /// Fan speed as % of its maximum (NVML); `None` on passive boards.
    pub fan_percent: Option<f64>,
    /// Performance state, 0 (P0, highest) to 15.
    pub performance_state: Option<u32>,
    /// Clock throttle reasons active now, by name (`sw_power_cap`, `hw_thermal_slowdown`,
    /// ...); empty when the clocks run free, `None` when the device cannot say.
    pub throttle_reasons: Option<Vec<String>>,
    /// Uncorrected ECC errors since the driver loaded; `None` without ECC.
    pub ecc_uncorrected: Option<u64>,
    /// Why this device could not be read this time (it stays listed, unhealthy).
    pub error: Option<String>,
    /// Why a field is `null` when that is not a fault ("temperature: gpu-thermal reads
    /// -256 °C: powered off").
    pub notes: Vec<String>,
}

/// One reading of every GPU a backend sees.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuSample {
    pub backend: BackendKind,
    /// Why there are no readings (no backend, library missing, ...), when there are none.
    pub reason: Option<String>,
    pub devices: Vec<Device>,
    /// What the backend knows of the machine: driver version, board model, L4T release.
    pub system: SystemInfo,
    /// Power of the whole board where the backend measures it (Jetson's input rail);
    /// else the devices' sum.
    pub board_power_watts: Option<f64>,
}

/// Facts about the GPU software and board, where known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemInfo {
    pub driver_version: Option<String>,
    /// Jetson: the device-tree model ("NVIDIA Jetson AGX Orin Developer Kit").
    pub board_model: Option<String>,
    /// Jetson: the L4T release ("36.4.3").
    pub l4t_release: Option<String>,
}

impl GpuSample {
    /// No GPU readings, and why.
    pub fn unavailable(backend: BackendKind, reason: impl Into<String>) -> Self {
        Self {
            backend,
            reason: Some(reason.into()),
            devices: Vec::new(),
            system: SystemInfo::default(),
            board_power_watts: None,
        }
    }

    /// `available` on the wire: some device gave a reading.
    pub fn available(&self) -> bool {
        self.reason.is_none() && !self.devices.is_empty()
    }

    /// The `gpu` field of `/metrics`: the mean utilisation of the devices that report one.
    pub fn mean_utilization(&self) -> Option<f64> {
        mean(self.devices.iter().filter_map(|d| d.utilization_percent))
    }

    /// Total memory in use across devices, if any device reports it.
    pub fn memory_used_bytes(&self) -> Option<u64> {
        sum(self.devices.iter().filter_map(|d| d.memory_used_bytes))
    }

    pub fn memory_total_bytes(&self) -> Option<u64> {
        sum(self.devices.iter().filter_map(|d| d.memory_total_bytes))
    }

    /// The hottest device.
    pub fn max_celsius(&self) -> Option<f64> {
        self.devices
            .iter()
            .filter_map(|d| d.celsius)
            .reduce(f64::max)
    }

    /// Total power draw, watts: the board's where measured, else the devices' sum.
    pub fn power_watts(&self) -> Option<f64> {
        if self.board_power_watts.is_some() {
            return self.board_power_watts;
        }
        let mut it = self.devices.iter().filter_map(|d| d.power_watts).peekable();
        it.peek()?;
        Some(it.sum())
    }

    /// Devices that could not be read this time.
    pub fn failing(&self) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(|d| d.error.is_some())
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

fn sum(values: impl Iterator<Item = u64>) -> Option<u64> {
    let mut it = values.peekable();
    it.peek()?;
    Some(it.sum())
}

/// A source of GPU readings. `sample` may block (driver calls); it never panics on a
/// driver error: a lost device shows up as its `error`, a lost backend as `reason`.
pub trait GpuBackend: Send {
    fn kind(&self) -> BackendKind;
    fn sample(&mut self) -> GpuSample;
}

/// The backend for `choice` on this machine, reading under `roots`.
///
/// `Auto` never fails: a Tegra board gets the Jetson backend (NVML there is absent, or
/// answers `NotSupported` for everything before Thor), a machine with a working NVML gets
/// NVML (unless its only GPU is Tegra's "nvgpu"), an NVML library that fails to start gets
/// NVML anyway (it retries with back-off: the driver may come up later), and anything
/// else gets [`NoGpu`] with the reason. An explicit choice that cannot run is an error.
pub fn select(choice: Choice, roots: &probes::Roots) -> Result<Box<dyn GpuBackend>, Error> {
    match choice {
        Choice::None => Ok(Box::new(NoGpu::new("disabled by METRICS_GPU_BACKEND=none"))),
        Choice::Jetson => {
            if jetson::detect(roots) {
                Ok(Box::new(jetson::Jetson::new(roots)))
            } else {
                Err(Error::Unavailable(BackendKind::Jetson, "this machine is not a Jetson (no Tegra GPU under sysfs, no /etc/nv_tegra_release)".into()))
            }
        }
        Choice::Nvml => match nvml::Nvml::open(roots) {
            Ok(n) => Ok(Box::new(n)),
            Err(e) => Err(Error::Unavailable(BackendKind::Nvml, e.reason().to_owned())),
        },
        Choice::Auto => {
            if jetson::detect(roots) {
                return Ok(Box::new(jetson::Jetson::new(roots)));
            }
            match nvml::Nvml::open(roots) {
                Ok(n)
                    if n.device_names()
                        .iter()
                        .any(|name| name.to_ascii_lowercase().contains("nvgpu")) =>
                {
                    Ok(Box::new(jetson::Jetson::new(roots)))
                }
                Ok(n) => Ok(Box::new(n)),
                Err(nvml::OpenError::Failed(reason)) => {
                    Ok(Box::new(nvml::Nvml::retrying(roots, reason)))
                }
                Err(nvml::OpenError::Missing(reason)) => Ok(Box::new(NoGpu::new(format!(
                    "no GPU found: {reason}, and not a Jetson"
                )))),
            }
        }
    }
}

#[cfg(test)]
mod tests;
