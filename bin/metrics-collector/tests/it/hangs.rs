//! Start-up and shutdown stay bounded whatever hangs outside the service: a GPU driver
//! whose initialisation never returns, a DNS lookup of `POSTGRES_HOST` that never answers.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::harness::{BIN, Service, TempDir, command, command_of, get, wait_for};

/// How long SIGTERM may take to end the service, whatever is still running (README).
const SHUTDOWN_BOUND: Duration = Duration::from_secs(6);

/// A `libnvidia-ml.so.1` whose initialisation never returns, as a wedged driver's does:
/// the real NVML path (nvml-wrapper loading the library and calling `nvmlInit_v2`) meets
/// it. Built with the C compiler Rust links with.
fn hanging_nvml(dir: &std::path::Path) {
    let source = dir.join("hanging_nvml.c");
    std::fs::write(
        &source,
        "#include <unistd.h>\n\
         int nvmlInit_v2(void) { for (;;) pause(); return 0; }\n\
         int nvmlInitWithFlags(unsigned int flags) { (void)flags; for (;;) pause(); return 0; }\n\
         int nvmlShutdown(void) { return 0; }\n",
    )
    .unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.join("libnvidia-ml.so.1"))
        .arg(&source)
        .status()
        .expect("a C compiler (cc) is needed to build the hanging NVML library");
    assert!(status.success());
}

#[test]
fn a_hung_gpu_driver_neither_blocks_start_up_nor_the_signals() {
    let lib = TempDir::new("nvml");
    hanging_nvml(&lib.0);
    let ld_path = lib.0.to_str().unwrap();

    // Stopped while discovery hangs, before serving: a clean exit, not death by signal.
    let dir = TempDir::new("nvml-early");
    let (mut early, _) = Service::spawn_until(
        command(
            &dir.0,
            &[
                ("LD_LIBRARY_PATH", ld_path),
                ("RUST_LOG", "metrics_collector=debug"),
            ],
        ),
        "discovering the GPU",
    );
    early.signal(Signal::TERM);
    let status = early.wait_exit(SHUTDOWN_BOUND);
    assert_eq!(status.code(), Some(0), "{}", early.log());

    // Left alone, it serves once discovery's deadline has passed, without the GPU.
    let mut svc = Service::start(&[
        ("LD_LIBRARY_PATH", ld_path),
        ("METRICS_INTERVAL_LIVE", "0.5"),
    ])
    .ready();
    let g = svc.json("/gpu");
    assert_eq!(g["available"], false, "{g}");
    assert!(
        g["reason"]
            .as_str()
            .is_some_and(|r| r.contains("discovery has not finished")),
        "{g}"
    );
    let h = svc.json("/health");
    assert_eq!(
        h["probes"]["gpu"]["state"], "error",
        "a hung driver is a fault: {h}"
    );
    assert_eq!(h["probes"]["cpu"]["state"], "ok", "{h}");
    assert!(get(svc.addr, "/metrics").json()["cpu"].is_f64());
    let asked = Instant::now();
    svc.signal(Signal::TERM);
    let status = svc.wait_exit(SHUTDOWN_BOUND);
    assert_eq!(status.code(), Some(0), "{}", svc.log());
    assert!(asked.elapsed() < SHUTDOWN_BOUND);
}

#[test]
fn sigterm_during_a_dns_lookup_that_never_returns_exits_0_in_time() {
    // A name server that takes every question and answers none, on a loopback address of
    // its own; the service sees it through a resolv.conf of its own (a mount namespace).
    let server = UdpSocket::bind("127.0.0.77:53")
        .expect("binding 127.0.0.77:53 (this test runs as root, as `cargo xtask test` does)");
    server
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let dir = TempDir::new("dns");
    let resolv = dir.0.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.77\noptions timeout:30 attempts:3\n",
    )
    .unwrap();
    let mut wrapped = command_of(
        "unshare",
        &dir.0,
        &[
            ("POSTGRES_HOST", "db.never-answers.test"),
            ("METRICS_INTERVAL_LIVE", "0.5"),
        ],
    );
    wrapped
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$1""#)
        .arg(&resolv)
        .arg(BIN);
    let mut svc = Service::spawn(wrapped).ready();
    // The writer is looking the database up: its question has reached the name server.
    let mut question = [0u8; 512];
    let (n, _) = server
        .recv_from(&mut question)
        .expect("the service never asked for POSTGRES_HOST");
    assert!(
        question[..n].windows(13).any(|w| w == b"never-answers"),
        "a lookup of another name"
    );
    wait_for(Duration::from_secs(10), "the database connecting", || {
        (svc.json("/health")["database"]["state"] == "unreachable").then_some(())
    });
    let asked = Instant::now();
    svc.signal(Signal::TERM);
    let status = svc.wait_exit(SHUTDOWN_BOUND);
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "{}", svc.log());
    assert!(took < SHUTDOWN_BOUND, "took {took:?}");
}
