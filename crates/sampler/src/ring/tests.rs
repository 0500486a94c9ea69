use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use probes::{MemoryUsage, Sample, Unavailable};

use super::*;
use crate::Grid;
use crate::window::WindowBuilder;

const S: Duration = Duration::from_secs(1);

fn snapshot(at_ms: i64, cpu: Option<f64>) -> Snapshot {
    let gone = || Unavailable::new("gone");
    Snapshot {
        seq: 0,
        sample: Sample {
            taken_at: from_unix_ms(at_ms),
            cpu_percent: cpu.ok_or_else(gone),
            cpu_times: None,
            memory: Ok(MemoryUsage {
                total_bytes: 1000,
                available_bytes: 500,
            }),
            disk: Err(gone()),
            cpu_celsius: Err(gone()),
        },
        gpu: gpu::GpuSample::unavailable(gpu::BackendKind::None, "no GPU"),
        families: crate::Families::default(),
    }
}

fn event(at_ms: i64) -> Bytes {
    Bytes::from(format!("id: {at_ms}\n\n"))
}

fn texts(out: &VecDeque<Bytes>) -> Vec<String> {
    out.iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .collect()
}

#[test]
fn the_arrays_are_reserved_once_and_never_grow() {
    let ring = Ring::new(Duration::from_secs(5), Duration::from_secs(30));
    let stats = ring.stats();
    assert_eq!(stats.sample_capacity, 721, "an hour of 5 s samples");
    assert_eq!(stats.window_capacity, 2_881, "a day of 30 s windows");
    for i in 0..2_000 {
        ring.push(&snapshot(i * 5_000, Some(1.0)), event(i), None);
    }
    let stats = ring.stats();
    assert_eq!((stats.samples, stats.sample_capacity), (721, 721));
    assert_eq!(
        stats.oldest_sample,
        Some(from_unix_ms((2_000 - 721) * 5_000)),
        "the oldest are overwritten"
    );
}

#[test]
fn catching_up_sends_every_missed_sample_in_order_or_only_the_newest_when_too_far_behind() {
    let ring = Ring::new(S, Duration::from_secs(30));
    for i in 0..5 {
        ring.push(&snapshot(i * 1000, Some(1.0)), event(i * 1000), None);
    }
    let mut out = VecDeque::new();
    let caught = ring.since(2, 8, &mut out);
    assert_eq!(texts(&out), ["id: 2000", "id: 3000", "id: 4000"]);
    assert_eq!(
        caught,
        CatchUp {
            dropped: 0,
            next: 5
        }
    );

    out.clear();
    assert_eq!(
        ring.since(5, 8, &mut out),
        CatchUp {
            dropped: 0,
            next: 5
        }
    );
    assert!(out.is_empty(), "nothing new");

    out.clear();
    let caught = ring.since(0, 2, &mut out);
    assert_eq!(texts(&out), ["id: 4000"], "the freshest only");
    assert_eq!(
        caught,
        CatchUp {
            dropped: 4,
            next: 5
        }
    );
}

#[test]
fn catching_up_in_a_full_ring_that_has_wrapped_starts_exactly_where_the_client_is() {
    // 721 held (an hour of 5 s samples), 2,000 pushed: the array has wrapped, the oldest
    // held is position 1,279 and sits in the middle of it.
    let ring = Ring::new(Duration::from_secs(5), Duration::from_secs(30));
    for i in 0..2_000 {
        ring.push(&snapshot(i * 5_000, Some(1.0)), event(i * 5_000), None);
    }
    for next in [1_279, 1_280, 1_500, 1_999] {
        let mut out = VecDeque::new();
        let caught = ring.since(next, 2_000, &mut out);
        let want: Vec<String> = (next..2_000)
            .map(|p| format!("id: {}", p * 5_000))
            .collect();
        assert_eq!(texts(&out), want, "from position {next}");
        assert_eq!(
            caught,
            CatchUp {
                dropped: 0,
                next: 2_000
            }
        );
    }
    let mut out = VecDeque::new();
    assert_eq!(ring.since(2_000, 2_000, &mut out).next, 2_000);
    assert!(out.is_empty(), "nothing newer than the newest");
}

#[test]
fn a_resume_sends_what_followed_its_id_or_resets_when_older_than_what_is_held() {
    let ring = Ring::new(S, Duration::from_secs(30));
    let mut out = VecDeque::new();
    assert_eq!(
        ring.resume(5, &mut out),
        (Resume::Reset { oldest: None }, 0)
    );
    for i in 1..=4 {
        ring.push(&snapshot(i * 1000, Some(1.0)), event(i * 1000), None);
    }
    assert_eq!(ring.resume(2000, &mut out), (Resume::Continue, 4));
    assert_eq!(texts(&out), ["id: 3000", "id: 4000"]);
    out.clear();
    assert_eq!(
        ring.resume(999, &mut out),
        (Resume::Reset { oldest: Some(1000) }, 4)
    );
    assert_eq!(out.len(), 4, "everything held follows the reset");
}

