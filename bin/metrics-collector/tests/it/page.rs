//! The status page (SPEC §9, issue 12): its files over plain HTTP (types, the policy, the
//! size, nothing inline and nothing from elsewhere), and the page itself in a real
//! browser: `tests/browser/check.py` drives Debian's Chromium with Playwright against a
//! service with PostgreSQL behind it, and asks this test (which owns every process) to
//! pause, resume and restart that service on the same port.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::Signal;

use crate::harness::{Killed, Service, TempDir, database, get, python_with, request, tool};
use crate::sse::Sse;

/// The policy every file of the page is served with (crates/api/src/page.rs).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Each file of the page and its content type.
const FILES: [(&str, &str); 5] = [
    ("/", "text/html; charset=utf-8"),
    ("/assets/app.js", "text/javascript; charset=utf-8"),
    ("/assets/style.css", "text/css; charset=utf-8"),
    (
        "/assets/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
    ),
    ("/assets/uPlot.min.css", "text/css; charset=utf-8"),
];

/// SPEC §9: the whole page, its library included.
const MAX_PAGE_BYTES: usize = 150 * 1024;

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn the_page_and_its_files_are_served_with_their_types_and_the_policy() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let mut total = 0;
    for (path, content_type) in FILES {
        let r = get(svc.addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(!r.body.is_empty(), "{path} is empty");
        total += r.body.len();
    }
    assert!(
        total < MAX_PAGE_BYTES,
        "the page is {total} bytes in all; SPEC §9 allows less than {MAX_PAGE_BYTES}"
    );

    let page = get(svc.addr, "/");
    let head = request(
        svc.addr,
        "HEAD / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD / sent a body");
    for name in ["content-type", "content-security-policy", "cache-control"] {
        assert_eq!(head.header(name), page.header(name), "HEAD / {name}");
    }
    // A dashboard's cache buster changes nothing (SPEC §3).
    let busted = get(svc.addr, "/?_=1733050000");
    assert_eq!((busted.status, busted.body), (200, page.body));
    // Only GET and HEAD.
    let post = request(
        svc.addr,
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405, "{}", post.text());
}

/// The tags of an HTML document: (lower-case name, attributes), comments skipped. Enough
/// for the page's own markup, which this test keeps plain.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.split_once("-->").map_or("", |(_, r)| r);
            continue;
        }
        let Some(end) = rest.find('>') else { break };
        let inner = &rest[1..end];
        rest = &rest[end + 1..];
        if inner.starts_with('/') || inner.starts_with('!') {
            continue;
        }
        let (name, mut attrs) = inner
            .split_once(|c: char| c.is_whitespace())
            .unwrap_or((inner, ""));
        let mut parsed = Vec::new();
        loop {
            attrs = attrs.trim_start().trim_start_matches('/').trim_start();
            if attrs.is_empty() {
                break;
            }
            let key_end = attrs
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(attrs.len());
            let key = attrs[..key_end].to_ascii_lowercase();
            attrs = &attrs[key_end..];
            let mut value = String::new();
            if let Some(v) = attrs.trim_start().strip_prefix('=') {
                let v = v.trim_start();
                let (val, tail) = match v.chars().next() {
                    Some(q @ ('"' | '\'')) => v[1..].split_once(q).unwrap_or((&v[1..], "")),
                    _ => v.split_once(|c: char| c.is_whitespace()).unwrap_or((v, "")),
                };
                value = val.to_owned();
                attrs = tail;
            }
            parsed.push((key, value));
        }
        out.push((name.trim_end_matches('/').to_ascii_lowercase(), parsed));
    }
    out
}

#[test]
fn tags_are_read_as_meant() {
    let html = r#"<!-- <script src="x"> --><html lang=en><link rel="icon" href='data:,'>
        <button type="button" disabled>x</button><br/></html>"#;
    let t = tags(html);
    let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["html", "link", "button", "br"]);
    assert_eq!(t[0].1, [("lang".to_owned(), "en".to_owned())]);
    assert_eq!(t[1].1[1], ("href".to_owned(), "data:,".to_owned()));
    assert_eq!(t[2].1[1], ("disabled".to_owned(), String::new()));
}

