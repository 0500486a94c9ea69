//! Built without the `nvml` feature.

use crate::{BackendKind, GpuBackend, GpuSample};

use super::OpenError;

#[derive(Debug)]
pub struct Nvml(());

impl Nvml {
    pub fn open(_roots: &probes::Roots) -> Result<Self, OpenError> {
        Err(OpenError::Missing(
            "this build has no NVML support (built without the `nvml` feature)".into(),
        ))
    }

    pub fn retrying(_roots: &probes::Roots, _reason: String) -> Self {
        Self(())
    }

    pub fn device_names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl GpuBackend for Nvml {
    fn kind(&self) -> BackendKind {
        BackendKind::Nvml
    }

    fn sample(&mut self) -> GpuSample {
        GpuSample::unavailable(BackendKind::Nvml, "this build has no NVML support")
    }
}