fn window(start_s: i64, cpu: &[f64]) -> Window {
    let mut b = WindowBuilder::default();
    for (i, v) in cpu.iter().enumerate() {
        b.add(
            &snapshot(start_s * 1000 + i as i64, Some(*v)).sample,
            None,
            None,
        );
    }
    let start = from_unix_ms(start_s * 1000);
    b.close(start, start + Duration::from_secs(30))
        .expect("samples")
}

#[test]
fn windows_fill_their_buckets_and_the_open_window_comes_from_samples() {
    let ring = Ring::new(Duration::from_secs(10), Duration::from_secs(30));
    // Windows at 0 and 30 s; the one at 60 s is open, with two samples.
    ring.push(
        &snapshot(30_000, Some(99.0)),
        event(1),
        Some(&window(0, &[10.0, 20.0, 30.0])),
    );
    ring.push(
        &snapshot(60_000, Some(5.0)),
        event(2),
        Some(&window(30, &[40.0])),
    );
    ring.push(&snapshot(70_000, Some(15.0)), event(3), None);

    let grid = Grid::covering(0, 90_000, 30_000);
    let mut columns = Columns::empty(grid, &[Series::Cpu, Series::Gpu]);
    ring.fill_windows(&mut columns, i64::MIN);
    let cpu = &columns.series[0].1;
    let avg: Vec<_> = cpu.iter().map(|b| b.avg()).collect();
    assert_eq!(avg, [Some(20.0), Some(40.0), Some(10.0)]);
    assert_eq!((cpu[0].min(), cpu[0].max()), (Some(10.0), Some(30.0)));
    assert!(
        columns.series[1].1.iter().all(|b| b.avg().is_none()),
        "no GPU: a gap, not 0"
    );
    // The sample at 30 s belongs to the window at 30 s, already closed: counted once.
    assert_eq!(cpu[1].max(), Some(40.0));

    let mut fine = Columns::empty(Grid::covering(0, 90_000, 10_000), &[Series::Cpu]);
    ring.fill_samples(&mut fine);
    let avg: Vec<_> = fine.series[0].1.iter().map(|b| b.avg()).collect();
    assert_eq!(
        avg,
        [
            None,
            None,
            None,
            Some(99.0),
            None,
            None,
            Some(5.0),
            Some(15.0),
            None
        ]
    );
}

#[test]
fn a_refill_puts_older_windows_before_this_runs_and_says_memory_holds_from_then() {
    let ring = Ring::new(Duration::from_secs(10), Duration::from_secs(30));
    ring.push(
        &snapshot(90_000, Some(1.0)),
        event(1),
        Some(&window(60, &[7.0])),
    );
    let created = ring.windows_from_ms();
    assert!(created > 1_000_000, "from the ring's creation: {created}");
    ring.refill(
        vec![window(0, &[1.0]), window(30, &[2.0]), window(60, &[999.0])],
        SystemTime::UNIX_EPOCH,
    );
    assert_eq!(ring.windows_from_ms(), 0);
    let mut columns = Columns::empty(Grid::covering(0, 90_000, 30_000), &[Series::Cpu]);
    ring.fill_windows(&mut columns, i64::MIN);
    let avg: Vec<_> = columns.series[0].1.iter().map(|b| b.avg()).collect();
    assert_eq!(
        avg,
        [Some(1.0), Some(2.0), Some(7.0)],
        "this run's window wins over a copy read back"
    );
    assert!(ring.stats().refilled);
}

#[test]
fn the_samples_held_are_all_there_are_from_this_runs_start_until_the_hour_is_full() {
    let ring = Ring::new(Duration::from_secs(5), Duration::from_secs(30));
    let started = ring.samples_from_ms();
    let now = unix_ms(std::time::SystemTime::now());
    assert!(
        started <= now && now - started < 60_000,
        "{started} vs {now}"
    );
    // A few samples: still this run's start.
    let base = now + 5_000;
    for i in 0..10 {
        ring.push(&snapshot(base + i * 5_000, Some(1.0)), event(i), None);
    }
    assert_eq!(ring.samples_from_ms(), started);
    // Past the hour the oldest are gone: memory holds from the oldest kept.
    for i in 10..800 {
        ring.push(&snapshot(base + i * 5_000, Some(1.0)), event(i), None);
    }
    assert_eq!(ring.samples_from_ms(), base + (800 - 721) * 5_000);
}
