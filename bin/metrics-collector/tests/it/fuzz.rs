//! The HTTP fuzzer (`testkit::fuzz`) against the real binary on loopback: seeded hostile
//! requests over raw TCP, with a watcher asking `GET /metrics` throughout.
//!
//! A bounded run from a fixed seed; `METRICS_FUZZ_CASES`, `METRICS_FUZZ_SEED` and
//! `METRICS_FUZZ_CASE` (replay one case) override it. `cargo xtask bench fuzz` runs the same
//! cases, many more, against a release build.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use testkit::fuzz::{self, CI_SEED, Case, End, Ended, Plan, Step, WATCH_BOUND};

use crate::harness::{Service, wait_for};

/// Cases CI plays: a few seconds on a 2 vCPU machine.
const CI_CASES: u64 = 3000;

/// The service as the fuzzer meets it: a short interval (streams get events while the
/// fuzzer runs) and four stream slots, so SPEC §7's cap and its 503 are met too.
fn service() -> Service {
    Service::start(&[("METRICS_INTERVAL_LIVE", "1"), ("METRICS_MAX_STREAMS", "4")]).ready()
}

#[test]
fn hostile_requests_get_well_formed_answers_never_a_5xx_and_metrics_stays_fast() {
    let plan = Plan::from_env(CI_SEED, CI_CASES).unwrap();
    let mut svc = service();
    let pid = svc.pid();
    let report = fuzz::run(svc.addr, &plan);
    let summary = report.summary();
    eprintln!("{summary}");
    assert!(
        svc.is_running(),
        "the service (pid {pid}) died during the run\n{summary}\n{}",
        svc.log()
    );
    assert_eq!(svc.pid(), pid);
    assert!(
        !svc.log().contains("panicked"),
        "the service panicked:\n{}",
        svc.log()
    );
    assert!(
        report.problems.is_empty() && report.watch.failures.is_empty(),
        "{summary}\n{}",
        report.failures(20)
    );
    assert!(
        !report.watch.latencies.is_empty(),
        "the watcher asked only {} times",
        report.watch.latencies.len()
    );
    assert!(
        report.watch.max() <= WATCH_BOUND,
        "GET /metrics took up to {:?}",
        report.watch.max()
    );
}

// --- what the fuzzer found, each a named case --------------------------------------------

/// A hand-written case: these bytes, then what `end` says.
fn named(family: &'static str, steps: Vec<Step>, methods: &[&str], end: End) -> Case {
    Case {
        seed: 0,
        index: 0,
        family,
        steps,
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        expect: None,
        end,
    }
}

#[test]
fn a_whole_request_then_a_half_close_still_gets_its_answer() {
    // Found by the fuzzer (seed 0x13f022edc0ffee13, cases 85, 99, 159, 249, 406, 493): now
    // and then the server read the client's EOF before it had written the answer and
    // closed unanswered. Alone it seldom happens; four clients at once meet it within a
    // few hundred requests.
    let svc = service();
    let requests = [
        ("GET", "/metrics", 200),
        ("GET", "/health", 200),
        ("HEAD", "/", 200),
        ("GET", "/metrics/history?start=-60", 200),
        ("GET", "/assets/nope.js", 404),
    ];
    let addr = svc.addr;
    let clients: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for i in 0..100 {
                    let (method, target, due) = requests[(i + t) % requests.len()];
                    let close = if i % 2 == 0 {
                        "Connection: close\r\n"
                    } else {
                        ""
                    };
                    let request = format!("{method} {target} HTTP/1.1\r\nHost: t\r\n{close}\r\n");
                    let step = if i % 4 < 2 {
                        vec![Step::SendAndFin(request.into_bytes())]
                    } else {
                        vec![Step::Send(request.into_bytes()), Step::ShutdownWrite]
                    };
                    let case = named("half-close", step, &[method], End::UntilClose);
                    let outcome = fuzz::execute(addr, &case, Duration::from_secs(5));
                    let statuses: Vec<u16> = outcome.answers.iter().map(|a| a.status).collect();
                    if statuses != [due]
                        || !outcome.problems.is_empty()
                        || outcome.ended != Ended::Closed
                    {
                        failures.push(format!(
                            "{}: {statuses:?} {:?} {:?}",
                            case.describe(),
                            outcome.ended,
                            outcome.problems
                        ));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 400 unanswered:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

/// Reads one answer with a `Content-Length` off a keep-alive connection.
fn read_answer(s: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return (status, bytes[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_stream_on_a_reused_connection_frees_its_slot_within_an_interval_of_its_client_closing() {
    // What the half-close fix must not cost: a stream served after another request on the
    // same connection (as a browser's EventSource often is) goes through hyper, which reads
    // nothing while a body streams; the client's FIN still ends it at the next event.
    let svc =
        Service::start(&[("METRICS_INTERVAL_LIVE", "1"), ("METRICS_MAX_STREAMS", "1")]).ready();
    let open_streams = || svc.json("/health")["streams"]["open"].as_u64().unwrap();
    let mut s = TcpStream::connect(svc.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut s).0, 200);
    s.write_all(b"GET /metrics/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\nid: ") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert_eq!(open_streams(), 1);
    drop(s);
    let closed = Instant::now();
    wait_for(Duration::from_millis(1900), "the slot freed", || {
        (open_streams() == 0).then_some(())
    });
    eprintln!("freed {:?} after the client closed", closed.elapsed());
}

#[test]
fn a_stream_whose_client_half_closes_right_after_asking_still_gets_its_first_events() {
    // Found by the fuzzer: once a served stream's client FIN ended it, an HTTP/1.0 stream
    // request (served by hyper) and a half-close got no answer at all (seed 0x7, cases
    // 10640, 18631, 47097); on the direct path such a client got the head alone half the
    // time (seed 0x13f022edc0ffee13, cases 279, 2270, 6342). The retry line and the latest
    // sample go out first on both paths. (Slots enough for every try: a closed client's
    // slot is freed at the next sample, a second away.)
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "1"),
        ("METRICS_MAX_STREAMS", "64"),
    ])
    .ready();
    let whole = |version: &str| {
        vec![Step::SendAndFin(
            format!("GET /metrics/stream {version}\r\nHost: t\r\n\r\n").into_bytes(),
        )]
    };
    let split = vec![
        Step::Send(b"GET /metrics/str".to_vec()),
        Step::Pause(Duration::from_millis(20)),
        Step::SendAndFin(b"eam HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
    ];
    let variants = [
        ("HTTP/1.0, hyper", whole("HTTP/1.0")),
        ("HTTP/1.1 in two writes, hyper", split),
        ("HTTP/1.1, direct", whole("HTTP/1.1")),
    ];
    for (what, steps) in variants {
        // The direct path's miss was a coin toss: ten tries.
        for _ in 0..10 {
            let case = named("stream", steps.clone(), &["GET"], End::UntilClose);
            let outcome = fuzz::execute(svc.addr, &case, Duration::from_secs(5));
            assert!(
                outcome.problems.is_empty(),
                "{what}: {:?}",
                outcome.problems
            );
            assert_eq!(
                outcome.answers,
                [fuzz::Answer {
                    status: 200,
                    stream: true
                }],
                "{what}"
            );
        }
    }
}
