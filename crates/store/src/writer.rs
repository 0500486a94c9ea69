//! The writer task: owns the queue and the pool, writes in large ordered batches, backs off
//! with jitter while the database is away, runs retention, and publishes its
//! [`WriterStatus`].

use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use sampler::{Window, WriterState, WriterStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::{Config, Error, Queue, db};

/// Windows per INSERT statement: a 7-day backlog (20,160 windows) is five round trips.
const BATCH: usize = 5_000;
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The engine's side: hands closed windows over without ever waiting.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::Sender<Window>,
}

impl Handle {
    /// Queues a closed window; `false` if the writer could not take it (its inbox is full,
    /// or it has ended).
    pub fn send(&self, window: Window) -> bool {
        sampler::WindowSink::offer(self, window).is_ok()
    }
}

impl sampler::WindowSink for Handle {
    fn offer(&self, window: Window) -> Result<(), Window> {
        self.tx.try_send(window).map_err(|e| e.into_inner())
    }
}

/// Starts the writer. It runs until every [`Handle`] is dropped, then flushes what is
/// queued (bounded by `config.flush_deadline`) and ends.
pub fn spawn(
    config: Config,
) -> Result<(Handle, watch::Receiver<WriterStatus>, JoinHandle<()>), Error> {
    let pool = db::pool(&config)?;
    // Room for bursts; the writer drains it into its own bounded queue at once.
    let (tx, rx) = mpsc::channel(256);
    let (status_tx, status_rx) = watch::channel(WriterStatus::default());
    let task = tokio::spawn(Writer::new(config, pool, status_tx).run(rx));
    Ok((Handle { tx }, status_rx, task))
}

struct Writer {
    config: Config,
    pool: Pool,
    /// Held between writes, so a steady state costs one round trip per window (the pool's
    /// verification query runs only when a connection is taken anew); dropped on error.
    client: Option<deadpool_postgres::Object>,
    queue: Queue,
    status: watch::Sender<WriterStatus>,
    migrated: bool,
    next_retention: Instant,
    backoff: Backoff,
    next_attempt: Instant,
    state: WriterState,
    last_error: Option<String>,
    written: u64,
    /// Rows a batch found already written (the retry of a batch whose reply was lost).
    duplicates: u64,
    lost_outage: bool,
}

impl Writer {
    fn new(config: Config, pool: Pool, status: watch::Sender<WriterStatus>) -> Self {
        let now = Instant::now();
        Self {
            queue: Queue::new(config.queue_capacity()),
            config,
            pool,
            client: None,
            status,
            migrated: false,
            next_retention: now,
            backoff: Backoff::new(),
            next_attempt: now,
            state: WriterState::Connecting,
            last_error: None,
            written: 0,
            duplicates: 0,
            lost_outage: false,
        }
    }

    fn has_work(&self, now: Instant) -> bool {
        !self.migrated || !self.queue.is_empty() || now >= self.next_retention
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Window>) {
        loop {
            let now = Instant::now();
            let wake = if self.has_work(now) {
                self.next_attempt
            } else {
                self.next_retention
            };
            tokio::select! {
                received = rx.recv() => match received {
                    Some(w) => self.queue.push(w),
                    None => break,
                },
                () = sleep_until(wake) => {}
            }
            while let Ok(w) = rx.try_recv() {
                self.queue.push(w);
            }
            let now = Instant::now();
            if now >= self.next_attempt && self.has_work(now) {
                self.attempt().await;
            }
            self.publish();
        }
        self.flush_on_shutdown().await;
    }

    /// One go at the database: migrate if not yet, retention if due, then the queue.
    async fn attempt(&mut self) {
        match self.work().await {
            Ok(()) => {
                if self.lost_outage {
                    tracing::info!(
                        written = self.written,
                        "database reachable again; backlog written"
                    );
                }
                self.state = WriterState::Connected;
                self.last_error = None;
                self.lost_outage = false;
                self.backoff.reset();
                self.next_attempt = Instant::now();
            }
            Err(e) => {
                // A server's message may quote what it was given; the password is never
                // shown, whatever it was given.
                let summary = e.summary_masked(self.config.password.as_deref());
                if !self.lost_outage {
                    if e.is_server_restart() {
                        tracing::info!(error = %summary, "database restarting; windows wait in memory");
                    } else {
                        tracing::warn!(error = %summary, "database unreachable; windows wait in memory");
                    }
                    self.lost_outage = true;
                }
                self.state = WriterState::Unreachable;
                self.last_error = Some(summary);
                self.next_attempt = Instant::now() + self.backoff.next_delay();
            }
        }
    }

    async fn work(&mut self) -> Result<(), Error> {
        let mut client = match self.client.take() {
            Some(c) => c,
            None => self.pool.get().await?,
        };
        // On any error below, `client` is dropped with this frame: the next attempt takes a
        // fresh, verified connection from the pool.
        if !self.migrated {
            db::migrate(&mut client).await?;
            self.migrated = true;
        }
        if Instant::now() >= self.next_retention {
            let cutoff = SystemTime::now() - self.config.retention;
            let deleted = db::delete_older_than(&client, &self.config.metrics_host, cutoff).await?;
            if deleted > 0 {
                tracing::info!(
                    deleted,
                    "retention: deleted rows older than the retention period"
                );
            }
            self.next_retention = Instant::now() + RETENTION_EVERY.min(self.config.retention);
        }
        while !self.queue.is_empty() {
            let n = self.queue.len().min(BATCH);
            let rows: u64 = self.queue.front(n).map(Window::rows).sum();
            let inserted =
                db::insert(&client, &self.config.metrics_host, self.queue.front(n)).await?;
            if inserted < rows {
                // The unique key kept these once: an earlier attempt wrote them and its
                // reply was lost.
                tracing::info!(
                    rows = rows - inserted,
                    "rows already written by an attempt whose reply was lost; kept once"
                );
                self.duplicates += rows - inserted;
            }
            self.queue.remove_front(n);
            self.written += n as u64;
            self.publish();
        }
        self.client = Some(client);
        Ok(())
    }

    async fn flush_on_shutdown(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.config.flush_deadline;
        let flushed = tokio::time::timeout_at(deadline, async {
            loop {
                self.attempt().await;
                if self.queue.is_empty() {
                    break;
                }
                sleep_until(self.next_attempt.min(deadline)).await;
            }
        })
        .await;
        if flushed.is_err() || !self.queue.is_empty() {
            tracing::warn!(
                windows = self.queue.len(),
                error = self
                    .last_error
                    .as_deref()
                    .unwrap_or("flush deadline reached"),
                "shutting down with windows not written"
            );
        }
        self.publish();
    }

    fn publish(&self) {
        self.status.send_replace(WriterStatus {
            state: self.state,
            pending_windows: self.queue.len() as u64,
            pending_rows: self.queue.rows(),
            dropped_windows: self.queue.dropped(),
            written_windows: self.written,
            duplicate_rows: self.duplicates,
            last_error: self.last_error.clone(),
        });
    }
}

/// Exponential back-off with ±25 % jitter, so a fleet does not reconnect in step.
struct Backoff {
    current: Duration,
    seed: u64,
}

impl Backoff {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            current: BACKOFF_MIN,
            seed: u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1,
        }
    }

    fn reset(&mut self) {
        self.current = BACKOFF_MIN;
    }

    fn next_delay(&mut self) -> Duration {
        // xorshift64: plenty for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let factor = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        let delay = self.current.mul_f64(factor);
        self.current = (self.current * 2).min(BACKOFF_MAX);
        delay
    }
}
