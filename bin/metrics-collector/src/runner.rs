//! A tiny thread pool for probe reads, shaped for a sampler that is idle almost always.
//!
//! One tick queues all its reads at once; one parked thread wakes, runs them one after the
//! other and parks again: a tick costs one thread wake-up, not one per family (tokio's
//! blocking pool would wake a thread per read, which dominated idle CPU). When a read
//! overruns its deadline, the caller asks for a spare thread, which takes the reads queued
//! behind the stuck one. Spare threads leave after a minute without work.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Threads beyond the first leave after this long without work.
const SPARE_IDLE: Duration = Duration::from_secs(60);
/// Hung reads each hold a thread; the probe guards stop one family from holding more than
/// one, so this is never reached in practice.
const MAX_THREADS: usize = 16;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

#[derive(Clone, Default)]
pub(crate) struct Runner(Arc<(Mutex<State>, Condvar)>);

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

impl Runner {
    /// Queues `jobs`, to run in order, and wakes a thread for them.
    pub(crate) fn submit(&self, jobs: impl IntoIterator<Item = Job>) {
        let (lock, cvar) = &*self.0;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        state.queue.extend(jobs);
        // Every earlier tick's reads have finished or been given up on by now: a thread
        // that is still busy is stuck in one of them.
        if state.idle == 0 && state.threads < MAX_THREADS {
            self.spawn(&mut state);
        }
        cvar.notify_one();
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
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                // A job catches its own panics (see `sampler::run_guarded`); this is only
                // a second net so a thread never dies with the pool's count wrong.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                state = lock.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.idle += 1;
            let (next, timeout) = cvar
                .wait_timeout(state, SPARE_IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() && state.threads > 1 {
                state.threads -= 1;
                return;
            }
        }
    }
}
