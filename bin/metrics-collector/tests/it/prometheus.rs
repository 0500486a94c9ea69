//! SPEC §8 on the wire: `/metrics` negotiates on `Accept` (every header Prometheus 2.x and
//! 3.x send, and every consumer that must keep its JSON), the text body passes
//! `promtool check metrics`, the OpenMetrics body parses with an OpenMetrics parser
//! (Python `prometheus_client`), its numbers are the JSON's of the same sample, and a real
//! Prometheus server scrapes the collector.
//!
//! The tools are `$METRICS_TEST_PROMTOOL`, `$METRICS_TEST_PROMETHEUS` and
//! `$METRICS_TEST_PYTHON` (which `cargo xtask test` provides), else `promtool`,
//! `prometheus` and `python3` on `PATH`. Without them these tests fail, naming
//! `cargo xtask test`; they never pass silently.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Killed, Service, TempDir, get, python_with, request, tool, wait_for};

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const JSON: &str = "application/json";

/// Prometheus 2.42 (Debian 12), verbatim.
const PROMETHEUS_2_42: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// Prometheus 2.49 to 2.55.
const PROMETHEUS_2_49: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// Prometheus 3.x.
const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// Prometheus 3.x with `scrape_protocols: [PrometheusText0.0.4]`.
const PROMETHEUS_TEXT_ONLY: &str = "text/plain;version=0.0.4;q=0.6,*/*;q=0.5";
/// Prometheus before OpenMetrics 1.0.
const PROMETHEUS_OLD: &str =
    "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const CHROME: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

fn get_with(addr: SocketAddr, method: &str, path: &str, accept: Option<&str>) -> testkit::Response {
    let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
    request(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{accept}Connection: close\r\n\r\n"),
    )
}

#[test]
fn every_accept_gets_its_format_and_every_answer_varies_on_it() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("/metrics", Some(PROMETHEUS_2_42), OPENMETRICS),
        ("/metrics", Some(PROMETHEUS_2_49), OPENMETRICS),
        ("/metrics", Some(PROMETHEUS_3), OPENMETRICS),
        ("/metrics", Some(PROMETHEUS_TEXT_ONLY), TEXT),
        ("/metrics", Some(PROMETHEUS_OLD), TEXT),
        ("/metrics", Some("text/plain;version=0.0.4"), TEXT),
        (
            "/metrics",
            Some("application/openmetrics-text"),
            OPENMETRICS,
        ),
        ("/metrics", None, JSON),
        ("/metrics", Some("*/*"), JSON),
        ("/metrics", Some("application/json"), JSON),
        ("/metrics", Some("application/json, text/plain, */*"), JSON),
        ("/metrics", Some(CHROME), JSON),
        ("/metrics", Some("text/plain"), JSON),
        ("/metrics?_=1733050000", Some(PROMETHEUS_3), OPENMETRICS),
        ("/metrics/prometheus", None, TEXT),
        ("/metrics/prometheus", Some("application/json"), TEXT),
        ("/metrics/prometheus", Some(CHROME), TEXT),
        ("/metrics/prometheus", Some(PROMETHEUS_2_42), OPENMETRICS),
        ("/metrics/prometheus", Some(PROMETHEUS_3), OPENMETRICS),
        ("/metrics/prometheus", Some(PROMETHEUS_OLD), TEXT),
    ];
    for &(path, accept, want) in cases {
        for method in ["GET", "HEAD"] {
            let r = get_with(svc.addr, method, path, accept);
            let what = format!("{method} {path} with Accept {accept:?}");
            assert_eq!(r.status, 200, "{what}: {}", r.text());
            assert_eq!(r.header("content-type"), Some(want), "{what}");
            assert_eq!(r.header("vary"), Some("Accept"), "{what}");
            if method == "HEAD" {
                assert!(r.body.is_empty(), "{what}: a body");
            } else if want == JSON {
                // Exactly the seed's shape, whatever the Accept.
                let m = r.json();
                assert!(
                    m["timestamp"].is_string() && m["disk"]["total"].is_u64(),
                    "{m}"
                );
            } else {
                assert!(r.text().contains("# TYPE metrics_collector_"), "{what}");
                assert_eq!(r.text().ends_with("# EOF\n"), want == OPENMETRICS, "{what}");
            }
        }
    }
    // Errors on a negotiated path vary too.
    let r = get_with(svc.addr, "POST", "/metrics", Some(PROMETHEUS_3));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("vary"), Some("Accept"));
    assert_eq!(r.header("content-type"), Some(JSON));
    // Other paths do not negotiate.
    assert_eq!(
        get_with(svc.addr, "GET", "/health", Some(PROMETHEUS_3)).header("vary"),
        None
    );
}

