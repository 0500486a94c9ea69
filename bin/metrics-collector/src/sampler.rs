//! The sampling loop: one tick every live interval, each family read on the `runner`'s
//! probe thread with its own deadline, the result encoded and published once for every
//! reader, on that same thread (one wake-up per tick when the machine is idle).
//!
//! A family that fails, panics or hangs gives `null` with a reason for that tick; the
//! others and the loop carry on. A hung read (statvfs on a dead network mount) keeps its
//! thread; later ticks do not pile more threads onto it, they report it as still stuck.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use api::{ProbeState, Published, Snapshot};
use gpu::GpuBackend;
use probes::{Probe, Reading, Unavailable};
use store::WindowBuilder;

use crate::runner::{Runner, Task};
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
    /// The last snapshot built: the next may reuse its `/gpu` body, and a tick whose reads
    /// started before it did (possible only behind a hung read) is not published over it.
    last: Option<Arc<Published>>,
}

/// The service's sampler over the real probes.
pub(crate) type HostSampler = Sampler<probes::Cpu, probes::Memory, probes::Disk, probes::Thermal>;

impl HostSampler {
    pub(crate) fn for_host(
        probes: probes::HostProbes,
        gpu: Box<dyn GpuBackend>,
        deadline: Duration,
    ) -> std::io::Result<Self> {
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

impl<C, M, D, T> Drop for Sampler<C, M, D, T> {
    fn drop(&mut self) {
        self.runner.close();
    }
}

impl<C, M, D, T> Sampler<C, M, D, T>
where
    C: Probe<Output = f64> + 'static,
    M: Probe<Output = probes::MemoryUsage> + 'static,
    D: Probe<Output = probes::DiskUsage> + 'static,
    T: Probe<Output = f64> + 'static,
{
    /// Fails only when the probe threads' watchdog cannot be set up (no timerfd, no thread).
    pub(crate) fn new(
        cpu: C,
        memory: M,
        disk: D,
        thermal: T,
        gpu: Box<dyn GpuBackend>,
        deadline: Duration,
    ) -> std::io::Result<Self> {
        Ok(Self {
            cpu: Arc::new(Mutex::new(cpu)),
            memory: Arc::new(Mutex::new(memory)),
            disk: Arc::new(Mutex::new(disk)),
            thermal: Arc::new(Mutex::new(thermal)),
            gpu_kind: gpu.kind(),
            gpu: Arc::new(Mutex::new(gpu)),
            deadline,
            runner: Runner::new()?,
            seq: 0,
            last_ok: [None; 5],
            last_success: None,
            last: None,
        })
    }

    /// Queues the reads of the tick due `at` (cheap and safe first; the ones that can
    /// hang, GPU driver and disk, last, so a hang delays nobody behind it for longer than
    /// the deadline). `done` gets the readings on the thread that settles the last one.
    fn submit(&self, at: Instant, done: impl FnOnce(Readings) + Send + 'static) {
        let tick = Arc::new(Mutex::new(Tick {
            done: Some(Box::new(done)),
            ..Tick::default()
        }));
        let d = self.deadline;
        self.runner.submit_at(
            at,
            [
                read_task(
                    &tick,
                    &self.cpu,
                    d,
                    |t| &mut t.cpu,
                    |p| p.read().map_err(Unavailable::from),
                ),
                read_task(
                    &tick,
                    &self.memory,
                    d,
                    |t| &mut t.memory,
                    |p| p.read().map_err(Unavailable::from),
                ),
                read_task(
                    &tick,
                    &self.thermal,
                    d,
                    |t| &mut t.thermal,
                    |p| p.read().map_err(Unavailable::from),
                ),
                read_task(&tick, &self.gpu, d, |t| &mut t.gpu, |g| Ok(g.sample())),
                read_task(
                    &tick,
                    &self.disk,
                    d,
                    |t| &mut t.disk,
                    |p| p.read().map_err(Unavailable::from),
                ),
            ],
        );
    }

    /// Reads every family now and builds the snapshot (`sample`, tests; the loop submits
    /// ahead instead).
    pub(crate) async fn tick(&mut self) -> Arc<Published> {
        let (tx, rx) = oneshot::channel();
        self.submit(Instant::now(), move |readings| {
            let _ = tx.send(readings);
        });
        let readings = rx.await.unwrap_or_else(|_| Readings::abandoned());
        self.build(readings)
    }

    /// Builds the snapshot of a tick from its readings.
    fn build(&mut self, r: Readings) -> Arc<Published> {
        let (taken_at, now) = r.started;
        let (cpu, memory, thermal, gpu, disk) = (r.cpu, r.memory, r.thermal, r.gpu, r.disk);
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
        let published = Arc::new(Published::after(
            self.last.as_deref(),
            snapshot,
            now,
            self.last_success,
        ));
        self.last = Some(Arc::clone(&published));
        published
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

/// A read of one family on the runner with the probe locked, its answer settled into
/// `slot` of the tick; a timeout settles it instead if the read overruns the deadline. A
/// probe whose previous read is still running (hung) is not read again: the task answers
/// at once that it is still waiting.
fn read_task<P, R, F>(
    tick: &Arc<Mutex<Tick>>,
    probe: &Shared<P>,
    deadline: Duration,
    slot: fn(&mut Tick) -> &mut Option<Read<R>>,
    f: F,
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
            Ok(mut guard) => guarded(|| f(&mut guard)),
            Err(TryLockError::WouldBlock) => Err(Unavailable::new(
                "the previous read has not returned yet (hung)",
            )),
            // A read panicked earlier; its state is still usable for a fresh read.
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut guard = poisoned.into_inner();
                guarded(|| f(&mut guard))
            }
        };
        settle(&tick, slot, (reading, started.elapsed()));
    };
    let on_overrun = move || {
        let reason = format!("timed out after {:.1} s", deadline.as_secs_f64());
        settle(&timed_out, slot, (Err(Unavailable::new(reason)), deadline));
    };
    Task::with_deadline(deadline, run, on_overrun)
}

/// Runs a read, turning a panic into an unavailable reading.
fn guarded<R>(read: impl FnOnce() -> Reading<R>) -> Reading<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|payload| {
        Err(Unavailable::new(format!(
            "the read panicked: {}",
            panic_message(payload)
        )))
    })
}

