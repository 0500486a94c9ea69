//! NVML through `nvml-wrapper`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nvml_wrapper::enum_wrappers::device::{
    EccCounter, MemoryError, PerformanceState, TemperatureSensor,
};
use nvml_wrapper::error::NvmlError;

use super::OpenError;
use crate::{BackendKind, Device, GpuBackend, GpuSample, SystemInfo};

/// Containers get only the versioned name (no `-dev` symlink): try it first.
const LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What we learn once per initialisation and keep: reading names and bus ids every tick
/// would be wasted calls (and bus ids let us check power state without waking the GPU).
#[derive(Debug, Clone)]
struct Known {
    name: Option<String>,
    uuid: Option<String>,
    /// `<sysfs>/bus/pci/devices/<bus id>/power_state`.
    power_state: Option<PathBuf>,
}

/// The NVML backend. A lifecycle error (GPU lost, driver unloaded, library/driver
/// mismatch) closes the library and re-opens it later with back-off; it is never latched.
pub struct Nvml {
    sysfs: PathBuf,
    nvml: Option<nvml_wrapper::Nvml>,
    known: Vec<Known>,
    driver_version: Option<String>,
    last_error: Option<String>,
    retry_at: Instant,
    retry_in: Duration,
}

impl std::fmt::Debug for Nvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvml")
            .field("open", &self.nvml.is_some())
            .field("devices", &self.known.len())
            .finish()
    }
}

