//! A tiny thread pool for probe reads, shaped for a sampler that is idle almost always.
//!
//! Tasks are queued with the moment they are due. One thread sleeps until then, runs them
//! one after the other, and sleeps until the next is due: an idle tick costs that one
//! thread's wake-up and nothing else (a second thread woken to collect the answers cost
//! about as much again).
//!
//! A task may carry a deadline and what to do if it overruns it. A watchdog thread sleeps
//! on a timerfd: the running thread sets it when such a task starts and clears it before
//! going back to sleep, both without waking the watchdog, which therefore wakes only when a
//! read really overruns (a statvfs on a dead NFS mount, a GPU driver call that never
//! returns). It then runs the overrun handler, and the tasks queued behind the stuck one go
//! to a spare thread. A thread that comes back from an overrun leaves when a spare has
//! taken its place (one free thread is enough: two would both wake for every tick), and
//! any spare leaves after a minute without work.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

type Callback = Box<dyn FnOnce() + Send>;

/// One unit of work: a probe read, with a deadline and what to do if it overruns it.
pub(crate) struct Task {
    run: Callback,
    overrun: Option<(Duration, Callback)>,
}

impl Task {
    /// Runs `run`; if it has not returned `deadline` after it started, `on_overrun` runs
    /// (on the watchdog thread) and later tasks go to another thread.
    pub(crate) fn with_deadline(
        deadline: Duration,
        run: impl FnOnce() + Send + 'static,
        on_overrun: impl FnOnce() + Send + 'static,
    ) -> Self {
        Self {
            run: Box::new(run),
            overrun: Some((deadline, Box::new(on_overrun))),
        }
    }
}

/// Threads beyond the first free one leave after this long without work.
const SPARE_IDLE: Duration = Duration::from_secs(60);
/// Hung reads each hold a thread; the sampler never starts a read of a family whose last
/// read is still stuck, so this is never reached in practice.
const MAX_THREADS: usize = 16;
/// Probe reads and the snapshot encoding run on these threads; the watchdog runs the
/// overrun handlers, which may finish a tick.
const STACK: usize = 512 * 1024;

/// A task running with a deadline.
struct Running {
    id: u64,
    deadline: Instant,
    on_overrun: Callback,
}

#[derive(Default)]
struct State {
    /// Tasks with the moment they are due, in order.
    queue: VecDeque<(Instant, Task)>,
    threads: usize,
    /// Threads whose task overran its deadline and has not returned yet.
    stuck: usize,
    /// Threads waiting for work, and the earliest moment one of them wakes by itself.
    idle: usize,
    wakes_at: Option<Instant>,
    running: Vec<Running>,
    next_id: u64,
    /// Times a worker came back from waiting for work (a wake-up), since the start.
    wakeups: u64,
    /// When the watchdog's timer fires; `None` while it is disarmed.
    armed: Option<Instant>,
    closed: bool,
}

impl State {
    fn free_threads(&self) -> usize {
        self.threads - self.stuck
    }
}

struct Inner {
    state: Mutex<State>,
    work: Condvar,
    timer: OwnedFd,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the watchdog's timer fire no later than `deadline`. A timer that already
    /// fires earlier is left alone: the watchdog sets it again for what is still running.
    fn arm(&self, state: &mut State, deadline: Instant) {
        if state.armed.is_none_or(|at| at > deadline) {
            self.reset(state, Some(deadline));
        }
    }

    fn disarm(&self, state: &mut State) {
        if state.armed.is_some() {
            self.reset(state, None);
        }
    }

    /// Sets the timer to fire at `at`, or disarms it.
    fn reset(&self, state: &mut State, at: Option<Instant>) {
        // A zero value would disarm it: a deadline already passed fires in a nanosecond.
        let after = at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1))
        });
        if self.set_timer(after) {
            state.armed = at;
        }
    }

    /// Sets the timer to fire once after `after`, or disarms it for zero.
    fn set_timer(&self, after: Duration) -> bool {
        let value = Timespec::try_from(after).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        match rustix::time::timerfd_settime(&self.timer, TimerfdTimerFlags::empty(), &spec) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot set the probe watchdog's timer");
                false
            }
        }
    }
}

