//! A seeded fuzzer of the HTTP surface, spoken over raw TCP to a running service: the
//! generator of hostile requests, the client that plays them, the parser that judges every
//! answer, and a watcher that keeps asking `GET /metrics` meanwhile.
//!
//! Used by the integration test (`bin/metrics-collector/tests/it/fuzz.rs`, a fixed seed and
//! a bounded number of cases) and by `cargo xtask bench fuzz` (the same cases, many more,
//! against a release binary), which compiles this file into itself: so it uses only `std`
//! and `rustix`, and has no `unwrap`.
//!
//! A case is a pure function of `(seed, index)` ([`case`]): a failure prints both, and
//! `METRICS_FUZZ_SEED=… METRICS_FUZZ_CASE=…` replays that one case. Each case is one
//! connection: some writes (with pauses, half-closes or a reset in between), then reading
//! until the server closes, until the answers the case asked for have come, or until the
//! first bytes of an event stream.
//!
//! What is judged ([`Problem`]): every byte the server sends parses as HTTP/1.x responses
//! (status line, header names and values, one framing, complete bodies, nothing after the
//! last), no 5xx except SPEC §7's stream cap (`503` with `Retry-After` naming
//! `METRICS_MAX_STREAMS`), every `405` has `Allow`, every error body with a JSON type is
//! `{"error":…}`, clean requests get the status their route promises, and the server closes
//! (or answers) within the case deadline once the client is done.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The seed CI runs with (any `u64` works; this one is fixed so a red run replays).
pub const CI_SEED: u64 = 0x13_F0_22_ED_C0_FF_EE_13;

/// The watcher's bound: `GET /metrics` must answer `200` within this, whatever the fuzzer
/// does meanwhile.
pub const WATCH_BOUND: Duration = Duration::from_secs(1);

// --- the generator's randomness --------------------------------------------------------------

/// SplitMix64 (Steele, Lea and Flood 2014; the constants of Vigna's reference code): tiny,
/// fast, and every seed gives a full-period stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The generator of case `index` of `seed`: each case replays on its own.
    pub fn for_case(seed: u64, index: u64) -> Self {
        let mut r = Self(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Multiply-shift (Lemire): no modulo bias worth the name for these sizes.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// --- cases ---------------------------------------------------------------------------------

/// One thing the client does on its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Writes these bytes (in one `write_all`).
    Send(Vec<u8>),
    /// Waits this long before the next step (a slow client, on purpose).
    Pause(Duration),
    /// `shutdown(SHUT_WR)`: the client is done sending.
    ShutdownWrite,
    /// These bytes and the FIN after them in one segment (`TCP_CORK`, write, shutdown): the
    /// server's first read finds the end of the client's sending already there.
    SendAndFin(Vec<u8>),
    /// Closes with `SO_LINGER` 0, so the kernel sends a reset; nothing is read.
    Reset,
}

/// What the client reads once its steps are done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Until the server closes (or the first bytes of a stream come).
    UntilClose,
    /// Until this many answers have come (keep-alive: the server need not close).
    Answers(usize),
    /// Until the first byte of an answer, then a reset.
    ResetOnAnswer,
    /// Nothing: the connection is just closed.
    Nothing,
}

/// One connection's worth of hostile client.
#[derive(Clone, Debug)]
pub struct Case {
    pub seed: u64,
    pub index: u64,
    /// Which generator made it (`path`, `headers`, `pipeline`…): the report counts by it.
    pub family: &'static str,
    pub steps: Vec<Step>,
    /// The method of each request sent, in order: an answer to `HEAD` has no body.
    pub methods: Vec<String>,
    /// For requests the generator knows to be valid: the statuses each may get, in order.
    pub expect: Option<Vec<&'static [u16]>>,
    pub end: End,
}

impl Case {
    /// The case, replayable by hand: its steps with their bytes escaped (long ones cut).
    pub fn describe(&self) -> String {
        let mut out = format!(
            "case {} of seed {:#x} ({}), end {:?}:",
            self.index, self.seed, self.family, self.end
        );
        for step in &self.steps {
            match step {
                Step::Send(bytes) => {
                    let _ = write!(out, "\n  send {} bytes {}", bytes.len(), escape(bytes, 300));
                }
                Step::Pause(d) => {
                    let _ = write!(out, "\n  pause {} ms", d.as_millis());
                }
                Step::ShutdownWrite => out.push_str("\n  shutdown(write)"),
                Step::SendAndFin(bytes) => {
                    let _ = write!(
                        out,
                        "\n  send {} bytes and FIN in one segment {}",
                        bytes.len(),
                        escape(bytes, 300)
                    );
                }
                Step::Reset => out.push_str("\n  reset"),
            }
        }
        out
    }
}

/// `bytes` as a Rust byte string literal, cut after `max` bytes.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::from("b\"");
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    if bytes.len() > max {
        let _ = write!(out, "… ({} more bytes)", bytes.len() - max);
    }
    out
}

/// Every path the service answers (SPEC §3, §6 to §9), and the page's files.
pub const ROUTES: [&str; 11] = [
    "/",
    "/metrics",
    "/metrics/prometheus",
    "/metrics/history",
    "/metrics/stream",
    "/health",
    "/gpu",
    "/assets/app.js",
    "/assets/style.css",
    "/assets/uPlot.iife.min.js",
    "/assets/uPlot.min.css",
];

const STREAM: &str = "/metrics/stream";
const HISTORY: &str = "/metrics/history";

const UNKNOWN_PATHS: [&str; 9] = [
    "/nope",
    "/metrics/nope",
    "/metricsx",
    "/healthz",
    "/assets/",
    "/assets/nope.js",
    "/favicon.ico",
    "/metrics/stream/x",
    "/gpu/0",
];

const OTHER_METHODS: [&str; 7] = ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO"];

/// `Accept` values a real client might send, and ones no client should.
const ACCEPTS: [&str; 28] = [
    "*/*",
    "application/json",
    "application/json, text/plain, */*",
    "text/plain",
    "text/plain;version=0.0.4",
    "text/plain; version=0.0.4; q=0.5, application/json; q=0.4",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "application/openmetrics-text; version=2.0.0",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "text/event-stream",
    "",
    " ",
    ";;;",
    ",,,",
    "*/*;q=0",
    "text/plain;q=2",
    "text/plain;q=-1",
    "text/plain;q=0.0001",
    "text/plain;q=NaN",
    "text/plain;q=1.0000000000000000001",
    "text/plain;version=\"0.0.4\"",
    "text/plain;version=",
    "text/*;version=0.0.4",
    "application/*",
    "x/y;a=\"unterminated",
    "\u{e9}t\u{e9}/plain",
];

/// `Last-Event-ID` values (header and query): ids, near-ids and junk.
const EVENT_IDS: [&str; 18] = [
    "0",
    "1",
    "-1",
    "1733050000000",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "",
    " ",
    " 42 ",
    "abc",
    "1e3",
    "0x10",
    "+5",
    "１２",
    "99999999999999999999999999",
    "4.5",
];

