//! The bounded queue of windows waiting for the database: oldest first, and when full the
//! oldest is dropped (and counted) to make room: recent history matters most.

use std::collections::VecDeque;

use sampler::Window;

#[cfg(test)]
mod tests;

#[derive(Debug)]
pub struct Queue {
    windows: VecDeque<Window>,
    capacity: usize,
    dropped: u64,
    rows: u64,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Self {
            windows: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            rows: 0,
        }
    }

    pub fn push(&mut self, window: Window) {
        if self.windows.len() == self.capacity
            && let Some(old) = self.windows.pop_front()
        {
            self.rows -= old.rows();
            self.dropped += 1;
        }
        self.rows += window.rows();
        self.windows.push_back(window);
    }

    /// The oldest `n` windows, to write; they stay queued until `remove_front`.
    pub fn front(&self, n: usize) -> impl ExactSizeIterator<Item = &Window> {
        self.windows.range(..n.min(self.windows.len()))
    }

    /// Forgets the oldest `n` windows once they are written.
    pub fn remove_front(&mut self, n: usize) {
        for w in self.windows.drain(..n.min(self.windows.len())) {
            self.rows -= w.rows();
        }
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Rows waiting to be written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Windows dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
