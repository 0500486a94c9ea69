//! GPU failures end to end: the real engine and the real HTTP API over loopback, with a
//! fake GPU backend (this machine has no GPU) that fails, hangs or loses a device.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gpu::fake::{Control, FakeGpu};
use tokio::sync::watch;

async fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    testkit::get_async(addr, path).await.json()
}

/// Polls `path` until `f` accepts the body.
async fn until(
    addr: SocketAddr,
    path: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = json(addr, path).await;
        if f(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last {path}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn device(index: u32, util: f64) -> gpu::Device {
    gpu::Device {
        index,
        name: Some("NVIDIA RTX A4000".into()),
        uuid: Some(format!("GPU-0000-{index}")),
        utilization_percent: Some(util),
        memory_used_bytes: Some(2 << 30),
        memory_total_bytes: Some(16 << 30),
        celsius: Some(50.0 + f64::from(index)),
        power_watts: Some(60.0),
        power_limit_watts: Some(140.0),
        performance_state: Some(2),
        throttle_reasons: Some(vec![]),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_failures_show_in_gpu_metrics_and_health_while_the_rest_goes_on() {
    let control = Control::default();
    control.set_devices(vec![device(0, 20.0), device(1, 40.0)]);
    let live = Duration::from_millis(100);
    let host = probes::HostProbes::new(&probes::Roots::default(), std::path::Path::new("/"));
    let engine = sampler::Engine::new(
        host.into(),
        Box::new(FakeGpu::new(control.clone())),
        Duration::from_millis(300),
    )
    .unwrap();
    let (publish, latest) = watch::channel(None);
    let running = sampler::start(
        engine,
        api::Encoder::default(),
        live,
        publish,
        Default::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = api::AppState::new(latest, None, live, "gpu-box");
    let (stop, mut server_stop) = watch::channel(false);
    tokio::spawn(api::serve(
        listener,
        state,
        api::Limits::default(),
        async move {
            let _ = server_stop.changed().await;
        },
    ));

    // Two healthy GPUs.
    let g = until(addr, "/gpu", "two GPUs", |g| g["available"] == true).await;
    assert_eq!(g["backend"], "nvml");
    assert_eq!(g["utilization"], 30.0);
    assert_eq!(g["power_draw"], 120.0);
    assert_eq!(g["memory_total"], 32u64 << 30);
    assert_eq!(g["gpus"][1]["performance_state"], 2);
    assert_eq!(g["gpus"][1]["healthy"], true);
    assert_eq!(json(addr, "/metrics").await["gpu"], 30.0);
    let h = until(addr, "/health", "gpu ok", |h| {
        h["probes"]["gpu"]["state"] == "ok"
    })
    .await;
    assert_eq!(h["gpu"]["available"], true);

    // GPU 1 falls off the bus: it stays listed, unhealthy; the mean is GPU 0's alone.
    control.lose(Some(1));
    let g = until(addr, "/gpu", "GPU 1 lost", |g| {
        g["gpus"][1]["healthy"] == false
    })
    .await;
    assert_eq!(g["gpus"][1]["error"], "the GPU has fallen off the bus");
    assert!(g["gpus"][1]["utilization"].is_null());
    assert_eq!(g["gpus"][0]["utilization"], 20.0);
    assert_eq!(g["utilization"], 20.0);
    assert_eq!(json(addr, "/metrics").await["gpu"], 20.0);
    let h = until(addr, "/health", "degraded by GPU 1", |h| {
        h["status"] == "degraded"
    })
    .await;
    assert!(
        h["problems"]
            .to_string()
            .contains("GPU 1: the GPU has fallen off the bus"),
        "{h}"
    );
    control.lose(None);

    // The whole backend fails: no numbers, a reason, everything else still sampled.
    control.fail(Some("the NVIDIA driver is not loaded"));
    let g = until(addr, "/gpu", "backend failure", |g| g["available"] == false).await;
    assert_eq!(g["reason"], "the NVIDIA driver is not loaded");
    assert_eq!(g["gpus"], serde_json::json!([]));
    let m = json(addr, "/metrics").await;
    assert!(m["gpu"].is_null() && m["cpu"].is_f64(), "{m}");
    let r = testkit::get_async(addr, "/health").await;
    assert_eq!(
        r.status, 200,
        "a lost GPU degrades the service, it never stops it"
    );
    assert_eq!(r.json()["probes"]["gpu"]["state"], "error");
    control.fail(None);
    until(addr, "/gpu", "recovery", |g| g["available"] == true).await;

    // The driver hangs: the GPU field times out, samples keep coming.
    control.hang(true);
    let h = until(addr, "/health", "gpu timing out", |h| {
        h["probes"]["gpu"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out") || e.contains("has not returned"))
    })
    .await;
    assert_eq!(h["gpu"]["backend"], "nvml", "{h}");
    let seq = h["sample_seq"].as_u64().unwrap();
    until(addr, "/health", "samples while the GPU hangs", |h| {
        h["sample_seq"].as_u64().unwrap() >= seq + 3
    })
    .await;
    assert!(json(addr, "/metrics").await["cpu"].is_f64());
    control.hang(false);
    until(addr, "/health", "gpu back", |h| {
        h["probes"]["gpu"]["state"] == "ok"
    })
    .await;
    stop.send_replace(true);
    running.stop();
}
