//! The accept loop: hyper 1.x HTTP/1.1 connections with limits, and graceful shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http_body_util::Either;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use crate::AppState;
use crate::routes::handle;

/// What one client may cost the service.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client must send a whole request head within this time, from connecting or from
    /// the end of its previous response; otherwise its connection is closed (slowloris,
    /// idle keep-alive hoarding). A connection's first bytes are awaited for this long too
    /// (to tell a stream from other requests), so a first head trickled in byte by byte may
    /// take up to twice this.
    pub header_read_timeout: Duration,
    /// A connection whose response (or stream) has not moved a byte towards the client for
    /// this long is closed: a client that pipelines requests and never reads, or stops
    /// reading a stream, gives its place back (SPEC §3: 30 s).
    pub write_stall_timeout: Duration,
    /// The kernel's send buffer per connection (Linux doubles it for its bookkeeping); 0
    /// leaves it to the kernel's auto-tuning, which grows it to megabytes. Kept small, a
    /// stream client that stops reading backs up within seconds: it is then skipped ahead
    /// (a `lag` event) or closed (the stall limit) instead of the kernel queueing minutes
    /// of stale samples for it, up to 4 MiB per client.
    pub send_buffer_bytes: usize,
    /// Request line plus headers, in bytes; more is answered 431. hyper's default cap of
    /// 100 headers also applies (more is 431).
    pub max_header_bytes: usize,
    /// How long requests in flight may take to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 8192,
            header_read_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(30),
            send_buffer_bytes: 32 * 1024,
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// How long to pause accepting after the process runs out of file descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this period about accept errors.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, lets the
/// requests in flight finish (at most `limits.shutdown_grace`) and returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // Lower than hyper's 400 KB: nothing we serve needs a large read buffer.
        .max_buf_size(limits.max_header_bytes.max(8192) * 2)
        // A client that half-closes after its request (`shutdown(SHUT_WR)`, `nc -N`) still
        // gets its answer: without this hyper reads the EOF while the answer is being made
        // and drops the connection unanswered (found by the HTTP fuzzer). A client gone for
        // good is still noticed: at the next read between requests, or when a write fails.
        .half_close(true)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Streams are woken by this task, not by the sampler's publish: the probe thread wakes
    // one task whatever the number of streams.
    tokio::spawn(crate::stream::relay(state.clone()));
    let graceful = GracefulShutdown::new();
    let mut last_logged: Option<Instant> = None;
    let mut suppressed = 0u64;
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed; stop cleanly if it were
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // The client gave up before we accepted: nothing to do.
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) {
                    continue;
                }
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays in the backlog;
                // pause so we do not spin, then try again. Never exit over it.
                if last_logged.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                    tracing::warn!(error = %e, suppressed, "accepting a connection failed; backing off");
                    last_logged = Some(Instant::now());
                    suppressed = 0;
                } else {
                    suppressed += 1;
                }
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // Small responses: send them now rather than waiting for Nagle.
        let _ = stream.set_nodelay(true);
        if limits.send_buffer_bytes > 0 {
            let _ = rustix::net::sockopt::set_socket_send_buffer_size(
                &stream,
                limits.send_buffer_bytes,
            );
        }
        let state = state.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let limits = limits.clone();
        tokio::spawn(async move {
            serve_connection(stream, state, builder, watcher, &limits).await;
            drop(permit);
        });
    }

    drop(listener);
    // Streams end cleanly (their last chunk sent), so their connections can close.
    state.close_streams();
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the shutdown grace period; closing them");
        }
    }
}

