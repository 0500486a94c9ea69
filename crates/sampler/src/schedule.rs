//! The schedule: one tick every live interval on the probe pool, each tick's snapshot
//! encoded and published once for every reader, on the thread that finished the tick (one
//! wake-up per tick when the machine is idle), and a persisted window closed every
//! persist interval.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::engine::{Settled, lock, panic_message};
use crate::ring::{Ring, window_start};
use crate::window::{Window, WindowBuilder};
use crate::{Encode, Engine, Families, FamilyState, Persist, Published, Snapshot};

/// The latest published snapshot, as readers receive it (`None` before the first).
pub type Latest<B> = watch::Receiver<Option<Arc<Published<B>>>>;

/// The running schedule; `stop` ends it.
pub struct Running {
    state: Arc<dyn Stop>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Running")
    }
}

impl Running {
    /// Stops ticking; the open window is closed and handed over, and the sink dropped so
    /// the writer can flush. A tick being built finishes first (it never waits on I/O).
    pub fn stop(self) {
        self.state.stop();
    }

    /// Probe threads alive now, stuck ones included: one on an idle machine, one more per
    /// read still hung.
    pub fn probe_threads(&self) -> usize {
        self.state.threads()
    }

    /// Times the probe threads woke up since the start (one per tick when all is well).
    pub fn probe_wakeups(&self) -> u64 {
        self.state.wakeups()
    }
}

/// What `Running` needs of the schedule, whatever its bodies' type.
trait Stop: Send + Sync {
    fn stop(&self);
    fn threads(&self) -> usize;
    fn wakeups(&self) -> u64;
}

impl<E: Encode> Stop for Mutex<Schedule<E>> {
    fn stop(&self) {
        let mut s = lock(self);
        s.stopped = true;
        s.engine.pool.close();
        let last = s
            .windows
            .as_mut()
            .and_then(|w| w.close_now(SystemTime::now()));
        if let (Some(mut p), Some(w)) = (s.persist.take(), last) {
            p.offer(w);
        }
        s.persist = None;
    }

    fn threads(&self) -> usize {
        lock(self).engine.pool_stats().threads
    }

    fn wakeups(&self) -> u64 {
        lock(self).engine.pool_stats().wakeups
    }
}

/// What the schedule carries from one tick to the next.
struct Schedule<E: Encode> {
    engine: Engine,
    encoder: E,
    live: Duration,
    /// When the last tick queued is due.
    due: Instant,
    publish: watch::Sender<Option<Arc<Published<E::Bodies>>>>,
    /// The last snapshot published: the next may reuse parts of its bodies, and a tick
    /// whose reads started before it did (possible only behind a hung read) is not
    /// published over it.
    last: Option<Arc<Published<E::Bodies>>>,
    persist: Option<Persist>,
    ring: Option<Arc<Ring>>,
    windows: Option<WindowClock>,
    last_conditions: Families<Option<Condition>>,
    stopped: bool,
}

/// Where each tick's snapshot goes besides the latest: windows to the database writer,
/// samples and windows to the memory ring. With neither, no window is kept.
#[derive(Debug, Default)]
pub struct Outputs {
    pub persist: Option<Persist>,
    pub ring: Option<Arc<Ring>>,
}

/// The open window and the grid it lies on: windows begin on multiples of `every` since
/// the Unix epoch, so a history bucket at the persist step is one window.
#[derive(Debug)]
struct WindowClock {
    every: Duration,
    builder: WindowBuilder,
    start: SystemTime,
    close_at: SystemTime,
}

impl WindowClock {
    fn new(every: Duration) -> Self {
        Self {
            every,
            builder: WindowBuilder::default(),
            start: SystemTime::UNIX_EPOCH,
            close_at: SystemTime::UNIX_EPOCH,
        }
    }

    /// Adds a tick's sample, first closing the open window when the sample lies past its
    /// end: the window is the samples taken in `[start, close_at)`, stamped `close_at`.
    fn tick(&mut self, s: &Snapshot) -> Option<Window> {
        let taken = s.sample.taken_at;
        let mut closed = None;
        if self.builder.is_empty() || taken >= self.close_at || taken < self.start {
            // (A sample before the window's start: the clock stepped back. The window is
            // closed as if its time were up.)
            if !self.builder.is_empty() {
                closed = self.builder.close(self.start, self.close_at);
            }
            // The grid line at or before the sample (a window closed at `taken` would
            // begin there): skipped windows (a suspended machine) are not made up.
            self.start = window_start(taken + Duration::from_millis(1), self.every);
            self.close_at = self.start + self.every;
        }
        self.builder
            .add(&s.sample, s.gpu.mean_utilization(), s.temperature());
        closed
    }

    /// The open window, closed now (at shutdown): shorter than the others.
    fn close_now(&mut self, now: SystemTime) -> Option<Window> {
        let at = now.clamp(self.start, self.close_at);
        self.builder.close(self.start, at)
    }
}

