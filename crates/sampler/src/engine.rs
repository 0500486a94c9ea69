//! The [`Engine`]: the probes of one host, each read on the probe pool with its own
//! deadline, and the snapshot built from what they gave.
//!
//! A family that fails, panics or hangs gives `null` with a reason for that tick; the
//! others carry on. A hung read (statvfs on a dead network mount) keeps its thread; later
//! ticks do not pile more threads onto it, they report it as still stuck.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use gpu::{BackendKind, GpuBackend, GpuSample};
use probes::{CpuUsage, DiskUsage, MemoryUsage, Probe, Reading, Unavailable};

use crate::pool::{Pool, PoolStats, Task};
use crate::{Families, FamilyState, Snapshot};

#[cfg(test)]
mod tests;

/// The host probes the engine reads, one per family. Tests put probes that misbehave on
/// purpose here; the service and the agent use [`probes::HostProbes`].
pub struct Probes {
    pub cpu: Box<dyn Probe<Output = CpuUsage>>,
    pub memory: Box<dyn Probe<Output = MemoryUsage>>,
    pub disk: Box<dyn Probe<Output = DiskUsage>>,
    pub thermal: Box<dyn Probe<Output = f64>>,
}

impl From<probes::HostProbes> for Probes {
    fn from(host: probes::HostProbes) -> Self {
        Self {
            cpu: Box::new(host.cpu),
            memory: Box::new(host.memory),
            disk: Box::new(host.disk),
            thermal: Box::new(host.thermal),
        }
    }
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").finish_non_exhaustive()
    }
}

/// A probe behind its lock: the read holds it; a read that hangs holds it for ever, and
/// the next tick's `try_lock` sees that without waiting.
type Locked<P> = Arc<Mutex<P>>;

/// The probes of one host and what the engine remembers between snapshots.
pub struct Engine {
    cpu: Locked<Box<dyn Probe<Output = CpuUsage>>>,
    memory: Locked<Box<dyn Probe<Output = MemoryUsage>>>,
    disk: Locked<Box<dyn Probe<Output = DiskUsage>>>,
    thermal: Locked<Box<dyn Probe<Output = f64>>>,
    gpu: Locked<Box<dyn GpuBackend>>,
    /// The GPU backend's kind as last seen, known without locking `gpu` (whose lock a hung
    /// driver call may hold for ever); a backend still being discovered may change it.
    gpu_kind: Arc<AtomicU8>,
    deadline: Duration,
    pub(crate) pool: Pool,
    seq: u64,
    last_ok: Families<Option<SystemTime>>,
    /// Failed reads per family since start (absent hardware is no failure).
    errors: Families<u64>,
    last_success: Option<Instant>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("deadline", &self.deadline)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.pool.close();
    }
}

impl Engine {
    /// An engine reading `probes` and `gpu`, giving each read `deadline` before it counts
    /// as timed out. Fails only when the probe pool's watchdog cannot be set up (no timerfd,
    /// no thread).
    pub fn new(
        probes: Probes,
        gpu: Box<dyn GpuBackend>,
        deadline: Duration,
    ) -> std::io::Result<Self> {
        Ok(Self {
            cpu: Arc::new(Mutex::new(probes.cpu)),
            memory: Arc::new(Mutex::new(probes.memory)),
            disk: Arc::new(Mutex::new(probes.disk)),
            thermal: Arc::new(Mutex::new(probes.thermal)),
            gpu_kind: Arc::new(AtomicU8::new(kind_code(gpu.kind()))),
            gpu: Arc::new(Mutex::new(gpu)),
            deadline,
            pool: Pool::new()?,
            seq: 0,
            last_ok: Families::default(),
            errors: Families::default(),
            last_success: None,
        })
    }

    /// Reads every family now, each under its deadline, and returns the snapshot: the
    /// blocking, one-off way (the self-healing agent, `metrics-collector sample`). Never
    /// takes longer than about the deadline, whatever hangs.
    pub fn sample(&mut self) -> Snapshot {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(Instant::now(), move |settled| {
            let _ = tx.send(settled);
        });
        let settled = rx.recv().unwrap_or_else(|_| Settled::abandoned());
        self.build(settled)
    }

