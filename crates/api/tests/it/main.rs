//! The API in-process over real loopback HTTP, with the published state under the test's
//! control: what the binary's tests cannot stage (no sample yet, a stale sampler, an
//! unreachable database).

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use api::{AppState, DatabaseState, DatabaseStatus, Limits, ProbeState, Published, Snapshot};
use probes::{DiskUsage, MemoryUsage, Sample, Unavailable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const LIVE: Duration = Duration::from_secs(1);

struct Api {
    addr: SocketAddr,
    latest: watch::Sender<Option<Arc<Published>>>,
    database: watch::Sender<DatabaseStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: Limits) -> Api {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (latest, latest_rx) = watch::channel(None);
    let (database, database_rx) = watch::channel(DatabaseStatus::default());
    let (stop, mut stop_rx) = watch::channel(false);
    let state = AppState::new(latest_rx, database_rx, LIVE, "test-host");
    let task = tokio::spawn(api::serve(listener, state, limits, async move {
        let _ = stop_rx.changed().await;
    }));
    Api {
        addr,
        latest,
        database,
        stop,
        task,
    }
}

fn snapshot(seq: u64, disk: Result<DiskUsage, Unavailable>) -> Snapshot {
    let probes = vec![ProbeState {
        name: "disk",
        last_duration: Duration::from_micros(42),
        error: disk.as_ref().err().cloned(),
        last_ok: None,
    }];
    Snapshot {
        seq,
        sample: Sample {
            taken_at: SystemTime::now(),
            cpu_percent: Ok(12.34),
            memory: Ok(MemoryUsage {
                total_bytes: 1000,
                available_bytes: 500,
            }),
            disk,
            cpu_celsius: Err(Unavailable::absent("no sensor")),
        },
        gpu: gpu::GpuSample::unavailable(gpu::BackendKind::None, "no GPU"),
        probes,
    }
}

fn disk_ok() -> Result<DiskUsage, Unavailable> {
    Ok(DiskUsage {
        total_bytes: 100,
        used_bytes: 20,
        free_bytes: 80,
    })
}

/// (status, JSON body) of a GET on a fresh connection.
async fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn before_the_first_sample_metrics_and_gpu_are_503_json_then_200() {
    let api = start(Limits::default()).await;
    for path in ["/metrics", "/gpu", "/health"] {
        let (status, body) = get(api.addr, path).await;
        assert_eq!(status, 503, "{path}");
        if path == "/health" {
            assert_eq!(body["status"], "degraded");
            assert_eq!(body["sample_seq"], 0);
        } else {
            assert!(
                body["error"].as_str().unwrap().contains("no sample"),
                "{body}"
            );
        }
    }
    let now = Instant::now();
    api.latest.send_replace(Some(Arc::new(Published::new(
        snapshot(1, disk_ok()),
        now,
        Some(now),
    ))));
    let (status, m) = get(api.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(m["cpu"], 12.3);
    assert_eq!(m["ram"], 50.0);
    assert_eq!(m["disk"]["percent"], 20.0);
    let (status, h) = get(api.addr, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["probes"]["disk"]["last_duration_ms"], 0.042);
}

#[tokio::test]
async fn health_turns_503_after_three_intervals_without_a_successful_sample() {
    let api = start(Limits::default()).await;
    let now = Instant::now();
    // The last good sample is 2.5 intervals old: still serving, though degraded by disk.
    let recent = now.checked_sub(LIVE * 5 / 2).unwrap();
    api.latest.send_replace(Some(Arc::new(Published::new(
        snapshot(7, Err(Unavailable::new("statvfs /data: timed out"))),
        now,
        Some(recent),
    ))));
    let (status, h) = get(api.addr, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "degraded");
    assert!(
        h["problems"]
            .to_string()
            .contains("disk: statvfs /data: timed out"),
        "{h}"
    );

    let stale = now.checked_sub(LIVE * 4).unwrap();
    api.latest.send_replace(Some(Arc::new(Published::new(
        snapshot(8, disk_ok()),
        now,
        Some(stale),
    ))));
    let (status, h) = get(api.addr, "/health").await;
    assert_eq!(status, 503, "{h}");
    assert!(
        h["problems"]
            .to_string()
            .contains("no successful sample for"),
        "{h}"
    );
    assert_eq!(h["sample_seq"], 8, "the same body as a 200 would carry");
}

#[tokio::test]
async fn an_unreachable_database_degrades_health_and_says_why() {
    let api = start(Limits::default()).await;
    let now = Instant::now();
    api.latest.send_replace(Some(Arc::new(Published::new(
        snapshot(1, disk_ok()),
        now,
        Some(now),
    ))));
    api.database.send_replace(DatabaseStatus {
        state: DatabaseState::Unreachable,
        pending_rows: 120,
        dropped_windows: 3,
        last_error: Some("connection refused".into()),
    });
    let (status, h) = get(api.addr, "/health").await;
    assert_eq!(
        status, 200,
        "a lost database degrades the service, never stops it"
    );
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["database"]["state"], "unreachable");
    assert_eq!(h["database"]["pending_rows"], 120);
    assert_eq!(h["database"]["dropped_windows"], 3);
    assert!(
        h["problems"]
            .to_string()
            .contains("database unreachable: connection refused")
    );
}

#[tokio::test]
async fn the_connection_cap_queues_clients_instead_of_failing_them() {
    let api = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let now = Instant::now();
    api.latest.send_replace(Some(Arc::new(Published::new(
        snapshot(1, disk_ok()),
        now,
        Some(now),
    ))));
    // Two idle connections take both places...
    let a = TcpStream::connect(api.addr).await.unwrap();
    let b = TcpStream::connect(api.addr).await.unwrap();
    let mut third = tokio::spawn(get(api.addr, "/metrics"));
    // Without the cap it would be answered in microseconds.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut third).await;
    assert!(
        early.is_err(),
        "a third client waits while the cap is reached"
    );
    // ...and the waiting client is served as soon as one leaves.
    drop(a);
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    drop(b);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns_within_the_grace_period() {
    let api = start(Limits {
        shutdown_grace: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let _idle = TcpStream::connect(api.addr).await.unwrap();
    let asked = Instant::now();
    api.stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), api.task)
        .await
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert!(
        TcpStream::connect(api.addr).await.is_err(),
        "no longer listening"
    );
}