/// Values for `start` and `end` of `/metrics/history`.
const TIMES: [&str; 34] = [
    "",
    "0",
    "-0",
    "-1",
    "-3600",
    "-86400",
    "-604800",
    "-1e9",
    "-1e300",
    "1e300",
    "NaN",
    "inf",
    "-inf",
    "1733050000",
    "1733050000.5",
    "17330500000000000000000",
    "2026-12-01T10:00:00Z",
    "2026-12-01T10:00:00%2B01:00",
    "2026-12-01T10:00:00+01:00",
    "2026-12-01T10:00:00.123456789Z",
    "2026-13-01T10:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "2026-12-01",
    "now",
    "%2D3600",
    "+3600",
    "0x10",
    "1_000",
    "-",
    ".",
    "1e-400",
    "%",
];

/// Values for `step`.
const STEPS: [&str; 18] = [
    "", "0", "-1", "-0", "0.001", "1", "4.99", "5", "30", "60", "3600", "86400", "1e308", "NaN",
    "inf", "1e-300", "abc", "%35",
];

/// Values for `metrics`.
const METRIC_LISTS: [&str; 12] = [
    "",
    "cpu",
    "cpu,ram",
    "cpu,cpu,cpu",
    "CPU",
    "disk,",
    ",",
    "gpu,temperature,disk,ram,cpu",
    "bogus",
    "cpu%2Cram",
    "cpu ram",
    "cpu,%00",
];

/// Query parameters of every known path (SPEC §6, §7), a cache buster, and strangers.
const PARAMETERS: [&str; 9] = [
    "start",
    "end",
    "step",
    "metrics",
    "last_event_id",
    "range",
    "_",
    "",
    "%73tart",
];

/// A request line, headers and body, to be written out.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    target: Vec<u8>,
    /// `None`: no version (HTTP/0.9's form).
    version: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Lines written as they are after the headers (no colon added).
    raw_lines: Vec<Vec<u8>>,
    body: Vec<u8>,
    /// Line ending: `\r\n`, or a bare `\n`.
    eol: &'static [u8],
}

impl Request {
    fn get(target: &str) -> Self {
        Self {
            method: "GET".to_owned(),
            target: target.as_bytes().to_vec(),
            version: Some(b"HTTP/1.1".to_vec()),
            headers: vec![(b"Host".to_vec(), b"fuzz.test".to_vec())],
            raw_lines: Vec::new(),
            body: Vec::new(),
            eol: b"\r\n",
        }
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.target.len() + self.body.len());
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        if let Some(v) = &self.version {
            out.push(b' ');
            out.extend_from_slice(v);
        }
        out.extend_from_slice(self.eol);
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(self.eol);
        }
        for line in &self.raw_lines {
            out.extend_from_slice(line);
            out.extend_from_slice(self.eol);
        }
        out.extend_from_slice(self.eol);
        out.extend_from_slice(&self.body);
        out
    }
}

/// A valid request to a route, or to a path that is not one; what it must get.
fn clean(rng: &mut Rng, close: bool, allow_stream: bool) -> (Request, &'static [u16]) {
    let unknown = rng.chance(12);
    let path = if unknown {
        rng.pick(&UNKNOWN_PATHS)
    } else {
        loop {
            let p = rng.pick(&ROUTES);
            if allow_stream || p != STREAM {
                break p;
            }
        }
    };
    let method = match rng.below(10) {
        0..=6 => "GET",
        7 | 8 => "HEAD",
        _ => rng.pick(&OTHER_METHODS),
    };
    let mut target = path.to_owned();
    match rng.below(4) {
        // SPEC §3: unknown parameters are ignored on every path.
        0 => {
            let _ = write!(target, "?_={}", 1_733_050_000 + rng.below(1000));
        }
        1 => target.push_str("?x=1&y&=z&&"),
        _ => {}
    }
    let mut r = Request::get(&target);
    r.method = method.to_owned();
    if rng.chance(5) {
        r.headers.clear();
    }
    if rng.chance(40) {
        r = r.header("Accept", rng.pick(&ACCEPTS[..12]));
    }
    if rng.chance(20) {
        r = r.header("User-Agent", "fuzz/1.0");
    }
    let http10 = close && rng.chance(10);
    if http10 {
        r.version = Some(b"HTTP/1.0".to_vec());
    } else if close {
        r = r.header("Connection", "close");
    }
    let expect: &'static [u16] = if unknown {
        &[404]
    } else if !matches!(method, "GET" | "HEAD") {
        &[405]
    } else if path == STREAM && method == "GET" {
        // SPEC §7: the stream cap answers 503.
        &[200, 503]
    } else {
        &[200]
    };
    (r, expect)
}

/// Generates case `index` of `seed`.
pub fn case(seed: u64, index: u64) -> Case {
    let mut rng = Rng::for_case(seed, index);
    let mut c = Case {
        seed,
        index,
        family: "",
        steps: Vec::new(),
        methods: Vec::new(),
        expect: None,
        end: End::UntilClose,
    };
    match rng.below(100) {
        0..=7 => clean_case(&mut rng, &mut c),
        8..=17 => pipeline(&mut rng, &mut c),
        18..=27 => request_line(&mut rng, &mut c),
        28..=38 => path(&mut rng, &mut c),
        39..=50 => query(&mut rng, &mut c),
        51..=63 => headers(&mut rng, &mut c),
        64..=71 => body(&mut rng, &mut c),
        72..=77 => half_close(&mut rng, &mut c),
        78..=83 => slowloris(&mut rng, &mut c),
        84..=87 => reset(&mut rng, &mut c),
        88..=93 => stream(&mut rng, &mut c),
        _ => bytes(&mut rng, &mut c),
    }
    c
}

/// Sends `r` as the case's one request; half-closes when its end is uncertain.
fn single(c: &mut Case, r: &Request, half_close: bool) {
    c.methods.push(r.method.clone());
    c.steps.push(Step::Send(r.bytes()));
    if half_close {
        c.steps.push(Step::ShutdownWrite);
    }
    c.end = End::UntilClose;
}

fn clean_case(rng: &mut Rng, c: &mut Case) {
    c.family = "clean";
    let (r, expect) = clean(rng, true, true);
    single(c, &r, false);
    c.expect = Some(vec![expect]);
}

/// Several valid requests in one write.
fn pipeline(rng: &mut Rng, c: &mut Case) {
    c.family = "pipeline";
    let n = rng.range(2, 8);
    let close = rng.chance(50);
    let mut all = Vec::new();
    let mut expect = Vec::new();
    for i in 0..n {
        let last = i + 1 == n;
        // A stream never ends: only the last request may open one.
        let (r, e) = clean(rng, close && last, last);
        // HTTP/1.0 keeps no connection open: only the last may be one.
        all.extend_from_slice(&r.bytes());
        c.methods.push(r.method.clone());
        expect.push(e);
    }
    c.steps.push(Step::Send(all));
    c.end = if close {
        End::UntilClose
    } else {
        End::Answers(n)
    };
    c.expect = Some(expect);
}

