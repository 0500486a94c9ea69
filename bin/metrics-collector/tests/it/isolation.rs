//! A disk that hangs for real: a FUSE mount (bindfs) whose daemon is stopped, so statvfs on
//! it blocks, as on a dead network mount.

use std::time::{Duration, Instant};

use testkit::FuseMount;

use crate::harness::{Service, get, wait_for};

#[test]
fn a_hung_disk_mount_nulls_only_disk_and_the_loop_keeps_its_pace() {
    let mount = FuseMount::new();
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.5"),
        ("METRICS_DISK_PATH", mount.path().to_str().unwrap()),
    ])
    .ready();
    assert!(svc.json("/metrics")["disk"]["total"].is_u64());
    let before = svc.threads();

    mount.freeze();
    let h = wait_for(Duration::from_secs(10), "disk to time out", || {
        let h = svc.json("/health");
        (h["probes"]["disk"]["state"] == "error").then_some(h)
    });
    let reason = h["probes"]["disk"]["error"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("timed out") || reason.contains("has not returned"),
        "{reason}"
    );
    // Samples keep coming at their interval, with everything but the disk.
    let seq = h["sample_seq"].as_u64().unwrap();
    let started = Instant::now();
    let later = wait_for(
        Duration::from_secs(10),
        "four more samples while the disk hangs",
        || {
            let h = svc.json("/health");
            (h["sample_seq"].as_u64().unwrap() >= seq + 4).then_some(h)
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "ticks slowed down: {:?} for 4",
        started.elapsed()
    );
    assert_eq!(later["probes"]["cpu"]["state"], "ok", "{later}");
    assert_eq!(later["probes"]["memory"]["state"], "ok", "{later}");
    assert_eq!(later["status"], "degraded");
    let m = get(svc.addr, "/metrics").json();
    assert!(m["disk"]["percent"].is_null() && m["cpu"].is_f64(), "{m}");

    let probe_threads = |svc: &Service| {
        svc.threads()
            .into_iter()
            .filter(|t| t.name == "probe")
            .collect::<Vec<_>>()
    };
    assert_eq!(
        probe_threads(&svc).len(),
        2,
        "one stuck in the read, one spare: {:?}",
        svc.threads()
    );

    mount.thaw();
    wait_for(Duration::from_secs(10), "disk to read again", || {
        (svc.json("/health")["probes"]["disk"]["state"] == "ok").then_some(())
    });
    assert!(svc.json("/metrics")["disk"]["total"].is_u64());
    // Within a few ticks the spare is gone: the engine's threads are those from before
    // the hang (the runtime's own come and go)...
    let engine_threads = |threads: Vec<crate::harness::Thread>| {
        let mut names: Vec<String> = threads
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n.starts_with("probe"))
            .collect();
        names.sort();
        names
    };
    wait_for(
        Duration::from_secs(5),
        "the threads of before the hang",
        || (engine_threads(svc.threads()) == engine_threads(before.clone())).then_some(()),
    );
    // ...and an idle tick wakes one thread once again: over ten ticks, one probe thread
    // woke about once per tick (twice: the statvfs of a FUSE mount waits for its daemon),
    // the watchdog not at all.
    let seq = |svc: &Service| svc.json("/health")["sample_seq"].as_u64().unwrap();
    let watchdog = |svc: &Service| {
        svc.threads()
            .into_iter()
            .find(|t| t.name == "probe-watchdog")
            .map(|t| t.wakeups)
    };
    let (seq0, probes0, watchdog0) = (seq(&svc), probe_threads(&svc), watchdog(&svc));
    wait_for(Duration::from_secs(15), "ten more ticks", || {
        (seq(&svc) >= seq0 + 10).then_some(())
    });
    let (seq1, probes1, watchdog1) = (seq(&svc), probe_threads(&svc), watchdog(&svc));
    assert_eq!(probes1.len(), 1, "{probes1:?}");
    assert_eq!(probes0.len(), 1, "{probes0:?}");
    assert_eq!(probes0[0].tid, probes1[0].tid, "the same thread all along");
    let ticks = seq1 - seq0;
    let woke = probes1[0].wakeups - probes0[0].wakeups;
    assert!(
        woke <= 2 * ticks + 2,
        "the probe thread woke {woke} times in {ticks} ticks"
    );
    assert_eq!(
        watchdog1, watchdog0,
        "the watchdog woke with nothing overrunning"
    );
}
