//! The memory ring (SPEC §6–7): the live samples of the last hour, each with its stream
//! event, and the closed windows of the last 24 h. Both arrays have a fixed capacity,
//! reserved once; the sampler writes one entry per tick (under one short write lock), and
//! readers (history, the stream's resume and catch-up) copy out what they need.

use std::collections::VecDeque;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::Snapshot;
use crate::history::{Archive, Columns, Series};
use crate::window::{Stat, Window, from_unix_ms, unix_ms, window_start_ms};

/// How far back live samples are kept.
pub const LIVE_SPAN: Duration = Duration::from_secs(3600);
/// How far back windows are kept (at least).
pub const WINDOW_SPAN: Duration = Duration::from_secs(24 * 3600);
/// Caps on each array, whatever the intervals: about 2.6 MiB of samples (0.1 s live
/// interval) and 8 MiB of windows (24 h at a persist interval of 0.87 s or more).
const MAX_SAMPLES: usize = 36_001;
const MAX_WINDOWS: usize = 100_000;

/// One value per series, `NaN` for `null`; one decimal, as `/metrics` showed it.
type Values = [f32; 5];

#[derive(Debug)]
struct LivePoint {
    /// Its place in the order of all samples pushed, from 0.
    pos: u64,
    at_ms: i64,
    values: Values,
    /// The stream event of this sample, encoded once when it was taken.
    event: Bytes,
}

#[derive(Debug, Clone, Copy)]
struct WindowPoint {
    start_ms: i64,
    mean: Values,
    /// `NaN` where the mean is `null` or the extremes are not known (an old row).
    min: Values,
    max: Values,
    /// Samples behind each mean; 0 when not known.
    samples: [u16; 5],
}

/// A fixed-capacity ring buffer: pushes overwrite the oldest entry once full.
#[derive(Debug)]
struct Circular<T> {
    items: Vec<T>,
    /// Where the oldest entry is, once full.
    head: usize,
}

impl<T> Circular<T> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity.max(1)),
            head: 0,
        }
    }

    fn push(&mut self, item: T) {
        if self.items.len() < self.items.capacity() {
            self.items.push(item);
        } else {
            self.items[self.head] = item;
            self.head = (self.head + 1) % self.items.len();
        }
    }

    /// Oldest first.
    fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        let (newer, older) = self.items.split_at(self.head);
        older.iter().chain(newer)
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn oldest(&self) -> Option<&T> {
        self.iter().next()
    }

    fn newest(&self) -> Option<&T> {
        self.iter().next_back()
    }

    fn clear(&mut self) {
        self.items.clear();
        self.head = 0;
    }
}

#[derive(Debug)]
struct Inner {
    samples: Circular<LivePoint>,
    windows: Circular<WindowPoint>,
    /// The position the next sample gets.
    next_pos: u64,
    /// From when the windows held are all there are: the ring's creation, or the start of
    /// the span a refill read.
    windows_from_ms: i64,
    /// When this run's samples began (live samples are never refilled: they are not
    /// persisted).
    samples_from_ms: i64,
    refilled: bool,
    /// Where the open window begins (the end of the last window closed).
    open_from_ms: Option<i64>,
}

/// What `/health` says about the ring.
#[derive(Clone, Debug, PartialEq)]
pub struct RingStats {
    pub samples: usize,
    pub sample_capacity: usize,
    pub oldest_sample: Option<SystemTime>,
    pub windows: usize,
    pub window_capacity: usize,
    pub oldest_window: Option<SystemTime>,
    /// Whether windows of an earlier run were read back from the database.
    pub refilled: bool,
}

/// How a resume point (`Last-Event-ID`) relates to what is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The samples after it are all held: they were put in `out`.
    Continue,
    /// It is older than the oldest sample held (or nothing is held): `oldest` is the id of
    /// the oldest one held (`None` when none is), and every sample held was put in `out`.
    Reset { oldest: Option<i64> },
}

