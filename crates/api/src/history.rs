//! `GET /metrics/history` (SPEC §6): the query, where its buckets come from (the ring for
//! the last 24 h, the archive before that, with bounded waits), and its JSON, written by
//! hand because a day of buckets is thousands of numbers and timestamps.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sampler::{Columns, Grid, Ring, Series};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::wire::{Millis, write_digits, write_rfc3339};
use crate::{AppState, History};

/// SPEC §6: more buckets than this is a 400 that names the limit.
pub(crate) const MAX_BUCKETS: i64 = 11_000;
/// The default step gives at most this many buckets.
const DEFAULT_BUCKETS: i64 = 1_000;
/// The default range: the last hour.
const DEFAULT_RANGE_MS: i64 = 3_600_000;
/// Times outside years 1..=9999 are not times anyone means.
const EARLIEST_MS: i64 = -62_135_596_800_000;
const LATEST_MS: i64 = 253_402_300_799_999;

/// A parsed, checked request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Query {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) step_ms: i64,
    pub(crate) series: Vec<Series>,
}

/// What a bad query is told (a 400).
pub(crate) type Refusal = String;

/// The query string's value of `name` (the last one given), percent-decoded. `+` stays a
/// `+`: times carry offsets such as `+01:00`, and no value here holds a space.
pub(crate) fn parameter(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
        .next_back()
}

/// `value` quoted as `{:?}` does, cut after its first 64 characters (with its length in
/// bytes) when longer: a 400 names the offending value without echoing a huge one.
pub(crate) fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    match value.char_indices().nth(MAX_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A time: RFC 3339 with any offset, Unix seconds (decimals allowed), or a negative number
/// of seconds relative to `now_ms`.
fn parse_time(name: &str, value: &str, now_ms: i64) -> Result<i64, Refusal> {
    let refuse = || {
        format!(
            "{name}={} is not a time: use RFC 3339 (2026-12-01T10:00:00Z), Unix seconds, \
             or negative seconds relative to now (-3600)",
            quoted(value)
        )
    };
    let ms = if let Ok(seconds) = value.trim().parse::<f64>() {
        if !seconds.is_finite() {
            return Err(refuse());
        }
        let ms = (seconds * 1000.0).round();
        if value.trim_start().starts_with('-') {
            now_ms as f64 + ms
        } else {
            ms
        }
    } else {
        let t = OffsetDateTime::parse(value.trim(), &Rfc3339).map_err(|_| refuse())?;
        (t.unix_timestamp_nanos() / 1_000_000) as f64
    };
    if !(EARLIEST_MS as f64..=LATEST_MS as f64).contains(&ms) {
        return Err(format!(
            "{name}={} is out of range: years 1 to 9999 only",
            quoted(value)
        ));
    }
    Ok(ms as i64)
}

/// Parses and checks a request against the service's intervals; `Err` is the 400's message.
pub(crate) fn parse(
    query: Option<&str>,
    now_ms: i64,
    live: Duration,
    persist: Duration,
) -> Result<Query, Refusal> {
    let start = parameter(query, "start");
    let end = parameter(query, "end");
    let step = parameter(query, "step");
    let metrics = parameter(query, "metrics");

    let end_ms = match end.as_deref() {
        Some(v) => parse_time("end", v, now_ms)?,
        None => now_ms,
    };
    let start_ms = match start.as_deref() {
        Some(v) => parse_time("start", v, now_ms)?,
        None => end_ms.saturating_sub(DEFAULT_RANGE_MS),
    };
    let step_seconds = match step.as_deref() {
        Some(v) => Some(
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| !s.is_nan())
                .ok_or_else(|| format!("step={} is not a number of seconds", quoted(v)))?,
        ),
        None => None,
    };
    let series = match metrics.as_deref() {
        None => Series::ALL.to_vec(),
        Some(list) => {
            let mut series = Vec::new();
            for name in list.split(',').map(str::trim) {
                let s = Series::from_name(name).ok_or_else(|| {
                    format!(
                        "unknown metric {} in metrics=: use cpu, ram, gpu, temperature, disk",
                        quoted(name)
                    )
                })?;
                if !series.contains(&s) {
                    series.push(s);
                }
            }
            series
        }
    };
    // Buckets lie on the epoch grid, and no sample is older than the epoch: a time before
    // it has no bucket RFC 3339 could name (years before 0000).
    if start_ms < 0 {
        return Err(format!(
            "start={} is before 1970-01-01T00:00:00Z: no sample is older than that",
            quoted(start.as_deref().unwrap_or_default())
        ));
    }
    if end_ms <= start_ms {
        return Err(format!(
            "end ({}) must be after start ({})",
            timestamp(end_ms),
            timestamp(start_ms)
        ));
    }
    let live_ms = duration_ms(live).max(1);
    // The step as sent: `{s}` of 1e300 would print three hundred digits.
    let step_text = quoted(step.as_deref().unwrap_or_default());
    let step_ms = match step_seconds {
        Some(s) if s <= 0.0 => {
            return Err(format!("step={step_text} must be more than 0 seconds"));
        }
        Some(s) => {
            let ms = (s * 1000.0).round();
            if ms < live_ms as f64 {
                return Err(format!(
                    "step={step_text} is below the live interval of {} s: no finer data exists",
                    live.as_secs_f64()
                ));
            }
            if ms > (LATEST_MS - EARLIEST_MS) as f64 {
                return Err(format!("step={step_text} is longer than any range"));
            }
            ms as i64
        }
        None => default_step(start_ms, end_ms, duration_ms(persist).max(live_ms)),
    };
    let buckets = Grid::count_for(start_ms, end_ms, step_ms);
    if buckets > MAX_BUCKETS {
        return Err(format!(
            "{buckets} buckets asked for; the limit is {MAX_BUCKETS}: use a larger step or a shorter range"
        ));
    }
    Ok(Query {
        start_ms,
        end_ms,
        step_ms,
        series,
    })
}

