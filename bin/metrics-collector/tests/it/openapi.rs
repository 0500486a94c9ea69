//! `docs/openapi.yaml` against the real server: every route the server answers is
//! documented (and nothing else is), and schemathesis (`tests/openapi/check.py`) fuzzes
//! every operation of the document and finds each answer as documented: a healthy host, a
//! host whose every probe fails (the `null`s and the `503` of `/health`), a Jetson fixture
//! (a GPU device in `/gpu`), and a server whose every stream slot is taken (the `503` with
//! `Retry-After`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::harness::{Service, get, python_with, wait_for};
use crate::sse::Sse;

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The string literals of Rust source that look like a route (`"/metrics/history"`).
fn route_literals(source: &str) -> Vec<String> {
    // A `'"'` char literal would open a string for the scanner below.
    let source = source.replace("'\"'", "' '");
    let mut routes = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                // A comment, to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut literal = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                            literal.push('\\');
                        }
                        '"' => break,
                        c => literal.push(c),
                    }
                }
                let is_route = literal.starts_with('/')
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c));
                if is_route && !routes.contains(&literal) {
                    routes.push(literal);
                }
            }
            _ => {}
        }
    }
    routes
}

/// The keys directly under the top-level `paths:` of an OpenAPI YAML document.
fn documented_paths(yaml: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut inside = false;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == "paths:";
            continue;
        }
        if !inside {
            continue;
        }
        let Some(key) = line.strip_prefix("  ") else {
            continue;
        };
        if key.starts_with(' ') || key.starts_with('#') {
            continue;
        }
        if let Some(key) = key.trim_end().strip_suffix(':') {
            paths.push(key.trim_matches(|c| c == '\'' || c == '"').to_owned());
        }
    }
    paths
}

#[test]
fn route_literals_and_documented_paths_are_read_as_meant() {
    let rust = r#"
        // "/commented" is not a route
        const PATHS: [&str; 2] = ["/metrics", "/gpu"];
        let quote = '"';
        match path { "/metrics/stream" => 1, _ => error(&format!("no such path {path:?}: try \"/x y\"")) }
    "#;
    assert_eq!(
        route_literals(rust),
        ["/metrics", "/gpu", "/metrics/stream"]
    );
    let yaml = "openapi: 3.1.0\npaths:\n  /metrics:\n    get:\n      summary: x\n  '/gpu':\n    get: {}\n\ncomponents:\n  schemas:\n    Error: {}\n";
    assert_eq!(documented_paths(yaml), ["/metrics", "/gpu"]);
}

#[test]
fn every_route_the_server_answers_is_documented_in_openapi_yaml() {
    // The status page's files are served from the table in page.rs; the document names
    // them as one templated path.
    let mut routes = route_literals(&read("crates/api/src/routes.rs"));
    let assets: Vec<String> = route_literals(&read("crates/api/src/page.rs"))
        .into_iter()
        .filter(|p| p.starts_with("/assets/"))
        .collect();
    assert!(
        !assets.is_empty(),
        "no asset paths found in crates/api/src/page.rs"
    );
    let yaml = read("docs/openapi.yaml");
    for asset in &assets {
        let name = asset.trim_start_matches("/assets/");
        assert!(
            yaml.contains(name),
            "{asset} is served but not in the enum of /assets/{{file}} in docs/openapi.yaml"
        );
    }
    routes.push("/assets/{file}".to_owned());
    let documented = documented_paths(&yaml);
    assert!(
        routes.iter().any(|r| r == "/metrics") && routes.len() >= 5,
        "the routes were not found in crates/api/src/routes.rs: {routes:?}"
    );
    let undocumented: Vec<&String> = routes.iter().filter(|r| !documented.contains(r)).collect();
    assert!(
        undocumented.is_empty(),
        "served by crates/api/src/routes.rs but missing under `paths:` in docs/openapi.yaml: {undocumented:?}"
    );
    let unserved: Vec<&String> = documented.iter().filter(|d| !routes.contains(d)).collect();
    assert!(
        unserved.is_empty(),
        "documented in docs/openapi.yaml but not served by crates/api/src/routes.rs or page.rs: {unserved:?}"
    );
}

/// One fuzz run at a time: each keeps a core busy for seconds, and the other tests of this
/// binary (some of which time things) run beside them.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static FUZZ: Mutex<()> = Mutex::new(());
    FUZZ.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `tests/openapi/check.py` with `python` against `svc` with `args`; fails the test
/// with its output.
fn check(python: &str, svc: &Service, args: &[&str]) {
    let out = Command::new(python)
        .current_dir(root())
        .arg("tests/openapi/check.py")
        .arg(format!("http://{}", svc.addr))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {python} tests/openapi/check.py: {e}"));
    assert!(
        out.status.success(),
        "tests/openapi/check.py {args:?} failed ({}): the server and docs/openapi.yaml disagree\n\
         --- stdout ---\n{}\n--- stderr ---\n{}\n--- service log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        svc.log()
    );
}

#[test]
fn the_server_answers_as_openapi_yaml_says() {
    let python = python_with("schemathesis");
    let _one = one_at_a_time();
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    check(&python, &svc, &[]);
}

#[test]
fn a_host_whose_probes_all_fail_answers_as_documented() {
    let python = python_with("schemathesis");
    let _one = one_at_a_time();
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_PROCFS", "/nonexistent/proc"),
        ("METRICS_SYSFS", "/nonexistent/sys"),
        ("METRICS_DISK_PATH", "/nonexistent/disk"),
    ]);
    wait_for(Duration::from_secs(10), "a 503 from /health", || {
        let r = get(svc.addr, "/health");
        (r.status == 503 && r.json()["sample_seq"].as_u64() >= Some(1)).then_some(())
    });
    check(&python, &svc, &["--max-examples", "25"]);
}

#[test]
fn a_jetson_with_its_gpu_answers_as_documented() {
    let python = python_with("schemathesis");
    let _one = one_at_a_time();
    // The Jetson backend on a fixture tree: a GPU device, board facts and notes in `/gpu`.
    let tree = root().join("crates/gpu/tests/testdata/jetson-orin");
    let sysfs = tree.join("sys");
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.5"),
        ("METRICS_GPU_BACKEND", "jetson"),
        ("METRICS_ROOTFS", tree.to_str().unwrap()),
        ("METRICS_SYSFS", sysfs.to_str().unwrap()),
    ])
    .ready();
    let gpu = svc.json("/gpu");
    assert_eq!(gpu["available"], true, "{gpu}");
    assert_eq!(gpu["gpus"].as_array().map(Vec::len), Some(1), "{gpu}");
    check(&python, &svc, &["--max-examples", "25"]);
}

#[test]
fn a_server_with_every_stream_slot_taken_answers_as_documented() {
    let python = python_with("schemathesis");
    let _one = one_at_a_time();
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.5"),
        ("METRICS_MAX_STREAMS", "1"),
    ])
    .ready();
    let held = Sse::open(svc.addr, "/metrics/stream", &[]);
    assert_eq!(held.status, 200);
    let refused = get(svc.addr, "/metrics/stream");
    assert_eq!(refused.status, 503, "{}", refused.text());
    check(
        &python,
        &svc,
        &[
            "--max-examples",
            "25",
            "--operation",
            "getStream",
            "--operation",
            "headStream",
        ],
    );
    drop(held);
}
