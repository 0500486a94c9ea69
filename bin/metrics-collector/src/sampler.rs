//! The sampling loop: one tick every live interval, each family read off the async workers
//! (on the `runner`'s probe thread) with its own deadline, the result published once for
//! every reader.
//!
//! A family that fails, panics or hangs gives `null` with a reason for that tick; the
//! others and the loop carry on. A hung read (statvfs on a dead network mount) keeps its
//! thread; later ticks do not pile more threads onto it, they report it as still stuck.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use api::{ProbeState, Published, Snapshot};
use gpu::GpuBackend;
use probes::{Probe, Reading, Unavailable};
use store::WindowBuilder;

use crate::runner::{Job, Runner};
use tokio::sync::{oneshot, watch};

#[cfg(test)]
mod tests;

type Shared<P> = Arc<Mutex<P>>;

/// The probes of one host and what the loop remembers between ticks.
pub(crate) struct Sampler<C, M, D, T> {
    cpu: Shared<C>,
    memory: Shared<M>,
    disk: Shared<D>,
    thermal: Shared<T>,
    gpu: Shared<Box<dyn GpuBackend>>,
    /// Known without locking `gpu`, whose lock a hung driver call may hold for ever.
    gpu_kind: gpu::BackendKind,
    deadline: Duration,
    runner: Runner,
    seq: u64,
    last_ok: [Option<SystemTime>; 5],
    last_success: Option<Instant>,
}

/// The service's sampler over the real probes.
pub(crate) type HostSampler = Sampler<probes::Cpu, probes::Memory, probes::Disk, probes::Thermal>;

impl HostSampler {
    pub(crate) fn for_host(
        probes: probes::HostProbes,
        gpu: Box<dyn GpuBackend>,
        deadline: Duration,
    ) -> Self {
        Self::new(
            probes.cpu,
            probes.memory,
            probes.disk,
            probes.thermal,
            gpu,
            deadline,
        )
    }
}

