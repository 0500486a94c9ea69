//! The published state of one sampling tick, with its response bodies encoded once.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use probes::{Sample, Unavailable};

use crate::wire;

/// The state of one probe family after a tick, for `/health`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeState {
    pub name: &'static str,
    /// How long the last read took (up to its deadline when it timed out).
    pub last_duration: Duration,
    /// Why the last read gave nothing; `None` when it succeeded.
    pub error: Option<Unavailable>,
    /// When this family last gave a reading.
    pub last_ok: Option<SystemTime>,
}

/// Everything one sampling tick produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Increases by one per tick, from 1; never goes back.
    pub seq: u64,
    pub sample: Sample,
    pub gpu: gpu::GpuSample,
    pub probes: Vec<ProbeState>,
}

impl Snapshot {
    /// SPEC §2 `temperature`: the CPU package sensor, else the GPU's, else unknown.
    pub fn temperature(&self) -> Option<f64> {
        self.sample
            .cpu_celsius
            .as_ref()
            .ok()
            .copied()
            .or_else(|| self.gpu.max_celsius())
    }

    /// A tick succeeded when it read at least one of the host's core families.
    pub fn succeeded(&self) -> bool {
        self.sample.cpu_percent.is_ok() || self.sample.memory.is_ok() || self.sample.disk.is_ok()
    }
}

/// A snapshot as handlers see it: the data, when it was taken, and its encoded bodies.
#[derive(Debug)]
pub struct Published {
    pub snapshot: Snapshot,
    /// Monotonic time of the tick, for the sample's age.
    pub taken: Instant,
    /// Monotonic time of the last tick that succeeded (this one or an earlier one).
    pub last_success: Option<Instant>,
    pub(crate) metrics_body: Bytes,
    pub(crate) gpu_body: Bytes,
}

impl Published {
    /// Encodes the `/metrics` and `/gpu` bodies now, once for every request that follows.
    pub fn new(snapshot: Snapshot, taken: Instant, last_success: Option<Instant>) -> Self {
        Self::after(None, snapshot, taken, last_success)
    }

    /// As `new`, reusing the `/gpu` body of `previous` when the GPU readings are the same
    /// (always, on a host without a GPU): one encoding less per tick.
    pub fn after(
        previous: Option<&Published>,
        snapshot: Snapshot,
        taken: Instant,
        last_success: Option<Instant>,
    ) -> Self {
        let metrics_body = wire::encode_metrics(&snapshot);
        let gpu_body = match previous {
            Some(p) if p.snapshot.gpu == snapshot.gpu => p.gpu_body.clone(),
            _ => wire::encode_gpu(&snapshot.gpu),
        };
        Self {
            snapshot,
            taken,
            last_success,
            metrics_body,
            gpu_body,
        }
    }

    /// The `/metrics` body.
    pub fn metrics_body(&self) -> &Bytes {
        &self.metrics_body
    }
}
