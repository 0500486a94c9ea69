//! The Prometheus bodies of one snapshot (SPEC §8): OpenMetrics 1.0 and the text format
//! 0.0.4, once per sample on the probe thread, beside the JSON.
//!
//! The official `prometheus-client` crate writes the OpenMetrics body. The text body is
//! the same families with OpenMetrics' extras taken off ([`text_of`]): no `# UNIT`, no
//! `# EOF`, counters and infos named with their suffix in `HELP` and `TYPE`, an info typed
//! `gauge`. That is byte for byte what the crate's own text encoder writes (a test holds
//! them equal), in a single pass instead of a second encoding: with 8 GPUs the crate took
//! 22–25 µs for both bodies, above the 20 µs a sample may spend on them (issue 11,
//! docs/BENCHMARKS.md).
//!
//! Every family is a constant of the sample: a [`Collector`] hands the crate the values
//! the snapshot holds. A value that could not be read has no series (never 0, never NaN);
//! no series carries a timestamp or a `host`/`instance`/`job` label (the scraper adds
//! those).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use probes::{CpuTimes, DiskUsage, MemoryUsage, Mount};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use sampler::{DatabaseView, Snapshot, WriterState, unix_ms};

use crate::Streams;

/// `Content-Type` of the text format 0.0.4.
pub(crate) const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics 1.0.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The prefix of every family.
const PREFIX: &str = "metrics_collector";

/// What the bodies say besides the snapshot: the filesystem's labels and the service's
/// own state, read when a sample is encoded.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sources {
    pub(crate) filesystem: Mount,
    /// `None` when persistence is off: the database families are left out.
    pub(crate) database: Option<DatabaseView>,
    /// `None` when the server serves no streams.
    pub(crate) streams: Option<Streams>,
}

/// Encodes both Prometheus bodies of each snapshot it is given.
#[derive(Debug)]
pub(crate) struct Exposition {
    registry: Registry,
    frame: Arc<Mutex<Frame>>,
    sources: Sources,
    /// The last bodies' lengths: the next ones are made in one allocation each.
    last_len: (usize, usize),
}

impl Default for Exposition {
    fn default() -> Self {
        Self::new(Sources::default())
    }
}

impl Exposition {
    pub(crate) fn new(sources: Sources) -> Self {
        let frame = Arc::new(Mutex::new(Frame::new(&sources.filesystem)));
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(Families {
            frame: Arc::clone(&frame),
            units: Units::default(),
        }));
        Self {
            registry,
            frame,
            sources,
            last_len: (4096, 4096),
        }
    }

    /// The text format 0.0.4 and the OpenMetrics bodies of `snapshot`.
    pub(crate) fn encode(&mut self, snapshot: &Snapshot) -> (Bytes, Bytes) {
        self.frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill(snapshot, &self.sources);
        // Room for a little more than last time (a GPU's name may grow by a few bytes).
        let mut openmetrics = String::with_capacity(self.last_len.1 + 512);
        // Writing into a String cannot fail, and no family here returns an error of its
        // own: an error would be a bug in the encoder, shown rather than hidden.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut openmetrics, &self.registry)
        {
            let _ = writeln!(openmetrics, "# encoding failed: {e}");
        }
        let mut text = String::with_capacity(self.last_len.0 + 512);
        text_of(&openmetrics, &mut text);
        self.last_len = (text.len(), openmetrics.len());
        (Bytes::from(text), Bytes::from(openmetrics))
    }
}

/// The text format 0.0.4 of an OpenMetrics body of gauges, counters and infos, appended
/// to `out`. `HELP` texts must need no escaping (ours are constants without `\\` or a
/// line break: the formats escape them differently).
fn text_of(openmetrics: &str, out: &mut String) {
    // Sample lines are the same in both formats and copied in runs; only comment lines
    // (a `#` that starts a line) change. A family's HELP comes before its TYPE, which
    // says what suffix both take.
    let bytes = openmetrics.as_bytes();
    let mut help: Option<&str> = None;
    let mut copied = 0;
    for at in memchr::memchr_iter(b'#', bytes) {
        if at < copied || (at > 0 && bytes[at - 1] != b'\n') {
            continue; // inside a comment already handled, or a `#` in a label value
        }
        out.push_str(&openmetrics[copied..at]);
        let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |n| at + n + 1);
        let line = &openmetrics[at..end];
        copied = end;
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let rest = rest.trim_end();
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                other => ("", other),
            };
            if let Some(help) = help.take() {
                let (help_name, text) = help.split_once(' ').unwrap_or((help, "\n"));
                for part in ["# HELP ", help_name, suffix, " ", text] {
                    out.push_str(part);
                }
            }
            for part in ["# TYPE ", name, suffix, " ", kind, "\n"] {
                out.push_str(part);
            }
        } else if !line.starts_with("# UNIT ") && line != "# EOF\n" {
            out.push_str(line);
        }
    }
    out.push_str(&openmetrics[copied..]);
}

