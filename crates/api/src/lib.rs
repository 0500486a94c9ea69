//! The HTTP API: a raw hyper 1.x HTTP/1.1 service over the latest published snapshot.
//!
//! Owns: the accept loop and its limits ([`serve`], [`Limits`]), routing and errors
//! (`/metrics`, `/health`, `/gpu`; JSON 400/404/405, `HEAD`), the wire JSON of each
//! endpoint, and the published [`Snapshot`] with its bodies encoded once per sample.
//!
//! Does not own: sampling or persistence. Handlers read the latest [`Published`] value and
//! the database status from `watch` channels and nothing else: they never sample, never
//! touch the store and never wait on I/O.

mod health;
mod routes;
mod server;
mod snapshot;
mod wire;

pub use health::{DatabaseState, DatabaseStatus};
pub use server::{Limits, serve};
pub use snapshot::{ProbeState, Published, Snapshot};
pub use wire::{encode_sample_json, rfc3339};

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// What every handler can see: read-only views of the sampler's and the store's state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) latest: watch::Receiver<Option<Arc<Published>>>,
    pub(crate) database: watch::Receiver<DatabaseStatus>,
    pub(crate) started: Instant,
    pub(crate) live_interval: Duration,
    pub(crate) host: Arc<str>,
}

impl AppState {
    pub fn new(
        latest: watch::Receiver<Option<Arc<Published>>>,
        database: watch::Receiver<DatabaseStatus>,
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
