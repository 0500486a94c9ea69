//! History as numbers (SPEC §6): the series, the epoch-aligned grid of buckets a request
//! asks for, the statistics of one bucket, and the [`Archive`] older windows are read
//! from. The ring fills buckets from memory, the store from PostgreSQL; the API only
//! encodes them.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::window::{Stat, Window};

/// The series history keeps, in the order of SPEC §6's default `metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Series {
    Cpu,
    Ram,
    Gpu,
    Temperature,
    /// The disk percent.
    Disk,
}

impl Series {
    pub const ALL: [Series; 5] = [
        Series::Cpu,
        Series::Ram,
        Series::Gpu,
        Series::Temperature,
        Series::Disk,
    ];

    /// The name in `metrics=` and in the answer's `series`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Ram => "ram",
            Self::Gpu => "gpu",
            Self::Temperature => "temperature",
            Self::Disk => "disk",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Its position in [`Series::ALL`] (and in the ring's arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The window's statistics of this series (disk: its latest percent, one sample).
    pub fn of(self, w: &Window) -> Option<Stat> {
        match self {
            Self::Cpu => w.cpu,
            Self::Ram => w.ram,
            Self::Gpu => w.gpu,
            Self::Temperature => w.temperature,
            Self::Disk => w.disk.map(|d| Stat {
                mean: d.percent,
                min: Some(d.percent),
                max: Some(d.percent),
                samples: 1,
            }),
        }
    }
}

/// Buckets of `step_ms` from `first_ms` (a multiple of the step since the epoch), `count`
/// of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub first_ms: i64,
    pub step_ms: i64,
    pub count: usize,
}

impl Grid {
    /// The buckets from the one holding `start_ms` to the one holding `end_ms`, a bucket
    /// that would begin exactly at `end_ms` left out. `end_ms > start_ms`, `step_ms > 0`.
    pub fn covering(start_ms: i64, end_ms: i64, step_ms: i64) -> Self {
        let (first, last, step) = Self::bounds(start_ms, end_ms, step_ms);
        Self {
            first_ms: first.saturating_mul(step),
            step_ms: step,
            count: usize::try_from(last - first + 1).unwrap_or(0),
        }
    }

    /// How many buckets such a grid would have, without building it.
    pub fn count_for(start_ms: i64, end_ms: i64, step_ms: i64) -> i64 {
        let (first, last, _) = Self::bounds(start_ms, end_ms, step_ms);
        last - first + 1
    }

    /// The first and last bucket numbers (since the epoch) and the step.
    fn bounds(start_ms: i64, end_ms: i64, step_ms: i64) -> (i64, i64, i64) {
        let step = step_ms.max(1);
        let first = start_ms.div_euclid(step);
        // The last bucket begins before `end`: ceil(end / step) - 1.
        let last = end_ms.div_euclid(step) + i64::from(end_ms.rem_euclid(step) != 0) - 1;
        (first, last, step)
    }

    /// Where the grid ends (the end of its last bucket).
    pub fn end_ms(&self) -> i64 {
        self.first_ms + self.step_ms * self.count as i64
    }

    /// The bucket holding `t_ms`, if the grid has one.
    pub fn index(&self, t_ms: i64) -> Option<usize> {
        if t_ms < self.first_ms {
            return None;
        }
        let i = usize::try_from((t_ms - self.first_ms) / self.step_ms).ok()?;
        (i < self.count).then_some(i)
    }

    /// The start of bucket `i`.
    pub fn bucket_ms(&self, i: usize) -> i64 {
        self.first_ms + self.step_ms * i as i64
    }
}

/// What one bucket of one series has seen: the weighted sum and count for the mean, and
/// the extremes. Empty (`count == 0`) is a gap: `null`, never 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    sum: f64,
    count: f64,
    min: f64,
    max: f64,
    /// A window without extremes (an old row) is in it: its min and max are not known.
    extremes_unknown: bool,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            sum: 0.0,
            count: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            extremes_unknown: false,
        }
    }
}

