use std::time::{Duration, UNIX_EPOCH};

use probes::{DiskUsage, MemoryUsage, Unavailable};

use super::*;

fn sample(cpu: Option<f64>, ram_used_of_100: Option<u64>, disk_used: Option<u64>) -> Sample {
    let gone = || Unavailable::new("gone");
    Sample {
        taken_at: UNIX_EPOCH,
        cpu_percent: cpu.ok_or_else(gone),
        cpu_times: None,
        memory: ram_used_of_100
            .map(|used| MemoryUsage {
                total_bytes: 100,
                available_bytes: 100 - used,
            })
            .ok_or_else(gone),
        disk: disk_used
            .map(|used| DiskUsage {
                total_bytes: 100,
                used_bytes: used,
                free_bytes: 100 - used,
            })
            .ok_or_else(gone),
        cpu_celsius: Err(gone()),
    }
}

#[test]
fn a_window_is_the_mean_of_its_samples_and_the_latest_disk() {
    let mut w = WindowBuilder::default();
    w.add(
        &sample(Some(10.0), Some(40), Some(30)),
        Some(50.0),
        Some(40.0),
    );
    w.add(&sample(Some(20.0), Some(50), Some(31)), None, Some(42.0));
    w.add(&sample(Some(33.0), Some(60), Some(32)), Some(70.0), None);
    let at = UNIX_EPOCH + Duration::from_secs(30);
    let window = w.close(UNIX_EPOCH, at).unwrap();
    let stat = |mean, min, max, samples| {
        Some(Stat {
            mean,
            min: Some(min),
            max: Some(max),
            samples,
        })
    };
    assert_eq!(
        window,
        Window {
            start: UNIX_EPOCH,
            at,
            cpu: stat(21.0, 10.0, 33.0, 3),
            ram: stat(50.0, 40.0, 60.0, 3),
            gpu: stat(60.0, 50.0, 70.0, 2),
            temperature: stat(41.0, 40.0, 42.0, 2),
            disk: Some(DiskRow {
                used_bytes: 32,
                free_bytes: 68,
                percent: 32.0
            }),
        }
    );
    assert_eq!(window.rows(), 5);
}

#[test]
fn a_metric_null_all_window_long_writes_no_row() {
    let mut w = WindowBuilder::default();
    w.add(&sample(Some(5.0), None, None), None, None);
    w.add(&sample(None, None, None), None, None);
    let window = w.close(UNIX_EPOCH, UNIX_EPOCH).unwrap();
    assert_eq!(
        (
            window.cpu.map(|c| c.mean),
            window.ram,
            window.gpu,
            window.temperature,
            window.disk
        ),
        (Some(5.0), None, None, None, None)
    );
    assert_eq!(window.rows(), 1);
}

#[test]
fn closing_starts_a_fresh_window_and_an_empty_one_is_nothing() {
    let mut w = WindowBuilder::default();
    w.add(&sample(Some(90.0), Some(10), Some(10)), None, None);
    assert!(w.close(UNIX_EPOCH, UNIX_EPOCH).is_some());
    assert_eq!(
        w.close(UNIX_EPOCH, UNIX_EPOCH),
        None,
        "no sample since the last close"
    );
    w.add(&sample(Some(1.0), None, None), None, None);
    assert_eq!(
        w.close(UNIX_EPOCH, UNIX_EPOCH).unwrap().cpu.map(|c| c.max),
        Some(Some(1.0)),
        "the earlier 90 is not carried over"
    );
}

#[test]
fn a_row_belongs_to_the_window_that_began_on_the_grid_line_before_it() {
    // (closed at, every) -> began at, in milliseconds.
    let cases = [
        (30_000, 30_000, 0),
        (60_000, 30_000, 30_000),
        // The last, shorter window of a run, closed between lines.
        (45_500, 30_000, 30_000),
        (1, 30_000, 0),
        (-1, 30_000, -30_000),
        (0, 30_000, -30_000),
    ];
    for (at, every, start) in cases {
        assert_eq!(window_start_ms(at, every), start, "closed at {at}");
    }
    for ms in [-90_061, -1, 0, 1, 1_733_050_000_123] {
        assert_eq!(unix_ms(from_unix_ms(ms)), ms);
    }
}
