//! Persistence as the engine and the readers of `/health` see it, without knowing the
//! database: the engine closes windows and offers them to a [`WindowSink`] (the store's
//! writer); the writer publishes its [`WriterStatus`]; a [`DatabaseView`] reads both, live.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::window::Window;

/// Where closed windows go. `offer` never waits: it takes the window or gives it back.
pub trait WindowSink: Send + 'static {
    // A window is a few hundred bytes, moved once per persist interval: boxing it would
    // buy nothing.
    #[allow(clippy::result_large_err)]
    fn offer(&self, window: Window) -> Result<(), Window>;
}

/// Windows the engine closed but could not hand over (the writer's inbox was full, or the
/// writer is gone): lost, and counted for `/health`. Clones share the count.
#[derive(Clone, Debug, Default)]
pub struct LostWindows(Arc<AtomicU64>);

impl LostWindows {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The engine's side of persistence: the window length, and where closed windows go.
pub struct Persist {
    sink: Box<dyn WindowSink>,
    every: Duration,
    lost: LostWindows,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist")
            .field("every", &self.every)
            .field("lost", &self.lost.get())
            .finish_non_exhaustive()
    }
}

impl Persist {
    /// Windows of `every`, offered to `sink` as each one closes.
    pub fn new(sink: impl WindowSink, every: Duration) -> Self {
        Self {
            sink: Box::new(sink),
            every,
            lost: LostWindows::default(),
        }
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    /// The count of windows this side could not hand over.
    pub fn lost(&self) -> LostWindows {
        self.lost.clone()
    }

    /// Offers a closed window to the sink without waiting.
    pub(crate) fn offer(&mut self, window: Window) {
        if self.sink.offer(window).is_err() {
            self.lost.add_one();
            tracing::warn!("the database writer is not keeping up; a window was dropped");
        }
    }
}

/// Where the writer stands with the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriterState {
    /// No attempt has finished yet.
    #[default]
    Connecting,
    Connected,
    Unreachable,
    /// The writer has ended (shutdown, or a fault): nothing is written any more.
    Stopped,
}

/// What the writer publishes after every change, for `/health`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStatus {
    pub state: WriterState,
    pub pending_windows: u64,
    pub pending_rows: u64,
    /// Windows lost: dropped from a full queue, or (through [`DatabaseView`]) never
    /// handed over by the engine.
    pub dropped_windows: u64,
    pub written_windows: u64,
    /// Rows a write found already there (a retry after a lost reply): kept once.
    pub duplicate_rows: u64,
    /// The last failure, one line, never containing the password.
    pub last_error: Option<String>,
}

/// The database as `/health` shows it, read at the moment of asking: the writer's last
/// status, whether the writer is still there at all, and the windows the engine lost.
#[derive(Clone, Debug)]
pub struct DatabaseView {
    status: watch::Receiver<WriterStatus>,
    lost: LostWindows,
}

impl DatabaseView {
    pub fn new(status: watch::Receiver<WriterStatus>, lost: LostWindows) -> Self {
        Self { status, lost }
    }

    /// The status now. A writer that has ended reads as [`WriterState::Stopped`], not as
    /// the last thing it said.
    pub fn now(&self) -> WriterStatus {
        let mut status = self.status.borrow().clone();
        if self.status.has_changed().is_err() {
            status.state = WriterState::Stopped;
            status.last_error = Some(match status.last_error.take() {
                Some(e) => format!("the database writer has stopped (last error: {e})"),
                None => "the database writer has stopped".to_owned(),
            });
        }
        status.dropped_windows += self.lost.get();
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_is_live_for_lost_windows_and_a_writer_that_ended() {
        let (tx, rx) = watch::channel(WriterStatus {
            state: WriterState::Connected,
            dropped_windows: 2,
            ..WriterStatus::default()
        });
        let lost = LostWindows::default();
        let view = DatabaseView::new(rx, lost.clone());
        assert_eq!(view.now().state, WriterState::Connected);
        lost.add_one();
        assert_eq!(
            view.now().dropped_windows,
            3,
            "counted without the writer saying anything"
        );
        drop(tx);
        let now = view.now();
        assert_eq!(now.state, WriterState::Stopped);
        assert!(
            now.last_error
                .as_deref()
                .is_some_and(|e| e.contains("stopped")),
            "{now:?}"
        );
    }
}