/// One connection: a stream request goes to [`direct`](crate::direct), anything else to
/// hyper, with what was read to tell them apart put back in front. With TLS on, the
/// handshake first (in this connection's task, under the header timeout: a client that
/// stalls it holds only its own slot), then hyper for everything.
async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    state: AppState,
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    limits: &Limits,
) {
    use tokio::io::AsyncReadExt;
    if let Some(tls) = state.tls.clone() {
        serve_tls(stream, tls, state, builder, watcher, limits).await;
        return;
    }
    let mut first = vec![0u8; crate::direct::FIRST_READ];
    let n = match tokio::time::timeout(limits.header_read_timeout, stream.read(&mut first)).await {
        // Closed before a byte, failed, or silent for the header timeout: as hyper would.
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
        Ok(Ok(n)) => n,
    };
    first.truncate(n);
    // With basic authentication on, streams go through hyper too, where every request's
    // credentials are checked.
    if state.auth.is_none()
        && let crate::direct::First::Stream {
            target,
            last_event_id,
        } = crate::direct::classify(&first)
    {
        drop(first);
        // Held until the stream ends, so a shutdown waits for its last chunk.
        let _watching = watcher;
        crate::direct::serve(
            stream,
            state,
            target,
            last_event_id,
            limits.write_stall_timeout,
        )
        .await;
        return;
    }
    // Set once this connection answers with a stream: from then on its client's FIN ends it.
    let streaming = Arc::new(AtomicU8::new(NOT_STREAMING));
    let io = crate::direct::Prefixed::new(
        first,
        WriteProgress::new(stream, limits.write_stall_timeout, Arc::clone(&streaming)),
    );
    serve_hyper(io, state, builder, watcher, streaming).await;
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A connection to the HTTPS port: a plain HTTP request gets a plain 400 saying so (as Go's
/// servers answer), a handshake gets [`Limits::header_read_timeout`] to finish.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    limits: &Limits,
) {
    let streaming = Arc::new(AtomicU8::new(NOT_STREAMING));
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == TLS_HANDSHAKE => {}
            Ok(1) => return Err(Some(stream)),
            _ => return Err(None),
        }
        // The stall rule watches the socket under TLS: it is the socket that fills up.
        let io = WriteProgress::new(stream, limits.write_stall_timeout, Arc::clone(&streaming));
        tokio_rustls::TlsAcceptor::from(tls)
            .accept(io)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            })
    };
    match tokio::time::timeout(limits.header_read_timeout, handshake).await {
        Ok(Ok(tls_stream)) => serve_hyper(tls_stream, state, builder, watcher, streaming).await,
        Ok(Err(Some(plain))) => not_tls(plain).await,
        Ok(Err(None)) => {}
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Tells a client that spoke plain HTTP to the HTTPS port what to do, then closes.
async fn not_tls(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = r#"{"error":"this server speaks HTTPS: use https://"}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let bounded = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes (briefly), so the close is not a reset
        // that could throw the answer away before the client reads it.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), bounded).await;
}

/// hyper on a connection's bytes (plain or TLS), basic authentication checked first when
/// it is on.
async fn serve_hyper<I>(
    io: I,
    state: AppState,
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    streaming: Arc<AtomicU8>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let answered_with_stream = streaming;
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let answered_with_stream = Arc::clone(&answered_with_stream);
        async move {
            if let Some(auth) = &state.auth
                && !auth
                    .allows(request.headers().get(http::header::AUTHORIZATION))
                    .await
            {
                return Ok(crate::routes::unauthorized());
            }
            let response = handle(state, request).await?;
            if matches!(response.body(), Either::Right(_)) {
                answered_with_stream.store(STREAM_ANSWERED, Ordering::Relaxed);
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    if let Err(e) = watcher
        .watch(builder.serve_connection(TokioIo::new(io), service))
        .await
    {
        // Timeouts, resets and malformed requests: the client's problem, not ours.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The most connections the budget ever allows.
const MAX_CONNECTIONS: u64 = 1 << 20;

/// File descriptors kept back from connections for probes, logs and the database.
const RESERVED_FDS: u64 = 64;

/// How many connections this process can afford: raises the soft open-files limit to the
/// hard one (as Go's runtime does; each client is a descriptor), then keeps a reserve for
/// everything else, within 16..=1,048,576 (each connection costs its descriptor and a few
/// KiB; a fleet's dashboards may hold thousands of streams).
pub fn connection_budget() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let mut in_force = soft;
    if let Some(hard) = limit.maximum.or(Some(soft)).filter(|h| *h > soft) {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_ok() {
            in_force = hard;
        }
    }
    usize::try_from(
        in_force
            .saturating_sub(RESERVED_FDS)
            .clamp(16, MAX_CONNECTIONS),
    )
    .unwrap_or(8192)
}

/// A connection's socket with rules on writing: once a write cannot go through (the
/// client's window and our send buffer are full), the client has `limit` to take a byte
/// before the write fails, which makes hyper close the connection. A write that moves
/// any bytes starts the count again. Nothing is allocated unless a write has to wait.
///
/// And once the connection serves a stream (`streaming`), a write after its first one
/// fails when the client has closed its side: hyper reads nothing while a body streams
/// (half-closes are allowed), so without this a closed stream client would hold its slot
/// until a write failed, two events later; with it, the next event frees the slot (SPEC
/// §7: within one live interval), as on the direct path. The first write (the head and the
/// first events) goes out whatever: a client that half-closed right after asking still
/// gets them, as on the direct path.
struct WriteProgress<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    streaming: Arc<AtomicU8>,
}

/// [`WriteProgress::streaming`]: no stream answered on this connection yet.
const NOT_STREAMING: u8 = 0;
/// A stream was answered; its first write has not gone out.
const STREAM_ANSWERED: u8 = 1;
/// A stream's first write has gone out.
const STREAM_STARTED: u8 = 2;

impl<S> WriteProgress<S> {
    fn new(inner: S, limit: Duration, streaming: Arc<AtomicU8>) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
            streaming,
        }
    }

    /// What a write that made progress answers: the count starts again.
    fn moved<T>(&mut self, result: io::Result<T>) -> Poll<io::Result<T>> {
        self.stalled = None;
        Poll::Ready(result)
    }

    /// A write that has to wait: pending until `limit` has passed since it first had to.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took nothing for {:.0} s; closing",
                limit.as_secs_f64()
            ),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteProgress<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: PeerGone> WriteProgress<S> {
    /// An error when this connection streams, its first write is out, and its client has
    /// gone.
    fn stream_client_gone(&self, cx: &mut Context<'_>) -> Option<io::Error> {
        match self.streaming.load(Ordering::Relaxed) {
            STREAM_ANSWERED => {
                self.streaming.store(STREAM_STARTED, Ordering::Relaxed);
                None
            }
            STREAM_STARTED if self.inner.poll_gone(cx) => Some(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream's client closed its side",
            )),
            _ => None,
        }
    }
}

/// Whether the other end has closed its side (or reset), asked without taking a byte.
trait PeerGone {
    fn poll_gone(&self, cx: &mut Context<'_>) -> bool;
}

impl PeerGone for tokio::net::TcpStream {
    fn poll_gone(&self, cx: &mut Context<'_>) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        // Pending (nothing sent) and a byte waiting are both "still there"; the wake-up a
        // pending peek asks for goes to this connection's own task.
        matches!(self.poll_peek(cx, &mut buf), Poll::Ready(Ok(0) | Err(_)))
    }
}

impl<S: AsyncWrite + PeerGone + Unpin> AsyncWrite for WriteProgress<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(gone) = self.stream_client_gone(cx) {
            return Poll::Ready(Err(gone));
        }
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.moved(result),
            Poll::Pending => self.wait(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(gone) = self.stream_client_gone(cx) {
            return Poll::Ready(Err(gone));
        }
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.moved(result),
            Poll::Pending => self.wait(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => self.moved(result),
            Poll::Pending => self.wait(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => self.moved(result),
            Poll::Pending => self.wait(cx),
        }
    }
}