impl<C, M, D, T> Sampler<C, M, D, T>
where
    C: Probe<Output = f64> + 'static,
    M: Probe<Output = probes::MemoryUsage> + 'static,
    D: Probe<Output = probes::DiskUsage> + 'static,
    T: Probe<Output = f64> + 'static,
{
    pub(crate) fn new(
        cpu: C,
        memory: M,
        disk: D,
        thermal: T,
        gpu: Box<dyn GpuBackend>,
        deadline: Duration,
    ) -> Self {
        Self {
            cpu: Arc::new(Mutex::new(cpu)),
            memory: Arc::new(Mutex::new(memory)),
            disk: Arc::new(Mutex::new(disk)),
            thermal: Arc::new(Mutex::new(thermal)),
            gpu_kind: gpu.kind(),
            gpu: Arc::new(Mutex::new(gpu)),
            deadline,
            runner: Runner::default(),
            seq: 0,
            last_ok: [None; 5],
            last_success: None,
        }
    }

    /// Queues the reads of the tick due `at` (cheap and safe first; the ones that can
    /// hang, GPU driver and disk, last, so a hang delays nobody behind it for longer than
    /// the deadline).
    pub(crate) fn submit(&self, at: Instant) -> Batch {
        let (stamp_tx, stamp) = oneshot::channel();
        let stamp_job: Job = Box::new(move || {
            let _ = stamp_tx.send((SystemTime::now(), Instant::now()));
        });
        let (cpu_job, cpu) = job(&self.cpu, |p| p.read().map_err(Unavailable::from));
        let (memory_job, memory) = job(&self.memory, |p| p.read().map_err(Unavailable::from));
        let (thermal_job, thermal) = job(&self.thermal, |p| p.read().map_err(Unavailable::from));
        let (gpu_job, gpu) = job(&self.gpu, |g| Ok(g.sample()));
        let (disk_job, disk) = job(&self.disk, |p| p.read().map_err(Unavailable::from));
        // One wake-up of the sampler when the whole batch is done, not one per read.
        let (done_tx, done) = oneshot::channel::<()>();
        let done_job: Job = Box::new(move || {
            let _ = done_tx.send(());
        });
        self.runner.submit_at(
            at,
            [
                stamp_job,
                cpu_job,
                memory_job,
                thermal_job,
                gpu_job,
                disk_job,
                done_job,
            ],
        );
        Batch {
            at,
            stamp,
            cpu,
            memory,
            thermal,
            gpu,
            disk,
            done,
        }
    }

    /// Reads every family now and builds the snapshot (`sample`, tests; the loop submits
    /// ahead instead).
    pub(crate) async fn tick(&mut self) -> Published {
        let batch = self.submit(Instant::now());
        self.finish(batch).await
    }

    /// Waits for a batch (each read bounded by the deadline from when it could start) and
    /// builds the snapshot of its tick.
    pub(crate) async fn finish(&mut self, mut b: Batch) -> Published {
        let deadline = self.deadline;
        let (mut cpu, mut memory, mut thermal, mut gpu, mut disk) = (None, None, None, None, None);
        let mut wait_until = tokio::time::Instant::from_std(b.at.max(Instant::now()) + deadline);
        loop {
            let finished = tokio::time::timeout_at(wait_until, &mut b.done)
                .await
                .is_ok();
            // Answers in queue order; the first one missing after a timeout is the read
            // that is stuck: it gets a timeout, and a spare thread takes the rest.
            let mut stuck = !finished;
            settle(&mut cpu, &mut b.cpu, &mut stuck, deadline);
            settle(&mut memory, &mut b.memory, &mut stuck, deadline);
            settle(&mut thermal, &mut b.thermal, &mut stuck, deadline);
            settle(&mut gpu, &mut b.gpu, &mut stuck, deadline);
            settle(&mut disk, &mut b.disk, &mut stuck, deadline);
            if finished
                || (cpu.is_some()
                    && memory.is_some()
                    && thermal.is_some()
                    && gpu.is_some()
                    && disk.is_some())
            {
                break;
            }
            self.runner.add_spare();
            wait_until = tokio::time::Instant::now() + deadline;
        }
        let (taken_at, now) = b
            .stamp
            .try_recv()
            .unwrap_or_else(|_| (SystemTime::now(), Instant::now()));
        let (cpu, memory, thermal, gpu, disk) = (
            cpu.unwrap_or_else(abandoned),
            memory.unwrap_or_else(abandoned),
            thermal.unwrap_or_else(abandoned),
            gpu.unwrap_or_else(abandoned),
            disk.unwrap_or_else(abandoned),
        );
        let gpu_kind = self.gpu_kind;
        let (gpu_sample, gpu_time) = gpu;
        let gpu_sample =
            gpu_sample.unwrap_or_else(|e| gpu::GpuSample::unavailable(gpu_kind, e.reason()));
        let gpu_error = gpu_health(&gpu_sample);

        self.seq += 1;
        let errors = [
            cpu.0.as_ref().err().cloned(),
            memory.0.as_ref().err().cloned(),
            disk.0.as_ref().err().cloned(),
            thermal.0.as_ref().err().cloned(),
            gpu_error,
        ];
        let times = [cpu.1, memory.1, disk.1, thermal.1, gpu_time];
        let names = ["cpu", "memory", "disk", "thermal", "gpu"];
        let mut states = Vec::with_capacity(names.len());
        for (i, error) in errors.into_iter().enumerate() {
            if error.is_none() {
                self.last_ok[i] = Some(taken_at);
            }
            states.push(ProbeState {
                name: names[i],
                last_duration: times[i],
                error,
                last_ok: self.last_ok[i],
            });
        }
        let snapshot = Snapshot {
            seq: self.seq,
            sample: probes::Sample {
                taken_at,
                cpu_percent: cpu.0,
                memory: memory.0,
                disk: disk.0,
                cpu_celsius: thermal.0,
            },
            gpu: gpu_sample,
            probes: states,
        };
        if snapshot.succeeded() {
            self.last_success = Some(now);
        }
        Published::new(snapshot, now, self.last_success)
    }
}

