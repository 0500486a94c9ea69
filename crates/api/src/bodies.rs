//! The response bodies of one snapshot, encoded once by the engine on the probe thread
//! ([`Encoder`] is the engine's [`sampler::Encode`]); handlers only clone them. The
//! sample's stream event and its `/metrics` body are one allocation: the body is the
//! event's `data:` line. The two Prometheus bodies are made beside them.

use bytes::Bytes;
use sampler::{Published, Snapshot};

use crate::exposition::{Exposition, Sources};
use crate::{AppState, wire};

/// The `/metrics` (JSON, text format, OpenMetrics) and `/gpu` bodies of one snapshot,
/// and its stream event.
#[derive(Clone, Debug)]
pub struct Bodies {
    metrics: Bytes,
    gpu: Bytes,
    event: Bytes,
    prometheus: Bytes,
    openmetrics: Bytes,
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
    /// Encodes every body of `snapshot` now, as a server with no database, no streams
    /// and no filesystem labels would.
    pub fn of(snapshot: &Snapshot) -> Self {
        use sampler::Encode;
        Encoder::default().encode(snapshot, None)
    }

    /// The text format 0.0.4 body (SPEC §8).
    pub fn prometheus(&self) -> &Bytes {
        &self.prometheus
    }

    /// The OpenMetrics 1.0 body, ending `# EOF` (SPEC §8).
    pub fn openmetrics(&self) -> &Bytes {
        &self.openmetrics
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

/// The engine's encoder for the API: every body per tick, the `/gpu` one reused from the
/// previous tick while the GPU readings are the same (always, on a host without a GPU).
#[derive(Debug, Default)]
pub struct Encoder {
    exposition: Exposition,
}

impl Encoder {
    /// The encoder of the server serving `state`: its Prometheus bodies show that
    /// server's database and streams, and label the filesystem series with `filesystem`
    /// (the mount `METRICS_DISK_PATH` is on).
    pub fn for_server(state: &AppState, filesystem: probes::Mount) -> Self {
        Self {
            exposition: Exposition::new(Sources {
                filesystem,
                database: state.database.clone(),
                streams: state.history.as_ref().map(|_| state.streams.clone()),
            }),
        }
    }
}

impl Encoder {
    /// The two Prometheus bodies of `snapshot` alone, text format then OpenMetrics: what
    /// each tick adds to the JSON (for benchmarks).
    pub fn encode_prometheus(&mut self, snapshot: &Snapshot) -> (Bytes, Bytes) {
        self.exposition.encode(snapshot)
    }
}

impl sampler::Encode for Encoder {
    type Bodies = Bodies;

    fn encode(&mut self, snapshot: &Snapshot, previous: Option<&Published<Bodies>>) -> Bodies {
        let gpu = match previous {
            Some(p) if p.snapshot.gpu == snapshot.gpu => p.bodies.gpu.clone(),
            _ => wire::encode_gpu(&snapshot.gpu),
        };
        let (event, metrics) = event_and_metrics(snapshot);
        let (prometheus, openmetrics) = self.exposition.encode(snapshot);
        Bodies {
            metrics,
            gpu,
            event,
            prometheus,
            openmetrics,
        }
    }

    fn event(bodies: &Bodies) -> Bytes {
        bodies.event.clone()
    }
}
