//! Clients that misbehave must not hurt the service: slow headers, floods of idle
//! connections, oversized heads, running out of file descriptors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{Service, allow_fds, get, request, wait_for};

#[test]
fn a_slow_header_is_cut_off_and_does_not_block_others() {
    let svc = Service::start(&[]).ready();
    let mut slow = TcpStream::connect(svc.addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    // Others are served meanwhile.
    assert_eq!(get(svc.addr, "/metrics").status, 200);
    // The server closes the half-sent request after its header read timeout (10 s).
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let closed = match slow.read(&mut buf) {
        Ok(0) | Err(_) => true,
        Ok(n) => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
    };
    assert!(
        closed,
        "the slow connection got an answer instead of being closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed after {:?}",
        started.elapsed()
    );
}

#[test]
fn idle_connections_and_half_sent_requests_leave_metrics_answering_within_a_second() {
    allow_fds(4000);
    let mut svc = Service::start(&[]).ready();
    let mut held = Vec::with_capacity(3300);
    for _ in 0..3000 {
        held.push(TcpStream::connect(svc.addr).unwrap());
    }
    for i in 0..300 {
        let mut s = TcpStream::connect(svc.addr).unwrap();
        s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: t\r\nX-Part: {i}").as_bytes())
            .unwrap();
        held.push(s);
    }
    let started = Instant::now();
    let r = get(svc.addr, "/metrics");
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        took < Duration::from_secs(1),
        "/metrics took {took:?} beside 3,300 idle connections"
    );
    assert!(svc.is_running(), "still running");
    drop(held);
    assert_eq!(get(svc.addr, "/metrics").status, 200, "and still answering");
}

#[test]
fn oversized_heads_get_431_never_a_5xx() {
    let svc = Service::start(&[]).ready();
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = request(
        svc.addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{many}Connection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 431, "150 headers");
    let big = "a".repeat(32 * 1024);
    let r = request(
        svc.addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 431, "32 KiB of header");
    let r = request(svc.addr, "GARBAGE\r\n\r\n");
    assert!((400..500).contains(&r.status), "garbage: {}", r.status);
    assert_eq!(get(svc.addr, "/metrics").status, 200, "and it still serves");
}

#[test]
fn running_out_of_file_descriptors_backs_off_and_recovers() {
    let mut svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let pid = svc.pid();
    // Leave the service only a few spare descriptors, then connect far more clients.
    let limit = svc.open_fds() + 4;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("prlimit (util-linux) is needed for this test");
    assert!(status.success());
    let clients: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(svc.addr).unwrap())
        .collect();
    wait_for(
        Duration::from_secs(10),
        "the accept back-off warning",
        || {
            svc.log()
                .contains("accepting a connection failed")
                .then_some(())
        },
    );
    assert!(svc.is_running(), "the service must not exit");
    drop(clients);
    // Once clients leave, descriptors free up and it serves again.
    wait_for(Duration::from_secs(15), "/metrics to answer again", || {
        let mut s = TcpStream::connect_timeout(&svc.addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).ok()?;
        bytes.starts_with(b"HTTP/1.1 200").then_some(())
    });
}

/// Whether the service's end of the connection from `client` is still open, as `ss` would
/// show it: its row in the kernel's TCP table (loopback, IPv4).
fn service_end_open(service: std::net::SocketAddr, client: std::net::SocketAddr) -> bool {
    let hex = |a: std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(v4) => {
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(v4.ip().octets()),
                v4.port()
            )
        }
        std::net::SocketAddr::V6(_) => panic!("an IPv4 loopback test"),
    };
    let (local, remote) = (hex(service), hex(client));
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .any(|row| {
            let mut cols = row.split_whitespace().skip(1);
            cols.next() == Some(local.as_str()) && cols.next() == Some(remote.as_str())
        })
}

#[test]
fn a_client_that_pipelines_and_never_reads_gives_its_connection_back_after_30_s() {
    let svc = Service::start(&[]).ready();
    let stream = TcpStream::connect(svc.addr).unwrap();
    let client = stream.local_addr().unwrap();
    assert!(service_end_open(svc.addr, client));
    let started = Instant::now();
    // Requests without end, never reading an answer: the service's answers back up until
    // it cannot write, and it stops reading.
    let mut writer = stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        let chunk = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
        loop {
            if let Err(e) = writer.write_all(chunk.as_bytes()) {
                return e;
            }
        }
    });
    // Others are served meanwhile.
    assert_eq!(get(svc.addr, "/metrics").status, 200);
    // 30 s after its last byte went out, the service closes its end.
    wait_for(
        Duration::from_secs(60),
        "the stalled connection to close",
        || (!service_end_open(svc.addr, client)).then_some(()),
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(29),
        "closed after {waited:?}, before 30 s"
    );
    let error = writing.join().unwrap();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    assert_eq!(get(svc.addr, "/metrics").status, 200);
}
