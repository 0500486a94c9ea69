//! The accept loop: hyper 1.x HTTP/1.1 connections with limits, and graceful shutdown.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::AppState;
use crate::routes::handle;

/// What one client may cost the service.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client must send a whole request head within this time, from connecting or from
    /// the end of its previous response; otherwise its connection is closed (slowloris,
    /// idle keep-alive hoarding).
    pub header_read_timeout: Duration,
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
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let state = state.clone();
        let service = service_fn(move |request| handle(state.clone(), request));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts, resets and malformed requests: the client's problem, not ours.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the shutdown grace period; closing them");
        }
    }
}
