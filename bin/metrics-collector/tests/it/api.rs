//! The HTTP contract of SPEC §3, checked on the wire.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Service, get, request, wait_for};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn metrics_have_exactly_the_seed_shape_and_types() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let r = get(svc.addr, "/metrics");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let m = r.json();
    assert_eq!(
        keys(&m),
        ["cpu", "disk", "gpu", "ram", "temperature", "timestamp"]
    );
    assert_eq!(keys(&m["disk"]), ["free", "percent", "total", "used"]);
    for key in ["cpu", "ram"] {
        let v = m[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is a number: {m}"));
        assert!((0.0..=100.0).contains(&v), "{key}={v}");
        assert_eq!((v * 10.0).round() / 10.0, v, "{key} has one decimal");
    }
    // No GPU backend on a test machine: null, not 0.
    assert!(m["gpu"].is_null(), "{m}");
    assert!(m["temperature"].is_null() || m["temperature"].is_f64());
    for key in ["used", "free", "total"] {
        assert!(m["disk"][key].is_u64(), "disk.{key}: {m}");
    }
    assert!(m["disk"]["percent"].is_f64());
    let ts = m["timestamp"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == "2024-01-15T10:30:00.000Z".len(),
        "{ts}"
    );
}

#[test]
fn health_reports_uptime_age_sequence_probes_and_database() {
    let svc =
        Service::start(&[("METRICS_INTERVAL_LIVE", "0.2"), ("METRICS_HOST", "rack-7")]).ready();
    let h = svc.json("/health");
    assert!(
        matches!(h["status"].as_str(), Some("ok" | "degraded")),
        "{h}"
    );
    assert_eq!(h["host"], "rack-7");
    assert_eq!(h["interval_seconds"], 0.2);
    assert!(h["uptime_seconds"].as_f64().unwrap() > 0.0);
    assert!(h["last_sample_age_seconds"].as_f64().unwrap() < 5.0);
    assert_eq!(h["database"]["state"], "disabled");
    assert_eq!(h["database"]["pending_rows"], 0);
    assert_eq!(h["gpu"]["backend"], "none");
    for probe in ["cpu", "memory", "disk", "thermal", "gpu"] {
        let p = &h["probes"][probe];
        assert!(
            matches!(p["state"].as_str(), Some("ok" | "absent" | "error")),
            "{probe}: {h}"
        );
        assert!(p["last_duration_ms"].is_f64(), "{probe}: {h}");
    }
    for probe in ["cpu", "memory", "disk"] {
        assert_eq!(h["probes"][probe]["state"], "ok", "{h}");
    }
    // The sequence number only grows.
    let first = h["sample_seq"].as_u64().unwrap();
    let later = wait_for(Duration::from_secs(5), "three more samples", || {
        let seq = svc.json("/health")["sample_seq"].as_u64().unwrap();
        (seq >= first + 3).then_some(seq)
    });
    assert!(later > first);
}

#[test]
fn health_is_503_when_no_sample_succeeds_but_metrics_still_answers() {
    // Every core family unreadable: the service keeps running and says so.
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_PROCFS", "/nonexistent/proc"),
        ("METRICS_DISK_PATH", "/nonexistent/disk"),
    ]);
    let r = wait_for(Duration::from_secs(10), "a 503 from /health", || {
        let r = get(svc.addr, "/health");
        (r.status == 503 && r.json()["sample_seq"].as_u64() >= Some(1)).then_some(r)
    });
    let h = r.json();
    assert_eq!(h["status"], "degraded");
    let problems = h["problems"].to_string();
    assert!(problems.contains("/nonexistent/proc/stat"), "{problems}");
    assert!(problems.contains("/nonexistent/disk"), "{problems}");
    let m = svc.json("/metrics");
    assert!(
        m["cpu"].is_null() && m["ram"].is_null() && m["disk"]["percent"].is_null(),
        "{m}"
    );
}

#[test]
fn gpu_without_a_gpu_is_200_available_false_with_a_reason() {
    let svc = Service::start(&[]).ready();
    let g = svc.json("/gpu");
    assert_eq!(g["available"], false);
    assert_eq!(g["backend"], "none");
    assert!(!g["reason"].as_str().unwrap().is_empty());
    assert_eq!(g["gpus"], serde_json::json!([]));
    for key in [
        "utilization",
        "memory_used",
        "memory_total",
        "temperature",
        "power_draw",
    ] {
        assert!(g[key].is_null(), "{key}: {g}");
    }
}

#[test]
fn client_mistakes_get_json_4xx_errors() {
    let svc = Service::start(&[]).ready();
    let cases = [
        ("GET /nope HTTP/1.1", 404, None),
        ("GET /metrics/ HTTP/1.1", 404, None),
        ("POST /metrics HTTP/1.1", 405, Some("GET, HEAD")),
        ("DELETE /health HTTP/1.1", 405, Some("GET, HEAD")),
        ("PUT /gpu HTTP/1.1", 405, Some("GET, HEAD")),
    ];
    for (line, status, allow) in cases {
        let r = request(
            svc.addr,
            &format!("{line}\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, status, "{line}");
        assert_eq!(r.header("allow"), allow, "{line}");
        assert!(
            r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{line}: {}",
            r.text()
        );
    }
}

#[test]
fn a_dashboards_cache_buster_is_ignored_on_every_path() {
    let svc = Service::start(&[]).ready();
    for path in ["/metrics", "/health", "/gpu"] {
        for query in ["?_=1733050000", "?format=xml&_=1", "?"] {
            let r = get(svc.addr, &format!("{path}{query}"));
            assert_eq!(r.status, 200, "{path}{query}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }
    let m = get(svc.addr, "/metrics?_=1733050000").json();
    assert!(m["cpu"].is_f64() && m["disk"]["total"].is_u64(), "{m}");
}

#[test]
fn head_works_wherever_get_does() {
    let svc = Service::start(&[]).ready();
    for path in ["/metrics", "/health", "/gpu"] {
        let get = get(svc.addr, path);
        let head = request(
            svc.addr,
            &format!("HEAD {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(
            head.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert!(head.body.is_empty(), "{path}: HEAD has no body");
        let length: usize = head.header("content-length").unwrap().parse().unwrap();
        if path != "/health" {
            // /health changes every moment; the others are the same bytes until the next tick.
            assert!(length > 50, "{path}: {length}");
        }
    }
}