/// Request lines no client should send.
fn request_line(rng: &mut Rng, c: &mut Case) {
    c.family = "request-line";
    let route = rng.pick(&ROUTES);
    let mut r = Request::get(route).header("Connection", "close");
    match rng.below(16) {
        0 => {
            r.method = rng
                .pick(&["get", "Get", "G E T", "GET\t", "", "G\x00T", "GÉT"])
                .to_string()
        }
        1 => r.method = "M".repeat(rng.pick(&[64, 1024, 8 * 1024, 20 * 1024])),
        2 => r.version = None,
        3 => {
            // HTTP/0.9: `GET /path` and nothing else.
            c.methods.push("GET".to_owned());
            c.steps
                .push(Step::Send(format!("GET {route}\r\n").into_bytes()));
            c.steps.push(Step::ShutdownWrite);
            return;
        }
        4 => {
            // HTTP/2's connection preface, and a SETTINGS frame after it.
            let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            b.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            c.methods.push("PRI".to_owned());
            c.steps.push(Step::Send(b));
            c.steps.push(Step::ShutdownWrite);
            return;
        }
        5 => {
            r.version = Some(
                rng.pick(&[
                    "HTTP/1.2",
                    "HTTP/2.0",
                    "HTTP/1",
                    "http/1.1",
                    "HTTP/1.1 ",
                    "HTTP/1.10",
                    "HTTP/0.9",
                    "HTTP/3",
                    "HTTPS/1.1",
                    "HTTP/1.1\x00",
                ])
                .as_bytes()
                .to_vec(),
            );
        }
        6 => r.version = Some(b"HTTP/1.0".to_vec()),
        7 => {
            r.target = format!("http://fuzz.test{route}").into_bytes();
        }
        8 => {
            r.target = format!("http://127.0.0.1:9100{route}?_=1").into_bytes();
        }
        9 => {
            r.method = "CONNECT".to_owned();
            r.target = rng
                .pick(&["fuzz.test:443", "127.0.0.1:9100", "[::1]:80", ":0"])
                .as_bytes()
                .to_vec();
        }
        10 => {
            r.method = rng.pick(&["OPTIONS", "GET"]).to_string();
            r.target = b"*".to_vec();
        }
        11 => r.target = Vec::new(),
        12 => r.target = route.trim_start_matches('/').as_bytes().to_vec(),
        13 => {
            // Doubled spaces, tabs, a missing space.
            let line = rng.pick(&[
                "GET  /metrics HTTP/1.1",
                "GET /metrics  HTTP/1.1",
                "GET\t/metrics\tHTTP/1.1",
                "GET/metrics HTTP/1.1",
                " GET /metrics HTTP/1.1",
                "GET /metrics HTTP/1.1 extra",
            ]);
            c.methods.push("GET".to_owned());
            c.steps.push(Step::Send(
                format!("{line}\r\nHost: t\r\nConnection: close\r\n\r\n").into_bytes(),
            ));
            c.steps.push(Step::ShutdownWrite);
            return;
        }
        14 => {
            // Empty lines before the request line (RFC 9112 §2.2 lets a server skip them).
            let mut b = b"\r\n\r\n".to_vec();
            b.extend_from_slice(&r.bytes());
            c.methods.push("GET".to_owned());
            c.steps.push(Step::Send(b));
            c.steps.push(Step::ShutdownWrite);
            return;
        }
        _ => r.eol = b"\n",
    }
    single(c, &r, true);
}

/// A percent-encoding, valid or not.
fn percent(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => format!("%{:02X}", rng.below(256)),
        1 => format!("%{:02x}", rng.below(256)),
        2 => "%".to_owned(),
        3 => format!("%{}", rng.pick(&["G1", "zz", "0", "-1", "%", "2"])),
        4 => "%00".to_owned(),
        _ => "%C3%A9".to_owned(),
    }
}

/// Targets that are almost routes.
fn path(rng: &mut Rng, c: &mut Case) {
    c.family = "path";
    let route = rng.pick(&ROUTES);
    let mut raw = false;
    let target: Vec<u8> = match rng.below(14) {
        0 => format!("{route}/").into_bytes(),
        1 => format!("/{route}").into_bytes(),
        2 => format!("{route}/.").into_bytes(),
        3 => format!("/x/..{route}").into_bytes(),
        4 => format!("/.{route}").into_bytes(),
        5 => {
            // One character percent-encoded, or a percent sign dropped in.
            let mut s = String::new();
            let at = rng.below(route.len().max(1));
            for (i, ch) in route.chars().enumerate() {
                if i == at && ch != '/' {
                    let _ = write!(s, "%{:02X}", ch as u32);
                } else {
                    s.push(ch);
                }
            }
            if rng.chance(50) {
                s.push_str(&percent(rng));
            }
            s.into_bytes()
        }
        6 => {
            let n = rng.pick(&[1024, 8 * 1024, 15 * 1024, 30 * 1024, 70 * 1024]);
            format!("{route}?_={}", "a".repeat(n)).into_bytes()
        }
        7 => format!("/{}", "x/".repeat(rng.range(100, 4000))).into_bytes(),
        8 => {
            raw = true;
            let mut t = route.as_bytes().to_vec();
            t.insert(rng.below(t.len() + 1), 0);
            t
        }
        9 => {
            raw = true;
            let mut t = route.as_bytes().to_vec();
            let bad: &[u8] = rng.pick(&[
                &b"\xff"[..],
                b"\xc3",
                b"\xc3\xa9",
                b"\x80\x80",
                b"\xed\xa0\x80",
            ]);
            let at = rng.below(t.len() + 1);
            t.splice(at..at, bad.iter().copied());
            t
        }
        10 => format!("{route}#frag").into_bytes(),
        11 => format!("{route};jsessionid=1").into_bytes(),
        12 => {
            raw = true;
            let bad = rng.pick(&[
                " ", "\"", "<", ">", "\\", "^", "`", "{", "|", "}", "\x7f", "\t",
            ]);
            format!("{route}{bad}x").into_bytes()
        }
        _ => route.to_ascii_uppercase().into_bytes(),
    };
    let mut r = Request::get("/").header("Connection", "close");
    r.target = target;
    single(c, &r, raw || rng.chance(50));
}

/// A value for parameter `name`: from its list, or random bytes.
fn value(rng: &mut Rng, name: &str, safe: bool) -> String {
    if rng.chance(25) {
        let n = rng.range(0, 40);
        return noise(rng, n, safe);
    }
    match name {
        "start" | "end" => rng.pick(&TIMES).to_string(),
        "step" => rng.pick(&STEPS).to_string(),
        "metrics" => rng.pick(&METRIC_LISTS).to_string(),
        "last_event_id" => rng.pick(&EVENT_IDS).to_string(),
        _ => {
            let n = rng.range(0, 12);
            noise(rng, n, safe)
        }
    }
}

/// `n` characters a query may carry (`safe`: ones the URI grammar allows, including broken
/// percent-encodings; else any byte but CR, LF and space).
fn noise(rng: &mut Rng, n: usize, safe: bool) -> String {
    const SAFE: &[u8] = b"abcXYZ019-._~!$&'()*+,;=:@/?%";
    let mut s = String::new();
    for _ in 0..n {
        if safe {
            s.push(rng.pick(SAFE) as char);
        } else {
            let b = rng.range(0x21, 0x7e) as u8;
            s.push(b as char);
        }
    }
    s
}

