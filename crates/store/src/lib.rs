//! A week of history in PostgreSQL (SPEC §5): live samples reduced into windows, windows
//! queued in memory while the database is away, written in order and once each, old rows
//! deleted in small batches.
//!
//! Owns: [`Queue`] (bounded, drop-oldest with a counter), the writer task ([`spawn`]) with
//! its connection pool, migrations (embedded from `migrations/`, under an advisory lock,
//! including taking over the original service's tables) and retention, and the
//! [`sampler::WriterStatus`] it publishes.
//!
//! Does not own: sampling, the windows themselves (the engine closes [`sampler::Window`]s),
//! HTTP or configuration parsing. It never blocks the engine: the engine offers closed
//! windows to the writer's [`Handle`] (a [`sampler::WindowSink`]) without waiting.

mod compact;
mod db;
mod history;
mod queue;
mod tls;
mod writer;

use std::fmt;
use std::time::Duration;

pub use compact::{Compacted, compact_next};
pub use db::{TABLES, WRITE, migrate, migrate_database};
pub use history::HistoryReader;
pub use queue::Queue;
pub use tls::{SslMode, Tls, TlsError};
pub use writer::{Handle, flush_offset, spawn};

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("building the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("migrating: {0}")]
    Migration(#[from] refinery::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("{0} ended before it answered")]
    Interrupted(&'static str),
}

impl Error {
    /// One line for logs and `/health`: the server's own message when it sent one.
    pub fn summary(&self) -> String {
        let postgres = match self {
            Self::Postgres(e) => Some(e),
            Self::Pool(deadpool_postgres::PoolError::Backend(e)) => Some(e),
            _ => None,
        };
        if let Some(db) = postgres.and_then(|e| e.as_db_error()) {
            return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
        }
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text.push_str(": ");
                text.push_str(&s_text);
            }
            source = s.source();
        }
        text
    }

    /// [`summary`](Self::summary) with `password` (when there is one) shown as `***`: a
    /// server's message may quote what it was given.
    pub fn summary_masked(&self, password: Option<&str>) -> String {
        match password.filter(|p| !p.is_empty()) {
            Some(p) => self.summary().replace(p, "***"),
            None => self.summary(),
        }
    }

    /// A row found no partition to go to (SQLSTATE 23514, check_violation: the DEFAULT
    /// partition is gone). Making the days and writing again fixes it.
    pub fn is_no_partition(&self) -> bool {
        let postgres = match self {
            Self::Postgres(e) => Some(e),
            Self::Pool(deadpool_postgres::PoolError::Backend(e)) => Some(e),
            _ => None,
        };
        postgres
            .and_then(|e| e.code())
            .is_some_and(|c| *c == tokio_postgres::error::SqlState::CHECK_VIOLATION)
    }

    /// The server is restarting or shutting down (admin shutdown, starting up, crash
    /// recovery): expected during maintenance, retried quietly.
    pub fn is_server_restart(&self) -> bool {
        let postgres = match self {
            Self::Postgres(e) => Some(e),
            Self::Pool(deadpool_postgres::PoolError::Backend(e)) => Some(e),
            _ => None,
        };
        postgres.and_then(|e| e.code()).is_some_and(|c| {
            let c = c.code();
            c == "57P01" || c == "57P02" || c == "57P03"
        })
    }
}

/// How to reach the database and what to keep there.
#[derive(Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    /// `POSTGRES_SSLMODE` and `POSTGRES_SSLROOTCERT`, ready to connect with.
    pub tls: Tls,
    /// `METRICS_HOST`: the `host` column of every row written.
    pub metrics_host: String,
    /// Rows older than this are deleted.
    pub retention: Duration,
    /// The window length: the queue holds at least `retention / persist_interval` windows.
    pub persist_interval: Duration,
    /// How long shutdown may spend flushing the queue.
    pub flush_deadline: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .field("dbname", &self.dbname)
            .field("sslmode", &self.tls.mode())
            .field("metrics_host", &self.metrics_host)
            .field("retention", &self.retention)
            .field("persist_interval", &self.persist_interval)
            .finish()
    }
}

impl Config {
    /// Windows the queue must hold: the whole retention period, so an outage as long as
    /// the history loses nothing.
    pub fn queue_capacity(&self) -> usize {
        let windows = self.retention.as_secs_f64() / self.persist_interval.as_secs_f64().max(0.001);
        (windows.ceil() as usize).saturating_add(1).max(16)
    }
}
