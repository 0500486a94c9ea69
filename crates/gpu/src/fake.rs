//! A backend the tests of higher layers control (feature `fake`): GPUs whose readings,
//! failures, hangs and losses are set by the test, as NVML would produce them.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::{BackendKind, Device, GpuBackend, GpuSample};

#[derive(Debug, Default)]
struct State {
    devices: Vec<Device>,
    /// The whole backend fails with this reason.
    fail: Option<String>,
    /// Index of a device that fell off the bus.
    lost: Option<u32>,
    /// `sample` blocks while this is true.
    hang: bool,
}

/// The test's remote control; clones share the same GPUs.
#[derive(Clone, Debug, Default)]
pub struct Control(Arc<(Mutex<State>, Condvar)>);

impl Control {
    fn with(&self, f: impl FnOnce(&mut State)) {
        let (lock, cvar) = &*self.0;
        f(&mut lock.lock().unwrap_or_else(PoisonError::into_inner));
        cvar.notify_all();
    }

    pub fn set_devices(&self, devices: Vec<Device>) {
        self.with(|s| s.devices = devices);
    }

    pub fn fail(&self, reason: Option<&str>) {
        self.with(|s| s.fail = reason.map(str::to_owned));
    }

    pub fn lose(&self, index: Option<u32>) {
        self.with(|s| s.lost = index);
    }

    pub fn hang(&self, hang: bool) {
        self.with(|s| s.hang = hang);
    }
}

#[derive(Debug)]
pub struct FakeGpu(Control);

impl FakeGpu {
    pub fn new(control: Control) -> Self {
        Self(control)
    }
}

impl GpuBackend for FakeGpu {
    fn kind(&self) -> BackendKind {
        BackendKind::Nvml
    }

    fn sample(&mut self) -> GpuSample {
        let (lock, cvar) = &*self.0.0;
        let state = cvar
            .wait_while(lock.lock().unwrap_or_else(PoisonError::into_inner), |s| {
                s.hang
            })
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = &state.fail {
            return GpuSample::unavailable(BackendKind::Nvml, reason.clone());
        }
        let devices = state
            .devices
            .iter()
            .map(|d| {
                if state.lost == Some(d.index) {
                    Device {
                        index: d.index,
                        name: d.name.clone(),
                        uuid: d.uuid.clone(),
                        error: Some("the GPU has fallen off the bus".into()),
                        ..Default::default()
                    }
                } else {
                    d.clone()
                }
            })
            .collect();
        GpuSample {
            backend: BackendKind::Nvml,
            reason: None,
            devices,
            system: Default::default(),
            board_power_watts: None,
        }
    }
}