/// What a stream client catching up gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatchUp {
    /// Samples skipped because the client was too far behind (SPEC §7's `lag`).
    pub dropped: u64,
    /// The position to ask from next time.
    pub next: u64,
}

/// The memory ring. Shared (`Arc`) by the sampler, which alone writes it, and readers.
#[derive(Debug)]
pub struct Ring {
    live_every: Duration,
    window_every: Duration,
    inner: RwLock<Inner>,
}

impl Ring {
    /// A ring for samples every `live` and windows every `window`, its arrays reserved now.
    pub fn new(live: Duration, window: Duration) -> Self {
        let per = |span: Duration, every: Duration, max: usize| {
            let n = (span.as_secs_f64() / every.as_secs_f64().max(0.001)).ceil() as usize + 1;
            n.min(max)
        };
        Self {
            live_every: live,
            window_every: window,
            inner: RwLock::new(Inner {
                samples: Circular::with_capacity(per(LIVE_SPAN, live, MAX_SAMPLES)),
                windows: Circular::with_capacity(per(WINDOW_SPAN, window, MAX_WINDOWS)),
                next_pos: 0,
                // The grid line this run's first window begins on.
                windows_from_ms: window_start_ms(
                    unix_ms(SystemTime::now()) + 1,
                    duration_ms(window),
                ),
                samples_from_ms: unix_ms(SystemTime::now()),
                refilled: false,
                open_from_ms: None,
            }),
        }
    }

