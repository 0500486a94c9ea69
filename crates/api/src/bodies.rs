//! The response bodies of one snapshot, encoded once by the engine on the probe thread
//! ([`Encoder`] is the engine's [`sampler::Encode`]); handlers only clone them. The
//! sample's stream event and its `/metrics` body are one allocation: the body is the
//! event's `data:` line.

use bytes::Bytes;
use sampler::{Published, Snapshot};

use crate::wire;

/// The `/metrics` and `/gpu` bodies of one snapshot, and its stream event.
#[derive(Clone, Debug)]
pub struct Bodies {
    metrics: Bytes,
    gpu: Bytes,
    event: Bytes,
}

/// `id: <ms>\ndata: <the /metrics JSON>\n\n` (SPEC §7), and the JSON as a slice of it.
fn event_and_metrics(snapshot: &Snapshot) -> (Bytes, Bytes) {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(
        sampler::unix_ms(snapshot.sample.taken_at)
            .to_string()
            .as_bytes(),
    );
    out.extend_from_slice(b"\ndata: ");
    let start = out.len();
    wire::write_metrics(snapshot, &mut out);
    let end = out.len();
    out.extend_from_slice(b"\n\n");
    let event = Bytes::from(out);
    let metrics = event.slice(start..end);
    (event, metrics)
}

impl Bodies {
    /// Encodes every body of `snapshot` now.
    pub fn of(snapshot: &Snapshot) -> Self {
        let (event, metrics) = event_and_metrics(snapshot);
        Self {
            metrics,
            gpu: wire::encode_gpu(&snapshot.gpu),
            event,
        }
    }

    /// The sample's Server-Sent Event (`id:` and `data:` lines, the blank line after).
    pub fn event(&self) -> &Bytes {
        &self.event
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
        let (event, metrics) = event_and_metrics(snapshot);
        Bodies {
            metrics,
            gpu,
            event,
        }
    }

    fn event(bodies: &Bodies) -> Bytes {
        bodies.event.clone()
    }
}