/// `v` with every byte outside the URI grammar's (RFC 3986 `pchar`, `/`, `?`, and `%`)
/// percent-encoded.
fn uri_safe(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Every known parameter, mutated, on every path.
fn query(rng: &mut Rng, c: &mut Case) {
    c.family = "query";
    let route = rng.pick(&ROUTES);
    let safe = rng.chance(70);
    let mut q = String::new();
    for i in 0..rng.range(1, 6) {
        if i > 0 {
            q.push('&');
        }
        let name = rng.pick(&PARAMETERS);
        q.push_str(name);
        if rng.chance(92) {
            q.push('=');
            let v = value(rng, name, safe);
            if safe {
                // Spaces and non-ASCII of the lists, encoded: a URI every parser takes.
                q.push_str(&uri_safe(&v));
            } else {
                q.push_str(&v);
            }
        }
    }
    if rng.chance(5) {
        // A very long query: thousands of parameters.
        q.push_str(&"&a=1".repeat(rng.range(100, 3000)));
    }
    let r = Request::get(&format!("{route}?{q}")).header("Connection", "close");
    single(c, &r, !safe);
    // SPEC §3: only a known parameter with a bad value is a 400, and only where it is
    // known; a URI hyper cannot parse is a 400 anywhere.
    c.expect = Some(vec![match (route, safe) {
        (HISTORY, _) => &[200, 400],
        (STREAM, _) => &[200, 400, 503],
        (_, true) => &[200],
        (_, false) => &[200, 400],
    }]);
}

/// Adds a header line `name: value`.
fn push(r: &mut Request, name: &str, value: &[u8]) {
    r.headers.push((name.as_bytes().to_vec(), value.to_vec()));
}

/// One header mutation of `r`.
fn mutate_headers(rng: &mut Rng, r: &mut Request) {
    match rng.below(22) {
        0 => {
            for i in 0..rng.range(20, 150) {
                push(r, &format!("X-Flood-{i}"), b"v");
            }
        }
        1 => {
            let n = rng.pick(&[1024, 4 * 1024, 15 * 1024, 17 * 1024, 40 * 1024]);
            push(r, "X-Big", &vec![b'a'; n]);
        }
        2 => push(
            r,
            "Host",
            rng.pick(&["fuzz.test", "other.test", ""]).as_bytes(),
        ),
        3 => {
            let a = rng.pick(&["0", "1", "5"]);
            let b = rng.pick(&["0", "1", "5"]);
            push(r, "Content-Length", a.as_bytes());
            push(r, "Content-Length", b.as_bytes());
        }
        4 => {
            push(r, "Content-Length", rng.pick(&["0", "3", "10"]).as_bytes());
            push(r, "Transfer-Encoding", b"chunked");
        }
        5 => {
            let te = rng.pick(&[
                "chunked",
                "gzip",
                "chunked, identity",
                " chunked",
                "CHUNKED",
                "identity",
                "gzip, chunked",
                "",
            ]);
            push(r, "Transfer-Encoding", te.as_bytes());
        }
        6 => {
            // obs-fold: a continuation line.
            push(r, "X-Folded", b"a");
            r.raw_lines.push(b" continued".to_vec());
        }
        7 => r.eol = b"\n",
        8 => {
            let name: &[u8] = rng.pick(&[
                &b"X Y"[..],
                b"X\x00Y",
                b"X\x7fY",
                b"\xc3\x9c",
                b"",
                b"X(Y)",
                b"X\"",
                b"X\tY",
            ]);
            r.headers.push((name.to_vec(), b"v".to_vec()));
        }
        9 => {
            let value: &[u8] = rng.pick(&[
                &b"a\x00b"[..],
                b"a\x01b",
                b"a\x7fb",
                b"\xff\xfe",
                b"a\rb",
                b"\t",
                b"a\x1bb",
            ]);
            push(r, "X-Bad", value);
        }
        10 => r.raw_lines.push(b"NoColonHere".to_vec()),
        11 => r
            .headers
            .push((b"X-Space ".to_vec(), b"before-colon".to_vec())),
        12 => {
            for _ in 0..rng.range(1, 3) {
                let a = rng.pick(&ACCEPTS);
                push(r, "Accept", a.as_bytes());
            }
        }
        13 => {
            let mut a = String::new();
            for i in 0..rng.range(50, 2000) {
                let _ = write!(a, "type/sub{i};q=0.{};p=\"v\",", i % 10);
            }
            push(r, "Accept", a.as_bytes());
        }
        14 => push(r, "Last-Event-ID", rng.pick(&EVENT_IDS).as_bytes()),
        15 => push(r, "Last-Event-ID", b"\xff\xfe1"),
        16 => {
            let v = rng.pick(&[
                "close, keep-alive",
                "keep-alive",
                "upgrade",
                "",
                "Close",
                "x, y, z",
            ]);
            push(r, "Connection", v.as_bytes());
        }
        17 => push(
            r,
            "Expect",
            rng.pick(&["100-continue", "200-ok", ""]).as_bytes(),
        ),
        18 => {
            push(
                r,
                "Upgrade",
                rng.pick(&["websocket", "h2c", "HTTP/2.0"]).as_bytes(),
            );
            push(r, "Connection", b"Upgrade");
        }
        19 => {
            let long = "h".repeat(5000);
            let v = rng.pick(&["a b", "fuzz.test:99999", "[::1", "@", long.as_str()]);
            push(r, "Host", v.as_bytes());
        }
        20 => {
            let v = rng.pick(&[
                "-1",
                "+0",
                "0x10",
                "1e3",
                "99999999999999999999999",
                " 0",
                "0 0",
            ]);
            push(r, "Content-Length", v.as_bytes());
        }
        _ => {
            let v = rng.pick(&["gzip", "br;q=1, *;q=0", "identity;q=0"]);
            push(r, "Accept-Encoding", v.as_bytes());
        }
    }
}

/// Header floods, duplicates, conflicts and bytes no header may hold.
fn headers(rng: &mut Rng, c: &mut Case) {
    c.family = "headers";
    let route = rng.pick(&ROUTES);
    let mut r = Request::get(route);
    if rng.chance(50) {
        r = r.header("Connection", "close");
    }
    for _ in 0..rng.range(1, 3) {
        mutate_headers(rng, &mut r);
    }
    // A Content-Length or Transfer-Encoding may now wait for a body: half-close.
    single(c, &r, true);
}

/// Bodies on requests that take none: sized, chunked, truncated, malformed.
fn body(rng: &mut Rng, c: &mut Case) {
    c.family = "body";
    let route = rng.pick(&ROUTES);
    let mut r = Request::get(route);
    r.method = rng.pick(&["GET", "GET", "POST", "HEAD"]).to_string();
    let payload = b"GET /nope HTTP/1.1\r\nHost: smuggled\r\n\r\n".to_vec();
    match rng.below(8) {
        0 => {
            r = r.header("Content-Length", &payload.len().to_string());
            r.body = payload;
        }
        1 => {
            // Fewer bytes than announced.
            r = r.header(
                "Content-Length",
                &(payload.len() + rng.range(1, 1000)).to_string(),
            );
            r.body = payload;
        }
        2 => {
            r = r.header(
                "Content-Length",
                rng.pick(&["1000000000000", "18446744073709551615", "4294967296"]),
            );
            r.body = vec![b'x'; rng.range(0, 2000)];
        }
        3 => {
            r = r.header("Transfer-Encoding", "chunked");
            r.body = b"5\r\nhello\r\n6; ext=1\r\n world\r\n0\r\n\r\n".to_vec();
        }
        4 => {
            r = r.header("Transfer-Encoding", "chunked");
            let full = b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
            r.body = full[..rng.below(full.len())].to_vec();
        }
        5 => {
            r = r.header("Transfer-Encoding", "chunked");
            r.body = rng
                .pick(&[
                    &b"zz\r\nhello\r\n0\r\n\r\n"[..],
                    b"-1\r\n\r\n",
                    b"FFFFFFFFFFFFFFFFFF\r\nx\r\n",
                    b"5\r\nhelloXX0\r\n\r\n",
                    b"5\nhello\n0\n\n",
                    b"0\r\n",
                    b"\r\n",
                ])
                .to_vec();
        }
        6 => {
            r = r.header("Content-Length", "0");
            r.body = payload;
        }
        _ => {
            r = r
                .header("Expect", "100-continue")
                .header("Content-Length", "10");
            r.body = b"0123456789".to_vec();
        }
    }
    if rng.chance(50) {
        r = r.header("Connection", "close");
    }
    // The smuggled request may be answered too; its method counts for framing.
    c.methods.push(r.method.clone());
    c.methods.push("GET".to_owned());
    c.steps.push(Step::Send(r.bytes()));
    c.steps.push(Step::ShutdownWrite);
    c.end = End::UntilClose;
}

/// The client stops sending: right after a whole request, or in the middle of one.
fn half_close(rng: &mut Rng, c: &mut Case) {
    c.family = "half-close";
    let close = rng.chance(50);
    let (r, expect) = clean(rng, close, false);
    let bytes = r.bytes();
    c.methods.push(r.method.clone());
    if rng.chance(50) {
        if rng.chance(50) {
            c.steps.push(Step::Send(bytes));
            c.steps.push(Step::ShutdownWrite);
        } else {
            c.steps.push(Step::SendAndFin(bytes));
        }
        // A whole request, then the end of what it sends: it is still owed its answer.
        c.expect = Some(vec![expect]);
    } else {
        let cut = rng.below(bytes.len());
        c.steps.push(Step::Send(bytes[..cut].to_vec()));
        c.steps.push(Step::ShutdownWrite);
    }
    c.end = End::UntilClose;
}

/// A whole request in small pieces with pauses between them.
fn slowloris(rng: &mut Rng, c: &mut Case) {
    c.family = "slowloris";
    let (r, expect) = clean(rng, true, true);
    let bytes = r.bytes();
    c.methods.push(r.method.clone());
    let pieces = rng.range(2, 12);
    let mut cuts: Vec<usize> = (0..pieces - 1)
        .map(|_| rng.range(1, bytes.len() - 1))
        .collect();
    if rng.chance(30) {
        // Inside the first line: the server's first read sees a fragment of it.
        cuts.push(rng.range(1, 20.min(bytes.len() - 1)));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut at = 0;
    for cut in cuts {
        c.steps.push(Step::Send(bytes[at..cut].to_vec()));
        c.steps
            .push(Step::Pause(Duration::from_millis(rng.range(1, 25) as u64)));
        at = cut;
    }
    c.steps.push(Step::Send(bytes[at..].to_vec()));
    c.expect = Some(vec![expect]);
    c.end = End::UntilClose;
}

/// The client resets its connection: before, during or after its request.
fn reset(rng: &mut Rng, c: &mut Case) {
    c.family = "reset";
    let (r, _) = clean(rng, false, true);
    let bytes = r.bytes();
    c.methods.push(r.method.clone());
    match rng.below(4) {
        0 => c.steps.push(Step::Reset),
        1 => {
            c.steps
                .push(Step::Send(bytes[..rng.below(bytes.len())].to_vec()));
            c.steps.push(Step::Reset);
        }
        2 => {
            c.steps.push(Step::Send(bytes));
            c.end = End::ResetOnAnswer;
        }
        _ => {
            let mut big = bytes;
            big.truncate(big.len() - 2);
            big.extend(std::iter::repeat_n(b'x', 200 * 1024));
            c.steps.push(Step::Send(big));
            c.steps.push(Step::Reset);
        }
    }
    if c.steps.last() == Some(&Step::Reset) {
        c.end = End::Nothing;
    }
}

/// `/metrics/stream` with resume points in the header and the query, good and bad.
fn stream(rng: &mut Rng, c: &mut Case) {
    c.family = "stream";
    let mut target = STREAM.to_owned();
    let mut r_query = false;
    if rng.chance(40) {
        let _ = write!(
            target,
            "?last_event_id={}",
            rng.pick(&EVENT_IDS).replace(' ', "%20")
        );
        r_query = true;
    }
    let mut r = Request::get(&target);
    if rng.chance(50) || !r_query {
        let id = rng.pick(&EVENT_IDS);
        r = r.header("Last-Event-ID", id);
    }
    if rng.chance(10) {
        r.version = Some(b"HTTP/1.0".to_vec());
    }
    if rng.chance(10) {
        r.method = "HEAD".to_owned();
    } else {
        // A 400 must end the connection too (a stream ends it anyway).
        r = r.header("Connection", "close");
    }
    let bytes = r.bytes();
    c.methods.push(r.method.clone());
    match rng.below(4) {
        0 => {
            let cut = rng.range(1, bytes.len() - 1);
            c.steps.push(Step::Send(bytes[..cut].to_vec()));
            c.steps
                .push(Step::Pause(Duration::from_millis(rng.range(1, 20) as u64)));
            c.steps.push(Step::Send(bytes[cut..].to_vec()));
        }
        1 => {
            c.steps.push(Step::Send(bytes));
            c.end = End::ResetOnAnswer;
            return;
        }
        2 => {
            c.steps.push(Step::Send(bytes));
            c.steps.push(Step::ShutdownWrite);
        }
        _ => c.steps.push(Step::Send(bytes)),
    }
    c.end = if r.method == "HEAD" {
        // A HEAD answer ends; the connection stays open for more.
        End::Answers(1)
    } else {
        End::UntilClose
    };
    c.expect = Some(vec![&[200, 400, 503]]);
}

/// A clean request with bytes flipped, inserted, removed or repeated.
fn bytes(rng: &mut Rng, c: &mut Case) {
    c.family = "bytes";
    let (mut r, _) = clean(rng, true, true);
    r.method = "GET".to_owned();
    let mut b = r.bytes();
    for _ in 0..rng.range(1, 4) {
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b.insert(at, rng.below(256) as u8),
            2 => {
                let end = (at + rng.range(1, 8)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let end = (at + rng.range(1, 16)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
            4 => {
                b.splice(at..at, b"\r\n".iter().copied());
            }
            _ => b[at] = 0,
        }
        if b.is_empty() {
            b.push(b'G');
        }
    }
    c.methods.push("GET".to_owned());
    c.steps.push(Step::Send(b));
    c.steps.push(Step::ShutdownWrite);
    c.end = End::UntilClose;
}

// --- judging answers ---------------------------------------------------------------------

/// One answer as it came off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// A `200` event stream: only its head and first bytes were read.
    pub stream: bool,
}

/// What parsing the bytes read so far gave.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A whole answer (or an event stream's head) and the bytes it took.
    Done(Answer, usize),
    /// An interim `1xx` of this length: a final answer follows.
    Interim(usize),
    NeedMore,
    Malformed(String),
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.5: field-value bytes are VCHAR, SP, HTAB and obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one answer at the start of `buf`, to a request of `method`; `eof` when no more
/// bytes will come.
fn parse_answer(buf: &[u8], method: &str, eof: bool) -> Parsed {
    let bad = |why: String| Parsed::Malformed(why);
    let prefix = &buf[..buf.len().min(5)];
    if !b"HTTP/".starts_with(prefix) {
        return bad(format!(
            "an answer does not start with HTTP/: {}",
            escape(buf, 40)
        ));
    }
    let Some(head_len) = find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return bad("an answer head longer than 64 KiB".to_owned());
        }
        return if eof {
            bad(format!(
                "the connection closed inside an answer head: {}",
                escape(buf, 200)
            ))
        } else {
            Parsed::NeedMore
        };
    };
    // Every line with its CRLF; the split leaves an empty piece after the last.
    let head = &buf[..head_len + 2];
    let mut lines = head[..head.len() - 1].split(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    let Some(status_line) = status_line.strip_suffix(b"\r") else {
        return bad("a status line without CRLF".to_owned());
    };
    let version_ok = status_line.starts_with(b"HTTP/1.1 ") || status_line.starts_with(b"HTTP/1.0 ");
    let code = status_line.get(9..12).unwrap_or_default();
    let after = status_line.get(12).copied();
    if !version_ok
        || code.len() != 3
        || !code.iter().all(u8::is_ascii_digit)
        || !matches!(after, None | Some(b' '))
    {
        return bad(format!(
            "a malformed status line {}",
            escape(status_line, 80)
        ));
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return bad(format!("status {status} out of range"));
    }
    if !status_line[12..].iter().all(|&b| is_field_byte(b)) {
        return bad(format!(
            "a reason phrase with control bytes: {}",
            escape(status_line, 80)
        ));
    }
    let mut content_length: Vec<&[u8]> = Vec::new();
    let mut chunked = None;
    let mut content_type = None;
    let mut retry_after = false;
    let mut allow = false;
    let rest: Vec<&[u8]> = lines.collect();
    for line in &rest {
        let Some(line) = line.strip_suffix(b"\r") else {
            return bad(format!(
                "a header line without CRLF in {}",
                escape(head, 200)
            ));
        };
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return bad(format!(
                "a header line without a colon: {}",
                escape(line, 80)
            ));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return bad(format!(
                "a header name that is not a token: {}",
                escape(name, 80)
            ));
        }
        if !value.iter().all(|&b| is_field_byte(b)) {
            return bad(format!(
                "a header value with control bytes: {}",
                escape(line, 80)
            ));
        }
        let value = value.trim_ascii();
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        match name.as_str() {
            "content-length" => content_length.push(value),
            "transfer-encoding" => {
                if chunked.is_some() {
                    return bad("two Transfer-Encoding headers".to_owned());
                }
                chunked = Some(value);
            }
            "content-type" => content_type = Some(String::from_utf8_lossy(value).into_owned()),
            "retry-after" => {
                retry_after = !value.is_empty() && value.iter().all(u8::is_ascii_digit)
            }
            "allow" => allow = !value.is_empty(),
            _ => {}
        }
    }
    if content_length.len() > 1 {
        return bad("more than one Content-Length".to_owned());
    }
    if !content_length.is_empty() && chunked.is_some() {
        return bad("both Content-Length and Transfer-Encoding".to_owned());
    }
    if let Some(te) = chunked
        && te != b"chunked"
    {
        return bad(format!("Transfer-Encoding {}", escape(te, 40)));
    }
    let start = head_len + 4;
    let body_less = method == "HEAD" || status < 200 || status == 204 || status == 304;
    let stream = status == 200
        && content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/event-stream"));
    let (body, end): (&[u8], usize) = if body_less {
        (&[], start)
    } else if stream {
        // Endless by design: its head and its first bytes are the answer (SPEC §7: the
        // retry line leaves at once).
        if find(&buf[start..], b"retry: 5000\n\n").is_none() {
            return if eof {
                bad(format!(
                    "a stream that ended before its retry line: {}",
                    escape(&buf[start..], 200)
                ))
            } else {
                Parsed::NeedMore
            };
        }
        return Parsed::Done(
            Answer {
                status,
                stream: true,
            },
            buf.len(),
        );
    } else if chunked.is_some() {
        match dechunk(&buf[start..]) {
            Ok(Some(len)) => (&buf[start..start + len], start + len),
            Ok(None) if eof => return bad("the connection closed inside a chunked body".to_owned()),
            Ok(None) => return Parsed::NeedMore,
            Err(why) => return bad(why),
        }
    } else if let Some(cl) = content_length.first() {
        let Some(n) = std::str::from_utf8(cl)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return bad(format!("Content-Length {}", escape(cl, 40)));
        };
        if buf.len() < start + n {
            return if eof {
                bad(format!(
                    "the connection closed {} bytes into a {n}-byte body",
                    buf.len() - start
                ))
            } else {
                Parsed::NeedMore
            };
        }
        (&buf[start..start + n], start + n)
    } else if eof {
        (&buf[start..], buf.len())
    } else {
        return Parsed::NeedMore;
    };
    if status < 200 {
        return Parsed::Interim(end);
    }
    // Checks of what the answer says.
    if status >= 500 {
        let cap = status == 503
            && retry_after
            && String::from_utf8_lossy(body).contains("METRICS_MAX_STREAMS");
        if !cap {
            return bad(format!(
                "status {status}: {}",
                escape(&buf[..end.min(buf.len())], 300)
            ));
        }
    }
    if status == 405 && !allow {
        return bad("a 405 without Allow".to_owned());
    }
    if status >= 400 && !body.is_empty() {
        let json = content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"));
        if !json {
            return bad(format!(
                "a {status} whose body is not JSON: {}",
                escape(&buf[..end], 200)
            ));
        }
        if !(body.starts_with(b"{\"error\":\"") && body.ends_with(b"\"}")) {
            return bad(format!(
                "a {status} whose body is not {{\"error\": …}}: {}",
                escape(body, 200)
            ));
        }
    }
    Parsed::Done(
        Answer {
            status,
            stream: false,
        },
        end,
    )
}

