//! Reading history back from PostgreSQL, with the floor beside each figure:
//!
//! - a 7-day range at 1,000 buckets (630 s), all five series, from 7 days of 30 s windows
//!   (20,160 windows × 5 tables): `HistoryReader::buckets`, against the same five-table
//!   index range scan counting the rows (what PostgreSQL must read at least);
//! - refilling the ring after a restart: the last 24 h of windows (2,880) read back an
//!   hour at a time (`sampler::refill` over the reader) into a ring, against a bare
//!   `SELECT` of the same rows in one statement.
//!
//! `cargo bench -p store --bench history` starts a throwaway PostgreSQL (devpg) and prints
//! p50/p99/max of 50 runs each. Under `cargo test` (no `--bench`) it runs a small smoke
//! version of the same steps.

// A measuring program: it prints its figures, and a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sampler::{DiskRow, Grid, Series, Stat, Window};
use tokio_postgres::NoTls;

const PERSIST: Duration = Duration::from_secs(30);

fn stat(i: u64, base: f64) -> Option<Stat> {
    let mean = base + (i % 37) as f64;
    Some(Stat {
        mean,
        min: Some(mean - 3.0),
        max: Some(mean + 5.0),
        samples: 6,
    })
}

/// `n` windows of 30 s ending now.
fn windows(n: u64) -> Vec<Window> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
        * 30;
    (0..n)
        .map(|i| {
            let start = UNIX_EPOCH + Duration::from_secs(now - (n - i) * 30);
            Window {
                start,
                at: start + PERSIST,
                cpu: stat(i, 10.0),
                ram: stat(i, 40.0),
                gpu: stat(i, 2.0),
                temperature: stat(i, 45.0),
                disk: Some(DiskRow {
                    used_bytes: 1 << 35,
                    free_bytes: 1 << 36,
                    percent: 33.3,
                }),
            }
        })
        .collect()
}

fn percentiles(mut runs: Vec<Duration>) -> String {
    runs.sort();
    let at = |q: f64| runs[((runs.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} runs)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        runs[runs.len() - 1].as_secs_f64() * 1e3,
        runs.len()
    )
}

async fn timed<T, F: Future<Output = T>>(runs: usize, mut f: impl FnMut() -> F) -> Vec<Duration> {
    // One unmeasured run: plans cached, pages in memory.
    f().await;
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        out.push(started.elapsed());
    }
    out
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, runs) = if full { (20_160, 50) } else { (400, 3) };
    let cluster = devpg::Cluster::start("history-bench").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let info = cluster.conninfo();
        let (client, conn) = tokio_postgres::connect(&format!("{info} dbname=postgres"), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let config = store::Config {
            host: "127.0.0.1".into(),
            port: cluster.port(),
            user: "postgres".into(),
            password: None,
            dbname: "postgres".into(),
            tls: store::Tls::default(),
            metrics_host: "bench".into(),
            retention: Duration::from_secs(8 * 86_400),
            persist_interval: PERSIST,
            flush_deadline: Duration::from_secs(60),
        };
        let (handle, mut status, writer) = store::spawn(config.clone()).unwrap();
        for w in windows(n) {
            // The writer's inbox holds 256: wait for room (it drains into its own queue).
            let mut w = w;
            while let Err(back) = sampler::WindowSink::offer(&handle, w) {
                w = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while status.borrow().written_windows < n {
            assert!(Instant::now() < deadline, "the windows were not written");
            let _ = tokio::time::timeout(Duration::from_secs(1), status.changed()).await;
        }
        drop(handle);
        writer.await.unwrap();
        client.batch_execute("VACUUM ANALYZE").await.unwrap();

        let reader = store::HistoryReader::new(&config, Duration::from_secs(5)).unwrap();
        let now_ms = sampler::unix_ms(SystemTime::now());
        let start_ms = now_ms - 7 * 86_400_000;
        let grid = Grid::covering(start_ms, now_ms, 630_000);
        println!("7 days at {} buckets of 630 s, 5 series, {n} windows:", grid.count);
        let ours = timed(runs, || async {
            reader
                .buckets(grid, &Series::ALL, grid.first_ms, grid.end_ms())
                .await
                .unwrap()
        })
        .await;
        let (from, to) = (
            sampler::from_unix_ms(grid.first_ms),
            sampler::from_unix_ms(grid.end_ms() + 30_000),
        );
        let scan = "SELECT (SELECT count(*) FROM metrics_cpu WHERE host = $1 AND timestamp > $2 AND timestamp <= $3)
                  + (SELECT count(*) FROM metrics_ram WHERE host = $1 AND timestamp > $2 AND timestamp <= $3)
                  + (SELECT count(*) FROM metrics_gpu WHERE host = $1 AND timestamp > $2 AND timestamp <= $3)
                  + (SELECT count(*) FROM metrics_temperature WHERE host = $1 AND timestamp > $2 AND timestamp <= $3)
                  + (SELECT count(*) FROM metrics_disk WHERE host = $1 AND timestamp > $2 AND timestamp <= $3)";
        let floor = timed(runs, || async {
            client.query_one(scan, &[&"bench", &from, &to]).await.unwrap()
        })
        .await;
        println!("  ours  HistoryReader::buckets: {}", percentiles(ours));
        println!("  floor counting the same rows: {}", percentiles(floor));

        let since = SystemTime::now() - sampler::WINDOW_SPAN;
        let ring = sampler::Ring::new(Duration::from_secs(5), PERSIST);
        let held = std::sync::atomic::AtomicUsize::new(0);
        let refill = timed(runs, || async {
            let n = sampler::refill(&ring, &reader, SystemTime::now()).await.unwrap();
            held.store(n, std::sync::atomic::Ordering::Relaxed);
        })
        .await;
        let held = held.into_inner();
        let rows = "SELECT timestamp, value, value_min, value_max FROM metrics_cpu WHERE host = $1 AND timestamp > $2
                    UNION ALL SELECT timestamp, value, value_min, value_max FROM metrics_ram WHERE host = $1 AND timestamp > $2
                    UNION ALL SELECT timestamp, value, value_min, value_max FROM metrics_gpu WHERE host = $1 AND timestamp > $2
                    UNION ALL SELECT timestamp, value, value_min, value_max FROM metrics_temperature WHERE host = $1 AND timestamp > $2
                    UNION ALL SELECT timestamp, percent, percent, percent FROM metrics_disk WHERE host = $1 AND timestamp > $2";
        let floor = timed(runs, || async {
            client.query(rows, &[&"bench", &since]).await.unwrap()
        })
        .await;
        println!("refill: the last 24 h ({held} windows) into a ring:");
        println!("  ours  sampler::refill, 24 steps:  {}", percentiles(refill));
        println!("  floor selecting the same rows:     {}", percentiles(floor));
    });
}