/// Fills the tick's `slot` unless something (the read or its timeout) already did; the
/// last one filled hands the readings over.
fn settle<R>(tick: &Mutex<Tick>, slot: fn(&mut Tick) -> &mut Option<Read<R>>, read: Read<R>) {
    let mut t = lock(tick);
    let s = slot(&mut t);
    if s.is_some() {
        return;
    }
    *s = Some(read);
    if let Some(readings) = t.readings()
        && let Some(done) = t.done.take()
    {
        drop(t);
        done(readings);
    }
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One family's reading and how long it took.
type Read<R> = (Reading<R>, Duration);

/// The reads of one tick as they settle.
#[derive(Default)]
struct Tick {
    /// When the first read started (wall clock for the wire, monotonic for ages).
    started: Option<(SystemTime, Instant)>,
    cpu: Option<Read<f64>>,
    memory: Option<Read<probes::MemoryUsage>>,
    thermal: Option<Read<f64>>,
    gpu: Option<Read<gpu::GpuSample>>,
    disk: Option<Read<probes::DiskUsage>>,
    done: Option<Box<dyn FnOnce(Readings) + Send>>,
}

impl Tick {
    /// Every reading, once all are in.
    fn readings(&mut self) -> Option<Readings> {
        if self.cpu.is_none()
            || self.memory.is_none()
            || self.thermal.is_none()
            || self.gpu.is_none()
            || self.disk.is_none()
        {
            return None;
        }
        Some(Readings {
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

/// The readings of one tick.
struct Readings {
    started: (SystemTime, Instant),
    cpu: Read<f64>,
    memory: Read<probes::MemoryUsage>,
    thermal: Read<f64>,
    gpu: Read<gpu::GpuSample>,
    disk: Read<probes::DiskUsage>,
}

impl Readings {
    /// For a tick whose reads were dropped unread (the pool closed under it).
    fn abandoned() -> Self {
        fn none<R>() -> Read<R> {
            (
                Err(Unavailable::new("the read was abandoned")),
                Duration::ZERO,
            )
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

/// The running loop; `stop` ends it.
pub(crate) struct Sampling(Box<dyn FnOnce() + Send>);

impl Sampling {
    /// Stops ticking; the open window is closed and handed over, and the writer's handle
    /// dropped so it can flush. A tick being built finishes first (it never waits on I/O).
    pub(crate) fn stop(self) {
        (self.0)();
    }
}

/// What the loop carries from one tick to the next.
struct Loop<C, M, D, T> {
    sampler: Sampler<C, M, D, T>,
    live: Duration,
    /// When the last tick queued is due.
    due: Instant,
    publish: watch::Sender<Option<Arc<Published>>>,
    persist: Option<Persist>,
    close_at: Option<Instant>,
    last_states: Vec<(&'static str, Condition)>,
    stopped: bool,
}

/// Starts ticking every `live` on the probe threads, publishing each snapshot, and closing
/// a persisted window every `persist.every`.
///
/// Ticks are due on a fixed schedule (start + k * live): a slow tick does not push the next
/// ones back, and ticks missed (a suspended machine) are skipped, not bunched. Two ticks
/// are queued at any time, so the next one is there to run even while the one before
/// waits out a hung read.
pub(crate) fn start<C, M, D, T>(
    sampler: Sampler<C, M, D, T>,
    live: Duration,
    publish: watch::Sender<Option<Arc<Published>>>,
    persist: Option<Persist>,
) -> Sampling
where
    C: Probe<Output = f64> + 'static,
    M: Probe<Output = probes::MemoryUsage> + 'static,
    D: Probe<Output = probes::DiskUsage> + 'static,
    T: Probe<Output = f64> + 'static,
{
    let first = Instant::now() + first_tick_delay(live);
    let close_at = persist.as_ref().map(|p| Instant::now() + p.every);
    let state = Arc::new(Mutex::new(Loop {
        sampler,
        live,
        due: first + live,
        publish,
        persist,
        close_at,
        last_states: Vec::new(),
        stopped: false,
    }));
    {
        let l = lock(&state);
        let (a, b) = (Arc::clone(&state), Arc::clone(&state));
        l.sampler.submit(first, move |r| on_tick(&a, r));
        l.sampler.submit(l.due, move |r| on_tick(&b, r));
    }
    Sampling(Box::new(move || {
        let mut l = lock(&state);
        l.stopped = true;
        l.sampler.runner.close();
        if let Some(mut p) = l.persist.take() {
            p.close(SystemTime::now());
        }
    }))
}

/// A tick's readings are in: publish its snapshot, add it to the window, queue the next.
fn on_tick<C, M, D, T>(state: &Arc<Mutex<Loop<C, M, D, T>>>, readings: Readings)
where
    C: Probe<Output = f64> + 'static,
    M: Probe<Output = probes::MemoryUsage> + 'static,
    D: Probe<Output = probes::DiskUsage> + 'static,
    T: Probe<Output = f64> + 'static,
{
    let mut guard = lock(state);
    let l = &mut *guard;
    if l.stopped {
        return;
    }
    if l.sampler
        .last
        .as_ref()
        .is_none_or(|last| last.taken < readings.started.1)
    {
        let published = l.sampler.build(readings);
        log_changes(&mut l.last_states, &published.snapshot.probes);
        if let Some(p) = l.persist.as_mut() {
            p.add(&published.snapshot);
            if let (Some(at), every) = (l.close_at, p.every)
                && published.taken >= at
            {
                p.close(published.snapshot.sample.taken_at);
                l.close_at = Some(next_after(at, every, published.taken));
            }
        }
        l.publish.send_replace(Some(published));
    }
    l.due = next_after(l.due, l.live, Instant::now());
    let next = Arc::clone(state);
    l.sampler.submit(l.due, move |r| on_tick(&next, r));
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
