//! `/metrics/stream` (SPEC §7) from a client's side: the headers and first bytes, one event
//! per sample, heartbeats, resuming without gaps or duplicates, the cap, a stalled client
//! beside a fast one, a clean end on SIGTERM, and a thousand clients at once.

use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::harness::{Service, get, wait_for};
use crate::sse::{Block, Sse};

const STREAM: &str = "/metrics/stream";

fn samples(s: &mut Sse, n: usize) -> Vec<Block> {
    (0..n)
        .map(|i| {
            s.next_sample(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("sample {i} of {n} did not come"))
        })
        .collect()
}

fn ids(blocks: &[Block]) -> Vec<i64> {
    blocks.iter().filter_map(|b| b.id).collect()
}

#[test]
fn a_client_gets_the_headers_the_retry_and_the_latest_sample_at_once_then_heartbeats() {
    // Samples every 20 s: anything that arrives within a second did not wait for one.
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "20"),
        ("METRICS_INTERVAL_PERSIST", "20"),
    ])
    .ready();
    let metrics = get(svc.addr, "/metrics").text();
    let opened = Instant::now();
    let mut s = Sse::open(svc.addr, STREAM, &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(s.status, 200);
    assert_eq!(
        s.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(s.header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(s.header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(s.header("content-encoding"), None, "never compressed");

    let first = s
        .next(Duration::from_secs(1))
        .expect("the retry line at once");
    assert_eq!(first.retry, Some(5000), "{first:?}");
    let sample = s
        .next(Duration::from_secs(1))
        .expect("the latest sample at once");
    assert!(opened.elapsed() < Duration::from_secs(2));
    assert!(
        sample.is_sample(),
        "{sample:?}: no event name, so onmessage gets it"
    );
    assert_eq!(
        sample.data.as_deref(),
        Some(metrics.as_str()),
        "exactly the /metrics JSON"
    );
    let stamp = sample.json()["timestamp"].as_str().unwrap().to_owned();
    let t = time::OffsetDateTime::parse(&stamp, &time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        sample.id,
        Some((t.unix_timestamp_nanos() / 1_000_000) as i64),
        "the id is the sample's time in Unix milliseconds"
    );

    // Nothing for 15 s (the next sample is 20 s away): a comment keeps proxies from
    // closing the connection.
    let quiet = Instant::now();
    let next = s.next(Duration::from_secs(18)).expect("a heartbeat");
    assert_eq!(next.comment.as_deref(), Some("keep-alive"), "{next:?}");
    assert!(
        quiet.elapsed() >= Duration::from_secs(13),
        "{:?}",
        quiet.elapsed()
    );
    let after = s
        .next_sample(Duration::from_secs(10))
        .expect("the next sample");
    assert!(after.id > sample.id);
}

#[test]
fn a_resumed_client_gets_each_sample_once_and_in_order() {
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_INTERVAL_PERSIST", "1"),
    ])
    .ready();
    // A reference client connected all along.
    let mut reference = Sse::open(svc.addr, STREAM, &[]);
    let mut seen = samples(&mut reference, 1);

    let mut a = Sse::open(svc.addr, STREAM, &[]);
    let before = samples(&mut a, 3);
    drop(a);
    // Samples go on while it is away.
    seen.extend(samples(&mut reference, 8));
    let last = before.last().unwrap().id.unwrap();
    let mut resumed = Sse::open(svc.addr, STREAM, &[("Last-Event-ID", &last.to_string())]);
    assert_eq!(
        resumed.next(Duration::from_secs(2)).unwrap().retry,
        Some(5000)
    );
    let newest = seen.last().unwrap().id.unwrap();
    let mut after = Vec::new();
    while after
        .last()
        .and_then(|b: &Block| b.id)
        .is_none_or(|id| id < newest)
    {
        let b = resumed
            .next(Duration::from_secs(10))
            .expect("more after the resume");
        assert!(
            b.is_sample(),
            "no reset or lag for a resume memory covers: {b:?}"
        );
        after.push(b);
    }
    let mut got = ids(&before);
    got.extend(ids(&after));
    let reference_ids = ids(&seen);
    let span: Vec<i64> = reference_ids
        .iter()
        .copied()
        .filter(|id| *id >= got[0] && *id <= newest)
        .collect();
    assert_eq!(
        got, span,
        "before and after the resume: each sample once, in order"
    );

    // The query parameter, for clients that cannot set headers; the header wins.
    let mut by_query = Sse::open(svc.addr, &format!("{STREAM}?last_event_id={last}"), &[]);
    by_query.next(Duration::from_secs(2));
    assert_eq!(
        by_query.next_sample(Duration::from_secs(2)).unwrap().id,
        after.first().unwrap().id
    );
    let mut both = Sse::open(
        svc.addr,
        &format!("{STREAM}?last_event_id=1"),
        &[("Last-Event-ID", &last.to_string())],
    );
    both.next(Duration::from_secs(2));
    let b = both.next(Duration::from_secs(2)).unwrap();
    assert!(b.is_sample() && b.id == after.first().unwrap().id, "{b:?}");

    let bad = get(svc.addr, &format!("{STREAM}?last_event_id=yesterday"));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("last_event_id")
    );
}