/// The GPU family's state for `/health`: no GPU is absent (not a fault), a backend that
/// cannot read or a device that failed is an error naming it.
fn gpu_health(g: &gpu::GpuSample) -> Option<Unavailable> {
    if let Some(reason) = &g.reason {
        return Some(if g.backend == gpu::BackendKind::None {
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

/// Queues `f` with the probe locked on the runner, and returns a receiver of its reading
/// and how long it took. A probe whose previous read is still running (hung) is not read
/// again: the job answers at once that it is still waiting.
fn job<P, R, F>(probe: &Shared<P>, f: F) -> (Job, oneshot::Receiver<(Reading<R>, Duration)>)
where
    P: Send + 'static + ?Sized,
    R: Send + 'static,
    F: FnOnce(&mut P) -> Reading<R> + Send + 'static,
{
    let probe = Arc::clone(probe);
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let started = Instant::now();
        let reading = match probe.try_lock() {
            Ok(mut guard) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut guard)))
                    .unwrap_or_else(|payload| {
                        Err(Unavailable::new(format!(
                            "the read panicked: {}",
                            panic_message(payload)
                        )))
                    })
            }
            Err(TryLockError::WouldBlock) => Err(Unavailable::new(
                "the previous read has not returned yet (hung)",
            )),
            // A read panicked earlier; its state is still usable for a fresh read.
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut guard = poisoned.into_inner();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut guard)))
                    .unwrap_or_else(|payload| {
                        Err(Unavailable::new(format!(
                            "the read panicked: {}",
                            panic_message(payload)
                        )))
                    })
            }
        };
        let _ = tx.send((reading, started.elapsed()));
    });
    (job, rx)
}

/// The reads of one tick, queued on the runner, until their answers are taken.
pub(crate) struct Batch {
    /// When the tick is due.
    at: Instant,
    /// When its reads really started (wall clock for the wire, monotonic for ages).
    stamp: oneshot::Receiver<(SystemTime, Instant)>,
    cpu: Pending<f64>,
    memory: Pending<probes::MemoryUsage>,
    thermal: Pending<f64>,
    gpu: Pending<gpu::GpuSample>,
    disk: Pending<probes::DiskUsage>,
    done: oneshot::Receiver<()>,
}

/// A read queued on the runner, until its answer is taken.
type Pending<R> = oneshot::Receiver<(Reading<R>, Duration)>;

/// Fills `slot` with the read's answer if it has one; else, if `stuck` (the batch missed
/// its deadline and this is the first read without an answer), with a timeout.
fn settle<R>(
    slot: &mut Option<(Reading<R>, Duration)>,
    rx: &mut Pending<R>,
    stuck: &mut bool,
    deadline: Duration,
) {
    if slot.is_some() {
        return;
    }
    *slot = take(rx);
    if slot.is_none() && *stuck {
        *slot = Some((
            Err(Unavailable::new(format!(
                "timed out after {:.1} s",
                deadline.as_secs_f64()
            ))),
            deadline,
        ));
        *stuck = false;
    }
}

fn abandoned<R>() -> (Reading<R>, Duration) {
    (
        Err(Unavailable::new("the read was abandoned")),
        Duration::ZERO,
    )
}

