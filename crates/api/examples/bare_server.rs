//! The benchmark baseline: a bare hyper 1.x HTTP/1.1 server answering every request with a
//! fixed copy of a real `/metrics` body (173 bytes) and the same headers as ours.
//!
//! Same runtime (tokio multi-thread, `min(cores, 4)` workers) and the same hyper `http1`
//! connection builder as `api::serve`, with keep-alive and `TCP_NODELAY`; no routing, no
//! connection cap, no header-read timer, no shared state. Whatever our service costs above
//! this is what routing, limits and the published snapshot cost.
//!
//! ```text
//! cargo build --release --example bare_server -p api
//! target/release/examples/bare_server [ADDR [BODY_FILE CONTENT_TYPE]]  # default 127.0.0.1:19102
//! ```
//!
//! With `BODY_FILE`, that file's bytes are the fixed body, served as `CONTENT_TYPE`
//! (`cargo xtask bench --scrape` hands it a copy of our OpenMetrics body).
//!
//! Also the `CEILING` binary of `/work/shared/bench/peers.sh` (which passes ADDR and asks
//! for `/metrics`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A `/metrics` body as our service served it (content-length 173).
const BODY: &[u8] = br#"{"cpu":0.0,"ram":1.8,"gpu":null,"temperature":null,"disk":{"used":14007955456,"free":83564793856,"total":270553174016,"percent":14.4},"timestamp":"2026-11-25T14:07:11.104Z"}"#;

const DEFAULT_ADDR: &str = "127.0.0.1:19102";

/// What every request gets.
#[derive(Clone)]
struct Fixed {
    body: Bytes,
    content_type: HeaderValue,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = args.first().map_or(DEFAULT_ADDR, String::as_str);
    let fixed = match &args[1.min(args.len())..] {
        [] => Fixed {
            body: Bytes::from_static(BODY),
            content_type: HeaderValue::from_static("application/json"),
        },
        [file, content_type] => {
            let body = match std::fs::read(file) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    eprintln!("bare_server: reading {file}: {e}");
                    return ExitCode::from(2);
                }
            };
            let Ok(content_type) = HeaderValue::from_str(content_type) else {
                eprintln!("bare_server: {content_type:?} is not a header value");
                return ExitCode::from(2);
            };
            Fixed { body, content_type }
        }
        _ => {
            eprintln!("bare_server: usage: bare_server [ADDR [BODY_FILE CONTENT_TYPE]]");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match text.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare_server: {text:?} is not an address like {DEFAULT_ADDR}: {e}");
            return ExitCode::from(2);
        }
    };
    // As bin/metrics-collector's serve.rs builds its runtime.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bare_server: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr, fixed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare_server: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn answer(
    fixed: Fixed,
    _request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(fixed.body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, fixed.content_type);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Accepts until the process is killed; an accept error is reported and skipped.
async fn serve(addr: SocketAddr, fixed: Fixed) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                eprintln!("bare_server: accept: {e}");
                // EMFILE and the like: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let fixed = fixed.clone();
        let service = service_fn(move |request| answer(fixed.clone(), request));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