/// `series value` lines of a text or OpenMetrics body, by series (name and labels).
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_text_body_passes_promtool_and_the_openmetrics_body_parses_as_openmetrics() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let text = get(svc.addr, "/metrics/prometheus").text();
    let promtool = tool(
        "METRICS_TEST_PROMTOOL",
        "promtool",
        "the Debian package prometheus",
    );
    let out = with_stdin(&promtool, &["check", "metrics"], &text);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\n--- body\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let openmetrics = get_with(svc.addr, "GET", "/metrics", Some(PROMETHEUS_3)).text();
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    let parsed = parse_openmetrics(&openmetrics);
    // The parser saw every series the body has, with the same values.
    let ours = samples(&openmetrics);
    assert_eq!(parsed.len(), ours.len(), "{parsed:?}\n{openmetrics}");
    for (name, labels, value) in &parsed {
        let mut key = name.clone();
        if !labels.is_empty() {
            // The parser's labels are sorted; ours come in the family's order.
            let (found, _) = ours
                .keys()
                .filter_map(|k| Some((k, k.strip_prefix(name.as_str())?.strip_prefix('{')?)))
                .find(|(_, l)| {
                    let mut l: Vec<&str> = l.trim_end_matches('}').split(',').collect();
                    l.sort_unstable();
                    let theirs: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                    l == theirs
                })
                .unwrap_or_else(|| panic!("{name}{labels:?} is not in the body"));
            key = found.clone();
        }
        // serde_json reads floats to within an ulp (no `float_roundtrip`).
        let got = ours[&key];
        assert!(
            close(got, *value, got.abs() * 1e-15),
            "{key}: {got} vs {value}"
        );
    }
    let names: Vec<&str> = parsed.iter().map(|(n, _, _)| n.as_str()).collect();
    for family in [
        "metrics_collector_cpu_usage_ratio",
        "metrics_collector_cpu_seconds_total",
        "metrics_collector_memory_total_bytes",
        "metrics_collector_filesystem_avail_bytes",
        "metrics_collector_build_info",
        "metrics_collector_samples_total",
        "metrics_collector_probe_up",
        "metrics_collector_probe_errors_total",
        "metrics_collector_streams",
    ] {
        assert!(names.contains(&family), "{family} missing: {names:?}");
    }
}