#[test]
fn the_html_loads_only_its_own_assets_and_has_nothing_inline() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.5")]).ready();
    let html = get(svc.addr, "/").text();
    let mut loaded = Vec::new();
    for (name, attrs) in tags(&html) {
        assert!(name != "style", "an inline <style>: the policy refuses it");
        for (key, value) in &attrs {
            assert!(
                key != "style",
                "a style=\"\" attribute on <{name}>: the policy refuses it"
            );
            assert!(
                !key.starts_with("on"),
                "an inline handler {key}= on <{name}>: the policy refuses it"
            );
            if key == "src" || (key == "href" && name != "a") {
                // What the browser fetches: the page's own files, or the empty icon.
                assert!(
                    value.starts_with("/assets/") || value == "data:,",
                    "<{name} {key}={value:?}> loads something other than /assets/..."
                );
                if value.starts_with("/assets/") {
                    loaded.push(value.clone());
                }
            }
            if key == "href" && name == "a" {
                assert!(
                    value.starts_with('/') && !value.starts_with("//"),
                    "<a href={value:?}> leaves this server"
                );
            }
        }
        if name == "script" {
            assert!(
                attrs.iter().any(|(k, _)| k == "src"),
                "an inline <script>: the policy refuses it"
            );
        }
    }
    // Every script's body is empty (no inline code beside a src).
    for chunk in html.split("<script").skip(1) {
        let body = chunk
            .split_once('>')
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map(|(body, _)| body);
        assert_eq!(body.map(str::trim), Some(""), "a <script> with a body");
    }
    loaded.sort();
    let mut want: Vec<String> = FILES[1..].iter().map(|(p, _)| (*p).to_owned()).collect();
    want.sort();
    assert_eq!(loaded, want, "the assets index.html loads");
}

/// What the browser check can ask for (the protocol is in tests/browser/check.py).
struct Services {
    dir: TempDir,
    env: Vec<(&'static str, String)>,
    port: u16,
    /// Every service started, the running one last (all killed on drop).
    all: Vec<Service>,
    /// Streams this test holds so the page's reconnect is refused (503).
    holders: Vec<Sse>,
}

/// Stream slots of the restarted service: all held by this test until "release", then
/// enough for the script's pages (the first one and a fresh one) and its own reader.
const SLOTS: usize = 4;

impl Services {
    fn current(&self) -> &Service {
        self.all.last().unwrap()
    }

    fn log(&self) -> String {
        self.all
            .iter()
            .enumerate()
            .map(|(i, s)| format!("--- service {i} ---\n{}", s.log()))
            .collect()
    }

    /// Carries out one request of the script; the JSON line it is answered with.
    fn answer(&mut self, ask: &str) -> String {
        let ask: serde_json::Value =
            serde_json::from_str(ask).unwrap_or_else(|e| panic!("bad control line {ask:?}: {e}"));
        match ask["do"].as_str() {
            Some("pause") => {
                self.current().signal(Signal::STOP);
                r#"{"ok": true}"#.to_owned()
            }
            Some("resume") => {
                self.current().signal(Signal::CONT);
                r#"{"ok": true}"#.to_owned()
            }
            Some("restart") => self.restart(),
            Some("release") => {
                self.holders.clear();
                r#"{"ok": true}"#.to_owned()
            }
            _ => serde_json::json!({"ok": false, "error": format!("unknown request {ask}")})
                .to_string(),
        }
    }