/// The smallest multiple of the persist interval that gives at most 1,000 buckets.
fn default_step(start_ms: i64, end_ms: i64, persist_ms: i64) -> i64 {
    let range = end_ms - start_ms;
    let mut k = (range / (persist_ms * DEFAULT_BUCKETS)).max(1);
    while Grid::count_for(start_ms, end_ms, k * persist_ms) > DEFAULT_BUCKETS {
        k += 1;
    }
    k * persist_ms
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Which part answered (SPEC §6's `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Memory,
    Postgres,
    Mixed,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Postgres => "postgres",
            Self::Mixed => "mixed",
        }
    }
}

/// The buckets of a query, from memory and (for what lies before it) the archive.
pub(crate) async fn columns(history: &History, q: &Query) -> (Columns, Source, bool) {
    let grid = Grid::covering(q.start_ms, q.end_ms, q.step_ms);
    let mut columns = Columns::empty(grid, &q.series);
    let ring = &history.ring;
    if q.step_ms < duration_ms(ring.window_every()) {
        // Finer than a window: only the live samples of the last hour have it, and the
        // database never does (it keeps windows): what memory lacks is missing.
        ring.fill_samples(&mut columns);
        return (
            columns,
            Source::Memory,
            grid.first_ms < ring.samples_from_ms(),
        );
    }
    let memory_from = ring.windows_from_ms();
    if grid.first_ms >= memory_from {
        ring.fill_windows(&mut columns, i64::MIN);
        return (columns, Source::Memory, false);
    }
    let memory_part = grid.end_ms() > memory_from;
    if memory_part {
        ring.fill_windows(&mut columns, memory_from);
    }
    let older = match &history.archive {
        Some(archive) => archive
            .buckets(grid, q.series.clone(), grid.first_ms, memory_from)
            .await
            .map_err(|e| tracing::debug!(error = %e, "history from the database failed")),
        None => Err(()),
    };
    match older {
        Ok(older) => {
            columns.merge(&older);
            let source = if memory_part {
                Source::Mixed
            } else {
                Source::Postgres
            };
            (columns, source, false)
        }
        Err(()) => (columns, Source::Memory, true),
    }
}