/// `program ARGS` with `input` on its standard input, to its end.
fn with_stdin(program: impl AsRef<std::ffi::OsStr>, args: &[&str], input: &str) -> Output {
    let program = program.as_ref();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// (name, labels, value) of every sample, as Python `prometheus_client`'s OpenMetrics
/// parser reads `body`; it raises on anything that is not OpenMetrics 1.0.
fn parse_openmetrics(body: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps([s.name, s.labels, s.value]))
"#;
    let python = python_with("prometheus_client");
    let out = with_stdin(&python, &["-c", SCRIPT], body);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the body: {stderr}\n{body}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The JSON and the OpenMetrics body of one sample: read JSON, OpenMetrics, JSON until
/// both JSON reads are the same sample, so the one between them is too.
fn one_sample(addr: SocketAddr) -> (Value, BTreeMap<String, f64>) {
    wait_for(
        Duration::from_secs(20),
        "two reads within one sample",
        || {
            let before = get(addr, "/metrics").json();
            let om = get_with(addr, "GET", "/metrics", Some(PROMETHEUS_3)).text();
            let after = get(addr, "/metrics").json();
            (before == after).then(|| (after, samples(&om)))
        },
    )
}

fn close(a: f64, b: f64, within: f64) -> bool {
    (a - b).abs() <= within
}

#[test]
fn the_numbers_are_the_json_of_the_same_sample() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "1")]).ready();
    let (json, prom) = one_sample(svc.addr);
    let value = |series: &str| -> f64 {
        *prom
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {prom:?}"))
    };
    let labelled = |family: &str| -> f64 {
        let mut found = prom
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{family}{{")));
        let (_, v) = found
            .next()
            .unwrap_or_else(|| panic!("no {family} in {prom:?}"));
        assert!(
            found.next().is_none(),
            "one filesystem, one series of {family}"
        );
        *v
    };
    // Percentages: the JSON has one decimal, the ratio the exact value.
    for (ratio, percent) in [
        (value("metrics_collector_cpu_usage_ratio"), &json["cpu"]),
        (value("metrics_collector_memory_usage_ratio"), &json["ram"]),
        (
            labelled("metrics_collector_filesystem_usage_ratio"),
            &json["disk"]["percent"],
        ),
    ] {
        let percent = percent.as_f64().unwrap();
        assert!(
            close(ratio * 100.0, percent, 0.05 + 1e-9),
            "{ratio} vs {percent}: {json}"
        );
    }
    let disk = &json["disk"];
    let size = labelled("metrics_collector_filesystem_size_bytes");
    let free = labelled("metrics_collector_filesystem_free_bytes");
    let avail = labelled("metrics_collector_filesystem_avail_bytes");
    assert_eq!(size, disk["total"].as_f64().unwrap());
    assert_eq!(avail, disk["free"].as_f64().unwrap(), "avail is df's free");
    assert_eq!(size - free, disk["used"].as_f64().unwrap());
    let total = value("metrics_collector_memory_total_bytes");
    let available = value("metrics_collector_memory_available_bytes");
    let ram = (total - available) / total * 100.0;
    assert!(close(ram, json["ram"].as_f64().unwrap(), 0.05 + 1e-9));
    // The sample's time, to the millisecond.
    let stamp = json["timestamp"].as_str().unwrap();
    let taken =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).unwrap();
    let seconds = value("metrics_collector_last_sample_timestamp_seconds");
    assert!(
        close(seconds, taken.unix_timestamp_nanos() as f64 / 1e9, 0.0005),
        "{seconds} vs {stamp}"
    );
    // This machine has no GPU and may have no sensor: null in the JSON, no series here.
    assert!(json["gpu"].is_null());
    assert!(
        !prom.keys().any(|k| k.starts_with("metrics_collector_gpu_")),
        "{prom:?}"
    );
    match json["temperature"].as_f64() {
        Some(t) => assert!(close(
            value("metrics_collector_temperature_celsius"),
            t,
            0.05 + 1e-9
        )),
        None => assert!(!prom.contains_key("metrics_collector_temperature_celsius")),
    }
    // The counters are /proc/stat's, in seconds: as much idle time as this host has had
    // since boot, no more.
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy_and_idle: f64 = prom
        .iter()
        .filter(|(k, _)| k.starts_with("metrics_collector_cpu_seconds_total{"))
        .map(|(_, v)| v)
        .sum();
    assert!(
        busy_and_idle > 0.0 && busy_and_idle <= uptime * cpus.max(1.0) * 1.05 + 1.0,
        "{busy_and_idle} CPU seconds in {uptime} s of uptime"
    );
    assert_eq!(value("metrics_collector_probe_up{probe=\"cpu\"}"), 1.0);
    assert!(value("metrics_collector_samples_total") >= 1.0);
}

/// A free loopback port (bound, then let go, for a server started next).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` of Prometheus' API as JSON (HTTP/1.0: the whole body, never chunked).
pub(crate) fn prometheus_api(addr: SocketAddr, path: &str) -> Option<Value> {
    let raw = format!("GET {path} HTTP/1.0\r\nHost: t\r\n\r\n");
    let r = std::panic::catch_unwind(|| request(addr, &raw)).ok()?;
    (r.status == 200).then(|| r.json())
}

