//! The null backend: no GPU, and the reason why.

use crate::{BackendKind, GpuBackend, GpuSample};

#[derive(Debug)]
pub struct NoGpu {
    reason: String,
}

impl NoGpu {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl GpuBackend for NoGpu {
    fn kind(&self) -> BackendKind {
        BackendKind::None
    }

    fn sample(&mut self) -> GpuSample {
        GpuSample::unavailable(BackendKind::None, self.reason.clone())
    }
}
