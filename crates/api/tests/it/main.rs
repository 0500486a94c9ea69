//! The API in-process over real loopback HTTP, with the published state under the test's
//! control: what the binary's tests cannot stage (no sample yet, a stale sampler, an
//! unreachable database, a writer that ended, a client that never reads, a GPU that
//! fails, hangs or falls off the bus).

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod gpu_failures;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use api::{AppState, Bodies, Limits};
use probes::{DiskUsage, MemoryUsage, Sample, Unavailable};
use sampler::{
    DatabaseView, Families, FamilyState, LostWindows, Published, Snapshot, WriterState,
    WriterStatus,
};
use tokio::net::TcpStream;
use tokio::sync::watch;

const LIVE: Duration = Duration::from_secs(1);

struct Api {
    addr: SocketAddr,
    latest: watch::Sender<Option<Arc<Published<Bodies>>>>,
    database: Option<watch::Sender<WriterStatus>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: Limits) -> Api {
    start_with(limits, false).await
}

/// The API with persistence on (`database`) or off.
async fn start_with(limits: Limits, database: bool) -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (latest, latest_rx) = watch::channel(None);
    let (db_tx, view) = if database {
        let (tx, rx) = watch::channel(WriterStatus::default());
        (
            Some(tx),
            Some(DatabaseView::new(rx, LostWindows::default())),
        )
    } else {
        (None, None)
    };
    let (stop, mut stop_rx) = watch::channel(false);
    let state = AppState::new(latest_rx, view, LIVE, "test-host");
    let task = tokio::spawn(api::serve(listener, state, limits, async move {
        let _ = stop_rx.changed().await;
    }));
    Api {
        addr,
        latest,
        database: db_tx,
        stop,
        task,
    }
}

fn snapshot(seq: u64, disk: Result<DiskUsage, Unavailable>) -> Snapshot {
    let family = FamilyState::default();
    Snapshot {
        seq,
        families: Families {
            disk: FamilyState {
                took: Duration::from_micros(42),
                error: disk.as_ref().err().cloned(),
                last_ok: None,
                errors: 0,
            },
            cpu: family.clone(),
            memory: family.clone(),
            thermal: FamilyState {
                error: Some(Unavailable::absent("no sensor")),
                ..family
            },
            gpu: FamilyState {
                error: Some(Unavailable::absent("no GPU")),
                ..FamilyState::default()
            },
        },
        sample: Sample {
            taken_at: SystemTime::now(),
            cpu_percent: Ok(12.34),
            cpu_times: None,
            memory: Ok(MemoryUsage {
                total_bytes: 1000,
                available_bytes: 500,
            }),
            disk,
            cpu_celsius: Err(Unavailable::absent("no sensor")),
        },
        gpu: gpu::GpuSample::unavailable(gpu::BackendKind::None, "no GPU"),
    }
}