/// The answer from memory alone, as `/metrics/history` would give it for `query` at
/// `now_ms` (for benches and tools; the server reads older ranges from the archive too).
pub fn from_memory(
    ring: &Ring,
    host: &str,
    query: Option<&str>,
    now_ms: i64,
    live: Duration,
) -> Result<Bytes, String> {
    let q = parse(query, now_ms, live, ring.window_every())?;
    let grid = Grid::covering(q.start_ms, q.end_ms, q.step_ms);
    let mut columns = Columns::empty(grid, &q.series);
    let partial = if q.step_ms < duration_ms(ring.window_every()) {
        ring.fill_samples(&mut columns);
        grid.first_ms < ring.samples_from_ms()
    } else {
        ring.fill_windows(&mut columns, i64::MIN);
        grid.first_ms < ring.windows_from_ms()
    };
    Ok(encode(host, &q, &columns, Source::Memory, partial))
}

/// The whole answer for `q`.
pub(crate) async fn answer(state: &AppState, history: &History, q: &Query) -> Bytes {
    let (columns, source, partial) = columns(history, q).await;
    encode(&state.host, q, &columns, source, partial)
}

/// SPEC §6's JSON.
pub(crate) fn encode(host: &str, q: &Query, c: &Columns, source: Source, partial: bool) -> Bytes {
    let n = c.grid.count;
    let mut out = Vec::with_capacity(256 + n * (24 + c.series.len() * 3 * 6));
    out.extend_from_slice(b"{\"host\":");
    let _ = serde_json::to_writer(&mut out, host);
    out.extend_from_slice(b",\"start\":\"");
    write_timestamp(&mut out, q.start_ms);
    out.extend_from_slice(b"\",\"end\":\"");
    write_timestamp(&mut out, q.end_ms);
    out.extend_from_slice(b"\",\"step_seconds\":");
    let _ = serde_json::to_writer(&mut out, &(q.step_ms as f64 / 1000.0));
    out.extend_from_slice(b",\"source\":\"");
    out.extend_from_slice(source.as_str().as_bytes());
    out.extend_from_slice(b"\",\"partial\":");
    out.extend_from_slice(if partial { b"true" } else { b"false" });
    out.extend_from_slice(b",\"timestamps\":[");
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        write_timestamp(&mut out, c.grid.bucket_ms(i));
        out.push(b'"');
    }
    out.extend_from_slice(b"],\"series\":{");
    for (k, (series, buckets)) in c.series.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(series.name().as_bytes());
        out.extend_from_slice(b"\":{");
        for (j, (name, pick)) in [
            (
                "avg",
                sampler::Bucket::avg as fn(&sampler::Bucket) -> Option<f64>,
            ),
            ("min", sampler::Bucket::min),
            ("max", sampler::Bucket::max),
        ]
        .into_iter()
        .enumerate()
        {
            if j > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":[");
            for (i, b) in buckets.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(&mut out, pick(b));
            }
            out.push(b']');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

/// A one-decimal value (`12.5`, `-5.0`, `100.0`) or `null`.
fn write_value(out: &mut Vec<u8>, v: Option<f64>) {
    let Some(v) = v.filter(|v| v.is_finite() && v.abs() < 1e15) else {
        out.extend_from_slice(b"null");
        return;
    };
    let tenths = (v * 10.0).round() as i64;
    if tenths < 0 {
        out.push(b'-');
    }
    let tenths = tenths.unsigned_abs();
    write_digits(out, tenths / 10, 1);
    out.push(b'.');
    out.push(b'0' + (tenths % 10) as u8);
}

/// `2026-12-01T10:00:00Z`, with `.250` milliseconds only when there are any.
pub(crate) fn write_timestamp(out: &mut Vec<u8>, ms: i64) {
    write_rfc3339(out, ms, Millis::WhenAny);
}

fn timestamp(ms: i64) -> String {
    let mut out = Vec::new();
    write_timestamp(&mut out, ms);
    String::from_utf8_lossy(&out).into_owned()
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    sampler::unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests;
