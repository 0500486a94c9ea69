//! Subcommands and signals.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::Signal;

use crate::harness::{Service, TempDir, command, wait_for};
use testkit::parse_response;

#[test]
fn sample_prints_one_snapshot_and_exits_0() {
    let dir = TempDir::new("sample");
    let out = command(&dir.0, &[("METRICS_INTERVAL_LIVE", "0.3")])
        .arg("sample")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        m["cpu"].is_f64() && m["ram"].is_f64() && m["disk"]["total"].is_u64(),
        "{m}"
    );
}

#[test]
fn help_lists_every_setting_and_version_prints_it() {
    let dir = TempDir::new("help");
    let out = command(&dir.0, &[]).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "METRICS_INTERVAL_LIVE",
        "METRICS_INTERVAL_PERSIST",
        "METRICS_RETENTION_DAYS",
        "METRICS_LISTEN",
        "METRICS_DISK_PATH",
        "METRICS_GPU_BACKEND",
        "METRICS_HOST",
        "METRICS_ROOTFS",
        "METRICS_PROCFS",
        "METRICS_SYSFS",
        "METRICS_MAX_STREAMS",
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
    ] {
        assert!(help.contains(var), "--help lacks {var}");
    }
    let out = command(&dir.0, &[]).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("metrics-collector {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn healthcheck_exits_0_against_a_healthy_service_and_1_when_none_answers() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let dir = TempDir::new("hc");
    let listen = svc.addr.to_string();
    let status = command(&dir.0, &[("METRICS_LISTEN", &listen)])
        .arg("healthcheck")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    drop(svc);
    let out = command(&dir.0, &[("METRICS_LISTEN", &listen)])
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/health"));
}

#[test]
fn sigterm_and_sigint_stop_it_with_exit_0_despite_open_connections() {
    for signal in [Signal::TERM, Signal::INT] {
        let mut svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
        // A keep-alive client that already got its answer, and one idle connection.
        let mut kept = TcpStream::connect(svc.addr).unwrap();
        kept.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = kept.read(&mut buf).unwrap();
        assert_eq!(parse_response(&buf[..n]).status, 200);
        let _idle = TcpStream::connect(svc.addr).unwrap();

        svc.signal(signal);
        let status = svc.wait_exit(Duration::from_secs(6));
        assert_eq!(status.code(), Some(0), "{signal:?}: {}", svc.log());
        assert!(svc.log().contains("shutting down"), "{}", svc.log());
        // It stopped listening.
        assert!(TcpStream::connect_timeout(&svc.addr, Duration::from_secs(1)).is_err());
    }
}

#[test]
fn a_service_that_is_told_to_stop_before_its_first_sample_still_exits_0() {
    let dir = TempDir::new("early");
    let mut child = command(&dir.0, &[("METRICS_INTERVAL_LIVE", "5")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Wait for the "serving" line, then stop it at once.
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    wait_for(Duration::from_secs(10), "the serving line", || {
        let n = stderr.read(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.contains("serving").then_some(())
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        Signal::TERM,
    )
    .unwrap();
    let status = wait_for(Duration::from_secs(6), "exit", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
}