/// The length of a whole chunked body at the start of `b` (trailers included), `None` if
/// more is needed.
fn dechunk(b: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = find(&b[at..], b"\r\n") else {
            return if b.len() - at > 64 {
                Err("a chunk size line longer than 64 bytes".to_owned())
            } else {
                Ok(None)
            };
        };
        let line = &b[at..at + eol];
        let size = line.split(|&c| c == b';').next().unwrap_or_default();
        if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("a bad chunk size {}", escape(line, 40)));
        }
        let n = size.iter().fold(0usize, |n, d| {
            n * 16 + (*d as char).to_digit(16).unwrap_or(0) as usize
        });
        at += eol + 2;
        if n == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find(&b[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if b.len() < at + n + 2 {
            return Ok(None);
        }
        if &b[at + n..at + n + 2] != b"\r\n" {
            return Err("a chunk not followed by CRLF".to_owned());
        }
        at += n + 2;
    }
}

/// How the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ended {
    /// The server closed it (a FIN).
    Closed,
    /// The server reset it.
    Reset,
    /// The client was done first (it had what it waited for, or it reset).
    Client,
    /// Neither answered nor closed within the case's deadline.
    Hung,
}

/// What one case gave.
#[derive(Debug)]
pub struct Outcome {
    pub answers: Vec<Answer>,
    pub ended: Ended,
    /// Oracle violations, each a sentence.
    pub problems: Vec<String>,
}

