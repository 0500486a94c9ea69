//! `/metrics/history` (SPEC §6) from a client's side: buckets checked against the samples
//! the service took (memory figures from a fake procfs the test controls), every 400, and
//! history kept across a restart and answered from memory while PostgreSQL is stopped.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime};

use rustix::process::Signal;

use crate::harness::{Service, TempDir, get, request, wait_for};
use crate::sse::Sse;

/// A procfs with the two files the probes read; the memory figures are the test's.
struct FakeProc {
    dir: TempDir,
    sys: TempDir,
}

impl FakeProc {
    fn new() -> Self {
        let dir = TempDir::new("procfs");
        std::fs::write(
            dir.0.join("stat"),
            "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n",
        )
        .unwrap();
        let p = Self {
            dir,
            sys: TempDir::new("sysfs"),
        };
        p.set_ram(10.0);
        p
    }

    /// Memory in use, in percent with one decimal. Written in place at a fixed width, as
    /// the kernel's file changes: the service keeps it open and reads it again.
    fn set_ram(&self, percent: f64) {
        let used_kb = (percent * 10_000.0).round() as u64;
        let text = format!(
            "MemTotal:        1000000 kB\nMemFree:          {:>7} kB\nMemAvailable:     {:>7} kB\n",
            1_000_000 - used_kb,
            1_000_000 - used_kb
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(self.dir.0.join("meminfo"))
            .unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("METRICS_PROCFS", self.dir.0.display().to_string()),
            ("METRICS_SYSFS", self.sys.0.display().to_string()),
        ]
    }
}

fn history(svc: &Service, query: &str) -> serde_json::Value {
    svc.json(&format!("/metrics/history?{query}"))
}