impl Bucket {
    /// One live sample.
    pub fn add_sample(&mut self, v: f64) {
        if v.is_finite() {
            self.sum += v;
            self.count += 1.0;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    /// A window's statistics, weighted by its samples (`nominal` when it does not know
    /// them: every window of a steady run has the same number).
    pub fn add_window(&mut self, stat: &Stat, nominal: u32) {
        if !stat.mean.is_finite() {
            return;
        }
        let weight = f64::from(if stat.samples > 0 {
            stat.samples
        } else {
            nominal.max(1)
        });
        self.sum += stat.mean * weight;
        self.count += weight;
        match (stat.min, stat.max) {
            (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() => {
                self.min = self.min.min(lo);
                self.max = self.max.max(hi);
            }
            _ => self.extremes_unknown = true,
        }
    }

    /// What the database answered for a bucket: its mean over `weight` windows and the
    /// extremes, `None` when some of its rows did not keep them.
    pub fn add_aggregate(&mut self, mean: f64, weight: f64, min: Option<f64>, max: Option<f64>) {
        if !mean.is_finite() || weight <= 0.0 {
            return;
        }
        self.sum += mean * weight;
        self.count += weight;
        match (min, max) {
            (Some(lo), Some(hi)) => {
                self.min = self.min.min(lo);
                self.max = self.max.max(hi);
            }
            _ => self.extremes_unknown = true,
        }
    }

    pub fn merge(&mut self, other: &Bucket) {
        self.sum += other.sum;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.extremes_unknown |= other.extremes_unknown;
    }

    pub fn is_empty(&self) -> bool {
        self.count <= 0.0
    }

    /// The mean, one decimal; `None` for a gap.
    pub fn avg(&self) -> Option<f64> {
        (!self.is_empty()).then(|| probes::round1(self.sum / self.count))
    }

    /// The lowest sample; `None` for a gap or when an old row's extremes are not known.
    pub fn min(&self) -> Option<f64> {
        (!self.is_empty() && !self.extremes_unknown && self.min.is_finite())
            .then(|| probes::round1(self.min))
    }

    pub fn max(&self) -> Option<f64> {
        (!self.is_empty() && !self.extremes_unknown && self.max.is_finite())
            .then(|| probes::round1(self.max))
    }
}

/// The buckets of each series asked for, in the order asked.
#[derive(Clone, Debug, PartialEq)]
pub struct Columns {
    pub grid: Grid,
    pub series: Vec<(Series, Vec<Bucket>)>,
}

impl Columns {
    pub fn empty(grid: Grid, series: &[Series]) -> Self {
        Self {
            grid,
            series: series
                .iter()
                .map(|s| (*s, vec![Bucket::default(); grid.count]))
                .collect(),
        }
    }

    /// Adds `other`'s buckets (the same grid and series) to these.
    pub fn merge(&mut self, other: &Columns) {
        for ((_, mine), (_, theirs)) in self.series.iter_mut().zip(&other.series) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.merge(b);
            }
        }
    }

    /// The buckets of `series`, mutably.
    pub fn column_mut(&mut self, series: Series) -> Option<&mut Vec<Bucket>> {
        self.series
            .iter_mut()
            .find(|(s, _)| *s == series)
            .map(|(_, b)| b)
    }
}

/// A future an [`Archive`] answers with.
pub type ArchiveFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Where windows older than memory's are kept (the store's PostgreSQL tables). Every
/// call is bounded in time by the archive itself; an error is one line, never holding a
/// password.
pub trait Archive: Send + Sync + 'static {
    /// This host's windows that began in `[from_ms, to_ms)`, into `grid`'s buckets of
    /// `series`.
    fn buckets(
        &self,
        grid: Grid,
        series: Vec<Series>,
        from_ms: i64,
        to_ms: i64,
    ) -> ArchiveFuture<'_, Columns>;

    /// This host's windows whose rows are stamped in `(from, to]`, oldest first
    /// (refilling the ring, an hour at a time).
    fn windows(&self, from: SystemTime, to: SystemTime) -> ArchiveFuture<'_, Vec<Window>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_runs_from_the_bucket_holding_start_to_the_one_holding_end() {
        // 10:00:10 .. 10:01:00 at 30 s: buckets at :00 and :30; none beginning at :01:00.
        let g = Grid::covering(10_000, 60_000, 30_000);
        assert_eq!((g.first_ms, g.count), (0, 2));
        let g = Grid::covering(10_000, 60_001, 30_000);
        assert_eq!(g.count, 3);
        assert_eq!(Grid::count_for(10_000, 60_001, 30_000), 3);
        let g = Grid::covering(-45_000, -1, 30_000);
        assert_eq!((g.first_ms, g.count), (-60_000, 2));
        assert_eq!(g.index(-60_000), Some(0));
        assert_eq!(g.index(-30_001), Some(0));
        assert_eq!(g.index(-30_000), Some(1));
        assert_eq!(g.index(0), None);
        assert_eq!(g.index(-60_001), None);
    }

    #[test]
    fn a_bucket_is_the_mean_of_samples_and_the_extremes_of_samples_not_means() {
        let mut b = Bucket::default();
        assert_eq!((b.avg(), b.min(), b.max()), (None, None, None), "a gap");
        let w = |mean, min, max, samples| Stat {
            mean,
            min: Some(min),
            max: Some(max),
            samples,
        };
        b.add_window(&w(10.0, 2.0, 30.0, 3), 6);
        b.add_window(&w(20.0, 15.0, 25.0, 1), 6);
        assert_eq!(b.avg(), Some(12.5), "weighted by samples: (30 + 20) / 4");
        assert_eq!((b.min(), b.max()), (Some(2.0), Some(30.0)));
        let old_row = Stat {
            mean: 20.0,
            min: None,
            max: None,
            samples: 0,
        };
        b.add_window(&old_row, 2);
        assert_eq!(
            b.avg(),
            Some(15.0),
            "a row's mean counts as nominal samples: 90 / 6"
        );
        assert_eq!(
            (b.min(), b.max()),
            (None, None),
            "an old row without extremes: not known"
        );
    }
}
