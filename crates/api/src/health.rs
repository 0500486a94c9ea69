//! `/health`: what the self-healing agent acts on. Computed per request (uptime and ages
//! change every moment) from the latest snapshot and the database status.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sampler::{WriterState, WriterStatus};
use serde::Serialize;

use crate::AppState;
use crate::wire::{Headline, disk_percent, rfc3339, to_bytes};

/// How many live intervals may pass without a successful sample before `/health` is 503.
const STALE_INTERVALS: u32 = 3;

#[derive(Serialize)]
struct HealthWire<'a> {
    status: &'static str,
    uptime_seconds: f64,
    last_sample_at: Option<String>,
    last_sample_age_seconds: Option<f64>,
    last_success_age_seconds: Option<f64>,
    sample_seq: u64,
    interval_seconds: f64,
    host: &'a str,
    version: &'static str,
    metrics: Summary,
    probes: BTreeMap<&'static str, ProbeWire<'a>>,
    database: DatabaseWire<'a>,
    gpu: GpuHealthWire<'a>,
    /// The memory ring (absent when the server keeps no history).
    #[serde(skip_serializing_if = "Option::is_none")]
    ring: Option<RingWire>,
    streams: StreamsWire,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct RingWire {
    samples: usize,
    sample_capacity: usize,
    oldest_sample: Option<String>,
    windows: usize,
    window_capacity: usize,
    oldest_window: Option<String>,
    /// Whether the windows of an earlier run were read back from the database.
    refilled: bool,
}

#[derive(Serialize)]
struct StreamsWire {
    open: usize,
    max: usize,
}

#[derive(Serialize)]
struct Summary {
    #[serde(flatten)]
    headline: Headline,
    disk_percent: Option<f64>,
}

#[derive(Serialize)]
struct ProbeWire<'a> {
    /// `ok`, `error`, or `absent` (the host has no such hardware: not a fault).
    state: &'static str,
    last_duration_ms: f64,
    error: Option<&'a str>,
    last_ok: Option<String>,
}

#[derive(Serialize)]
struct DatabaseWire<'a> {
    state: &'static str,
    pending_rows: u64,
    dropped_windows: u64,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct GpuHealthWire<'a> {
    backend: &'static str,
    available: bool,
    reason: Option<&'a str>,
}

/// SPEC §3's database states: `disabled` without persistence, `connected`, or
/// `unreachable` (connecting, failing, or a writer that has stopped), with why.
fn database_wire(status: Option<&WriterStatus>) -> DatabaseWire<'_> {
    let Some(s) = status else {
        return DatabaseWire {
            state: "disabled",
            pending_rows: 0,
            dropped_windows: 0,
            error: None,
        };
    };
    let (state, error) = match s.state {
        WriterState::Connected => ("connected", s.last_error.as_deref()),
        WriterState::Connecting => (
            "unreachable",
            Some(s.last_error.as_deref().unwrap_or("connecting")),
        ),
        WriterState::Unreachable | WriterState::Stopped => ("unreachable", s.last_error.as_deref()),
    };
    DatabaseWire {
        state,
        pending_rows: s.pending_rows,
        dropped_windows: s.dropped_windows,
        error,
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The `/health` answer: 200 with `ok` or `degraded`, or 503 (same body) when no sample
/// has succeeded for three live intervals (or none yet).
pub(crate) fn health(state: &AppState, now: Instant) -> (bool, Bytes) {
    let latest = state.latest.borrow().clone();
    let database = state.database.as_ref().map(|d| d.now());
    let mut problems = Vec::new();

    let stale_after = state.live_interval * STALE_INTERVALS;
    let success_age = latest
        .as_ref()
        .and_then(|p| p.last_success)
        .map(|t| now.saturating_duration_since(t));
    let serving = match success_age {
        Some(age) if age <= stale_after => true,
        Some(age) => {
            problems.push(format!(
                "no successful sample for {:.1} s",
                age.as_secs_f64()
            ));
            false
        }
        None => {
            problems.push("no successful sample yet".to_owned());
            false
        }
    };

    let mut probes = BTreeMap::new();
    let mut summary = Summary {
        headline: Headline::default(),
        disk_percent: None,
    };
    let (mut gpu_backend, mut gpu_available, mut gpu_reason) = ("none", false, None);
    if let Some(p) = latest.as_deref() {
        summary = Summary {
            headline: Headline::of(&p.snapshot),
            disk_percent: disk_percent(&p.snapshot),
        };
        for (name, family) in p.snapshot.families.named() {
            let (state_name, error) = match &family.error {
                None => ("ok", None),
                Some(e) if e.is_absent() => ("absent", Some(e.reason())),
                Some(e) => {
                    problems.push(format!("{name}: {}", e.reason()));
                    ("error", Some(e.reason()))
                }
            };
            probes.insert(
                name,
                ProbeWire {
                    state: state_name,
                    last_duration_ms: (family.took.as_secs_f64() * 1e6).round() / 1e3,
                    error,
                    last_ok: family.last_ok.map(rfc3339),
                },
            );
        }
        let g = &p.snapshot.gpu;
        gpu_backend = g.backend.as_str();
        gpu_available = g.available();
        gpu_reason = g.reason.as_deref();
    }
    let database = database_wire(database.as_ref());
    if database.state == "unreachable" {
        problems.push(format!(
            "database unreachable{}",
            database.error.map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }

    let body = HealthWire {
        status: if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        uptime_seconds: secs(now.saturating_duration_since(state.started)),
        last_sample_at: latest.as_ref().map(|p| rfc3339(p.snapshot.sample.taken_at)),
        last_sample_age_seconds: latest
            .as_ref()
            .map(|p| secs(now.saturating_duration_since(p.taken))),
        last_success_age_seconds: success_age.map(secs),
        sample_seq: latest.as_ref().map_or(0, |p| p.snapshot.seq),
        interval_seconds: state.live_interval.as_secs_f64(),
        host: &state.host,
        version: env!("CARGO_PKG_VERSION"),
        metrics: summary,
        probes,
        database,
        gpu: GpuHealthWire {
            backend: gpu_backend,
            available: gpu_available,
            reason: gpu_reason,
        },
        ring: state.history.as_ref().map(|h| {
            let r = h.ring.stats();
            RingWire {
                samples: r.samples,
                sample_capacity: r.sample_capacity,
                oldest_sample: r.oldest_sample.map(rfc3339),
                windows: r.windows,
                window_capacity: r.window_capacity,
                oldest_window: r.oldest_window.map(rfc3339),
                refilled: r.refilled,
            }
        }),
        streams: StreamsWire {
            open: state.streams.open(),
            max: state.streams.max,
        },
        problems,
    };
    (serving, to_bytes(&body))
}
