//! A day of history from memory: 2,880 windows of 30 s, all five series, answered at the
//! 30 s step (2,880 buckets × 5 series × avg/min/max): what `/metrics/history?start=-86400&step=30`
//! costs the server. Beside it, the floor: `serde_json` encoding the same arrays from a
//! struct prepared beforehand (timestamps already strings), which is what any answer of this
//! shape costs at least.
//!
//! `cargo bench -p api --bench history`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use sampler::{DiskRow, Ring, Stat, Window};
use serde::Serialize;

const LIVE: Duration = Duration::from_secs(5);
const PERSIST: Duration = Duration::from_secs(30);
const WINDOWS: u64 = 2_880;

/// 2026-12-01T00:00:00Z
const DAY_START_S: u64 = 1_796_083_200;

fn stat(i: u64, base: f64) -> Option<Stat> {
    let mean = base + (i % 37) as f64 * 1.3;
    Some(Stat {
        mean,
        min: Some(((mean - 4.1) * 10.0).round() / 10.0),
        max: Some(((mean + 7.7) * 10.0).round() / 10.0),
        samples: 6,
    })
}

fn ring() -> Ring {
    let ring = Ring::new(LIVE, PERSIST);
    let windows = (0..WINDOWS)
        .map(|i| {
            let start = UNIX_EPOCH + Duration::from_secs(DAY_START_S + i * 30);
            Window {
                start,
                at: start + PERSIST,
                cpu: stat(i, 12.0),
                ram: stat(i, 40.0),
                gpu: stat(i, 3.0),
                temperature: stat(i, 45.0),
                disk: Some(DiskRow {
                    used_bytes: 1 << 35,
                    free_bytes: 1 << 36,
                    percent: 33.3,
                }),
            }
        })
        .collect();
    ring.refill(windows, UNIX_EPOCH);
    ring
}

#[derive(Serialize)]
struct Columns {
    avg: Vec<Option<f64>>,
    min: Vec<Option<f64>>,
    max: Vec<Option<f64>>,
}

#[derive(Serialize)]
struct Prepared {
    host: String,
    start: String,
    end: String,
    step_seconds: f64,
    source: String,
    partial: bool,
    timestamps: Vec<String>,
    series: BTreeMap<String, Columns>,
}

/// The same answer, prepared: what the floor encodes.
fn prepared(body: &[u8]) -> Prepared {
    let v: serde_json::Value = serde_json::from_slice(body).expect("our answer is JSON");
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let numbers = |v: &serde_json::Value| -> Vec<Option<f64>> {
        v.as_array()
            .map(|a| a.iter().map(serde_json::Value::as_f64).collect())
            .unwrap_or_default()
    };
    let mut series = BTreeMap::new();
    if let Some(map) = v["series"].as_object() {
        for (name, s) in map {
            series.insert(
                name.clone(),
                Columns {
                    avg: numbers(&s["avg"]),
                    min: numbers(&s["min"]),
                    max: numbers(&s["max"]),
                },
            );
        }
    }
    Prepared {
        host: "edge-01".into(),
        start: v["start"].as_str().unwrap_or_default().to_owned(),
        end: v["end"].as_str().unwrap_or_default().to_owned(),
        step_seconds: 30.0,
        source: "memory".into(),
        partial: false,
        timestamps: strings(&v["timestamps"]),
        series,
    }
}

fn bench(c: &mut Criterion) {
    let ring = ring();
    let now_ms = (DAY_START_S as i64 + WINDOWS as i64 * 30) * 1000;
    let query = Some("start=-86400&step=30");
    let body =
        api::history_from_memory(&ring, "edge-01", query, now_ms, LIVE).expect("a valid query");
    let floor = prepared(&body);
    assert_eq!(floor.timestamps.len(), WINDOWS as usize);
    assert_eq!(floor.series.len(), 5);

    let mut group = c.benchmark_group("history_24h_30s");
    group.bench_function("ours: buckets from the ring, encoded", |b| {
        b.iter(|| {
            black_box(api::history_from_memory(
                &ring,
                "edge-01",
                black_box(query),
                now_ms,
                LIVE,
            ))
        })
    });
    group.bench_function("floor: serde_json of the prepared arrays", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&floor))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