/// The values of one sample, copied out of the snapshot (the collector must own what it
/// encodes); its vectors keep their room from tick to tick.
#[derive(Debug, Default)]
struct Frame {
    cpu_ratio: Option<f64>,
    cpu_times: Option<CpuTimes>,
    ticks_per_second: f64,
    memory: Option<MemoryUsage>,
    filesystem: [(&'static str, String); 3],
    disk: Option<DiskUsage>,
    temperature: Option<f64>,
    gpus: Vec<GpuFrame>,
    last_sample_seconds: f64,
    samples: u64,
    probes: [ProbeFrame; 5],
    database: Option<DatabaseFrame>,
    streams: Option<u64>,
}

#[derive(Debug, Default)]
struct GpuFrame {
    labels: [(&'static str, String); 3],
    utilization_ratio: Option<f64>,
    memory_used_bytes: Option<u64>,
    memory_total_bytes: Option<u64>,
    celsius: Option<f64>,
    power_watts: Option<f64>,
    power_limit_watts: Option<f64>,
}

#[derive(Debug, Default)]
struct ProbeFrame {
    label: [(&'static str, &'static str); 1],
    /// `None` when the host lacks the hardware: no `probe_up` series.
    up: Option<bool>,
    seconds: f64,
    errors: u64,
}

#[derive(Debug, Default)]
struct DatabaseFrame {
    up: bool,
    queued_windows: u64,
    written_windows: u64,
    dropped_windows: u64,
}

/// A finite number, or nothing: NaN and infinities are never served.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// A percentage as a ratio from 0 to 1.
fn ratio(percent: Option<f64>) -> Option<f64> {
    finite(percent).map(|p| p / 100.0)
}

impl Frame {
    fn new(filesystem: &Mount) -> Self {
        Self {
            ticks_per_second: probes::cpu::ticks_per_second() as f64,
            filesystem: [
                ("mountpoint", filesystem.mountpoint.clone()),
                ("device", filesystem.device.clone()),
                ("fstype", filesystem.fstype.clone()),
            ],
            ..Self::default()
        }
    }

    fn fill(&mut self, s: &Snapshot, sources: &Sources) {
        let sample = &s.sample;
        self.cpu_ratio = ratio(sample.cpu_percent.as_ref().ok().copied());
        self.cpu_times = sample.cpu_times;
        self.memory = sample.memory.as_ref().ok().copied();
        self.disk = sample.disk.as_ref().ok().copied();
        self.temperature = finite(s.temperature());

        let devices = &s.gpu.devices;
        self.gpus.resize_with(devices.len(), GpuFrame::default);
        for (frame, d) in self.gpus.iter_mut().zip(devices) {
            let [(k0, index), (k1, uuid), (k2, name)] = &mut frame.labels;
            (*k0, *k1, *k2) = ("gpu", "uuid", "name");
            index.clear();
            let _ = write!(index, "{}", d.index);
            uuid.clear();
            uuid.push_str(d.uuid.as_deref().unwrap_or_default());
            name.clear();
            name.push_str(d.name.as_deref().unwrap_or_default());
            frame.utilization_ratio = ratio(d.utilization_percent);
            frame.memory_used_bytes = d.memory_used_bytes;
            frame.memory_total_bytes = d.memory_total_bytes;
            frame.celsius = finite(d.celsius);
            frame.power_watts = finite(d.power_watts);
            frame.power_limit_watts = finite(d.power_limit_watts);
        }

        self.last_sample_seconds = unix_ms(sample.taken_at) as f64 / 1000.0;
        self.samples = s.seq;
        for (frame, (name, family)) in self.probes.iter_mut().zip(s.families.named()) {
            frame.label = [("probe", name)];
            frame.up = match &family.error {
                None => Some(true),
                Some(why) if why.is_absent() => None,
                Some(_) => Some(false),
            };
            frame.seconds = family.took.as_secs_f64();
            frame.errors = family.errors;
        }
        self.database = sources.database.as_ref().map(|view| {
            let status = view.now();
            DatabaseFrame {
                up: status.state == WriterState::Connected,
                queued_windows: status.pending_windows,
                written_windows: status.written_windows,
                dropped_windows: status.dropped_windows,
            }
        });
        self.streams = sources.streams.as_ref().map(|s| s.open() as u64);
    }
}

/// The units of the families that have one (OpenMetrics writes them as `# UNIT`).
#[derive(Debug)]
struct Units {
    bytes: Unit,
    seconds: Unit,
    celsius: Unit,
    ratio: Unit,
    watts: Unit,
}

impl Default for Units {
    fn default() -> Self {
        Self {
            bytes: Unit::Bytes,
            seconds: Unit::Seconds,
            celsius: Unit::Celsius,
            ratio: Unit::Other("ratio".into()),
            watts: Unit::Other("watts".into()),
        }
    }
}

/// The collector the registry asks for every family at encoding time.
#[derive(Debug)]
struct Families {
    frame: Arc<Mutex<Frame>>,
    units: Units,
}

type Written = Result<(), std::fmt::Error>;

/// One family with one unlabelled series, written only when the value is known.
fn single<M: EncodeMetric>(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: Option<M>,
) -> Written {
    let Some(metric) = metric else {
        return Ok(());
    };
    let encoder = out.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(encoder)
}

fn gauge<T>(v: Option<T>) -> Option<ConstGauge<T>> {
    v.map(ConstGauge::new)
}

impl Collector for Families {
    fn encode(&self, mut out: DescriptorEncoder<'_>) -> Written {
        let f = self.frame.lock().unwrap_or_else(PoisonError::into_inner);
        let u = &self.units;

        single(
            &mut out,
            "cpu_usage",
            "Share of all CPU time busy over the last live interval (psutil cpu_percent / 100).",
            Some(&u.ratio),
            gauge(f.cpu_ratio),
        )?;
        if let Some(times) = f.cpu_times {
            let mut family = out.encode_descriptor(
                "cpu",
                "CPU seconds spent in each mode, all CPUs together (node_cpu_seconds_total summed over cpu).",
                Some(&u.seconds),
                MetricType::Counter,
            )?;
            for (mode, ticks) in times.modes() {
                ConstCounter::new(ticks as f64 / f.ticks_per_second)
                    .encode(family.encode_family(&[("mode", mode)])?)?;
            }
        }

        if let Some(m) = f.memory {
            single(
                &mut out,
                "memory_total",
                "Memory installed (MemTotal).",
                Some(&u.bytes),
                Some(ConstGauge::new(m.total_bytes)),
            )?;
            single(
                &mut out,
                "memory_available",
                "Memory available to start new programs without swapping (MemAvailable).",
                Some(&u.bytes),
                Some(ConstGauge::new(m.available_bytes)),
            )?;
            single(
                &mut out,
                "memory_usage",
                "Share of memory in use: (total - available) / total.",
                Some(&u.ratio),
                gauge(ratio(m.percent())),
            )?;
        }

        if let Some(d) = f.disk {
            let size = d.total_bytes;
            let free = d.total_bytes.saturating_sub(d.used_bytes);
            for (name, help, value) in [
                (
                    "filesystem_size",
                    "Size of the filesystem (f_blocks * f_frsize).",
                    size,
                ),
                (
                    "filesystem_free",
                    "Free space, reserved blocks included (f_bfree * f_frsize).",
                    free,
                ),
                (
                    "filesystem_avail",
                    "Space an unprivileged user can still write (f_bavail * f_frsize).",
                    d.free_bytes,
                ),
            ] {
                let mut family =
                    out.encode_descriptor(name, help, Some(&u.bytes), MetricType::Gauge)?;
                ConstGauge::new(value).encode(family.encode_family(&f.filesystem)?)?;
            }
            if let Some(r) = ratio(d.percent()) {
                let mut family = out.encode_descriptor(
                    "filesystem_usage",
                    "Share of the filesystem in use as df prints it: used / (used + avail).",
                    Some(&u.ratio),
                    MetricType::Gauge,
                )?;
                ConstGauge::new(r).encode(family.encode_family(&f.filesystem)?)?;
            }
        }

        single(
            &mut out,
            "temperature",
            "Hottest CPU package sensor; the GPU's when the host has no CPU sensor.",
            Some(&u.celsius),
            gauge(f.temperature),
        )?;

        gpu_family(
            &mut out,
            &f.gpus,
            "gpu_utilization",
            "GPU utilisation.",
            &u.ratio,
            |g| g.utilization_ratio.map(Value::F64),
        )?;
        gpu_family(
            &mut out,
            &f.gpus,
            "gpu_memory_used",
            "GPU memory in use.",
            &u.bytes,
            |g| g.memory_used_bytes.map(Value::U64),
        )?;
        gpu_family(
            &mut out,
            &f.gpus,
            "gpu_memory_total",
            "GPU memory installed.",
            &u.bytes,
            |g| g.memory_total_bytes.map(Value::U64),
        )?;
        gpu_family(
            &mut out,
            &f.gpus,
            "gpu_temperature",
            "GPU temperature.",
            &u.celsius,
            |g| g.celsius.map(Value::F64),
        )?;
        gpu_family(
            &mut out,
            &f.gpus,
            "gpu_power",
            "GPU power draw.",
            &u.watts,
            |g| g.power_watts.map(Value::F64),
        )?;
        gpu_family(
            &mut out,
            &f.gpus,
            "gpu_power_limit",
            "GPU power limit enforced by the driver.",
            &u.watts,
            |g| g.power_limit_watts.map(Value::F64),
        )?;

        let mut info = out.encode_descriptor(
            "build",
            "The collector's version; always 1.",
            None,
            MetricType::Info,
        )?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        single(
            &mut out,
            "last_sample_timestamp",
            "When the sample served was taken, Unix time.",
            Some(&u.seconds),
            Some(ConstGauge::new(f.last_sample_seconds)),
        )?;
        single(
            &mut out,
            "samples",
            "Samples taken since the collector started.",
            None,
            Some(ConstCounter::new(f.samples)),
        )?;

        let mut up = out.encode_descriptor(
            "probe_up",
            "Whether each probe's last read succeeded (1) or failed (0); no series for hardware the host lacks.",
            None,
            MetricType::Gauge,
        )?;
        for p in &f.probes {
            if let Some(ok) = p.up {
                ConstGauge::new(i64::from(ok)).encode(up.encode_family(&p.label)?)?;
            }
        }
        let mut took = out.encode_descriptor(
            "probe_duration",
            "How long each probe's last read took (its deadline when it timed out).",
            Some(&u.seconds),
            MetricType::Gauge,
        )?;
        for p in &f.probes {
            ConstGauge::new(p.seconds).encode(took.encode_family(&p.label)?)?;
        }
        let mut errors = out.encode_descriptor(
            "probe_errors",
            "Reads of each probe that failed since the collector started.",
            None,
            MetricType::Counter,
        )?;
        for p in &f.probes {
            ConstCounter::new(p.errors).encode(errors.encode_family(&p.label)?)?;
        }

        if let Some(db) = &f.database {
            single(
                &mut out,
                "database_up",
                "Whether the last write to PostgreSQL succeeded (1) or not (0).",
                None,
                Some(ConstGauge::new(i64::from(db.up))),
            )?;
            single(
                &mut out,
                "persist_queue_windows",
                "Windows waiting in memory to be written to PostgreSQL.",
                None,
                Some(ConstGauge::new(db.queued_windows)),
            )?;
            single(
                &mut out,
                "windows_written",
                "Windows written to PostgreSQL since the collector started.",
                None,
                Some(ConstCounter::new(db.written_windows)),
            )?;
            single(
                &mut out,
                "windows_dropped",
                "Windows lost since the collector started (the queue was full).",
                None,
                Some(ConstCounter::new(db.dropped_windows)),
            )?;
        }
        single(
            &mut out,
            "streams",
            "Live streams (/metrics/stream) open.",
            None,
            f.streams.map(ConstGauge::new),
        )
    }
}

/// A GPU reading: counts of bytes stay integers.
enum Value {
    F64(f64),
    U64(u64),
}

/// One per-GPU family, labelled `gpu`, `uuid` and `name`; a GPU without the reading has
/// no series, and a family no GPU has is left out entirely.
fn gpu_family(
    out: &mut DescriptorEncoder<'_>,
    gpus: &[GpuFrame],
    name: &str,
    help: &str,
    unit: &Unit,
    value: impl Fn(&GpuFrame) -> Option<Value>,
) -> Written {
    if !gpus.iter().any(|g| value(g).is_some()) {
        return Ok(());
    }
    let mut family = out.encode_descriptor(name, help, Some(unit), MetricType::Gauge)?;
    for g in gpus {
        match value(g) {
            Some(Value::F64(v)) => ConstGauge::new(v).encode(family.encode_family(&g.labels)?)?,
            Some(Value::U64(v)) => ConstGauge::new(v).encode(family.encode_family(&g.labels)?)?,
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