fn load() -> Result<nvml_wrapper::Nvml, NvmlError> {
    let mut last = NvmlError::LibraryNotFound;
    for name in LIBRARIES {
        match nvml_wrapper::Nvml::builder()
            .lib_path(OsStr::new(name))
            .init()
        {
            Ok(n) => return Ok(n),
            Err(e @ (NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound)) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn describe(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => {
            "no NVIDIA driver library (libnvidia-ml.so.1)".into()
        }
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
        NvmlError::LibRmVersionMismatch => {
            "NVML library and driver versions differ (reboot after a driver update)".into()
        }
        NvmlError::GpuLost => "the GPU has fallen off the bus".into(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        other => format!("NVML: {other}"),
    }
}

/// Errors after which the library must be closed and opened again.
fn is_lifecycle(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::GpuLost
            | NvmlError::DriverNotLoaded
            | NvmlError::LibRmVersionMismatch
            | NvmlError::Uninitialized
            | NvmlError::ResetRequired
    )
}

/// NVML's "00000000:01:00.0" → sysfs's "0000:01:00.0".
fn sysfs_bus_id(nvml_bus_id: &str) -> String {
    let lower = nvml_bus_id.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((domain, rest)) if domain.len() > 4 => {
            format!("{}:{rest}", &domain[domain.len() - 4..])
        }
        _ => lower,
    }
}

impl Nvml {
    /// Opens NVML and learns the devices. `Missing` when there is no library (a machine
    /// without NVIDIA GPUs); `Failed` when the library is there but unusable.
    pub fn open(roots: &probes::Roots) -> Result<Self, OpenError> {
        let mut me = Self::retrying(roots, String::new());
        me.retry_at = Instant::now();
        match me.reopen() {
            Ok(()) if me.known.is_empty() => Err(OpenError::Missing("NVML sees no GPU".into())),
            Ok(()) => Ok(me),
            Err(e @ (NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound)) => {
                Err(OpenError::Missing(describe(&e)))
            }
            Err(e) => Err(OpenError::Failed(describe(&e))),
        }
    }

    /// A backend whose library failed to start: it reports why and tries again with
    /// back-off (the driver may come up after us).
    pub fn retrying(roots: &probes::Roots, reason: String) -> Self {
        let mut me = Self {
            sysfs: roots.sysfs.clone(),
            nvml: None,
            known: Vec::new(),
            driver_version: None,
            last_error: None,
            retry_at: Instant::now(),
            retry_in: RETRY_MIN,
        };
        me.fail(reason);
        me
    }

    /// Device names, for telling Tegra's integrated GPU ("nvgpu") from a discrete one.
    pub fn device_names(&self) -> Vec<String> {
        self.known.iter().filter_map(|k| k.name.clone()).collect()
    }

    fn reopen(&mut self) -> Result<(), NvmlError> {
        self.nvml = None;
        let nvml = load()?;
        let count = nvml.device_count()?;
        let mut known = Vec::with_capacity(count as usize);
        for index in 0..count {
            // A device that cannot be opened now is still listed (and reported per tick).
            let device = nvml.device_by_index(index);
            let (name, uuid, bus) = match &device {
                Ok(d) => (
                    d.name().ok(),
                    d.uuid().ok(),
                    d.pci_info().ok().map(|p| sysfs_bus_id(&p.bus_id)),
                ),
                Err(_) => (None, None, None),
            };
            let power_state = bus.map(|b| {
                self.sysfs
                    .join("bus/pci/devices")
                    .join(b)
                    .join("power_state")
            });
            known.push(Known {
                name,
                uuid,
                power_state,
            });
        }
        self.driver_version = nvml.sys_driver_version().ok();
        self.known = known;
        self.nvml = Some(nvml);
        self.last_error = None;
        self.retry_in = RETRY_MIN;
        Ok(())
    }

    fn fail(&mut self, reason: String) {
        self.nvml = None;
        self.last_error = Some(reason);
        self.retry_at = Instant::now() + self.retry_in;
        self.retry_in = (self.retry_in * 2).min(RETRY_MAX);
    }
}

/// A field's value, `None` when the device does not support it; other errors are kept.
fn field<T>(r: Result<T, NvmlError>, errors: &mut Vec<NvmlError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(NvmlError::NotSupported | NvmlError::NoData | NvmlError::NoPermission) => None,
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn sleeping(power_state: Option<&Path>) -> bool {
    power_state
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|s| s.trim() == "D3cold")
}

fn pstate(p: PerformanceState) -> Option<u32> {
    use PerformanceState as P;
    Some(match p {
        P::Zero => 0,
        P::One => 1,
        P::Two => 2,
        P::Three => 3,
        P::Four => 4,
        P::Five => 5,
        P::Six => 6,
        P::Seven => 7,
        P::Eight => 8,
        P::Nine => 9,
        P::Ten => 10,
        P::Eleven => 11,
        P::Twelve => 12,
        P::Thirteen => 13,
        P::Fourteen => 14,
        P::Fifteen => 15,
        P::Unknown => return None,
    })
}

impl GpuBackend for Nvml {
    fn kind(&self) -> BackendKind {
        BackendKind::Nvml
    }

    fn sample(&mut self) -> GpuSample {
        if self.nvml.is_none() {
            if Instant::now() < self.retry_at {
                let reason = self.last_error.clone().unwrap_or_default();
                return GpuSample::unavailable(BackendKind::Nvml, format!("{reason}; retrying"));
            }
            if let Err(e) = self.reopen() {
                self.fail(describe(&e));
                return GpuSample::unavailable(BackendKind::Nvml, describe(&e));
            }
        }
        let Some(nvml) = self.nvml.as_ref() else {
            return GpuSample::unavailable(BackendKind::Nvml, "NVML is not open");
        };
        let mut devices = Vec::with_capacity(self.known.len());
        let mut lifecycle = None;
        for (index, known) in self.known.iter().enumerate() {
            let mut d = Device {
                index: index as u32,
                name: known.name.clone(),
                uuid: known.uuid.clone(),
                ..Default::default()
            };
            // Reading a GPU in D3cold would wake it (and cost watts): report it asleep.
            if sleeping(known.power_state.as_deref()) {
                d.notes
                    .push("asleep in D3cold: not woken to be read".into());
                devices.push(d);
                continue;
            }
            let device = match nvml.device_by_index(index as u32) {
                Ok(device) => device,
                Err(e) => {
                    d.error = Some(describe(&e));
                    if is_lifecycle(&e) {
                        lifecycle = Some(e);
                    }
                    devices.push(d);
                    continue;
                }
            };
            let mut errors = Vec::new();
            d.utilization_percent =
                field(device.utilization_rates(), &mut errors).map(|u| f64::from(u.gpu));
            if let Some(m) = field(device.memory_info(), &mut errors) {
                d.memory_used_bytes = Some(m.used);
                d.memory_total_bytes = Some(m.total);
            }
            d.celsius =
                field(device.temperature(TemperatureSensor::Gpu), &mut errors).map(f64::from);
            d.power_watts =
                field(device.power_usage(), &mut errors).map(|mw| f64::from(mw) / 1000.0);
            d.power_limit_watts =
                field(device.enforced_power_limit(), &mut errors).map(|mw| f64::from(mw) / 1000.0);
            if field(device.num_fans(), &mut errors).is_some_and(|n| n > 0) {
                d.fan_percent = field(device.fan_speed(0), &mut errors).map(f64::from);
            }
            d.performance_state = field(device.performance_state(), &mut errors).and_then(pstate);
            d.throttle_reasons = field(device.current_throttle_reasons(), &mut errors).map(|r| {
                r.iter_names()
                    .map(|(name, _)| name.to_ascii_lowercase())
                    .collect()
            });
            d.ecc_uncorrected = field(
                device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
                &mut errors,
            );
            if let Some(e) = errors.iter().find(|e| is_lifecycle(e)) {
                d.error = Some(describe(e));
                lifecycle = Some(e.clone_kind());
            } else if let Some(e) = errors.first() {
                d.error = Some(describe(e));
            }
            devices.push(d);
        }
        let system = SystemInfo {
            driver_version: self.driver_version.clone(),
            ..Default::default()
        };
        if let Some(e) = lifecycle {
            // Other devices' readings of this tick stand; the library is reopened later.
            self.fail(describe(&e));
        }
        GpuSample {
            backend: BackendKind::Nvml,
            reason: None,
            devices,
            system,
            board_power_watts: None,
        }
    }
}

/// `NvmlError` is not `Clone`; the lifecycle kinds carry no data, so rebuild them.
trait CloneKind {
    fn clone_kind(&self) -> NvmlError;
}

impl CloneKind for NvmlError {
    fn clone_kind(&self) -> NvmlError {
        match self {
            NvmlError::GpuLost => NvmlError::GpuLost,
            NvmlError::DriverNotLoaded => NvmlError::DriverNotLoaded,
            NvmlError::LibRmVersionMismatch => NvmlError::LibRmVersionMismatch,
            NvmlError::ResetRequired => NvmlError::ResetRequired,
            _ => NvmlError::Uninitialized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_ids_map_to_sysfs_names() {
        assert_eq!(sysfs_bus_id("00000000:01:00.0"), "0000:01:00.0");
        assert_eq!(sysfs_bus_id("0000:3B:00.0"), "0000:3b:00.0");
    }

    #[test]
    fn opening_agrees_with_whether_the_library_loads() {
        let roots = probes::Roots::default();
        match (load(), Nvml::open(&roots)) {
            (
                Err(NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound),
                Err(OpenError::Missing(reason)),
            ) => {
                assert!(reason.contains("libnvidia-ml.so.1"), "{reason}");
            }
            (Err(_), Err(OpenError::Failed(reason))) => assert!(!reason.is_empty()),
            (Ok(_), Ok(n)) => assert!(!n.device_names().is_empty()),
            (Ok(_), Err(OpenError::Missing(reason))) => assert_eq!(reason, "NVML sees no GPU"),
            (loaded, opened) => panic!("load {:?} but open {opened:?}", loaded.map(|_| ())),
        }
    }

    #[test]
    fn a_failed_start_is_retried_not_latched() {
        let mut n = Nvml::retrying(
            &probes::Roots::default(),
            "the NVIDIA driver is not loaded".into(),
        );
        let first = n.sample();
        assert_eq!(first.backend, BackendKind::Nvml);
        assert!(
            first
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("retrying")),
            "{first:?}"
        );
        // Within the back-off it does not try again...
        let backoff = n.retry_in;
        let _ = n.sample();
        assert_eq!(
            n.retry_in, backoff,
            "no attempt before the back-off has passed"
        );
        // ...once it has passed, the next sample opens the library again: it works now
        // (a machine with a GPU), or fails afresh and the back-off doubles.
        n.retry_at = Instant::now();
        let again = n.sample();
        assert!(
            n.nvml.is_some() || n.retry_in == (backoff * 2).min(RETRY_MAX),
            "no new attempt after the back-off: {again:?}"
        );
        assert!(again.reason.is_some() || !again.devices.is_empty());
    }
}