#[test]
fn a_resume_older_than_memory_says_reset_then_sends_everything_held_in_order() {
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_INTERVAL_PERSIST", "1"),
    ])
    .ready();
    let mut reference = Sse::open(svc.addr, STREAM, &[]);
    let seen = samples(&mut reference, 4);
    let mut s = Sse::open(svc.addr, STREAM, &[("Last-Event-ID", "1000")]);
    assert_eq!(s.next(Duration::from_secs(2)).unwrap().retry, Some(5000));
    let reset = s.next(Duration::from_secs(2)).unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    let oldest = reset.json()["oldest"].as_i64().unwrap();
    let held = samples(&mut s, seen.len());
    assert_eq!(held[0].id, Some(oldest), "from the oldest sample held");
    let held_ids = ids(&held);
    assert!(held_ids.windows(2).all(|w| w[0] < w[1]), "{held_ids:?}");
    assert!(held_ids.contains(&seen[0].id.unwrap()));
}

#[test]
fn one_stream_over_the_cap_gets_503_and_a_closed_client_frees_its_slot_within_an_interval() {
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "1"),
        ("METRICS_INTERVAL_PERSIST", "1"),
        ("METRICS_MAX_STREAMS", "2"),
    ])
    .ready();
    let mut a = Sse::open(svc.addr, STREAM, &[]);
    let mut b = Sse::open(svc.addr, STREAM, &[]);
    samples(&mut a, 1);
    samples(&mut b, 1);
    let h = svc.json("/health");
    assert_eq!(
        h["streams"],
        serde_json::json!({"open": 2, "max": 2}),
        "{h}"
    );

    let refused = get(svc.addr, STREAM);
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("METRICS_MAX_STREAMS")
    );

    // HEAD gives the headers only, and takes no slot.
    let head = Sse::open_with(svc.addr, "HEAD", STREAM, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type").as_deref(),
        Some("text/event-stream")
    );

    drop(a);
    let closed = Instant::now();
    wait_for(Duration::from_millis(1900), "the slot freed", || {
        (svc.json("/health")["streams"]["open"] == 1).then_some(())
    });
    let took = closed.elapsed();
    let mut c = Sse::open(svc.addr, STREAM, &[]);
    assert_eq!(c.status, 200, "freed after {took:?}");
    samples(&mut c, 1);
}

#[test]
fn a_stalled_client_slows_neither_the_sampler_nor_a_fast_client() {
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.1"),
        ("METRICS_INTERVAL_PERSIST", "1"),
    ])
    .ready();
    // Connected, and never reads a byte.
    let stalled = Sse::open(svc.addr, STREAM, &[]);
    let mut fast = Sse::open(svc.addr, STREAM, &[]);
    let seq_before = svc.json("/health")["sample_seq"].as_u64().unwrap();
    let got = samples(&mut fast, 30);
    let seq_after = svc.json("/health")["sample_seq"].as_u64().unwrap();
    let got_ids = ids(&got);
    assert!(got_ids.windows(2).all(|w| w[0] < w[1]));
    assert!(
        got.len() as u64 + 2 >= seq_after - seq_before,
        "the fast client got every sample taken meanwhile: {} of {}",
        got.len(),
        seq_after - seq_before
    );
    // The sampler kept its schedule: 30 samples in about 3 s.
    let span = got_ids.last().unwrap() - got_ids[0];
    assert!(
        (2_500..=4_500).contains(&span),
        "29 intervals took {span} ms"
    );
    let h = svc.json("/health");
    assert!(h["last_sample_age_seconds"].as_f64().unwrap() < 0.5, "{h}");
    drop(stalled);
}