    /// The probe pool's threads and wake-ups (for tests and diagnostics).
    pub(crate) fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Queues the reads of the tick due `at` (cheap and safe first; the ones that can
    /// hang, GPU driver and disk, last, so a hang delays nobody behind it for longer than
    /// the deadline). `done` gets the measurements on the thread that settles the last one.
    pub(crate) fn submit(&self, at: Instant, done: impl FnOnce(Settled) + Send + 'static) {
        let tick = Arc::new(Mutex::new(InFlight {
            done: Some(Box::new(done)),
            ..InFlight::default()
        }));
        let d = self.deadline;
        let gpu_kind = Arc::clone(&self.gpu_kind);
        self.pool.submit_at(
            at,
            [
                read_task(&tick, &self.cpu, d, |t| &mut t.cpu, read_probe),
                read_task(&tick, &self.memory, d, |t| &mut t.memory, read_probe),
                read_task(&tick, &self.thermal, d, |t| &mut t.thermal, read_probe),
                read_task(
                    &tick,
                    &self.gpu,
                    d,
                    |t| &mut t.gpu,
                    move |g| {
                        let sample = g.sample();
                        gpu_kind.store(kind_code(sample.backend), Ordering::Relaxed);
                        Ok(sample)
                    },
                ),
                read_task(&tick, &self.disk, d, |t| &mut t.disk, read_probe),
            ],
        );
    }

    /// Builds the snapshot of a tick from its measurements.
    pub(crate) fn build(&mut self, settled: Settled) -> Snapshot {
        let (taken_at, _) = settled.started;
        let gpu_kind = kind_from_code(self.gpu_kind.load(Ordering::Relaxed));
        let Settled {
            cpu,
            memory,
            thermal,
            gpu,
            disk,
            ..
        } = settled;
        let gpu_sample = gpu
            .reading
            .unwrap_or_else(|e| GpuSample::unavailable(gpu_kind, e.reason()));
        let gpu_error = gpu_health(&gpu_sample);
        // The counters come with any read of /proc/stat; the percentage needs two.
        let (cpu_percent, cpu_times) = match cpu.reading {
            Ok(usage) => (usage.percent, Some(usage.times)),
            Err(e) => (Err(e), None),
        };

        self.seq += 1;
        let mut families = Families {
            cpu: state(cpu.took, cpu_percent.as_ref().err()),
            memory: state(memory.took, memory.reading.as_ref().err()),
            disk: state(disk.took, disk.reading.as_ref().err()),
            thermal: state(thermal.took, thermal.reading.as_ref().err()),
            gpu: FamilyState {
                took: gpu.took,
                error: gpu_error,
                last_ok: None,
                errors: 0,
            },
        };
        for (((_, family), (_, last_ok)), (_, errors)) in families
            .named_mut()
            .into_iter()
            .zip(self.last_ok.named_mut())
            .zip(self.errors.named_mut())
        {
            match &family.error {
                None => *last_ok = Some(taken_at),
                Some(why) if !why.is_absent() => *errors += 1,
                Some(_) => {}
            }
            family.last_ok = *last_ok;
            family.errors = *errors;
        }
        let snapshot = Snapshot {
            seq: self.seq,
            sample: probes::Sample {
                taken_at,
                cpu_percent,
                cpu_times,
                memory: memory.reading,
                disk: disk.reading,
                cpu_celsius: thermal.reading,
            },
            gpu: gpu_sample,
            families,
        };
        if snapshot.succeeded() {
            self.last_success = Some(settled.started.1);
        }
        snapshot
    }

    /// Monotonic time of the last snapshot built that succeeded.
    pub(crate) fn last_success(&self) -> Option<Instant> {
        self.last_success
    }
}

fn read_probe<T>(p: &mut Box<dyn Probe<Output = T>>) -> Reading<T> {
    p.read().map_err(Unavailable::from)
}

fn state(took: Duration, error: Option<&Unavailable>) -> FamilyState {
    FamilyState {
        took,
        error: error.cloned(),
        last_ok: None,
        errors: 0,
    }
}

fn kind_code(kind: BackendKind) -> u8 {
    match kind {
        BackendKind::None => 0,
        BackendKind::Nvml => 1,
        BackendKind::Jetson => 2,
    }
}

fn kind_from_code(code: u8) -> BackendKind {
    match code {
        1 => BackendKind::Nvml,
        2 => BackendKind::Jetson,
        _ => BackendKind::None,
    }
}

/// The GPU family's state for `/health`: no GPU is absent (not a fault), a backend that
/// cannot read or a device that failed is an error naming it.
fn gpu_health(g: &GpuSample) -> Option<Unavailable> {
    if let Some(reason) = &g.reason {
        return Some(if g.backend == BackendKind::None {
            Unavailable::absent(reason)
        } else {
            Unavailable::new(reason)
        });
    }
    let failing: Vec<String> = g
        .failing()
        .map(|d| {
            format!(
                "GPU {}: {}",
                d.index,
                d.error.as_deref().unwrap_or_default()
            )
        })
        .collect();
    (!failing.is_empty()).then(|| Unavailable::new(failing.join("; ")))
}

/// A read of one family on the pool with the probe locked, its measurement settled into
/// `slot` of the tick; a timeout settles it instead if the read overruns the deadline. A
/// probe whose previous read is still running (hung) is not read again: the task answers
/// at once that it is still waiting.
fn read_task<P, R, F>(
    tick: &Arc<Mutex<InFlight>>,
    probe: &Locked<P>,
    deadline: Duration,
    slot: fn(&mut InFlight) -> &mut Option<Measured<R>>,
    read: F,
) -> Task
where
    P: Send + 'static + ?Sized,
    R: Send + 'static,
    F: FnOnce(&mut P) -> Reading<R> + Send + 'static,
{
    let probe = Arc::clone(probe);
    let (tick, timed_out) = (Arc::clone(tick), Arc::clone(tick));
    let run = move || {
        let started = Instant::now();
        lock(&tick)
            .started
            .get_or_insert_with(|| (SystemTime::now(), started));
        let reading = match probe.try_lock() {
            Ok(mut guard) => guarded(|| read(&mut guard)),
            Err(TryLockError::WouldBlock) => Err(Unavailable::new(
                "the previous read has not returned yet (hung)",
            )),
            // A read panicked earlier; its state is still usable for a fresh read.
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut guard = poisoned.into_inner();
                guarded(|| read(&mut guard))
            }
        };
        let took = started.elapsed();
        settle(&tick, slot, Measured { reading, took });
    };
    let on_overrun = move || {
        let reason = format!("timed out after {:.1} s", deadline.as_secs_f64());
        let measured = Measured {
            reading: Err(Unavailable::new(reason)),
            took: deadline,
        };
        settle(&timed_out, slot, measured);
    };
    Task::with_deadline(deadline, run, on_overrun)
}

