//! A Server-Sent Events client over a plain socket: the request, the response head, the
//! chunked body taken apart, and the events in it, each read with a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One block of the stream (the lines up to a blank line).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Block {
    pub(crate) id: Option<i64>,
    pub(crate) event: Option<String>,
    pub(crate) data: Option<String>,
    pub(crate) retry: Option<u64>,
    pub(crate) comment: Option<String>,
}

impl Block {
    /// A sample: an id and data, no `event:` name.
    pub(crate) fn is_sample(&self) -> bool {
        self.id.is_some() && self.event.is_none() && self.data.is_some()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.data.as_deref().unwrap_or("null")).unwrap()
    }
}

pub(crate) struct Sse {
    pub(crate) sock: TcpStream,
    pub(crate) status: u16,
    head: String,
    raw: Vec<u8>,
    body: Vec<u8>,
    ended: bool,
}

impl Sse {
    /// `GET path` with `headers`; returns once the response head is in.
    pub(crate) fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::open_with(addr, "GET", path, headers)
    }

    pub(crate) fn open_with(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Self {
        let mut sock = TcpStream::connect(addr).unwrap();
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        sock.write_all(req.as_bytes()).unwrap();
        let mut s = Self {
            sock,
            status: 0,
            head: String::new(),
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = find(&s.raw, b"\r\n\r\n") {
                s.head = String::from_utf8_lossy(&s.raw[..end]).into_owned();
                s.raw.drain(..end + 4);
                break;
            }
            assert!(
                s.fill(deadline),
                "no response head; got {:?}",
                String::from_utf8_lossy(&s.raw)
            );
        }
        s.status = s
            .head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap();
        s
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// Reads more from the socket; false on timeout, end or error.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.sock.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 16 * 1024];
        match self.sock.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Moves whole chunks from `raw` to `body`.
    fn dechunk(&mut self) {
        while !self.ended {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16)
                .unwrap_or_else(|_| panic!("not a chunk size: {size_text:?}"));
            if size == 0 {
                self.ended = true;
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// Whether the server ended the body (its last chunk came).
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// The next block, within `timeout`; `None` when the stream ended or nothing came.
    pub(crate) fn next(&mut self, timeout: Duration) -> Option<Block> {
        let deadline = Instant::now() + timeout;
        loop {
            self.dechunk();
            if let Some(end) = find(&self.body, b"\n\n") {
                let text = String::from_utf8_lossy(&self.body[..end]).into_owned();
                self.body.drain(..end + 2);
                return Some(parse_block(&text));
            }
            if self.ended || !self.fill(deadline) {
                return None;
            }
        }
    }

    /// The next sample event (skipping control lines), within `timeout`.
    pub(crate) fn next_sample(&mut self, timeout: Duration) -> Option<Block> {
        let deadline = Instant::now() + timeout;
        loop {
            let b = self.next(deadline.saturating_duration_since(Instant::now()))?;
            if b.is_sample() {
                return Some(b);
            }
        }
    }

    /// Whether the body ended cleanly (its last chunk) within `timeout`.
    pub(crate) fn ends_cleanly(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.dechunk();
            if self.ended {
                return true;
            }
            if !self.fill(deadline) {
                return false;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_block(text: &str) -> Block {
    let mut b = Block::default();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix(':') {
            b.comment = Some(c.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "id" => b.id = Some(value.parse().unwrap()),
            "event" => b.event = Some(value.to_owned()),
            "data" => b.data = Some(value.to_owned()),
            "retry" => b.retry = Some(value.parse().unwrap()),
            other => panic!("unknown field {other:?} in {text:?}"),
        }
    }
    b
}