/// PromQL as a query parameter.
fn query(promql: &str) -> String {
    let mut q = String::from("/api/v1/query?query=");
    for b in promql.bytes() {
        if b.is_ascii_alphanumeric() || b"_-.~".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

/// The `result` vector of an instant query, once it has `want` entries.
pub(crate) fn vector(addr: SocketAddr, promql: &str, want: usize) -> Vec<Value> {
    wait_for(
        Duration::from_secs(60),
        &format!("Prometheus to answer {promql}"),
        || {
            let v = prometheus_api(addr, &query(promql))?;
            let result = v["data"]["result"].as_array()?.clone();
            (result.len() >= want).then_some(result)
        },
    )
}

#[test]
fn a_real_prometheus_scrapes_the_collector_on_both_paths() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let dir = TempDir::new("prometheus");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: collector\n    static_configs:\n      - targets: ['{addr}']\n\
         \x20 - job_name: collector-path\n    metrics_path: /metrics/prometheus\n    static_configs:\n      - targets: ['{addr}']\n",
        addr = svc.addr
    );
    std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let prometheus = tool(
        "METRICS_TEST_PROMETHEUS",
        "prometheus",
        "the Debian package prometheus",
    );
    let child = Command::new(&prometheus)
        .arg(format!(
            "--config.file={}",
            dir.0.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prometheus:?}: {e}"));
    let _prometheus = Killed(child);

    // Both jobs up, and scraped at least twice (so rates can be taken).
    let up = vector(web, "up == 1", 2);
    let jobs: Vec<&str> = up
        .iter()
        .filter_map(|r| r["metric"]["job"].as_str())
        .collect();
    assert!(
        jobs.contains(&"collector") && jobs.contains(&"collector-path"),
        "{up:?}"
    );
    let targets = wait_for(Duration::from_secs(30), "the targets' health", || {
        let t = prometheus_api(web, "/api/v1/targets")?;
        let active = t["data"]["activeTargets"].as_array()?.clone();
        active
            .iter()
            .all(|a| a["health"] == "up" && a["lastError"] == "")
            .then_some(active)
    });
    assert_eq!(targets.len(), 2, "{targets:?}");

    // The collector's own series, labelled by Prometheus (instance, job) and nothing else,
    // with the collector's values.
    let memory = vector(web, "metrics_collector_memory_total_bytes", 2);
    let ours = samples(&get(svc.addr, "/metrics/prometheus").text())["metrics_collector_memory_total_bytes"];
    for series in &memory {
        let labels: Vec<&str> = series["metric"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(labels, ["__name__", "instance", "job"], "{series}");
        let v: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert_eq!(v, ours, "{series}");
    }
    let modes = vector(
        web,
        "metrics_collector_cpu_seconds_total{job=\"collector\"}",
        8,
    );
    assert_eq!(modes.len(), 8, "{modes:?}");
    // node_exporter's PromQL, with our prefix, gives a CPU use.
    let busy = vector(
        web,
        "1 - sum by (instance) (rate(metrics_collector_cpu_seconds_total{job=\"collector\",mode=~\"idle|iowait\"}[5s])) / sum by (instance) (rate(metrics_collector_cpu_seconds_total{job=\"collector\"}[5s]))",
        1,
    );
    let busy: f64 = busy[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&busy), "{busy}");
}

#[test]
fn a_gpu_has_its_series_labelled_gpu_uuid_name_with_the_values_of_gpu() {
    // The Jetson backend on a fixture tree copied from an Orin: one GPU, read from sysfs.
    let tree = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/gpu/tests/testdata/jetson-orin");
    let sysfs = tree.join("sys");
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "1"),
        ("METRICS_GPU_BACKEND", "jetson"),
        ("METRICS_ROOTFS", tree.to_str().unwrap()),
        ("METRICS_SYSFS", sysfs.to_str().unwrap()),
    ])
    .ready();
    let (gpu, prom) = wait_for(
        Duration::from_secs(20),
        "/gpu and a scrape of one sample",
        || {
            let before = get(svc.addr, "/gpu").json();
            let prom = samples(&get(svc.addr, "/metrics/prometheus").text());
            let after = get(svc.addr, "/gpu").json();
            (before == after).then_some((after, prom))
        },
    );
    let device = &gpu["gpus"][0];
    let labels = format!(
        "{{gpu=\"{}\",uuid=\"{}\",name=\"{}\"}}",
        device["index"],
        device["uuid"].as_str().unwrap_or_default(),
        device["name"].as_str().unwrap()
    );
    let mut checked = 0;
    for (family, field, scale) in [
        ("gpu_utilization_ratio", "utilization", 0.01),
        ("gpu_memory_used_bytes", "memory_used", 1.0),
        ("gpu_memory_total_bytes", "memory_total", 1.0),
        ("gpu_temperature_celsius", "temperature", 1.0),
        ("gpu_power_watts", "power_draw", 1.0),
        ("gpu_power_limit_watts", "power_limit", 1.0),
    ] {
        let series = format!("metrics_collector_{family}{labels}");
        match device[field].as_f64() {
            Some(v) => {
                let got = prom
                    .get(&series)
                    .unwrap_or_else(|| panic!("no {series} in {prom:?}"));
                // /gpu rounds to one decimal; the series has the reading itself.
                assert!(
                    close(*got / scale, v, 0.05 + 1e-9),
                    "{series}: {got} vs {field} {v}"
                );
                checked += 1;
            }
            None => assert!(!prom.contains_key(&series), "{series} without a reading"),
        }
    }
    assert!(checked >= 3, "the fixture's GPU reads something: {device}");
    assert_eq!(
        prom.get("metrics_collector_probe_up{probe=\"gpu\"}"),
        Some(&1.0)
    );
}
