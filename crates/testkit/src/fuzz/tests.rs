use super::*;

fn parse(buf: &[u8], method: &str, eof: bool) -> Parsed {
    parse_answer(buf, method, eof)
}

fn ok(status: u16, len: usize) -> Parsed {
    Parsed::Done(
        Answer {
            status,
            stream: false,
        },
        len,
    )
}

#[test]
fn a_case_is_a_function_of_its_seed_and_index() {
    for index in [0, 1, 7, 1000, u64::MAX] {
        let (a, b) = (case(CI_SEED, index), case(CI_SEED, index));
        assert_eq!(a.steps, b.steps, "case {index}");
        assert_eq!(a.family, b.family);
    }
    let differ = (0..50)
        .filter(|&i| case(1, i).steps != case(2, i).steps)
        .count();
    assert!(
        differ > 45,
        "seeds 1 and 2 share {} of 50 cases",
        50 - differ
    );
}

#[test]
fn every_family_is_generated() {
    let mut seen = BTreeMap::new();
    for i in 0..2000 {
        *seen.entry(case(CI_SEED, i).family).or_insert(0) += 1;
    }
    for family in [
        "clean",
        "pipeline",
        "request-line",
        "path",
        "query",
        "headers",
        "body",
        "half-close",
        "slowloris",
        "reset",
        "stream",
        "bytes",
    ] {
        assert!(
            seen.get(family).copied().unwrap_or(0) > 20,
            "{family}: {seen:?}"
        );
    }
}

#[test]
fn below_stays_in_range_and_covers_it() {
    let mut rng = Rng::new(5);
    let mut hits = [0u32; 7];
    for _ in 0..7000 {
        hits[rng.below(7)] += 1;
    }
    assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
    assert_eq!(rng.below(0), 0);
}

#[test]
fn whole_answers_parse_with_their_framing() {
    let cl = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    assert_eq!(parse(cl, "GET", false), ok(200, cl.len()));
    // HEAD: the length announced, no body sent.
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
    assert_eq!(parse(head, "HEAD", false), ok(200, head.len()));
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
    assert_eq!(parse(chunked, "GET", false), ok(200, chunked.len()));
    let close = b"HTTP/1.0 200 OK\r\n\r\nuntil the end";
    assert_eq!(parse(close, "GET", false), Parsed::NeedMore);
    assert_eq!(parse(close, "GET", true), ok(200, close.len()));
    let stream =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(
        parse(stream, "GET", false),
        Parsed::NeedMore,
        "waits for the retry line"
    );
    assert!(matches!(parse(stream, "GET", true), Parsed::Malformed(_)));
    assert!(
        matches!(parse(stream, "HEAD", true), Parsed::Done(_, _)),
        "HEAD: no body"
    );
    let started = [&stream[..], b"d\r\nretry: 5000\n\n\r\n"].concat();
    assert!(matches!(
        parse(&started, "GET", false),
        Parsed::Done(Answer { stream: true, .. }, _)
    ));
    let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n";
    assert_eq!(parse(interim, "GET", false), Parsed::Interim(25));
    let error = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"error\":\"x\"}";
    assert_eq!(parse(error, "GET", false), ok(404, error.len()));
    // Two pipelined: the first is taken alone.
    let two = [&cl[..], &cl[..]].concat();
    assert_eq!(parse(&two, "GET", false), ok(200, cl.len()));
    assert_eq!(parse(b"HTT", "GET", false), Parsed::NeedMore);
}

#[test]
fn broken_answers_are_named() {
    let cases: [(&[u8], &str); 14] = [
        (b"HTTX/1.1 200 OK\r\n\r\n", "HTTP/"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\ncontent-length: 0\r\n\r\n", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nbad name: x\r\ncontent-length: 0\r\n\r\n", "token"),
        (b"HTTP/1.1 200 OK\r\nx: a\x01b\r\ncontent-length: 0\r\n\r\n", "control"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx", "more than one"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n", "both"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n", "status 500"),
        (
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"error\":\"x\"}",
            "status 503",
        ),
        (b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n", "Allow"),
        (b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nno", "not JSON"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab", "closed 2 bytes into"),
    ];
    for (bytes, says) in cases {
        match parse(bytes, "GET", true) {
            Parsed::Malformed(why) => {
                assert!(why.contains(says), "{why:?} for {}", escape(bytes, 99))
            }
            other => panic!("{other:?} for {}", escape(bytes, 99)),
        }
    }
}

#[test]
fn the_stream_caps_503_is_the_one_5xx_allowed() {
    let body = br#"{"error":"4 streams are open, the most this server serves at once (METRICS_MAX_STREAMS); retry later"}"#;
    let mut cap = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    cap.extend_from_slice(body);
    assert_eq!(parse(&cap, "GET", false), ok(503, cap.len()));
}

#[test]
fn escape_shows_every_byte_and_cuts_long_ones() {
    assert_eq!(
        escape(b"GET /\r\n\x00\xff\"", 99),
        "b\"GET /\\r\\n\\x00\\xff\\\"\""
    );
    assert_eq!(escape(b"abcdef", 3), "b\"abc\"… (3 more bytes)");
}