/// Sets `SO_LINGER` to 0 and closes: the kernel answers with a reset.
fn reset_close(stream: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
    drop(stream);
}

/// Plays `case` against `addr`; the server must be done with it within `deadline` of the
/// client being done.
pub fn execute(addr: SocketAddr, case: &Case, deadline: Duration) -> Outcome {
    let mut out = Outcome {
        answers: Vec::new(),
        ended: Ended::Client,
        problems: Vec::new(),
    };
    let mut stream = match TcpStream::connect_timeout(&addr, deadline) {
        Ok(s) => s,
        Err(e) => {
            out.problems.push(format!("could not connect: {e}"));
            out.ended = Ended::Hung;
            return out;
        }
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(deadline));
    let mut write_failed = false;
    for step in &case.steps {
        match step {
            Step::Send(bytes) if !write_failed => {
                // The server may close first (a 400, a 431): then the rest is not sent.
                write_failed = stream.write_all(bytes).is_err();
            }
            Step::Send(_) => {}
            Step::Pause(d) => std::thread::sleep(*d),
            Step::ShutdownWrite => {
                let _ = stream.shutdown(Shutdown::Write);
            }
            Step::SendAndFin(bytes) => {
                // Corked, the kernel holds the bytes until the FIN can go with them.
                let _ = rustix::net::sockopt::set_tcp_cork(&stream, true);
                write_failed = write_failed || stream.write_all(bytes).is_err();
                let _ = stream.shutdown(Shutdown::Write);
            }
            Step::Reset => {
                reset_close(stream);
                return out;
            }
        }
    }
    let until = Instant::now() + deadline;
    match case.end {
        End::Nothing => return out,
        End::ResetOnAnswer => {
            let mut one = [0u8; 1];
            let _ = stream.set_read_timeout(Some(deadline));
            if stream.peek(&mut one).is_err() {
                out.ended = Ended::Hung;
                out.problems.push(format!("no answer within {deadline:?}"));
            }
            reset_close(stream);
            return out;
        }
        End::UntilClose | End::Answers(_) => {}
    }
    let want = match case.end {
        End::Answers(n) => n,
        _ => usize::MAX,
    };
    read_answers(&mut stream, case, until, want, &mut out);
    expect_all(case, &mut out);
    out
}