/// What the pool is made of now: worker threads (stuck ones included) and the wake-ups
/// they have had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolStats {
    pub(crate) threads: usize,
    pub(crate) stuck: usize,
    pub(crate) wakeups: u64,
}

/// A handle on the pool; clones share it. `close` stops it.
#[derive(Clone)]
pub(crate) struct Pool(Arc<Inner>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    /// Creates the pool with its watchdog thread; worker threads start with the first task.
    pub(crate) fn new() -> std::io::Result<Self> {
        let timer = rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            timer,
        });
        let watched = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("probe-watchdog".into())
            .stack_size(STACK)
            .spawn(move || watchdog(&watched))?;
        Ok(Self(inner))
    }

    /// Queues `tasks` to run in order, not before `at`.
    pub(crate) fn submit_at(&self, at: Instant, tasks: impl IntoIterator<Item = Task>) {
        let mut state = self.0.lock();
        if state.closed {
            return;
        }
        state.queue.extend(tasks.into_iter().map(|t| (at, t)));
        if state.free_threads() == 0 {
            spawn(&self.0, &mut state);
        }
        // A busy thread looks at the queue when it is done; a sleeping one that wakes by
        // itself in time needs no nudge (that nudge would be a wasted wake-up per tick).
        if state.idle > 0 && state.wakes_at.is_none_or(|w| w > at) {
            self.0.work.notify_one();
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.0.lock();
        PoolStats {
            threads: state.threads,
            stuck: state.stuck,
            wakeups: state.wakeups,
        }
    }

    /// Stops the pool: queued tasks are dropped, free threads and the watchdog leave, a
    /// thread stuck in a read leaves when (if) the read returns.
    pub(crate) fn close(&self) {
        let mut state = self.0.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        let dropped = (
            std::mem::take(&mut state.queue),
            std::mem::take(&mut state.running),
        );
        self.0.work.notify_all();
        // Wakes the watchdog, which sees `closed` and leaves.
        self.0.reset(&mut state, Some(Instant::now()));
        // Outside the lock: what the tasks own may close this pool again when dropped.
        drop(state);
        drop(dropped);
    }
}

fn spawn(inner: &Arc<Inner>, state: &mut State) {
    if state.threads >= MAX_THREADS {
        tracing::error!(
            threads = state.threads,
            "every probe thread is stuck in a read"
        );
        return;
    }
    let pool = Arc::clone(inner);
    let spawned = std::thread::Builder::new()
        .name("probe".into())
        .stack_size(STACK)
        .spawn(move || work(&pool));
    match spawned {
        Ok(_) => state.threads += 1,
        Err(e) => tracing::error!(error = %e, "cannot start a probe thread"),
    }
}

