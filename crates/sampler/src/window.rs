//! Reducing the live samples of one persist interval into one row per table. Windows lie on
//! a grid of the persist interval since the Unix epoch, so a window and a history bucket at
//! the persist step are the same thing.

use std::time::{Duration, SystemTime};

use probes::Sample;

#[cfg(test)]
mod tests;

/// The disk row of a window: the latest reading, in `df`'s terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskRow {
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub percent: f64,
}

/// One series over one window: the mean of its live samples (exact, so that buckets of
/// several windows are the mean of their samples, not of rounded means) and their
/// extremes (one decimal, as `/metrics` showed them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// `None` for windows read back from rows written before the extremes were kept.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Live samples with a value; `0` when not known (windows read back from rows).
    pub samples: u32,
}

impl Stat {
    /// A series that held one value for `samples` samples.
    pub fn steady(value: f64, samples: u32) -> Self {
        Self {
            mean: value,
            min: Some(value),
            max: Some(value),
            samples,
        }
    }

    /// The mean with one decimal: the `value` of the window's row.
    pub fn value(&self) -> f64 {
        probes::round1(self.mean)
    }
}

/// One persisted window: per metric the mean and extremes of its live samples (disk: the
/// latest); `None` where no sample of the window had a value, so that table gets no row.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Where the window begins on the persist grid: what history buckets it by.
    pub start: SystemTime,
    /// When the window closed: the `timestamp` of its rows (the next grid line, or the
    /// moment of shutdown for the last, shorter window).
    pub at: SystemTime,
    pub cpu: Option<Stat>,
    pub ram: Option<Stat>,
    pub gpu: Option<Stat>,
    pub temperature: Option<Stat>,
    pub disk: Option<DiskRow>,
}

impl Window {
    /// Rows this window writes (one per table with a value).
    pub fn rows(&self) -> u64 {
        [self.cpu, self.ram, self.gpu, self.temperature]
            .iter()
            .filter(|v| v.is_some())
            .count() as u64
            + u64::from(self.disk.is_some())
    }
}

/// Milliseconds since the Unix epoch (negative before it), the unit of every grid.
pub fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The instant `ms` milliseconds after the Unix epoch.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// The start of the window a row stamped `at` belongs to: the grid line before it (a
/// window closed at the line `k * every` began at `(k - 1) * every`; the last, shorter
/// window of a run, closed between lines, began at the line before its close).
pub fn window_start_ms(at_ms: i64, every_ms: i64) -> i64 {
    let every = every_ms.max(1);
    // ceil(at / every) * every - every, for negative times too.
    let k = at_ms.div_euclid(every) + i64::from(at_ms.rem_euclid(every) != 0);
    (k - 1) * every
}

#[derive(Clone, Copy, Debug)]
struct Accumulate {
    sum: f64,
    count: u32,
    min: f64,
    max: f64,
}

impl Default for Accumulate {
    fn default() -> Self {
        Self {
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Accumulate {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.sum += v;
            self.count += 1;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    /// One decimal, as the API shows them.
    fn stat(&self) -> Option<Stat> {
        (self.count > 0).then(|| Stat {
            mean: self.sum / f64::from(self.count),
            min: Some(probes::round1(self.min)),
            max: Some(probes::round1(self.max)),
            samples: self.count,
        })
    }
}

/// Collects the samples of the open window.
#[derive(Debug, Default)]
pub struct WindowBuilder {
    cpu: Accumulate,
    ram: Accumulate,
    gpu: Accumulate,
    temperature: Accumulate,
    disk: Option<DiskRow>,
    samples: u32,
}

impl WindowBuilder {
    /// Adds one live sample. `gpu_percent` and `temperature` are the values `/metrics`
    /// shows (the GPU mean; the CPU sensor else the GPU's).
    pub fn add(&mut self, sample: &Sample, gpu_percent: Option<f64>, temperature: Option<f64>) {
        self.samples += 1;
        self.cpu.add(sample.cpu_percent.as_ref().ok().copied());
        self.ram
            .add(sample.memory.as_ref().ok().and_then(|m| m.percent()));
        self.gpu.add(gpu_percent);
        self.temperature.add(temperature);
        if let Ok(d) = &sample.disk
            && let Some(percent) = d.percent()
        {
            self.disk = Some(DiskRow {
                used_bytes: d.used_bytes,
                free_bytes: d.free_bytes,
                percent: probes::round1(percent),
            });
        }
    }

    /// Whether a sample has been added since the last close.
    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// Closes the window that began at `start` at `at` and starts a new one; `None` when it
    /// saw no sample.
    pub fn close(&mut self, start: SystemTime, at: SystemTime) -> Option<Window> {
        let done = std::mem::take(self);
        (done.samples > 0).then(|| Window {
            start,
            at,
            cpu: done.cpu.stat(),
            ram: done.ram.stat(),
            gpu: done.gpu.stat(),
            temperature: done.temperature.stat(),
            disk: done.disk,
        })
    }
}