/// Starts ticking every `live` on the engine's probe pool, publishing each snapshot with
/// the bodies `encoder` makes of it, and closing a window on each line of the persist
/// grid (the persist interval, else the ring's window length).
///
/// Ticks are due on a fixed schedule (first + k * live): a slow tick does not push the
/// next ones back, and ticks missed (a suspended machine) are skipped, not bunched. Two
/// ticks are queued at any time, so the next one is there to run even while the one
/// before waits out a hung read. A panic while a snapshot is built or encoded costs that
/// tick only: the next one is queued all the same.
pub fn start<E: Encode>(
    engine: Engine,
    encoder: E,
    live: Duration,
    publish: watch::Sender<Option<Arc<Published<E::Bodies>>>>,
    outputs: Outputs,
) -> Running {
    let first = Instant::now() + first_tick_delay(live);
    let Outputs { persist, ring } = outputs;
    let every = persist
        .as_ref()
        .map(Persist::every)
        .or_else(|| ring.as_ref().map(|r| r.window_every()));
    let state = Arc::new(Mutex::new(Schedule {
        engine,
        encoder,
        live,
        due: first + live,
        publish,
        last: None,
        persist,
        ring,
        windows: every.map(WindowClock::new),
        last_conditions: Families::default(),
        stopped: false,
    }));
    {
        let s = lock(&state);
        let (a, b) = (Arc::clone(&state), Arc::clone(&state));
        s.engine.submit(first, move |r| on_tick(&a, first, r));
        let second = s.due;
        s.engine.submit(second, move |r| on_tick(&b, second, r));
    }
    Running { state }
}

/// A tick's measurements are in: publish its snapshot, add it to the window, queue the
/// next tick, whatever happened to the first two.
fn on_tick<E: Encode>(state: &Arc<Mutex<Schedule<E>>>, due: Instant, settled: Settled) {
    let mut guard = lock(state);
    let s = &mut *guard;
    if s.stopped {
        return;
    }
    // After a stall (a suspended VM, SIGSTOP) both queued ticks are overdue and run back
    // to back: the second would measure a millisecond of CPU (a made-up 100 % or 0 %) and
    // repeat the first's id. A tick whose reads started less than half an interval after
    // the last published one's is dropped unbuilt; the schedule goes on from the grid.
    let started = settled.started.1;
    let too_soon = s
        .last
        .as_ref()
        .is_some_and(|last| started >= last.taken && started < last.taken + s.live / 2);
    let publishing = if too_soon {
        tracing::debug!("tick skipped: it ran right behind the one before, after a stall");
        Ok(())
    } else {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.publish_tick(due, settled);
        }))
    };
    if let Err(payload) = publishing {
        tracing::error!(
            panic = %panic_message(payload.as_ref()),
            "building a snapshot panicked; this tick is lost, the schedule goes on"
        );
    }
    s.due = next_after(s.due, s.live, Instant::now());
    let next = Arc::clone(state);
    let at = s.due;
    s.engine.submit(at, move |r| on_tick(&next, at, r));
}

impl<E: Encode> Schedule<E> {
    fn publish_tick(&mut self, due: Instant, settled: Settled) {
        let started = settled.started.1;
        if self.last.as_ref().is_some_and(|last| last.taken >= started) {
            return;
        }
        let snapshot = self.engine.build(settled);
        log_changes(&mut self.last_conditions, &snapshot.families);
        let bodies = self.encoder.encode(&snapshot, self.last.as_deref());
        let published = Arc::new(Published {
            snapshot,
            taken: started,
            due: Some(due),
            last_success: self.engine.last_success(),
            bodies,
        });
        let closed = self
            .windows
            .as_mut()
            .and_then(|w| w.tick(&published.snapshot));
        // The ring first: a stream client woken by the publish finds the sample there.
        if let Some(ring) = &self.ring {
            ring.push(
                &published.snapshot,
                E::event(&published.bodies),
                closed.as_ref(),
            );
        }
        if let (Some(p), Some(w)) = (self.persist.as_mut(), closed) {
            p.offer(w);
        }
        self.last = Some(Arc::clone(&published));
        self.publish.send_replace(Some(published));
        // For `cargo xtask bench stream` (RUST_LOG=sampler=debug): from the moment the tick
        // was due to every reader having been told. Off, this is one static check.
        tracing::debug!(
            since_due_us = Instant::now().saturating_duration_since(due).as_micros() as u64,
            "tick published"
        );
    }
}

/// The first moment `start + k * every` (k >= 1) after `now`.
pub(crate) fn next_after(start: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = start + every;
    if next <= now {
        let behind = now.saturating_duration_since(next).as_nanos() / every.as_nanos().max(1);
        next += every * u32::try_from(behind + 1).unwrap_or(u32::MAX);
    }
    next
}

/// How soon after start the first sample is taken: long enough for a first CPU percentage.
pub fn first_tick_delay(live: Duration) -> Duration {
    live.min(Duration::from_millis(500))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    Ok,
    Absent,
    Failing,
}

/// Logs a family only when its condition changes, not on every tick.
fn log_changes(last: &mut Families<Option<Condition>>, families: &Families<FamilyState>) {
    for ((name, state), (_, before)) in families.named().into_iter().zip(last.named_mut()) {
        let now = match &state.error {
            None => Condition::Ok,
            Some(e) if e.is_absent() => Condition::Absent,
            Some(_) => Condition::Failing,
        };
        let changed = match before.replace(now) {
            Some(previous) => previous != now,
            // The first tick: only what is not fine is worth a line.
            None => now != Condition::Ok,
        };
        if !changed {
            continue;
        }
        let reason = state.error.as_ref().map(|e| e.reason()).unwrap_or_default();
        match now {
            Condition::Ok => tracing::info!(probe = name, "probe reads again"),
            Condition::Absent => tracing::info!(probe = name, reason, "not on this host"),
            Condition::Failing => tracing::warn!(probe = name, reason, "probe failing"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_after_stays_on_the_grid_and_skips_what_was_missed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let cases = [
            // (now after t0, expected next after t0)
            (ms(0), ms(100)),
            (ms(99), ms(100)),
            (ms(100), ms(200)),
            (ms(180), ms(200)),
            (ms(1_050), ms(1_100)),
        ];
        for (now, expected) in cases {
            assert_eq!(
                next_after(t0, ms(100), t0 + now),
                t0 + expected,
                "now {now:?}"
            );
        }
    }
}
