//! A tiny thread pool for probe reads, shaped for a sampler that is idle almost always.
//!
//! The sampler queues each tick's reads ahead of time with the moment they are due. One
//! thread sleeps until then, runs them one after the other, and sleeps until the next
//! batch is due: a tick costs that thread's timer wake-up and one wake-up of the sampler
//! when the batch is done (tokio's blocking pool, one task per read, cost several times
//! that in idle CPU). When a read overruns its deadline, the sampler asks for a spare
//! thread, which takes the reads queued behind the stuck one. Spares leave after a minute
//! without work.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Threads beyond the first leave after this long without work.
const SPARE_IDLE: Duration = Duration::from_secs(60);
/// Hung reads each hold a thread; the probe guards stop one family from holding more than
/// one, so this is never reached in practice.
const MAX_THREADS: usize = 16;

#[derive(Default)]
struct State {
    /// Jobs with the moment they are due, in order.
    queue: VecDeque<(Instant, Job)>,
    threads: usize,
    /// Threads waiting for work, and the earliest moment one of them wakes by itself.
    idle: usize,
    wakes_at: Option<Instant>,
}

#[derive(Clone, Default)]
pub(crate) struct Runner(Arc<(Mutex<State>, Condvar)>);

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

impl Runner {
    /// Queues `jobs` to run in order, not before `at`.
    pub(crate) fn submit_at(&self, at: Instant, jobs: impl IntoIterator<Item = Job>) {
        let (lock, cvar) = &*self.0;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        state.queue.extend(jobs.into_iter().map(|j| (at, j)));
        if state.threads == 0 {
            self.spawn(&mut state);
        }
        // A busy thread looks at the queue when it is done; a sleeping one that wakes by
        // itself in time needs no nudge (that nudge would be a wasted wake-up per tick).
        if state.idle > 0 && state.wakes_at.is_none_or(|w| w > at) {
            cvar.notify_one();
        }
    }

    /// Makes sure some thread is free to take queued reads (the running one is stuck).
    pub(crate) fn add_spare(&self) {
        let (lock, cvar) = &*self.0;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if state.idle == 0 && !state.queue.is_empty() && state.threads < MAX_THREADS {
            self.spawn(&mut state);
        }
        cvar.notify_one();
    }

    fn spawn(&self, state: &mut State) {
        let runner = self.clone();
        let spawned = std::thread::Builder::new()
            .name("probe".into())
            .stack_size(256 * 1024)
            .spawn(move || runner.work());
        match spawned {
            Ok(_) => state.threads += 1,
            Err(e) => tracing::error!(error = %e, "cannot start a probe thread"),
        }
    }

    fn work(&self) {
        let (lock, cvar) = &*self.0;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            let due = state.queue.front().map(|(at, _)| *at);
            if due.is_some_and(|at| at <= now)
                && let Some((_, job)) = state.queue.pop_front()
            {
                drop(state);
                // Jobs catch their own panics (see `sampler::job`); this is a second net so
                // a thread never dies with the pool's count wrong.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                state = lock.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let until = due.unwrap_or(now + SPARE_IDLE);
            state.idle += 1;
            state.wakes_at = Some(state.wakes_at.map_or(until, |w| w.min(until)));
            let (next, timeout) = cvar
                .wait_timeout(state, until.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            // Unknown for any other sleeper now: the next submit nudges rather than guesses.
            state.wakes_at = None;
            if timeout.timed_out() && due.is_none() && state.queue.is_empty() && state.threads > 1 {
                state.threads -= 1;
                return;
            }
        }
    }
}