#[test]
fn sigterm_ends_every_stream_cleanly_and_the_service_exits_0() {
    let mut svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.5"),
        ("METRICS_INTERVAL_PERSIST", "1"),
    ])
    .ready();
    let mut streams: Vec<Sse> = (0..3).map(|_| Sse::open(svc.addr, STREAM, &[])).collect();
    for s in &mut streams {
        samples(s, 1);
    }
    svc.signal(Signal::TERM);
    for (i, s) in streams.iter_mut().enumerate() {
        assert!(
            s.ends_cleanly(Duration::from_secs(5)),
            "stream {i} ended without its last chunk"
        );
    }
    let status = svc.wait_exit(Duration::from_secs(6));
    assert_eq!(status.code(), Some(0), "{}", svc.log());
}

#[test]
fn a_thousand_clients_each_receive_the_next_sample() {
    crate::harness::allow_fds(4096);
    const CLIENTS: usize = 1000;
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "1"),
        ("METRICS_INTERVAL_PERSIST", "1"),
        ("METRICS_MAX_STREAMS", "1000"),
    ])
    .ready();
    let addr = svc.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (connected_tx, connected_rx) = std::sync::mpsc::channel();
    // Every client holds its connection until all were counted.
    let (release, released) = tokio::sync::watch::channel(false);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let connected = connected_tx.clone();
            let mut released = released.clone();
            runtime.spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
                sock.write_all(b"GET /metrics/stream HTTP/1.1\r\nHost: t\r\n\r\n")
                    .await
                    .unwrap();
                let mut text = String::new();
                let mut buf = [0u8; 4096];
                let mut told = false;
                // Ids in order of arrival, until the second one (the next sample); only
                // whole lines count.
                loop {
                    let n = sock.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed early: {text}");
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
                    let ids: Vec<i64> = whole
                        .lines()
                        .filter_map(|l| l.strip_prefix("id: "))
                        .map(|id| id.trim().parse().unwrap())
                        .collect();
                    if !ids.is_empty() && !told {
                        connected.send(()).unwrap();
                        told = true;
                    }
                    if ids.len() >= 2 {
                        let _ = released.wait_for(|r| *r).await;
                        return (ids[0], ids[1]);
                    }
                }
            })
        })
        .collect();
    for _ in 0..CLIENTS {
        connected_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every client gets its first sample");
    }
    let open = svc.json("/health")["streams"]["open"].as_u64().unwrap();
    assert_eq!(open, CLIENTS as u64);
    release.send_replace(true);
    let pairs = runtime.block_on(async {
        let mut pairs = Vec::new();
        for c in clients {
            pairs.push(
                tokio::time::timeout(Duration::from_secs(20), c)
                    .await
                    .expect("the next sample in time")
                    .unwrap(),
            );
        }
        pairs
    });
    assert!(pairs.iter().all(|(first, next)| next > first));
}

#[test]
fn a_stream_request_too_big_for_the_first_read_is_served_all_the_same() {
    // Past the first read's 4 KiB, the request goes to hyper instead of the direct path:
    // the same answer, the same events.
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.3"),
        ("METRICS_INTERVAL_PERSIST", "1"),
    ])
    .ready();
    let padding = "a".repeat(6000);
    let mut s = Sse::open(svc.addr, STREAM, &[("X-Padding", &padding)]);
    assert_eq!(s.status, 200);
    assert_eq!(
        s.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(s.header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(s.next(Duration::from_secs(2)).unwrap().retry, Some(5000));
    let got = samples(&mut s, 3);
    let got_ids = ids(&got);
    assert!(got_ids.windows(2).all(|w| w[0] < w[1]), "{got_ids:?}");
    assert_eq!(svc.json("/health")["streams"]["open"], 1);
}

#[test]
fn after_a_stall_samples_go_on_at_the_interval_never_two_at_once() {
    // A suspended VM or SIGSTOP leaves both queued ticks overdue; running both back to
    // back would repeat an id and measure a millisecond of CPU (a made-up 100 %).
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.2")]).ready();
    let mut s = Sse::open(svc.addr, STREAM, &[]);
    let before = samples(&mut s, 3);
    svc.signal(Signal::STOP);
    // The stall itself: several intervals with the process stopped.
    std::thread::sleep(Duration::from_millis(1500));
    svc.signal(Signal::CONT);
    let after = samples(&mut s, 8);
    let all = ids(&[before, after].concat());
    for pair in all.windows(2) {
        assert!(
            pair[1] - pair[0] >= 100,
            "samples {} ms apart (ids {all:?})",
            pair[1] - pair[0]
        );
    }
    let log = svc.log();
    assert!(!log.contains("no CPU time elapsed"), "{log}");
}