fn work(inner: &Inner) {
    let mut state = inner.lock();
    loop {
        if state.closed {
            state.threads -= 1;
            return;
        }
        let now = Instant::now();
        let due = state.queue.front().map(|(at, _)| *at);
        if due.is_some_and(|at| at <= now)
            && let Some((_, task)) = state.queue.pop_front()
        {
            let watched = task.overrun.map(|(deadline, on_overrun)| {
                let id = state.next_id;
                state.next_id += 1;
                let deadline = now + deadline;
                state.running.push(Running {
                    id,
                    deadline,
                    on_overrun,
                });
                inner.arm(&mut state, deadline);
                id
            });
            drop(state);
            // Tasks catch their own panics (see `engine::read_task`); this is a second net
            // so a thread never dies with the pool's count wrong.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task.run));
            state = inner.lock();
            if let Some(id) = watched {
                match state.running.iter().position(|r| r.id == id) {
                    Some(i) => {
                        // Its unused overrun handler is dropped outside the lock: what it
                        // owns may close this pool when dropped.
                        let finished = state.running.swap_remove(i);
                        drop(state);
                        drop(finished);
                        state = inner.lock();
                    }
                    // The watchdog gave up on it (or the pool closed): this thread is free
                    // again. A spare took over its queue meanwhile, and the schedule always
                    // has ticks queued, so waiting for an idle minute would never end it:
                    // leave now unless this is the only free thread.
                    None if !state.closed => {
                        state.stuck -= 1;
                        if state.free_threads() > 1 {
                            state.threads -= 1;
                            return;
                        }
                    }
                    None => {}
                }
            }
            continue;
        }
        // Going to sleep. With nothing else running on a deadline, the watchdog's timer is
        // set for the next task as if it had started on time (one timer call per tick, not
        // one to arm and one to disarm); a task that starts late and runs past it gets the
        // rest of its time when the watchdog looks.
        if state.running.is_empty() {
            match state.queue.front() {
                Some((
                    at,
                    Task {
                        overrun: Some((deadline, _)),
                        ..
                    },
                )) => {
                    let at = *at + *deadline;
                    inner.reset(&mut state, Some(at));
                }
                _ => inner.disarm(&mut state),
            }
        }
        let until = due.unwrap_or(now + SPARE_IDLE);
        state.idle += 1;
        state.wakes_at = Some(state.wakes_at.map_or(until, |w| w.min(until)));
        let (next, timeout) = inner
            .work
            .wait_timeout(state, until.saturating_duration_since(now))
            .unwrap_or_else(PoisonError::into_inner);
        state = next;
        state.idle -= 1;
        state.wakeups += 1;
        // Unknown for any other sleeper now: the next submit nudges rather than guesses.
        state.wakes_at = None;
        if timeout.timed_out()
            && due.is_none()
            && state.queue.is_empty()
            && state.free_threads() > 1
        {
            state.threads -= 1;
            return;
        }
    }
}

