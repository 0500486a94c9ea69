//! Streams against a real engine ticking every 10 ms, so a client that stops reading fills
//! its socket within seconds: it is skipped ahead with a `lag` event once it reads again,
//! closed when it takes nothing for the stall limit, and never holds up anyone else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::{AppState, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const LIVE: Duration = Duration::from_millis(10);

/// The server's end of `client`'s connection in the kernel's table (/proc/net/tcp): its
/// send queue (bytes written and not yet taken by the client) and whether it is still
/// established (not closed by the server); `None` once it is gone.
fn server_end(server: SocketAddr, client: SocketAddr) -> Option<(u64, bool)> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => panic!("an IPv4 loopback test"),
    };
    let (local, remote) = (hex(server), hex(client));
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .find_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            (cols[1] == local && cols[2] == remote).then(|| {
                let (tx, _rx) = cols[4].split_once(':').unwrap();
                (u64::from_str_radix(tx, 16).unwrap(), cols[3] == "01")
            })
        })
}

/// A client with a small receive buffer that has sent its request and read nothing.
async fn stalled(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(b"GET /metrics/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    s
}

/// Waits until the server's writes to `client` back up: its send queue holds data and has
/// stopped growing (its buffer is full, so hyper has stopped asking the stream for more).
async fn backed_up(server: SocketAddr, client: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the server's writes never backed up"
        );
        let (now, _) = server_end(server, client).expect("the connection is open");
        if now > 0 && now == last {
            return;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_fell_behind_is_skipped_ahead_with_lag_and_one_that_takes_nothing_is_closed()
{
    let engine = sampler::Engine::new(
        probes::HostProbes::new(&probes::Roots::default(), std::path::Path::new("/")).into(),
        Box::new(gpu::NoGpu::new("no GPU")),
        LIVE,
    )
    .unwrap();
    let ring = Arc::new(sampler::Ring::new(LIVE, Duration::from_millis(100)));
    let (publish, latest) = watch::channel(None);
    let running = sampler::start(
        engine,
        api::Encoder::default(),
        LIVE,
        publish,
        sampler::Outputs {
            persist: None,
            ring: Some(ring.clone()),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stop_rx) = watch::channel(false);
    let state = AppState::new(latest.clone(), None, LIVE, "test-host").with_history(ring, None);
    let limits = Limits {
        write_stall_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    tokio::spawn(api::serve(listener, state, limits, async move {
        let _ = stop_rx.changed().await;
    }));

    let mut behind = stalled(addr).await;
    let never = stalled(addr).await;
    let (behind_end, never_end) = (behind.local_addr().unwrap(), never.local_addr().unwrap());
    backed_up(addr, behind_end).await;
    backed_up(addr, never_end).await;

    // Reading again: what was in the buffers, then a `lag` saying how many samples were
    // skipped, then the freshest and on from there.
    let mut text = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    let lag_at = loop {
        assert!(
            Instant::now() < deadline,
            "no lag event in {} bytes",
            text.len()
        );
        let n = tokio::time::timeout(Duration::from_secs(5), behind.read(&mut buf))
            .await
            .expect("the stream goes on")
            .unwrap();
        assert!(n > 0, "the stream ended");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(at) = text.find("event: lag\ndata: {\"dropped\":") {
            break at;
        }
    };
    let after_lag = &text[lag_at..];
    let dropped: u64 = after_lag["event: lag\ndata: {\"dropped\":".len()..]
        .split('}')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        dropped > 8,
        "more than the catch-up allowance was skipped: {dropped}"
    );
    // Read on until a few samples follow the lag: they come in order, one per sample.
    loop {
        let ids: Vec<i64> = text[lag_at..]
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .filter_map(|id| id.parse().ok())
            .collect();
        if ids.len() >= 5 {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
            break;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), behind.read(&mut buf))
            .await
            .expect("samples after the lag")
            .unwrap();
        assert!(n > 0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }

    // The one that never reads is closed once it has taken nothing for the stall limit;
    // meanwhile the sampler kept its schedule.
    let stalled_since = Instant::now();
    let deadline = stalled_since + Duration::from_secs(20);
    while server_end(addr, never_end).is_some_and(|(_, established)| established) {
        assert!(
            Instant::now() < deadline,
            "the stalled stream was never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let age = latest.borrow().as_ref().map(|p| p.taken.elapsed()).unwrap();
    assert!(
        age < Duration::from_millis(500),
        "the sampler fell behind: {age:?}"
    );
    let mut other = TcpStream::connect(addr).await.unwrap();
    other
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    other.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    drop(never);
    let _ = stop.send(true);
    running.stop();
}