/// Reads and judges answers until the server closes, `want` answers have come, a stream
/// opens, or `until` passes.
fn read_answers(
    stream: &mut TcpStream,
    case: &Case,
    until: Instant,
    want: usize,
    out: &mut Outcome,
) {
    let mut buf = Vec::new();
    let mut at = 0;
    let mut chunk = vec![0u8; 16 * 1024];
    let mut eof = false;
    loop {
        while at < buf.len() {
            let method = case
                .methods
                .get(out.answers.len())
                .map_or("GET", String::as_str);
            match parse_answer(&buf[at..], method, eof) {
                Parsed::Done(answer, len) => {
                    at += len;
                    let stream_open = answer.stream;
                    out.answers.push(answer);
                    if stream_open {
                        return;
                    }
                }
                Parsed::Interim(len) => at += len,
                Parsed::NeedMore => break,
                Parsed::Malformed(why) => {
                    out.problems.push(why);
                    return;
                }
            }
        }
        if out.answers.len() >= want || eof {
            return;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            out.ended = Ended::Hung;
            out.problems.push(format!(
                "{} answer(s), then neither more nor a close within the deadline",
                out.answers.len()
            ));
            return;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => {
                eof = true;
                out.ended = Ended::Closed;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                // A reset: what came before it stands; a partial answer is not judged.
                out.ended = Ended::Reset;
                return;
            }
        }
    }
}

/// The statuses of the answers against what the case expects; a valid request that the
/// server closed on without answering is a problem too.
fn expect_all(case: &Case, out: &mut Outcome) {
    let Some(expect) = &case.expect else { return };
    for (i, (answer, allowed)) in out.answers.iter().zip(expect).enumerate() {
        if !allowed.contains(&answer.status) {
            out.problems.push(format!(
                "request {} got {} where {allowed:?} was due",
                i + 1,
                answer.status
            ));
        }
    }
    // A 503 from the stream cap closes the connection: nothing after it is owed. A hang
    // is a problem already.
    let capped = out.answers.iter().any(|a| a.status == 503);
    let hung = out.ended == Ended::Hung;
    if out.answers.len() < expect.len() && !capped && !hung && out.problems.is_empty() {
        out.problems.push(format!(
            "{} of {} valid requests answered before the server {}",
            out.answers.len(),
            expect.len(),
            if out.ended == Ended::Reset {
                "reset"
            } else {
                "closed"
            }
        ));
    }
}

// --- the run -------------------------------------------------------------------------------

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    /// The first case's index (a replay of one case starts at it).
    pub first: u64,
    pub cases: u64,
    /// Connections played at once.
    pub workers: usize,
    /// How long the server has to be done with a case once the client is.
    pub deadline: Duration,
}

impl Plan {
    /// `METRICS_FUZZ_SEED` (decimal or `0x` hex), `METRICS_FUZZ_CASES` and
    /// `METRICS_FUZZ_CASE` (one case only) over these defaults.
    pub fn from_env(seed: u64, cases: u64) -> Result<Self, String> {
        let number = |name: &str| -> Result<Option<u64>, String> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => {
                    let v = v.trim();
                    let parsed = match v.strip_prefix("0x") {
                        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
                        None => v.replace('_', "").parse(),
                    };
                    parsed.map(Some).map_err(|_| {
                        format!("{name}={v:?}: expected a whole number (decimal or 0x hex)")
                    })
                }
            }
        };
        let mut plan = Self {
            seed: number("METRICS_FUZZ_SEED")?.unwrap_or(seed),
            first: 0,
            cases: number("METRICS_FUZZ_CASES")?.unwrap_or(cases),
            workers: 4,
            deadline: Duration::from_secs(5),
        };
        if let Some(one) = number("METRICS_FUZZ_CASE")? {
            plan.first = one;
            plan.cases = 1;
        }
        Ok(plan)
    }
}