    /// SIGTERM (the open window is flushed to PostgreSQL), then the same settings on the
    /// same port, with a GPU this time and every stream slot taken at once.
    fn restart(&mut self) -> String {
        self.holders.clear();
        let old = self.all.last_mut().unwrap();
        old.signal(Signal::TERM);
        let code = old.wait_exit(Duration::from_secs(10)).code();
        assert_eq!(code, Some(0), "SIGTERM: {}", old.log());
        let stopped_ms = now_ms();

        let listen = format!("127.0.0.1:{}", self.port);
        let tree = root().join("crates/gpu/tests/testdata/jetson-orin");
        let sysfs = tree.join("sys");
        let slots = SLOTS.to_string();
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend([
            ("METRICS_LISTEN", listen.as_str()),
            ("METRICS_MAX_STREAMS", slots.as_str()),
            ("METRICS_GPU_BACKEND", "jetson"),
            ("METRICS_ROOTFS", tree.to_str().unwrap()),
            ("METRICS_SYSFS", sysfs.to_str().unwrap()),
        ]);
        let new = Service::start_in(&self.dir.0, &env);
        assert_eq!(new.addr.port(), self.port, "restarted on another port");
        // Taken the moment it listens; the page retries every few seconds, so it comes
        // first only rarely, and then the script asks again.
        let holders: Vec<Sse> = (0..SLOTS)
            .map(|_| Sse::open(new.addr, "/metrics/stream", &[]))
            .collect();
        let held = holders.iter().all(|h| h.status == 200);
        if held {
            self.holders = holders;
        }
        let pid = new.pid();
        self.all.push(new);
        serde_json::json!({"ok": true, "pid": pid, "stopped_ms": stopped_ms, "held": held})
            .to_string()
    }
}

/// How long the whole browser check may take (it takes about half a minute).
const BROWSER_DEADLINE: Duration = Duration::from_secs(240);

#[test]
fn the_page_works_in_a_real_browser_through_a_pause_and_a_restart() {
    let chromium = tool(
        "METRICS_TEST_CHROMIUM",
        "/usr/bin/chromium",
        "Debian's `chromium` package",
    );
    let python = python_with("playwright.sync_api");
    let (db, _client, _rt) = database("page");
    let mut env = db;
    env.extend([
        ("METRICS_INTERVAL_LIVE", "0.5".to_owned()),
        ("METRICS_INTERVAL_PERSIST", "1".to_owned()),
        ("METRICS_HOST", "page-host".to_owned()),
        ("METRICS_GPU_BACKEND", "none".to_owned()),
    ]);
    let dir = TempDir::new("page");
    let first = {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Service::start_in(&dir.0, &env).ready()
    };
    crate::harness::wait_for(Duration::from_secs(20), "the database connected", || {
        (first.json("/health")["database"]["state"] == "connected").then_some(())
    });
    let port = first.addr.port();
    let mut services = Services {
        dir,
        env,
        port,
        all: vec![first],
        holders: Vec::new(),
    };

    let shots = root().join("target/screenshots");
    let started = Instant::now();
    let mut child = Command::new(&python)
        .current_dir(root())
        .arg("tests/browser/check.py")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&shots)
        .arg("--chromium")
        .arg(&chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python} tests/browser/check.py: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let mut child = Killed(child);

    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut other_output = String::new();
    let deadline = started + BROWSER_DEADLINE;
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => match line.strip_prefix("@control ") {
                Some(ask) => {
                    let reply = services.answer(ask);
                    writeln!(stdin, "{reply}").unwrap();
                    stdin.flush().unwrap();
                }
                None => {
                    other_output.push_str(&line);
                    other_output.push('\n');
                }
            },
            Err(_) => {
                // Ended? (Its stdout may outlive it in a grandchild, so the exit is what
                // counts, not the pipe's end.)
                if let Some(status) = child.0.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "tests/browser/check.py did not finish within {BROWSER_DEADLINE:?}\n\
                     --- its stderr ---\n{}\n--- service logs ---\n{}",
                    stderr.lock().unwrap(),
                    services.log()
                );
            }
        }
    };
    // The last lines of its stderr may still be in the pipe: wait (briefly) for the
    // reader to reach the end.
    let drained = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&stderr) > 1 && Instant::now() < drained {
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = stderr.lock().unwrap().clone();
    assert!(
        status.success(),
        "tests/browser/check.py failed ({status}) after {:.1} s\n--- its stderr ---\n{report}\n\
         --- its other output ---\n{other_output}\n--- service logs ---\n{}",
        started.elapsed().as_secs_f64(),
        services.log()
    );
    eprintln!(
        "{report}the browser check took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}
