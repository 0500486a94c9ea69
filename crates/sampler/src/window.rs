//! Reducing the live samples of one persist interval into one row per table.

use std::time::SystemTime;

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

/// One persisted window: the mean of its live samples per metric (disk: the latest);
/// `None` where no sample of the window had a value, so that table gets no row.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// When the window closed: the `timestamp` of its rows.
    pub at: SystemTime,
    pub cpu: Option<f64>,
    pub ram: Option<f64>,
    pub gpu: Option<f64>,
    pub temperature: Option<f64>,
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

#[derive(Clone, Copy, Debug, Default)]
struct Mean {
    sum: f64,
    count: u32,
}

impl Mean {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.sum += v;
            self.count += 1;
        }
    }

    /// One decimal, as the API shows them.
    fn value(&self) -> Option<f64> {
        (self.count > 0).then(|| probes::round1(self.sum / f64::from(self.count)))
    }
}

/// Collects the samples of the open window.
#[derive(Debug, Default)]
pub struct WindowBuilder {
    cpu: Mean,
    ram: Mean,
    gpu: Mean,
    temperature: Mean,
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

    /// Closes the window at `at` and starts a new one; `None` when it saw no sample.
    pub fn close(&mut self, at: SystemTime) -> Option<Window> {
        let done = std::mem::take(self);
        (done.samples > 0).then(|| Window {
            at,
            cpu: done.cpu.value(),
            ram: done.ram.value(),
            gpu: done.gpu.value(),
            temperature: done.temperature.value(),
            disk: done.disk,
        })
    }
}
