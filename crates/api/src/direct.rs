//! Streams served on their socket directly, not through hyper. A stream is one request
//! answered for hours; through hyper it keeps hyper's per-connection read and write
//! buffers (8 KiB each) for its whole life. Here the request head is read once into a
//! buffer that is then dropped, and each event is written as one HTTP/1.1 chunk from a
//! small buffer: what an idle stream holds is its `EventStream` and its socket.
//!
//! Only a whole `GET /metrics/stream … HTTP/1.1` head that arrived in the connection's first
//! read comes here; anything else (another path, `HEAD`, HTTP/1.0, a head split over
//! several packets) goes to hyper with the bytes already read put back in front
//! ([`Prefixed`]), and is answered there as before.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::AppState;
use crate::stream::{self, EventStream, Refused};
use crate::wire::encode_error;

/// The most a request head may be to be served here (more goes to hyper, which applies
/// the header limits).
pub(crate) const FIRST_READ: usize = 4096;
const PATH: &[u8] = b"GET /metrics/stream";
/// Frames gathered into one write, at most.
const WRITE_BATCH: usize = 16 * 1024;

/// What the first read says about a connection.
pub(crate) enum First {
    /// A stream request, whole: its path with query, and its `Last-Event-ID`, if any.
    Stream {
        target: String,
        last_event_id: Option<Vec<u8>>,
    },
    /// Anything else: for hyper.
    Other,
}

/// Looks at the connection's first bytes.
pub(crate) fn classify(head: &[u8]) -> First {
    let after = head.get(PATH.len()).copied();
    if !head.starts_with(PATH) || !matches!(after, Some(b' ' | b'?')) {
        return First::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) if request.version == Some(1) => {}
        _ => return First::Other,
    }
    let Some(target) = request.path.map(str::to_owned) else {
        return First::Other;
    };
    let last_event_id = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
        .map(|h| h.value.to_vec());
    First::Stream {
        target,
        last_event_id,
    }
}

const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\ntransfer-encoding: chunked\r\n\r\n";
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A JSON error, and the connection closed after it.
fn error_response(status: &str, message: &str, retry_after: Option<u64>) -> Vec<u8> {
    let body = encode_error(message);
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(s) = retry_after {
        out.push_str(&format!("retry-after: {s}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Serves one stream request on `socket` until the client goes, the stream ends
/// (shutdown) or a write makes no progress for `stall`.
pub(crate) async fn serve(
    mut socket: TcpStream,
    state: AppState,
    target: String,
    last_event_id: Option<Vec<u8>>,
    stall: Duration,
) {
    let Some(history) = state.history.clone() else {
        let out = error_response(
            "404 Not Found",
            "streams are not served by this server",
            None,
        );
        return finish(socket, &out, stall).await;
    };
    let query = target.split_once('?').map(|(_, q)| q);
    let resume = match stream::resume_point(last_event_id.as_deref(), query) {
        Ok(r) => r,
        Err(message) => {
            let out = error_response("400 Bad Request", &message, None);
            return finish(socket, &out, stall).await;
        }
    };
    let mut body = match stream::open(&state, &history.ring, resume) {
        Ok(body) => body,
        Err(Refused::Full) => {
            let out = error_response(
                "503 Service Unavailable",
                &stream::full_message(&state),
                Some(stream::retry_after_seconds(&state)),
            );
            return finish(socket, &out, stall).await;
        }
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(OK_HEAD);
    let mut ended = false;
    loop {
        if !out.is_empty() {
            match tokio::time::timeout(stall, socket.write_all(&out)).await {
                Ok(Ok(())) => {}
                // Gone, or took nothing for the stall limit: its slot goes back.
                Ok(Err(_)) | Err(_) => return,
            }
            out.clear();
            if out.capacity() > WRITE_BATCH * 2 {
                out.shrink_to(512);
            }
        }
        if ended {
            let _ = tokio::time::timeout(stall, socket.write_all(LAST_CHUNK)).await;
            let _ = socket.shutdown().await;
            return;
        }
        tokio::select! {
            // Frames ready go out before a close is noticed: a client that half-closed
            // right after asking still gets the retry line and the latest sample (SPEC §7:
            // they leave at once), not a bare head (found by the HTTP fuzzer).
            biased;
            more = next_frames(&mut body, &mut out) => ended = !more,
            closed = client_left(&socket) => if closed { return },
        }
    }
}

/// Writes `out` (bounded by `stall`) and closes.
async fn finish(mut socket: TcpStream, out: &[u8], stall: Duration) {
    let _ = tokio::time::timeout(stall, socket.write_all(out)).await;
    let _ = socket.shutdown().await;
}

/// Waits for frames and appends every one ready now to `out`, as chunks; `false` once the
/// stream has ended (after what it had).
async fn next_frames(body: &mut EventStream, out: &mut Vec<u8>) -> bool {
    std::future::poll_fn(|cx| {
        let mut got = false;
        loop {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        chunk(out, &data);
                        got = true;
                    }
                    if out.len() >= WRITE_BATCH {
                        return Poll::Ready(true);
                    }
                }
                Poll::Ready(None) => {
                    // Ended: what was gathered goes out first, the end comes next time.
                    return Poll::Ready(got);
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Pending => {
                    return if got {
                        Poll::Ready(true)
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
    })
    .await
}

/// Resolves `true` when the client has closed its side (or the socket failed); bytes it
/// sends meanwhile are read and ignored.
async fn client_left(socket: &TcpStream) -> bool {
    let mut sink = [0u8; 256];
    loop {
        if socket.readable().await.is_err() {
            return true;
        }
        match socket.try_read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return true,
        }
    }
}

/// A connection's socket with bytes already read from it put back in front, for hyper.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_http_1_1_get_of_the_stream_is_taken_off_hyper() {
        let is_stream = |head: &[u8]| matches!(classify(head), First::Stream { .. });
        assert!(is_stream(
            b"GET /metrics/stream HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
        assert!(is_stream(
            b"GET /metrics/stream?last_event_id=5 HTTP/1.1\r\n\r\n"
        ));
        assert!(
            !is_stream(b"GET /metrics/stream HTTP/1.1\r\nHost: x\r\n"),
            "not whole yet"
        );
        assert!(
            !is_stream(b"GET /metrics/stream HTTP/1.0\r\n\r\n"),
            "no chunks in 1.0"
        );
        assert!(!is_stream(b"HEAD /metrics/stream HTTP/1.1\r\n\r\n"));
        assert!(!is_stream(b"GET /metrics/streams HTTP/1.1\r\n\r\n"));
        assert!(!is_stream(b"GET /metrics HTTP/1.1\r\n\r\n"));
        match classify(b"GET /metrics/stream?x=1 HTTP/1.1\r\nLast-Event-ID: 42\r\n\r\n") {
            First::Stream {
                target,
                last_event_id,
            } => {
                assert_eq!(target, "/metrics/stream?x=1");
                assert_eq!(last_event_id.as_deref(), Some(&b"42"[..]));
            }
            First::Other => panic!("a stream request"),
        }
    }
}
