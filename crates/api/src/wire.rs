//! The JSON of each endpoint. Field names are the seed service's; percentages and degrees
//! carry one decimal as the seed's did; an unknown value is `null`, never 0.

use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use sampler::Snapshot;

/// RFC 3339 in UTC with a `Z` and milliseconds (`2024-01-15T10:30:00.250Z`): sub-second
/// live intervals need the fraction to keep timestamps distinct.
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339(&mut out, sampler::unix_ms(t), Millis::Always);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether [`write_rfc3339`] writes the milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Millis {
    /// Always (`.000`): the timestamps of samples.
    Always,
    /// Only when there are any: history's bucket times (`10:00:00Z`, `10:00:00.500Z`).
    WhenAny,
}

/// Appends `ms` since the Unix epoch as RFC 3339 in UTC with a `Z`. Written out by hand
/// (a civil-date computation and digits): it runs once per sample on a cold cache, and
/// thousands of times per history answer, where a generic formatter costs several times
/// as much.
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, ms: i64, millis: Millis) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000) as u64;
    let (y, m, d) = civil_from_days(days);
    write_digits(out, y.max(0) as u64, 4);
    out.push(b'-');
    write_digits(out, u64::from(m), 2);
    out.push(b'-');
    write_digits(out, u64::from(d), 2);
    out.push(b'T');
    write_digits(out, in_day / 3_600_000, 2);
    out.push(b':');
    write_digits(out, in_day / 60_000 % 60, 2);
    out.push(b':');
    write_digits(out, in_day / 1000 % 60, 2);
    if millis == Millis::Always || !in_day.is_multiple_of(1000) {
        out.push(b'.');
        write_digits(out, in_day % 1000, 3);
    }
    out.push(b'Z');
}

/// `n` in decimal, zero-padded to at least `width` digits.
pub(crate) fn write_digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 && buf.len() - i >= width {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the classic era-based algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    let [cpu, ram, gpu, temperature, percent] = s.values();
    let wire = MetricsWire {
        cpu,
        ram,
        gpu,
        temperature,
        disk: DiskWire {
            used: disk.map(|d| d.used_bytes),
            free: disk.map(|d| d.free_bytes),
            total: disk.map(|d| d.total_bytes),
            percent,
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
