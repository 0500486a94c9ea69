//! The HTTP API: a raw hyper 1.x HTTP/1.1 service over the latest published snapshot.
//!
//! Owns: the accept loop and its limits ([`serve`], [`Limits`]: connection cap, header
//! read timeout, a connection closed after 30 s without write progress), routing and
//! errors (`/metrics`, `/metrics/history`, `/metrics/stream`, `/health`, `/gpu`; JSON
//! 400/404/405/503, `HEAD`; unknown query parameters ignored), the history answer (its
//! query, its plan between the ring and the archive, its JSON), the stream fan-out (one
//! body per client, fed from the ring's shared event bytes, its slots and heartbeats), the wire JSON of each endpoint and the [`Encoder`] the engine
//! runs once per tick to make the [`Bodies`], the process's connection budget
//! ([`connection_budget`]) and the `healthcheck` client ([`health_status`]).
//!
//! Does not own: sampling, persistence or the ring. Handlers read the latest published
//! snapshot, the [`sampler::Ring`] and a [`sampler::DatabaseView`]: they never sample and
//! never wait on I/O, except a history request older than memory, which waits (bounded)
//! on the [`sampler::Archive`] and on nothing else.

mod auth;
mod bodies;
mod client;
mod direct;
mod exposition;
mod health;
mod history;
mod negotiate;
mod page;
mod routes;
mod server;
mod stream;
mod web;
mod wire;

pub use bodies::{Bodies, Encoder, Latest};
pub use client::{Health, health_status, local_address};
pub use history::from_memory as history_from_memory;
pub use server::{Limits, connection_budget, serve};
pub use web::{Error, WebConfig};
pub use wire::rfc3339;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sampler::{Archive, DatabaseView, Ring};
use tokio::sync::{Semaphore, watch};

/// What every handler can see: read-only views of the engine's and the store's state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) latest: Latest,
    /// `None` when persistence is off.
    pub(crate) database: Option<DatabaseView>,
    pub(crate) started: Instant,
    pub(crate) live_interval: Duration,
    pub(crate) host: Arc<str>,
    pub(crate) history: Option<History>,
    pub(crate) streams: Streams,
    /// Turns `true` when the server shuts down: streams end.
    pub(crate) closing: watch::Receiver<bool>,
    closing_tx: Arc<watch::Sender<bool>>,
    /// Changes once per published sample, sent by the relay task: what streams wait on.
    pub(crate) published: watch::Receiver<()>,
    published_tx: Arc<watch::Sender<()>>,
    /// Told when a stream opens, so the relay sleeps while there is none.
    pub(crate) stream_opened: Arc<tokio::sync::Notify>,
    /// HTTPS, when the web configuration has `tls_server_config`.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Every request needs a password, when it has `basic_auth_users`.
    pub(crate) auth: Option<Arc<auth::BasicAuth>>,
}

/// Where `/metrics/history` and the stream's resume read from.
#[derive(Clone)]
pub(crate) struct History {
    pub(crate) ring: Arc<Ring>,
    /// Windows older than memory's; `None` when persistence is off.
    pub(crate) archive: Option<Arc<dyn Archive>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("ring", &self.ring.stats())
            .field("archive", &self.archive.is_some())
            .finish()
    }
}

/// The stream slots (SPEC §7's `METRICS_MAX_STREAMS`).
#[derive(Clone, Debug)]
pub(crate) struct Streams {
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) max: usize,
}

impl Streams {
    pub(crate) fn open(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }
}

/// SPEC §4's default for `METRICS_MAX_STREAMS`.
pub const DEFAULT_MAX_STREAMS: usize = 1024;

impl AppState {
    pub fn new(
        latest: Latest,
        database: Option<DatabaseView>,
        live_interval: Duration,
        host: &str,
    ) -> Self {
        let (closing_tx, closing) = watch::channel(false);
        let (published_tx, published) = watch::channel(());
        Self {
            latest,
            database,
            started: Instant::now(),
            live_interval,
            host: host.into(),
            history: None,
            streams: Streams {
                slots: Arc::new(Semaphore::new(DEFAULT_MAX_STREAMS)),
                max: DEFAULT_MAX_STREAMS,
            },
            closing,
            closing_tx: Arc::new(closing_tx),
            published,
            published_tx: Arc::new(published_tx),
            stream_opened: Arc::new(tokio::sync::Notify::new()),
            tls: None,
            auth: None,
        }
    }

    /// Serves as the web configuration says (`METRICS_WEB_CONFIG`): HTTPS, basic
    /// authentication, both or neither.
    pub fn with_web_config(mut self, web: &WebConfig) -> Self {
        self.tls = web.tls.as_ref().map(|t| Arc::clone(&t.server));
        self.auth = web.auth.clone();
        self
    }

    pub(crate) fn published_tx(&self) -> Arc<watch::Sender<()>> {
        Arc::clone(&self.published_tx)
    }

    /// Serves `/metrics/history` and `/metrics/stream` from `ring` (the one the engine
    /// feeds), reading older ranges from `archive` when there is one.
    pub fn with_history(mut self, ring: Arc<Ring>, archive: Option<Arc<dyn Archive>>) -> Self {
        self.history = Some(History { ring, archive });
        self
    }

    /// At most `max` streams at once (at least one).
    pub fn with_max_streams(mut self, max: usize) -> Self {
        let max = max.max(1);
        self.streams = Streams {
            slots: Arc::new(Semaphore::new(max)),
            max,
        };
        self
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.open()
    }

    /// Ends every stream (the server is shutting down).
    pub(crate) fn close_streams(&self) {
        self.closing_tx.send_replace(true);
    }
}