/// An oracle violation, with the case that caused it.
#[derive(Clone, Debug)]
pub struct Problem {
    pub case: Case,
    pub what: String,
}

/// What the watcher saw.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Each `GET /metrics`'s time to a whole `200`.
    pub latencies: Vec<Duration>,
    /// Answers that were not a `200` within [`WATCH_BOUND`].
    pub failures: Vec<String>,
}

impl Watch {
    pub fn max(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    /// The `p`-th percentile (0 to 100), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort_unstable();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

/// What a run gave.
#[derive(Debug)]
pub struct Report {
    pub plan: Plan,
    pub elapsed: Duration,
    /// How each case's connection went: answers by status (`200`, `200 stream`, `404`…),
    /// and connections that got none, by how they ended.
    pub outcomes: BTreeMap<String, u64>,
    /// Cases per generator family.
    pub families: BTreeMap<&'static str, u64>,
    pub problems: Vec<Problem>,
    /// Cases with at least one problem.
    pub failed_cases: u64,
    pub watch: Watch,
}

impl Report {
    /// The 5xx answers among the outcomes (the stream cap's 503 is counted, as `503`).
    pub fn count_5xx(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| k.starts_with('5'))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn cases_per_second(&self) -> f64 {
        self.plan.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One paragraph: the counts, the outcomes, the watcher.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} cases of seed {:#x} in {:.1} s ({:.0} cases/s, {} workers): {} problem(s) in {} case(s)\n",
            self.plan.cases,
            self.plan.seed,
            self.elapsed.as_secs_f64(),
            self.cases_per_second(),
            self.plan.workers,
            self.problems.len(),
            self.failed_cases,
        );
        let join = |m: &mut dyn Iterator<Item = String>| m.collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            s,
            "outcomes: {}",
            join(&mut self.outcomes.iter().map(|(k, n)| format!("{k}: {n}")))
        );
        let _ = writeln!(
            s,
            "families: {}",
            join(&mut self.families.iter().map(|(k, n)| format!("{k}: {n}")))
        );
        let _ = write!(
            s,
            "watcher: {} GET /metrics, max {:.1} ms, p99 {:.1} ms, {} failure(s)",
            self.watch.latencies.len(),
            self.watch.max().as_secs_f64() * 1e3,
            self.watch.percentile(99.0).as_secs_f64() * 1e3,
            self.watch.failures.len()
        );
        s
    }

    /// The first `n` problems, each with its case and how to replay it.
    pub fn failures(&self, n: usize) -> String {
        let mut s = String::new();
        for p in self.problems.iter().take(n) {
            let _ = writeln!(
                s,
                "- {}\n  replay: METRICS_FUZZ_SEED={:#x} METRICS_FUZZ_CASE={}\n  {}",
                p.what,
                p.case.seed,
                p.case.index,
                p.case.describe().replace('\n', "\n  ")
            );
        }
        for f in self.watch.failures.iter().take(n) {
            let _ = writeln!(s, "- watcher: {f}");
        }
        s
    }
}

/// One `GET /metrics`: its status once the whole answer has come.
fn watch_once(addr: SocketAddr, timeout: Duration) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: watcher\r\nConnection: close\r\n\r\n")?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes)?;
    match parse_answer(&bytes, "GET", true) {
        Parsed::Done(a, _) => Ok(a.status),
        other => Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("{other:?}"),
        )),
    }
}

/// Asks `GET /metrics` every `pace` until `stop` says so (or is dropped).
fn watcher(addr: SocketAddr, pace: Duration, stop: &mpsc::Receiver<()>) -> Watch {
    let mut w = Watch::default();
    loop {
        let started = Instant::now();
        let status = watch_once(addr, WATCH_BOUND * 5);
        let took = started.elapsed();
        w.latencies.push(took);
        match status {
            Ok(200) if took <= WATCH_BOUND => {}
            Ok(code) => w.failures.push(format!("{code} after {took:?}")),
            Err(e) => w.failures.push(format!("{e} after {took:?}")),
        }
        match stop.recv_timeout(pace) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return w,
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    outcomes: BTreeMap<String, u64>,
    families: BTreeMap<&'static str, u64>,
    problems: Vec<Problem>,
    failed_cases: u64,
}

/// Plays `plan`'s cases against `addr` with `plan.workers` connections at a time, while a
/// watcher asks `GET /metrics` every 20 ms.
pub fn run(addr: SocketAddr, plan: &Plan) -> Report {
    let started = Instant::now();
    let (stop_tx, stop_rx) = mpsc::channel();
    let watching = std::thread::spawn(move || watcher(addr, Duration::from_millis(20), &stop_rx));
    let next = Arc::new(AtomicU64::new(plan.first));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let end = plan.first.saturating_add(plan.cases);
    let workers: Vec<_> = (0..plan.workers.max(1))
        .map(|_| {
            let next = Arc::clone(&next);
            let tally = Arc::clone(&tally);
            let (seed, deadline) = (plan.seed, plan.deadline);
            std::thread::spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        return;
                    }
                    let c = case(seed, index);
                    let outcome = execute(addr, &c, deadline);
                    let Ok(mut t) = tally.lock() else { return };
                    *t.families.entry(c.family).or_default() += 1;
                    for a in &outcome.answers {
                        let key = if a.stream {
                            format!("{} stream", a.status)
                        } else {
                            a.status.to_string()
                        };
                        *t.outcomes.entry(key).or_default() += 1;
                    }
                    if outcome.answers.is_empty() {
                        let key = match outcome.ended {
                            Ended::Closed => "no answer: closed",
                            Ended::Reset => "no answer: reset",
                            Ended::Client => "no answer: client went first",
                            Ended::Hung => "no answer: hung",
                        };
                        *t.outcomes.entry(key.to_owned()).or_default() += 1;
                    }
                    if !outcome.problems.is_empty() {
                        t.failed_cases += 1;
                    }
                    for what in outcome.problems {
                        t.problems.push(Problem {
                            case: c.clone(),
                            what,
                        });
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(());
    let watch = watching.join().unwrap_or_default();
    let tally = match Arc::try_unwrap(tally) {
        Ok(m) => m
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        Err(shared) => std::mem::take(
            &mut *shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ),
    };
    let mut problems = tally.problems;
    problems.sort_by_key(|p| p.case.index);
    Report {
        plan: plan.clone(),
        elapsed,
        outcomes: tally.outcomes,
        families: tally.families,
        problems,
        failed_cases: tally.failed_cases,
        watch,
    }
}

// Beside this file under its own name: `xtask` compiles this file by path too.
#[cfg(test)]
#[path = "fuzz/tests.rs"]
mod tests;
