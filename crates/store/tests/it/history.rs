//! Reading history back: buckets of windows the writer wrote, rows without extremes, and
//! the day of windows that refills the ring.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sampler::{Grid, Series, Stat, Window};

use crate::support::{connect, test_database, wait_status};

fn window(start_s: u64, cpu: Stat, disk_percent: f64) -> Window {
    let start = UNIX_EPOCH + Duration::from_secs(start_s);
    Window {
        start,
        at: start + Duration::from_secs(30),
        cpu: Some(cpu),
        ram: None,
        gpu: None,
        temperature: None,
        disk: Some(sampler::DiskRow {
            used_bytes: 10,
            free_bytes: 30,
            percent: disk_percent,
        }),
    }
}

fn stat(mean: f64, min: f64, max: f64) -> Stat {
    Stat {
        mean,
        min: Some(min),
        max: Some(max),
        samples: 6,
    }
}

/// Windows through the real writer, and a reader on the same database.
async fn written(tag: &str, windows: Vec<Window>) -> (store::Config, store::HistoryReader) {
    let mut config = test_database(tag).await;
    let (handle, mut status, task) = store::spawn(config.clone()).unwrap();
    let n = windows.len() as u64;
    for w in windows {
        assert!(handle.send(w));
    }
    wait_status(
        &mut status,
        Duration::from_secs(20),
        "windows written",
        |s| s.written_windows == n,
    )
    .await;
    drop(handle);
    task.await.unwrap();
    // Written as 1 s windows (sent within a second), read as the 30 s windows they are.
    config.persist_interval = Duration::from_secs(30);
    let reader = store::HistoryReader::new(&config, Duration::from_secs(5)).unwrap();
    (config, reader)
}

#[tokio::test]
async fn buckets_hold_the_mean_of_their_windows_and_the_extremes_of_their_samples() {
    // Now-ish, so retention keeps them: windows at t0, t0+30, t0+60, t0+90.
    let t0 = (SystemTime::now() - Duration::from_secs(3600))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        * 60;
    let (config, reader) = written(
        "buckets",
        vec![
            window(t0, stat(10.0, 1.0, 30.0), 20.0),
            window(t0 + 30, stat(20.0, 15.0, 25.0), 22.0),
            // t0 + 60: no window at all (the collector was down).
            window(t0 + 90, stat(40.0, 40.0, 40.0), 24.0),
        ],
    )
    .await;
    let t0_ms = t0 as i64 * 1000;
    let grid = Grid::covering(t0_ms, t0_ms + 120_000, 60_000);
    let columns = reader
        .buckets(
            grid,
            &[Series::Cpu, Series::Gpu, Series::Disk],
            i64::MIN / 4,
            i64::MAX / 4,
        )
        .await
        .unwrap();
    let cpu = &columns.series[0].1;
    assert_eq!(cpu[0].avg(), Some(15.0));
    assert_eq!((cpu[0].min(), cpu[0].max()), (Some(1.0), Some(30.0)));
    assert_eq!(cpu[1].avg(), Some(40.0), "one window in the second minute");
    assert!(
        columns.series[1].1.iter().all(|b| b.avg().is_none()),
        "no GPU rows: gaps, not 0"
    );
    let disk = &columns.series[2].1;
    assert_eq!(
        (disk[0].avg(), disk[0].min(), disk[0].max()),
        (Some(21.0), Some(20.0), Some(22.0))
    );

    // Only the windows that began in [from, to).
    let columns = reader
        .buckets(grid, &[Series::Cpu], t0_ms + 30_000, t0_ms + 90_000)
        .await
        .unwrap();
    let avg: Vec<_> = columns.series[0].1.iter().map(|b| b.avg()).collect();
    assert_eq!(avg, [Some(20.0), None]);

    // A row without extremes (written before they were kept): its bucket's are unknown.
    let db = connect(&config.host, config.port, &config.dbname).await;
    db.execute(
        "UPDATE metrics_cpu SET value_min = NULL, value_max = NULL WHERE value = 40",
        &[],
    )
    .await
    .unwrap();
    let columns = reader
        .buckets(grid, &[Series::Cpu], i64::MIN / 4, i64::MAX / 4)
        .await
        .unwrap();
    let b = columns.series[0].1[1];
    assert_eq!((b.avg(), b.min(), b.max()), (Some(40.0), None, None));
}

#[tokio::test]
async fn the_windows_of_the_last_day_come_back_whole_and_in_order() {
    let t0 = (SystemTime::now() - Duration::from_secs(7200))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
        * 30;
    let windows = vec![
        window(t0, stat(10.0, 1.0, 30.0), 20.0),
        window(t0 + 30, stat(20.0, 15.0, 25.0), 22.0),
    ];
    let (_config, reader) = written("since", windows.clone()).await;
    let back = reader
        .windows(UNIX_EPOCH + Duration::from_secs(t0 - 1), SystemTime::now())
        .await
        .unwrap();
    let expected: Vec<Window> = windows
        .into_iter()
        .map(|w| Window {
            cpu: w.cpu.map(|c| Stat { samples: 0, ..c }),
            ..w
        })
        .collect();
    assert_eq!(back, expected);
    let later = reader
        .windows(UNIX_EPOCH + Duration::from_secs(t0 + 30), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(later.len(), 1, "only those closed in the span asked");
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_within_the_bound_not_a_wait() {
    let mut config = test_database("gone").await;
    config.port = testkit_unused_port();
    let reader = store::HistoryReader::new(&config, Duration::from_secs(5)).unwrap();
    let started = std::time::Instant::now();
    let answer = sampler::Archive::windows(&reader, UNIX_EPOCH, SystemTime::now()).await;
    assert!(answer.is_err(), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

fn testkit_unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