fn column(v: &serde_json::Value, series: &str, stat: &str) -> Vec<Option<f64>> {
    v["series"][series][stat]
        .as_array()
        .unwrap_or_else(|| panic!("no {series}.{stat} in {v}"))
        .iter()
        .map(|x| x.as_f64())
        .collect()
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Checks every bucket of `answer` whose start is in `[from_ms, to_ms)` against the
/// samples (ms → ram %) that fell in it: mean within rounding, extremes exact, gaps null.
fn check_buckets(
    answer: &serde_json::Value,
    samples: &BTreeMap<i64, f64>,
    step_ms: i64,
    from_ms: i64,
    to_ms: i64,
) -> usize {
    let stamps = answer["timestamps"].as_array().unwrap();
    let (avg, min, max) = (
        column(answer, "ram", "avg"),
        column(answer, "ram", "min"),
        column(answer, "ram", "max"),
    );
    assert!(avg.len() == stamps.len() && min.len() == stamps.len() && max.len() == stamps.len());
    let mut checked = 0;
    for (i, stamp) in stamps.iter().enumerate() {
        let start = parse_ms(stamp.as_str().unwrap());
        if start < from_ms || start + step_ms > to_ms {
            continue;
        }
        let inside: Vec<f64> = samples
            .range(start..start + step_ms)
            .map(|(_, v)| *v)
            .collect();
        if inside.is_empty() {
            assert_eq!(
                (avg[i], min[i], max[i]),
                (None, None, None),
                "bucket {stamp}: a gap is null"
            );
            continue;
        }
        let mean = inside.iter().sum::<f64>() / inside.len() as f64;
        let got =
            avg[i].unwrap_or_else(|| panic!("bucket {stamp} has samples {inside:?}: {answer}"));
        assert!(
            (got - round1(mean)).abs() <= 0.05 + 1e-9,
            "bucket {stamp}: avg {got}, samples {inside:?}"
        );
        let lo = inside.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = inside.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(
            (min[i], max[i]),
            (Some(lo), Some(hi)),
            "bucket {stamp}: samples {inside:?}"
        );
        checked += 1;
    }
    checked
}

fn parse_ms(stamp: &str) -> i64 {
    let t =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn buckets_are_the_mean_and_extremes_of_the_samples_taken_and_gaps_are_null() {
    let proc = FakeProc::new();
    let mut env: Vec<(&str, String)> = proc.env();
    env.extend([
        ("METRICS_INTERVAL_LIVE", "0.2".into()),
        ("METRICS_INTERVAL_PERSIST", "1".into()),
        ("METRICS_GPU_BACKEND", "none".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let svc = Service::start(&env).ready();

    // Every sample, as the stream delivers them, while the memory figure moves.
    let mut stream = Sse::open(svc.addr, "/metrics/stream", &[]);
    let mut samples = BTreeMap::new();
    let values = [10.0, 25.5, 40.0, 12.3, 77.7, 33.3, 90.1, 5.0, 61.9];
    // At least 30 samples spanning 8 s (four whole 2 s buckets), however slowly a loaded
    // machine delivers them.
    let spans = |s: &BTreeMap<i64, f64>| match (s.keys().next(), s.keys().next_back()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    let mut k = 0;
    while k < 30 || spans(&samples) < 8_000 {
        assert!(k < 300, "300 samples and still no 8 s span: {samples:?}");
        if k % 2 == 0 {
            proc.set_ram(values[(k / 2) % values.len()]);
        }
        let Some(b) = stream.next_sample(Duration::from_secs(10)) else {
            // Whether the sampler stalled or only the stream did: /health says how old the
            // latest sample is, the threads' states say where each one waits.
            let threads = thread_states(svc.pid());
            let health = health_within(svc.addr, Duration::from_secs(2));
            panic!(
                "no sample within 10 s after {k} (stream ended: {}); /health: {}\nthreads:\n{threads}log:\n{}",
                stream.ended(),
                health,
                svc.log()
            );
        };
        if let Some(ram) = b.json()["ram"].as_f64() {
            samples.insert(b.id.unwrap(), ram);
        }
        k += 1;
    }
    let first = *samples.keys().next().unwrap();
    let last = *samples.keys().next_back().unwrap();
    // Whole buckets only: the stream began mid-bucket, and samples go on after the last
    // one read.
    let (from, to) = ((first / 2000 + 1) * 2000, last / 2000 * 2000);
    let range = format!(
        "start={}&end={}",
        from as f64 / 1000.0,
        last as f64 / 1000.0 + 0.001
    );

    // At the persist step: one window per bucket.
    let at_persist = history(&svc, &format!("{range}&step=1&metrics=ram,gpu"));
    assert_eq!(at_persist["source"], "memory");
    assert_eq!(at_persist["partial"], false);
    assert_eq!(at_persist["step_seconds"], 1.0);
    assert!(
        check_buckets(&at_persist, &samples, 1000, from, to) >= 3,
        "{at_persist}"
    );
    assert!(
        column(&at_persist, "gpu", "avg")
            .iter()
            .all(Option::is_none),
        "no GPU: null, never 0"
    );
    // Coarser: two windows per bucket.
    let coarse = history(&svc, &format!("{range}&step=2&metrics=ram"));
    assert!(
        check_buckets(&coarse, &samples, 2000, from, to) >= 2,
        "{coarse}"
    );
    // Finer than a window: from the live samples.
    let fine = history(&svc, &format!("{range}&step=0.4&metrics=ram"));
    assert_eq!(fine["source"], "memory");
    assert_eq!(fine["partial"], false, "every sample of this run is held");
    assert!(check_buckets(&fine, &samples, 400, from, to) >= 8, "{fine}");
    // Finer than a window from before this run: nothing anywhere has it.
    let before_run = history(&svc, "start=-3000&step=0.4&metrics=ram");
    assert_eq!(before_run["partial"], true, "{before_run}");

    // The answer's frame: the requested times normalised to UTC, one entry per bucket
    // from the one holding start to the one holding end.
    let framed = history(
        &svc,
        "start=2026-12-01T11:00:10%2B01:00&end=2026-12-01T10:01:00Z&step=30&metrics=cpu",
    );
    assert_eq!(framed["start"], "2026-12-01T10:00:10Z");
    assert_eq!(framed["end"], "2026-12-01T10:01:00Z");
    assert_eq!(
        framed["timestamps"],
        serde_json::json!(["2026-12-01T10:00:00Z", "2026-12-01T10:00:30Z"])
    );
    assert_eq!(
        framed["partial"], true,
        "before this run, and no database: {framed}"
    );
}

#[test]
fn every_bad_query_is_a_400_with_a_json_error_and_unknown_parameters_are_ignored() {
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "1"),
        ("METRICS_INTERVAL_PERSIST", "30"),
    ])
    .ready();
    for (query, says) in [
        ("start=-60&end=-120", "must be after start"),
        ("step=0", "more than 0"),
        ("step=0.5", "below the live interval"),
        ("start=-86400&step=1", "limit is 11000"),
        ("metrics=cpu,swap", "unknown metric"),
        ("start=yesterday", "not a time"),
        ("end=12:00", "not a time"),
    ] {
        let r = get(svc.addr, &format!("/metrics/history?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let e = r.json()["error"].as_str().unwrap().to_owned();
        assert!(e.contains(says), "{query}: {e}");
    }
    let v = history(&svc, "_=1733050000");
    assert_eq!(
        v["step_seconds"], 30.0,
        "the default: the persist step for the last hour"
    );
    assert_eq!(
        v["timestamps"].as_array().unwrap().len(),
        v["series"]["cpu"]["avg"].as_array().unwrap().len()
    );
    let head = request(
        svc.addr,
        "HEAD /metrics/history HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

/// A PostgreSQL of this test's own, which it stops and starts.
fn cluster(tag: &str) -> devpg::Cluster {
    devpg::Cluster::start(tag).unwrap_or_else(|e| panic!("a PostgreSQL for this test: {e}"))
}

fn sql(port: u16, statements: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        client.batch_execute(statements).await.unwrap();
    });
}

#[test]
fn a_restart_keeps_history_and_memory_answers_while_postgres_is_stopped() {
    let mut pg = cluster("history");
    let port = pg.port().to_string();
    let env = [
        ("POSTGRES_HOST", "127.0.0.1"),
        ("POSTGRES_PORT", port.as_str()),
        ("POSTGRES_USER", "postgres"),
        ("POSTGRES_DB", "postgres"),
        ("METRICS_HOST", "history-host"),
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_INTERVAL_PERSIST", "1"),
    ];
    let dir = TempDir::new("restart");
    let mut first = Service::start_in(&dir.0, &env).ready();
    let started = now_ms();
    wait_for(Duration::from_secs(20), "five windows written", || {
        let h = first.json("/health");
        (h["database"]["state"] == "connected"
            && history(&first, "start=-10&step=1&metrics=cpu,ram")["series"]["ram"]["avg"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| !v.is_null())
                .count()
                >= 6)
            .then_some(())
    });
    let range = format!(
        "start={}&end={}&step=1&metrics=ram,disk",
        started as f64 / 1000.0 - 1.0,
        now_ms() as f64 / 1000.0
    );
    let before = history(&first, &range);
    first.signal(Signal::TERM);
    assert_eq!(first.wait_exit(Duration::from_secs(8)).code(), Some(0));
    let stopped = now_ms();

    let second = Service::start_in(&dir.0, &env).ready();
    wait_for(Duration::from_secs(20), "the ring refilled", || {
        (second.json("/health")["ring"]["refilled"] == true).then_some(())
    });
    let after = history(&second, &range);
    assert_eq!(
        after["source"], "memory",
        "the last day is memory's: {after}"
    );
    assert_eq!(after["partial"], false);
    assert_eq!(after["timestamps"], before["timestamps"]);
    // Every bucket the first run had closed is the same after the restart.
    let stamps = before["timestamps"].as_array().unwrap();
    let mut same = 0;
    for series in ["ram", "disk"] {
        for stat in ["avg", "min", "max"] {
            let (b, a) = (column(&before, series, stat), column(&after, series, stat));
            for (i, stamp) in stamps.iter().enumerate() {
                if parse_ms(stamp.as_str().unwrap()) + 1000 < stopped - 1000 && b[i].is_some() {
                    assert_eq!(a[i], b[i], "{series}.{stat} at {stamp}");
                    same += 1;
                }
            }
        }
    }
    assert!(same >= 6 * 3, "{same} values compared");

    // The database goes away: the same range is answered from memory, at once.
    pg.stop().unwrap();
    let during = history(&second, &range);
    assert_eq!(during["source"], "memory");
    assert_eq!(during["partial"], false);
    assert_eq!(
        during["series"]["ram"]["avg"].as_array().unwrap()[..5],
        after["series"]["ram"]["avg"].as_array().unwrap()[..5]
    );
    // An older range needs it: memory says what it has, and that it is partial.
    let old = history(&second, "start=-259200&end=-172800&step=3600&metrics=cpu");
    assert_eq!(
        (old["source"].as_str(), old["partial"].as_bool()),
        (Some("memory"), Some(true)),
        "{old}"
    );

    // Back, with rows of two and a half days ago (another run's, this host's).
    pg.restart().unwrap();
    sql(
        pg.port(),
        "INSERT INTO metrics_cpu (host, timestamp, value, value_min, value_max) VALUES
           ('history-host', date_trunc('hour', now() - interval '60 hours') + interval '10 minutes', 20, 10, 30),
           ('history-host', date_trunc('hour', now() - interval '60 hours') + interval '11 minutes', 40, 35, 45),
           ('other-host', date_trunc('hour', now() - interval '60 hours') + interval '10 minutes', 99, 99, 99);
         INSERT INTO metrics_cpu (host, timestamp, value) VALUES
           ('history-host', date_trunc('hour', now() - interval '30 hours') + interval '10 minutes', 70);",
    );
    let old = wait_for(
        Duration::from_secs(20),
        "the database answering again",
        || {
            let v = history(&second, "start=-259200&end=-172800&step=3600&metrics=cpu");
            (v["partial"] == false).then_some(v)
        },
    );
    assert_eq!(old["source"], "postgres");
    let values: Vec<(Option<f64>, Option<f64>, Option<f64>)> = (0..column(&old, "cpu", "avg")
        .len())
        .map(|i| {
            (
                column(&old, "cpu", "avg")[i],
                column(&old, "cpu", "min")[i],
                column(&old, "cpu", "max")[i],
            )
        })
        .filter(|v| v.0.is_some())
        .collect();
    assert_eq!(
        values,
        [(Some(30.0), Some(10.0), Some(45.0))],
        "this host's two windows, in one hour; {old}"
    );
    // A row from before the extremes were kept: its bucket's are not known.
    let older = history(&second, "start=-115200&end=-93600&step=3600&metrics=cpu");
    let avg: Vec<f64> = column(&older, "cpu", "avg").into_iter().flatten().collect();
    assert_eq!(avg, [70.0]);
    assert!(column(&older, "cpu", "min").iter().all(Option::is_none));
    // From then to now: both.
    let mixed = history(&second, "start=-259200&step=86400&metrics=cpu");
    assert_eq!(mixed["source"], "mixed", "{mixed}");
}

/// `/health`'s body, or why there was none within `timeout` (a stopped process answers
/// nothing).
fn health_within(addr: std::net::SocketAddr, timeout: Duration) -> String {
    use std::io::Read;
    let attempt = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    attempt().unwrap_or_else(|e| format!("no answer: {e}"))
}

/// Each thread of `pid`: its name, its state and the kernel function it sleeps in.
fn thread_states(pid: i32) -> String {
    let mut out = String::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
        let stat = read("stat");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        out.push_str(&format!(
            "  {} {} {} {}\n",
            task.file_name().to_string_lossy(),
            read("comm").trim(),
            state.unwrap_or("?"),
            read("wchan")
        ));
    }
    out
}