/// Runs a read, turning a panic into an unavailable reading.
fn guarded<R>(read: impl FnOnce() -> Reading<R>) -> Reading<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|payload| {
        Err(Unavailable::new(format!(
            "the read panicked: {}",
            panic_message(payload.as_ref())
        )))
    })
}

/// Fills the tick's `slot` unless something (the read or its timeout) already did; the
/// last one filled hands the measurements over.
fn settle<R>(
    tick: &Mutex<InFlight>,
    slot: fn(&mut InFlight) -> &mut Option<Measured<R>>,
    measured: Measured<R>,
) {
    let mut t = lock(tick);
    let s = slot(&mut t);
    if s.is_some() {
        return;
    }
    *s = Some(measured);
    if let Some(settled) = t.settled()
        && let Some(done) = t.done.take()
    {
        drop(t);
        done(settled);
    }
}

pub(crate) fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One family's reading and how long it took.
#[derive(Debug)]
pub(crate) struct Measured<R> {
    pub(crate) reading: Reading<R>,
    pub(crate) took: Duration,
}

/// A tick whose reads are still settling, one slot per family.
#[derive(Default)]
struct InFlight {
    /// When the first read started (wall clock for the wire, monotonic for ages).
    started: Option<(SystemTime, Instant)>,
    cpu: Option<Measured<CpuUsage>>,
    memory: Option<Measured<MemoryUsage>>,
    thermal: Option<Measured<f64>>,
    gpu: Option<Measured<GpuSample>>,
    disk: Option<Measured<DiskUsage>>,
    done: Option<Box<dyn FnOnce(Settled) + Send>>,
}

impl InFlight {
    /// Every measurement, once all are in.
    fn settled(&mut self) -> Option<Settled> {
        if self.cpu.is_none()
            || self.memory.is_none()
            || self.thermal.is_none()
            || self.gpu.is_none()
            || self.disk.is_none()
        {
            return None;
        }
        Some(Settled {
            started: self
                .started
                .unwrap_or_else(|| (SystemTime::now(), Instant::now())),
            cpu: self.cpu.take()?,
            memory: self.memory.take()?,
            thermal: self.thermal.take()?,
            gpu: self.gpu.take()?,
            disk: self.disk.take()?,
        })
    }
}

/// Every family's measurement of one tick, all settled.
#[derive(Debug)]
pub(crate) struct Settled {
    /// When the tick's first read started: wall clock, monotonic.
    pub(crate) started: (SystemTime, Instant),
    pub(crate) cpu: Measured<CpuUsage>,
    pub(crate) memory: Measured<MemoryUsage>,
    pub(crate) thermal: Measured<f64>,
    pub(crate) gpu: Measured<GpuSample>,
    pub(crate) disk: Measured<DiskUsage>,
}

impl Settled {
    /// For a tick whose reads were dropped unread (the pool closed under it).
    fn abandoned() -> Self {
        fn none<R>() -> Measured<R> {
            Measured {
                reading: Err(Unavailable::new("the read was abandoned")),
                took: Duration::ZERO,
            }
        }
        Self {
            started: (SystemTime::now(), Instant::now()),
            cpu: none(),
            memory: none(),
            thermal: none(),
            gpu: none(),
            disk: none(),
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
