//! The JSON of each endpoint. Field names are the seed service's; percentages and degrees
//! carry one decimal as the seed's did; an unknown value is `null`, never 0.

use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;

use sampler::Snapshot;

/// RFC 3339 in UTC with a `Z` and milliseconds (`2024-01-15T10:30:00.250Z`): sub-second
/// live intervals need the fraction to keep timestamps distinct.
pub fn rfc3339(t: SystemTime) -> String {
    use std::fmt::Write;
    let t = OffsetDateTime::from(t);
    // Written out by hand: this runs once per sample on a cold cache, where a generic
    // format description costs several times as much.
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
    out
}

fn one_decimal(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite()).map(probes::round1)
}

/// The headline numbers of a snapshot as they go on the wire (one decimal, `null` when
/// unknown): the top of `/metrics` and the `metrics` summary of `/health`.
#[derive(Serialize, Default)]
pub(crate) struct Headline {
    pub(crate) cpu: Option<f64>,
    pub(crate) ram: Option<f64>,
    pub(crate) gpu: Option<f64>,
    pub(crate) temperature: Option<f64>,
}

impl Headline {
    pub(crate) fn of(s: &Snapshot) -> Self {
        let [cpu, ram, gpu, temperature, _] = s.values();
        Self {
            cpu,
            ram,
            gpu,
            temperature,
        }
    }
}

pub(crate) fn disk_percent(s: &Snapshot) -> Option<f64> {
    s.values()[4]
}

/// The headline's fields spelled out rather than `#[serde(flatten)]`ed, which goes
/// through serde's map machinery at several times the cost.
#[derive(Serialize)]
struct MetricsWire {
    cpu: Option<f64>,
    ram: Option<f64>,
    gpu: Option<f64>,
    temperature: Option<f64>,
    disk: DiskWire,
    timestamp: String,
}

/// `disk` stays an object when unknown (its members become `null`), so a consumer reading
/// `disk.percent` never trips over a `null` disk.
#[derive(Serialize)]
struct DiskWire {
    used: Option<u64>,
    free: Option<u64>,
    total: Option<u64>,
    percent: Option<f64>,
}

#[derive(Serialize)]
struct GpuWire<'a> {
    available: bool,
    backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    board_model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    l4t_release: Option<&'a str>,
    utilization: Option<f64>,
    memory_used: Option<u64>,
    memory_total: Option<u64>,
    temperature: Option<f64>,
    power_draw: Option<f64>,
    gpus: Vec<DeviceWire<'a>>,
}

#[derive(Serialize)]
struct DeviceWire<'a> {
    index: u32,
    name: Option<&'a str>,
    uuid: Option<&'a str>,
    utilization: Option<f64>,
    memory_used: Option<u64>,
    memory_total: Option<u64>,
    temperature: Option<f64>,
    power_draw: Option<f64>,
    power_limit: Option<f64>,
    fan: Option<f64>,
    performance_state: Option<u32>,
    throttle_reasons: Option<&'a [String]>,
    ecc_errors_uncorrected: Option<u64>,
    /// False when the device could not be read this time (`error` says why).
    healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

pub(crate) fn to_bytes(value: &impl Serialize) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(v) => Bytes::from(v),
        Err(e) => {
            // Only a Serialize bug gets here (no maps with non-string keys are used).
            tracing::error!(error = %e, "encoding a response body");
            Bytes::from_static(br#"{"error":"response could not be encoded"}"#)
        }
    }
}

/// Appends the `/metrics` JSON of `s` to `out`: one line, no newline in it.
pub(crate) fn write_metrics(s: &Snapshot, out: &mut Vec<u8>) {
    let disk = s.sample.disk.as_ref().ok();
    let Headline {
        cpu,
        ram,
        gpu,
        temperature,
    } = Headline::of(s);
    let wire = MetricsWire {
        cpu,
        ram,
        gpu,
        temperature,
        disk: DiskWire {
            used: disk.map(|d| d.used_bytes),
            free: disk.map(|d| d.free_bytes),
            total: disk.map(|d| d.total_bytes),
            percent: disk_percent(s),
        },
        timestamp: rfc3339(s.sample.taken_at),
    };
    if let Err(e) = serde_json::to_writer(&mut *out, &wire) {
        // Only a Serialize bug gets here.
        tracing::error!(error = %e, "encoding a response body");
        out.extend_from_slice(br#"{"error":"response could not be encoded"}"#);
    }
}

pub(crate) fn encode_gpu(g: &gpu::GpuSample) -> Bytes {
    to_bytes(&GpuWire {
        available: g.available(),
        backend: g.backend.as_str(),
        reason: g.reason.as_deref(),
        driver_version: g.system.driver_version.as_deref(),
        board_model: g.system.board_model.as_deref(),
        l4t_release: g.system.l4t_release.as_deref(),
        utilization: one_decimal(g.mean_utilization()),
        memory_used: g.memory_used_bytes(),
        memory_total: g.memory_total_bytes(),
        temperature: one_decimal(g.max_celsius()),
        power_draw: g
            .power_watts()
            .filter(|w| w.is_finite())
            .map(|w| (w * 100.0).round() / 100.0),
        gpus: g
            .devices
            .iter()
            .map(|d| DeviceWire {
                index: d.index,
                name: d.name.as_deref(),
                uuid: d.uuid.as_deref(),
                utilization: one_decimal(d.utilization_percent),
                memory_used: d.memory_used_bytes,
                memory_total: d.memory_total_bytes,
                temperature: one_decimal(d.celsius),
                power_draw: watts(d.power_watts),
                power_limit: watts(d.power_limit_watts),
                fan: one_decimal(d.fan_percent),
                performance_state: d.performance_state,
                throttle_reasons: d.throttle_reasons.as_deref(),
                ecc_errors_uncorrected: d.ecc_uncorrected,
                healthy: d.error.is_none(),
                error: d.error.as_deref(),
                notes: &d.notes,
            })
            .collect(),
    })
}

/// Watts with two decimals (NVML reports milliwatts).
fn watts(w: Option<f64>) -> Option<f64> {
    w.filter(|w| w.is_finite())
        .map(|w| (w * 100.0).round() / 100.0)
}

#[derive(Serialize)]
struct ErrorWire<'a> {
    error: &'a str,
}

pub(crate) fn encode_error(message: &str) -> Bytes {
    to_bytes(&ErrorWire { error: message })
}

#[cfg(test)]
mod tests;