/// Sleeps on the timer; when it fires, gives up on the tasks past their deadline.
fn watchdog(inner: &Arc<Inner>) {
    loop {
        let mut expirations = [0u8; 8];
        match rustix::io::read(&inner.timer, &mut expirations) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "the probe watchdog's timer failed; hung reads will not be noticed");
                return;
            }
        }
        let mut state = inner.lock();
        if state.closed {
            return;
        }
        let now = Instant::now();
        let mut overran = Vec::new();
        let mut i = 0;
        while i < state.running.len() {
            if state.running[i].deadline <= now {
                overran.push(state.running.swap_remove(i).on_overrun);
            } else {
                i += 1;
            }
        }
        state.stuck += overran.len();
        // Whatever a worker set since the timer fired, make it match what runs now.
        let next = state.running.iter().map(|r| r.deadline).min();
        inner.reset(&mut state, next);
        if overran.is_empty() {
            continue;
        }
        drop(state);
        // The handlers first (they settle the stuck reads, which may finish the tick), then
        // a free thread for whatever is queued behind.
        for on_overrun in overran {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(on_overrun));
        }
        let mut state = inner.lock();
        if !state.closed && state.free_threads() == 0 && !state.queue.is_empty() {
            spawn(inner, &mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn task(
        deadline: Duration,
        run: impl FnOnce() + Send + 'static,
        on_overrun: impl FnOnce() + Send + 'static,
    ) -> Task {
        Task::with_deadline(deadline, run, on_overrun)
    }

    #[test]
    fn a_task_past_its_deadline_is_given_up_and_the_queue_moves_on() {
        let pool = Pool::new().unwrap();
        let (events, seen) = mpsc::channel();
        let (release, hung) = mpsc::channel::<()>();
        let (e1, e2, e3) = (events.clone(), events.clone(), events);
        pool.submit_at(
            Instant::now(),
            [
                task(
                    Duration::from_millis(50),
                    move || {
                        let _ = hung.recv();
                    },
                    move || e1.send("overrun").unwrap(),
                ),
                task(
                    Duration::from_millis(50),
                    move || e2.send("next ran").unwrap(),
                    move || e3.send("next overran").unwrap(),
                ),
            ],
        );
        assert_eq!(seen.recv_timeout(WAIT), Ok("overrun"));
        assert_eq!(seen.recv_timeout(WAIT), Ok("next ran"));
        // The stuck thread comes back and the pool still works, on a spare or on it.
        release.send(()).unwrap();
        let (again, ran) = mpsc::channel();
        pool.submit_at(
            Instant::now(),
            [task(
                Duration::from_secs(5),
                move || again.send("later ran").unwrap(),
                || {},
            )],
        );
        assert_eq!(ran.recv_timeout(WAIT), Ok("later ran"));
        assert!(seen.try_recv().is_err(), "nothing else overran");
        pool.close();
    }

    #[test]
    fn tasks_that_finish_in_time_never_trip_the_watchdog() {
        let pool = Pool::new().unwrap();
        let (done, finished) = mpsc::channel();
        let (overrun, overran) = mpsc::channel();
        let start = Instant::now();
        for i in 0..20u32 {
            let (done, overrun) = (done.clone(), overrun.clone());
            // Spread over 200 ms so the thread sleeps between them with the timer set ahead.
            pool.submit_at(
                start + Duration::from_millis(u64::from(i) * 10),
                [task(
                    Duration::from_millis(100),
                    move || done.send(i).unwrap(),
                    move || overrun.send(i).unwrap(),
                )],
            );
        }
        for i in 0..20 {
            assert_eq!(finished.recv_timeout(WAIT), Ok(i), "tasks run in order");
        }
        assert_eq!(overran.try_recv(), Err(mpsc::TryRecvError::Empty));
        // Once the thread sleeps with nothing queued, the kernel timer is off: the watchdog
        // will not wake until a task runs again.
        let until = Instant::now() + WAIT;
        while pool.0.lock().idle == 0 {
            assert!(Instant::now() < until, "the thread never went to sleep");
            std::thread::yield_now();
        }
        assert_eq!(pool.0.lock().armed, None);
        let timer = rustix::time::timerfd_gettime(&pool.0.timer).unwrap();
        assert_eq!(
            (timer.it_value.tv_sec, timer.it_value.tv_nsec),
            (0, 0),
            "the watchdog's timer is disarmed"
        );
        pool.close();
    }

    #[test]
    fn a_thread_back_from_an_overrun_leaves_once_a_spare_has_taken_over() {
        let pool = Pool::new().unwrap();
        let (release, hung) = mpsc::channel::<()>();
        let (ran, seen) = mpsc::channel();
        pool.submit_at(
            Instant::now(),
            [
                task(
                    Duration::from_millis(50),
                    move || {
                        let _ = hung.recv();
                    },
                    || {},
                ),
                task(Duration::from_secs(5), move || ran.send(()).unwrap(), || {}),
            ],
        );
        assert_eq!(
            seen.recv_timeout(WAIT),
            Ok(()),
            "a spare ran the task behind"
        );
        let stats = pool.stats();
        assert_eq!((stats.threads, stats.stuck), (2, 1), "{stats:?}");
        // As the schedule does: the next tick is always queued, so no thread is ever
        // idle with an empty queue.
        pool.submit_at(
            Instant::now() + Duration::from_secs(3600),
            [task(Duration::from_secs(1), || {}, || {})],
        );
        release.send(()).unwrap();
        let until = Instant::now() + WAIT;
        loop {
            let stats = pool.stats();
            if (stats.threads, stats.stuck) == (1, 0) {
                break;
            }
            assert!(
                Instant::now() < until,
                "the pool kept {stats:?} after the hung task returned"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        pool.close();
    }

    #[test]
    fn a_closed_pool_drops_what_is_queued() {
        let pool = Pool::new().unwrap();
        let (done, finished) = mpsc::channel::<()>();
        pool.submit_at(
            Instant::now() + Duration::from_secs(3600),
            [task(
                Duration::from_secs(1),
                move || done.send(()).unwrap(),
                || {},
            )],
        );
        pool.close();
        // The task (and its sender) is dropped, not run.
        assert_eq!(
            finished.recv_timeout(WAIT),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
