//! Choosing the GPU backend under a deadline. Opening NVML calls into the driver, which can
//! hang (a wedged GPU, a driver mid-reload); start-up must not hang with it, nor lose its
//! signal handling to it. Discovery runs on a thread of its own: what it finds within the
//! deadline is used at once; past it, the service starts with a backend that says
//! discovery has not finished, and takes over what it finds whenever that happens.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use gpu::{BackendKind, GpuBackend, GpuSample};

type Found = Result<Box<dyn GpuBackend>, gpu::Error>;

/// [`gpu::select`] for `choice` on a thread of its own, waited for at most `deadline`.
///
/// An explicit choice that cannot run, found within the deadline, is the error (the
/// binary's exit code 2). Past the deadline the answer is a backend that reports the wait
/// on every sample and becomes the real one when discovery ends.
pub fn discover_gpu(
    choice: gpu::Choice,
    roots: &probes::Roots,
    deadline: Duration,
) -> Result<Box<dyn GpuBackend>, gpu::Error> {
    let roots = roots.clone();
    let expected = match choice {
        gpu::Choice::Jetson => BackendKind::Jetson,
        gpu::Choice::None => BackendKind::None,
        // Only NVML's initialisation can hang in `Auto`: the Jetson checks read sysfs.
        gpu::Choice::Auto | gpu::Choice::Nvml => BackendKind::Nvml,
    };
    discover_with(expected, deadline, move || gpu::select(choice, &roots))
}

/// Runs `find` on a thread of its own and waits for it at most `deadline`; `expected` is
/// the kind reported while it has not finished.
pub fn discover_with(
    expected: BackendKind,
    deadline: Duration,
    find: impl FnOnce() -> Found + Send + 'static,
) -> Found {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("gpu-discovery".into())
        .spawn(move || {
            let _ = tx.send(find());
        });
    if let Err(e) = spawned {
        return Ok(Box::new(gpu::NoGpu::new(format!(
            "cannot start GPU discovery: {e}"
        ))));
    }
    match rx.recv_timeout(deadline) {
        Ok(found) => found,
        Err(RecvTimeoutError::Disconnected) => Ok(Box::new(gpu::NoGpu::new(
            "GPU discovery failed (it panicked)",
        ))),
        Err(RecvTimeoutError::Timeout) => {
            tracing::warn!(
                deadline_s = deadline.as_secs_f64(),
                "GPU discovery has not finished (a hung driver?); serving without the GPU until it does"
            );
            Ok(Box::new(Pending {
                expected,
                started,
                found: rx,
                backend: None,
                failure: None,
            }))
        }
    }
}

/// A backend whose discovery is still running: it says so on every sample, and becomes
/// the backend discovery finds (or reports why discovery failed).
struct Pending {
    expected: BackendKind,
    started: Instant,
    found: Receiver<Found>,
    backend: Option<Box<dyn GpuBackend>>,
    failure: Option<(BackendKind, String)>,
}

impl GpuBackend for Pending {
    fn kind(&self) -> BackendKind {
        self.backend.as_ref().map_or(self.expected, |b| b.kind())
    }

    fn sample(&mut self) -> GpuSample {
        if let Some(backend) = self.backend.as_mut() {
            return backend.sample();
        }
        if let Some((kind, why)) = &self.failure {
            return GpuSample::unavailable(*kind, why.clone());
        }
        match self.found.try_recv() {
            Ok(Ok(mut backend)) => {
                tracing::info!(
                    backend = %backend.kind(),
                    after_s = self.started.elapsed().as_secs_f64(),
                    "GPU discovery finished"
                );
                let sample = backend.sample();
                self.backend = Some(backend);
                sample
            }
            Ok(Err(e)) => {
                let gpu::Error::Unavailable(kind, _) = &e;
                let kind = *kind;
                tracing::warn!(error = %e, "GPU discovery finished without a backend");
                self.failure = Some((kind, e.to_string()));
                GpuSample::unavailable(kind, e.to_string())
            }
            Err(TryRecvError::Disconnected) => {
                let why = "GPU discovery failed (it panicked)".to_owned();
                self.failure = Some((self.expected, why.clone()));
                GpuSample::unavailable(self.expected, why)
            }
            Err(TryRecvError::Empty) => GpuSample::unavailable(
                self.expected,
                format!(
                    "GPU discovery has not finished after {:.0} s (the driver may be hung)",
                    self.started.elapsed().as_secs_f64()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn a_hung_discovery_gives_a_pending_backend_that_takes_over_when_it_ends() {
        let release = Arc::new(Barrier::new(2));
        let gate = Arc::clone(&release);
        let started = Instant::now();
        let mut backend = discover_with(BackendKind::Nvml, Duration::from_millis(50), move || {
            gate.wait();
            Ok(Box::new(gpu::NoGpu::new("found nothing, late")))
        })
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited past the deadline"
        );
        let waiting = backend.sample();
        assert_eq!(waiting.backend, BackendKind::Nvml);
        let reason = waiting.reason.unwrap();
        assert!(reason.contains("has not finished"), "{reason}");
        release.wait();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let s = backend.sample();
            if s.reason.as_deref() == Some("found nothing, late") {
                assert_eq!(backend.kind(), BackendKind::None);
                break;
            }
            assert!(Instant::now() < until, "never took over: {s:?}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn an_explicit_choice_that_fails_in_time_is_the_error() {
        let found = discover_with(BackendKind::Jetson, Duration::from_secs(10), || {
            Err(gpu::Error::Unavailable(
                BackendKind::Jetson,
                "not a Jetson".into(),
            ))
        });
        assert!(found.is_err());
    }
}