/// Takes a finished read's answer; `None` while it is still running.
fn take<R>(rx: &mut Pending<R>) -> Option<(Reading<R>, Duration)> {
    match rx.try_recv() {
        Ok(done) => Some(done),
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => Some((
            Err(Unavailable::new("the read was abandoned")),
            Duration::ZERO,
        )),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// The first moment `start + k * every` (k >= 1) after `now`.
fn next_after(start: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = start + every;
    if next <= now {
        let behind = now.saturating_duration_since(next).as_nanos() / every.as_nanos().max(1);
        next += every * u32::try_from(behind + 1).unwrap_or(u32::MAX);
    }
    next
}

/// How soon after start the first sample is taken: long enough for a first CPU percentage.
pub(crate) fn first_tick_delay(live: Duration) -> Duration {
    live.min(Duration::from_millis(500))
}

/// Persistence as the sampler sees it: the open window and the writer's inbox.
#[derive(Debug)]
pub(crate) struct Persist {
    pub(crate) handle: store::Handle,
    pub(crate) every: Duration,
    /// Windows the writer could not take (its inbox full): lost, and shown in `/health`.
    pub(crate) lost: Arc<AtomicU64>,
    window: WindowBuilder,
}

impl Persist {
    pub(crate) fn new(handle: store::Handle, every: Duration, lost: Arc<AtomicU64>) -> Self {
        Self {
            handle,
            every,
            lost,
            window: WindowBuilder::default(),
        }
    }

    fn add(&mut self, s: &Snapshot) {
        self.window
            .add(&s.sample, s.gpu.mean_utilization(), s.temperature());
    }

    /// Closes the open window and hands it to the writer without waiting.
    fn close(&mut self, at: SystemTime) {
        if let Some(window) = self.window.close(at)
            && !self.handle.send(window)
        {
            self.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("the database writer is not keeping up; a window was dropped");
        }
    }
}

/// Ticks every `live` (on a fixed schedule: a slow tick does not push later ones back; a
/// missed tick is skipped), publishing each snapshot, and closes a persisted window every
/// `persist.every`, until `shutdown` changes; then the open window is closed and handed
/// over, and the writer's handle dropped so it can flush.
pub(crate) async fn run<C, M, D, T>(
    mut sampler: Sampler<C, M, D, T>,
    live: Duration,
    publish: watch::Sender<Option<Arc<Published>>>,
    mut persist: Option<Persist>,
    mut shutdown: watch::Receiver<bool>,
) where
    C: Probe<Output = f64> + 'static,
    M: Probe<Output = probes::MemoryUsage> + 'static,
    D: Probe<Output = probes::DiskUsage> + 'static,
    T: Probe<Output = f64> + 'static,
{
    // Ticks are due on a fixed schedule (start + k * live): a slow tick does not push the
    // next ones back, and ticks missed (a suspended machine) are skipped, not bunched.
    // Two ticks are queued at any time, so the probe thread always knows when to wake.
    let mut due = Instant::now() + first_tick_delay(live);
    let mut queued =
        std::collections::VecDeque::from([sampler.submit(due), sampler.submit(due + live)]);
    due += live;
    let every = persist.as_ref().map(|p| p.every);
    let mut close_at = every.map(|e| Instant::now() + e);
    let mut last_states: Vec<(&'static str, Condition)> = Vec::new();
    while let Some(batch) = queued.pop_front() {
        let published = tokio::select! {
            p = sampler.finish(batch) => p,
            _ = shutdown.changed() => break,
        };
        log_changes(&mut last_states, &published.snapshot.probes);
        if let Some(p) = persist.as_mut() {
            p.add(&published.snapshot);
            if let (Some(at), Some(every)) = (close_at, every)
                && published.taken >= at
            {
                p.close(published.snapshot.sample.taken_at);
                close_at = Some(next_after(at, every, published.taken));
            }
        }
        publish.send_replace(Some(Arc::new(published)));
        due = next_after(due, live, Instant::now());
        queued.push_back(sampler.submit(due));
    }
    if let Some(mut p) = persist {
        p.close(SystemTime::now());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    Ok,
    Absent,
    Failing,
}

/// Logs a family only when its condition changes, not on every tick.
fn log_changes(last: &mut Vec<(&'static str, Condition)>, probes: &[ProbeState]) {
    for state in probes {
        let now = match &state.error {
            None => Condition::Ok,
            Some(e) if e.is_absent() => Condition::Absent,
            Some(_) => Condition::Failing,
        };
        let before = last.iter_mut().find(|(name, _)| *name == state.name);
        let changed = match before {
            Some((_, previous)) if *previous == now => false,
            Some((_, previous)) => {
                *previous = now;
                true
            }
            None => {
                last.push((state.name, now));
                now != Condition::Ok
            }
        };
        if !changed {
            continue;
        }
        let reason = state.error.as_ref().map(|e| e.reason()).unwrap_or_default();
        match now {
            Condition::Ok => tracing::info!(probe = state.name, "probe reads again"),
            Condition::Absent => tracing::info!(probe = state.name, reason, "not on this host"),
            Condition::Failing => tracing::warn!(probe = state.name, reason, "probe failing"),
        }
    }
}