/// The snapshot as the engine publishes it, taken `now`, last succeeding at `success`.
fn published(snapshot: Snapshot, now: Instant, success: Option<Instant>) -> Arc<Published<Bodies>> {
    Arc::new(Published {
        bodies: Bodies::of(&snapshot),
        snapshot,
        taken: now,
        due: None,
        last_success: success,
    })
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
    let r = testkit::get_async(addr, path).await;
    (r.status, r.json())
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
    api.latest
        .send_replace(Some(published(snapshot(1, disk_ok()), now, Some(now))));
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
    api.latest.send_replace(Some(published(
        snapshot(7, Err(Unavailable::new("statvfs /data: timed out"))),
        now,
        Some(recent),
    )));
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
    api.latest
        .send_replace(Some(published(snapshot(8, disk_ok()), now, Some(stale))));
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
    let api = start_with(Limits::default(), true).await;
    let now = Instant::now();
    api.latest
        .send_replace(Some(published(snapshot(1, disk_ok()), now, Some(now))));
    let (_, h) = get(api.addr, "/health").await;
    assert_eq!(
        h["database"]["state"], "unreachable",
        "still connecting: {h}"
    );
    assert_eq!(h["database"]["error"], "connecting");
    let db = api.database.as_ref().unwrap();
    db.send_replace(WriterStatus {
        state: WriterState::Unreachable,
        pending_rows: 120,
        dropped_windows: 3,
        last_error: Some("connection refused".into()),
        ..WriterStatus::default()
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
async fn a_writer_that_ended_is_not_shown_connected_for_ever() {
    let mut api = start_with(Limits::default(), true).await;
    let now = Instant::now();
    api.latest
        .send_replace(Some(published(snapshot(1, disk_ok()), now, Some(now))));
    api.database.as_ref().unwrap().send_replace(WriterStatus {
        state: WriterState::Connected,
        ..WriterStatus::default()
    });
    let (_, h) = get(api.addr, "/health").await;
    assert_eq!(h["database"]["state"], "connected", "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    // The writer task ends (a bug, a panic) without a last word.
    drop(api.database.take());
    let (_, h) = get(api.addr, "/health").await;
    assert_eq!(h["database"]["state"], "unreachable", "{h}");
    assert!(
        h["database"]["error"]
            .as_str()
            .unwrap()
            .contains("writer has stopped"),
        "{h}"
    );
    assert_eq!(h["status"], "degraded", "{h}");
}

/// A writer that takes nothing: its inbox is full, or it is stuck in a long attempt.
struct Refuses;
impl sampler::WindowSink for Refuses {
    fn offer(&self, window: sampler::Window) -> Result<(), sampler::Window> {
        Err(window)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_the_engine_cannot_hand_over_count_in_health_at_once() {
    let live = Duration::from_millis(50);
    let engine = sampler::Engine::new(
        probes::HostProbes::new(&probes::Roots::default(), std::path::Path::new("/")).into(),
        Box::new(gpu::NoGpu::new("no GPU")),
        live,
    )
    .unwrap();
    let persist = sampler::Persist::new(Refuses, Duration::from_millis(100));
    // The writer's own status never changes: it is busy elsewhere.
    let (_writer, status) = watch::channel(WriterStatus {
        state: WriterState::Connected,
        ..WriterStatus::default()
    });
    let view = DatabaseView::new(status, persist.lost());
    let (publish, latest) = watch::channel(None);
    let running = sampler::start(
        engine,
        api::Encoder::default(),
        live,
        publish,
        sampler::Outputs {
            persist: Some(persist),
            ring: None,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stop_rx) = watch::channel(false);
    let state = AppState::new(latest, Some(view), live, "test-host");
    tokio::spawn(api::serve(listener, state, Limits::default(), async move {
        let _ = stop_rx.changed().await;
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, h) = get(addr, "/health").await;
        if h["database"]["dropped_windows"].as_u64() >= Some(2) {
            break;
        }
        assert!(Instant::now() < deadline, "lost windows never shown: {h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    running.stop();
}

#[tokio::test]
async fn unknown_query_parameters_are_ignored_everywhere() {
    let api = start(Limits::default()).await;
    let now = Instant::now();
    api.latest
        .send_replace(Some(published(snapshot(1, disk_ok()), now, Some(now))));
    for path in [
        "/metrics?_=1733050000",
        "/health?_=1733050000&verbose",
        "/gpu?",
        "/metrics?a=%zz&&b",
    ] {
        let (status, body) = get(api.addr, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, m) = get(api.addr, "/metrics?_=1").await;
    assert_eq!(m["cpu"], 12.3);
}

#[tokio::test]
async fn a_client_that_pipelines_and_never_reads_is_closed_after_the_stall_limit() {
    use tokio::io::AsyncWriteExt;
    let api = start(Limits {
        write_stall_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let now = Instant::now();
    api.latest
        .send_replace(Some(published(snapshot(1, disk_ok()), now, Some(now))));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    let stream = socket.connect(api.addr).await.unwrap();
    let (_read_half, mut write_half) = stream.into_split();
    // Requests without end, and nothing ever read: the server cannot keep up with them,
    // so only closing the connection ends this loop.
    let chunk = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        loop {
            if let Err(e) = write_half.write_all(chunk.as_bytes()).await {
                return e;
            }
        }
    });
    // The server stops reading while its answers cannot go out; once it gives up on the
    // client it closes (resets) the connection, and our writing fails.
    let error = tokio::time::timeout(Duration::from_secs(20), writing)
        .await
        .expect("the stalled connection was never closed")
        .unwrap();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Others are served all along.
    assert_eq!(get(api.addr, "/metrics").await.0, 200);
}

#[tokio::test]
async fn the_connection_cap_queues_clients_instead_of_failing_them() {
    let api = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let now = Instant::now();
    api.latest
        .send_replace(Some(published(snapshot(1, disk_ok()), now, Some(now))));
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
