//! The HTTP API: a raw hyper 1.x HTTP/1.1 service over the latest published snapshot.
//!
//! Owns: the accept loop and its limits ([`serve`], [`Limits`]: connection cap, header
//! read timeout, a connection closed after 30 s without write progress), routing and
//! errors (`/metrics`, `/health`, `/gpu`; JSON 400/404/405, `HEAD`; unknown query
//! parameters ignored), the wire JSON of each endpoint and the [`Encoder`] the engine
//! runs once per tick to make the [`Bodies`], the process's connection budget
//! ([`connection_budget`]) and the `healthcheck` client ([`health_status`]).
//!
//! Does not own: sampling or persistence. Handlers read the latest published snapshot and
//! a [`sampler::DatabaseView`] and nothing else: they never sample, never touch the store
//! and never wait on I/O.

mod bodies;
mod client;
mod health;
mod routes;
mod server;
mod wire;

pub use bodies::{Bodies, Encoder, Latest};
pub use client::{health_status, local_address};
pub use server::{Limits, connection_budget, serve};
pub use wire::rfc3339;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sampler::DatabaseView;

/// What every handler can see: read-only views of the engine's and the store's state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) latest: Latest,
    /// `None` when persistence is off.
    pub(crate) database: Option<DatabaseView>,
    pub(crate) started: Instant,
    pub(crate) live_interval: Duration,
    pub(crate) host: Arc<str>,
}

impl AppState {
    pub fn new(
        latest: Latest,
        database: Option<DatabaseView>,
        live_interval: Duration,
        host: &str,
    ) -> Self {
        Self {
            latest,
            database,
            started: Instant::now(),
            live_interval,
            host: host.into(),
        }
    }
}