    pub fn window_every(&self) -> Duration {
        self.window_every
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples per window in a steady run: the weight of a window that does not know its.
    fn nominal(&self) -> u32 {
        let n = self.window_every.as_secs_f64() / self.live_every.as_secs_f64().max(0.001);
        (n.round() as u32).max(1)
    }

    /// One tick: the window it closed (if any) and its sample with its stream event.
    pub(crate) fn push(&self, snapshot: &Snapshot, event: Bytes, closed: Option<&Window>) {
        let point = LivePoint {
            pos: 0,
            at_ms: unix_ms(snapshot.sample.taken_at),
            values: snapshot.values().map(to_f32),
            event,
        };
        let window = closed.map(window_point);
        let mut inner = self.write();
        if let Some(w) = window {
            inner.open_from_ms = Some(w.start_ms + duration_ms(self.window_every));
            inner.windows.push(w);
        }
        let pos = inner.next_pos;
        inner.next_pos += 1;
        inner.samples.push(LivePoint { pos, ..point });
    }

    /// Adds windows read back from the database (an earlier run's, oldest first) to the
    /// ones held, in order of their start; where both have a window with the same start,
    /// the one held stays. `from` is where the span read began: once every span from
    /// there to now has been added (newest first, so what is claimed is always whole),
    /// memory holds every window there is from `from` on.
    pub fn refill(&self, older: Vec<Window>, from: SystemTime) {
        let mut inner = self.write();
        let mut merged: Vec<(WindowPoint, bool)> = inner
            .windows
            .iter()
            .map(|w| (*w, true))
            .chain(older.iter().map(|w| (window_point(w), false)))
            .collect();
        // Held ones first among equals, then keep the first of each start.
        merged.sort_by_key(|(w, held)| (w.start_ms, !*held));
        merged.dedup_by_key(|(w, _)| w.start_ms);
        let capacity = inner.windows.items.capacity();
        let skip = merged.len().saturating_sub(capacity);
        inner.windows.clear();
        for (w, _) in merged.into_iter().skip(skip) {
            inner.windows.push(w);
        }
        inner.windows_from_ms = inner.windows_from_ms.min(unix_ms(from));
        inner.refilled = true;
    }

    /// From when the windows memory holds are all there are (ms since the epoch).
    pub fn windows_from_ms(&self) -> i64 {
        let inner = self.read();
        let oldest_kept = if inner.windows.len() == inner.windows.items.capacity() {
            inner.windows.oldest().map_or(i64::MIN, |w| w.start_ms)
        } else {
            i64::MIN
        };
        inner.windows_from_ms.max(oldest_kept)
    }

    /// From when the live samples memory holds are all there are (ms since the epoch):
    /// this run's start, or the oldest sample held once the hour is full.
    pub fn samples_from_ms(&self) -> i64 {
        let inner = self.read();
        let oldest_kept = if inner.samples.len() == inner.samples.items.capacity() {
            inner.samples.oldest().map_or(i64::MIN, |p| p.at_ms)
        } else {
            i64::MIN
        };
        inner.samples_from_ms.max(oldest_kept)
    }

    /// Adds what memory holds at window granularity to `columns`: the windows that began
    /// at or after `from_ms`, and the live samples of the window still open.
    pub fn fill_windows(&self, columns: &mut Columns, from_ms: i64) {
        let nominal = self.nominal();
        let grid = columns.grid;
        let inner = self.read();
        for w in inner.windows.iter() {
            if w.start_ms < from_ms {
                continue;
            }
            let Some(i) = grid.index(w.start_ms) else {
                continue;
            };
            for (series, buckets) in &mut columns.series {
                let k = series.index();
                if w.mean[k].is_nan() {
                    continue;
                }
                let stat = Stat {
                    mean: f64::from(w.mean[k]),
                    min: finite(w.min[k]),
                    max: finite(w.max[k]),
                    samples: u32::from(w.samples[k]),
                };
                buckets[i].add_window(&stat, nominal);
            }
        }
        let open_from = inner.open_from_ms.unwrap_or(i64::MIN).max(from_ms);
        add_samples(&inner, columns, open_from);
    }

    /// Adds the live samples held (the last hour) to `columns`.
    pub fn fill_samples(&self, columns: &mut Columns) {
        add_samples(&self.read(), columns, i64::MIN);
    }

    /// The newest sample's event and the position after it; `None` before the first.
    pub fn latest(&self) -> Option<(Bytes, u64)> {
        let inner = self.read();
        inner.samples.newest().map(|p| (p.event.clone(), p.pos + 1))
    }

    /// The position the next sample pushed will get.
    pub fn next_position(&self) -> u64 {
        self.read().next_pos
    }

    /// The events from position `next` on, into `out`, in order. A client more than
    /// `most` samples behind (or behind what is held) gets only the newest, and the
    /// count of those it skipped.
    pub fn since(&self, next: u64, most: u64, out: &mut VecDeque<Bytes>) -> CatchUp {
        let inner = self.read();
        let Some(newest) = inner.samples.newest() else {
            return CatchUp { dropped: 0, next };
        };
        if newest.pos < next {
            return CatchUp { dropped: 0, next };
        }
        let oldest = inner.samples.oldest().map_or(newest.pos, |p| p.pos);
        let behind = newest.pos - next + 1;
        if behind > most.max(1) || next < oldest {
            out.push_back(newest.event.clone());
            return CatchUp {
                dropped: newest.pos - next,
                next: newest.pos + 1,
            };
        }
        // Positions are consecutive from the oldest held, so `next` is an offset: skipping
        // to it costs nothing, where a scan from the oldest cost every client a pass over
        // the whole hour on every sample (3,600 entries at 1 s, 36,000 at 0.1 s).
        let skip = usize::try_from(next - oldest).unwrap_or(usize::MAX);
        let from = out.len();
        out.extend(inner.samples.iter().skip(skip).map(|p| p.event.clone()));
        debug_assert_eq!(
            inner.samples.iter().nth(skip).map(|p| p.pos),
            (out.len() > from).then_some(next)
        );
        CatchUp {
            dropped: 0,
            next: newest.pos + 1,
        }
    }

    /// A resume from the sample with id `after_ms`: the events of the samples after it go
    /// to `out`; returns how it went and the position to continue from.
    pub fn resume(&self, after_ms: i64, out: &mut VecDeque<Bytes>) -> (Resume, u64) {
        let inner = self.read();
        let next = inner.next_pos;
        let Some(oldest) = inner.samples.oldest() else {
            return (Resume::Reset { oldest: None }, next);
        };
        let outcome = if after_ms < oldest.at_ms {
            Resume::Reset {
                oldest: Some(oldest.at_ms),
            }
        } else {
            Resume::Continue
        };
        let everything = matches!(outcome, Resume::Reset { .. });
        for p in inner.samples.iter() {
            if everything || p.at_ms > after_ms {
                out.push_back(p.event.clone());
            }
        }
        (outcome, next)
    }

    pub fn stats(&self) -> RingStats {
        let inner = self.read();
        RingStats {
            samples: inner.samples.len(),
            sample_capacity: inner.samples.items.capacity(),
            oldest_sample: inner.samples.oldest().map(|p| from_unix_ms(p.at_ms)),
            windows: inner.windows.len(),
            window_capacity: inner.windows.items.capacity(),
            oldest_window: inner.windows.oldest().map(|w| from_unix_ms(w.start_ms)),
            refilled: inner.refilled,
        }
    }
}

/// The span one refill step reads: an hour of rows at a time keeps what the read-back
/// allocates small (a day at once is megabytes of rows the allocator keeps afterwards).
const REFILL_STEP: Duration = Duration::from_secs(3600);

/// Refills `ring` with this host's windows of the last [`WINDOW_SPAN`] before `now` from
/// `archive`, newest hour first, so that after each step memory holds everything from
/// that hour on. Returns the windows read; an error (one line) stops it where it was, and
/// calling it again starts over (the ring keeps one copy of each window).
pub async fn refill(ring: &Ring, archive: &dyn Archive, now: SystemTime) -> Result<usize, String> {
    let since = now - WINDOW_SPAN;
    let mut to = now + Duration::from_secs(60);
    let mut read = 0;
    while to > since {
        let from = (to - REFILL_STEP).max(since);
        let windows = archive.windows(from, to).await?;
        read += windows.len();
        ring.refill(windows, from);
        to = from;
    }
    Ok(read)
}

fn add_samples(inner: &Inner, columns: &mut Columns, from_ms: i64) {
    let grid = columns.grid;
    for p in inner.samples.iter() {
        if p.at_ms < from_ms {
            continue;
        }
        let Some(i) = grid.index(p.at_ms) else {
            continue;
        };
        for (series, buckets) in &mut columns.series {
            let v = p.values[series.index()];
            if !v.is_nan() {
                buckets[i].add_sample(from_f32(v));
            }
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_f32(v: Option<f64>) -> f32 {
    v.map_or(f32::NAN, |v| v as f32)
}

/// Values are kept as `f32` (half the memory); every one has one decimal, which `f32`
/// holds to far better than 0.05 for anything a percentage or a temperature can be.
fn from_f32(v: f32) -> f64 {
    probes::round1(f64::from(v))
}

fn finite(v: f32) -> Option<f64> {
    (!v.is_nan()).then(|| from_f32(v))
}

fn window_point(w: &Window) -> WindowPoint {
    let mut point = WindowPoint {
        start_ms: unix_ms(w.start),
        mean: [f32::NAN; 5],
        min: [f32::NAN; 5],
        max: [f32::NAN; 5],
        samples: [0; 5],
    };
    for series in Series::ALL {
        if let Some(stat) = series.of(w) {
            let k = series.index();
            point.mean[k] = stat.mean as f32;
            point.min[k] = to_f32(stat.min);
            point.max[k] = to_f32(stat.max);
            point.samples[k] = u16::try_from(stat.samples).unwrap_or(u16::MAX);
        }
    }
    point
}

/// The start of the window a row stamped `at` belongs to, as a time.
pub fn window_start(at: SystemTime, every: Duration) -> SystemTime {
    from_unix_ms(window_start_ms(unix_ms(at), duration_ms(every)))
}

#[cfg(test)]
mod tests;
