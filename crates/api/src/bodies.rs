//! The response bodies of one snapshot, encoded once by the engine on the probe thread
//! ([`Encoder`] is the engine's [`sampler::Encode`]); handlers only clone them.

use bytes::Bytes;
use sampler::{Published, Snapshot};

use crate::wire;

/// The `/metrics` and `/gpu` bodies of one snapshot.
#[derive(Clone, Debug)]
pub struct Bodies {
    metrics: Bytes,
    gpu: Bytes,
}

impl Bodies {
    /// Encodes both bodies of `snapshot` now.
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            metrics: wire::encode_metrics(snapshot),
            gpu: wire::encode_gpu(&snapshot.gpu),
        }
    }

    /// The `/metrics` body (also what `metrics-collector sample` prints).
    pub fn metrics(&self) -> &Bytes {
        &self.metrics
    }

    /// The `/gpu` body.
    pub fn gpu(&self) -> &Bytes {
        &self.gpu
    }
}

/// What the API is served from: the latest snapshot with its bodies.
pub type Latest = sampler::Latest<Bodies>;

/// The engine's encoder for the API: both bodies per tick, the `/gpu` one reused from the
/// previous tick while the GPU readings are the same (always, on a host without a GPU).
#[derive(Clone, Copy, Debug, Default)]
pub struct Encoder;

impl sampler::Encode for Encoder {
    type Bodies = Bodies;

    fn encode(&mut self, snapshot: &Snapshot, previous: Option<&Published<Bodies>>) -> Bodies {
        let gpu = match previous {
            Some(p) if p.snapshot.gpu == snapshot.gpu => p.bodies.gpu.clone(),
            _ => wire::encode_gpu(&snapshot.gpu),
        };
        Bodies {
            metrics: wire::encode_metrics(snapshot),
            gpu,
        }
    }
}
