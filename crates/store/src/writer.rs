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
/// Back-off between failed attempts: short at first (a lost connection is often one
/// restart), never long enough that a database back for 5 s is still unused.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A statement with no reply for this long (a hung server, a network that drops every
/// packet) is given up and its connection dropped: the server's own `statement_timeout`
/// (15 s) has passed by then, so only a server or path that is gone is this slow.
const STATEMENT_BOUND: Duration = Duration::from_secs(20);
/// Migrations may rewrite tables; they get longer.
const MIGRATION_BOUND: Duration = Duration::from_secs(120);
/// A write waiting this long makes `/health` say the database is unreachable, with what
/// it waits for, while the write goes on waiting.
const STALLED_AFTER: Duration = Duration::from_secs(3);

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
    // Closed days' indexes rebuilt once, by one collector of the fleet; it ends with the
    // writer.
    let compactor = tokio::spawn(crate::compact::run(
        pool.clone(),
        config.metrics_host.clone(),
        config.password.clone(),
    ));
    let writer = Writer::new(config, pool, status_tx, rx);
    let task = tokio::spawn(async move {
        writer.run().await;
        compactor.abort();
    });
    Ok((Handle { tx }, status_rx, task))
}

struct Writer {
    config: Config,
    pool: Pool,
    /// Held between writes, so a steady state costs one round trip per window (the pool's
    /// verification query runs only when a connection is taken anew); dropped on error.
    client: Option<deadpool_postgres::Object>,
    /// Where the engine's windows arrive; `None` once every [`Handle`] is gone.
    inbox: Option<mpsc::Receiver<Window>>,
    queue: Queue,
    report: Report,
    migrated: bool,
    next_retention: Instant,
    backoff: Backoff,
    next_attempt: Instant,
    /// How long after a window arrives it is sent: [`flush_offset`].
    flush_offset: Duration,
}

/// What the writer tells `/health`, and the counts behind it.
struct Report {
    status: watch::Sender<WriterStatus>,
    state: WriterState,
    last_error: Option<String>,
    written: u64,
    /// Rows a batch found already written (the retry of a batch whose reply was lost).
    duplicates: u64,
    lost_outage: bool,
}

impl Report {
    fn publish(&self, queue: &Queue) {
        self.status.send_replace(WriterStatus {
            state: self.state,
            pending_windows: queue.len() as u64,
            pending_rows: queue.rows(),
            dropped_windows: queue.dropped(),
            written_windows: self.written,
            duplicate_rows: self.duplicates,
            last_error: self.last_error.clone(),
        });
    }

    /// A statement has had no reply for `waited`: the database is not usable now, whatever
    /// the connection's state says, and rows are piling up.
    fn publish_stalled(&self, queue: &Queue, what: &str, waited: Duration) {
        self.status.send_replace(WriterStatus {
            state: WriterState::Unreachable,
            pending_windows: queue.len() as u64,
            pending_rows: queue.rows(),
            dropped_windows: queue.dropped(),
            written_windows: self.written,
            duplicate_rows: self.duplicates,
            last_error: Some(format!(
                "no reply from the database for {} s ({what})",
                waited.as_secs()
            )),
        });
    }
}

/// Awaits `op` (bounded by `bound`) while windows keep arriving into `queue`, and says so
/// in `/health` when the database keeps it waiting past [`STALLED_AFTER`]. An `op` past
/// its bound is an error: its connection is dropped with the caller's frame.
async fn meanwhile<T>(
    what: &'static str,
    bound: Duration,
    op: impl Future<Output = Result<T, Error>>,
    inbox: &mut Option<mpsc::Receiver<Window>>,
    queue: &mut Queue,
    report: &Report,
) -> Result<T, Error> {
    let started = Instant::now();
    let op = tokio::time::timeout(bound, op);
    tokio::pin!(op);
    let mut stalled = false;
    let mut next_report = started + STALLED_AFTER;
    loop {
        tokio::select! {
            biased;
            done = &mut op => return done.unwrap_or(Err(Error::Timeout(what))),
            received = recv(inbox) => {
                match received {
                    Some(w) => queue.push(w),
                    None => *inbox = None,
                }
                if stalled {
                    report.publish_stalled(queue, what, started.elapsed());
                }
            }
            () = sleep_until(next_report) => {
                stalled = true;
                report.publish_stalled(queue, what, started.elapsed());
                next_report += Duration::from_secs(1);
            }
        }
    }
}

/// The next window, or `None` once the inbox is closed; pending forever once it is gone.
async fn recv(inbox: &mut Option<mpsc::Receiver<Window>>) -> Option<Window> {
    match inbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Writer {
    fn new(
        config: Config,
        pool: Pool,
        status: watch::Sender<WriterStatus>,
        inbox: mpsc::Receiver<Window>,
    ) -> Self {
        let now = Instant::now();
        Self {
            queue: Queue::new(config.queue_capacity()),
            flush_offset: flush_offset(&config.metrics_host, config.persist_interval),
            config,
            pool,
            client: None,
            inbox: Some(inbox),
            report: Report {
                status,
                state: WriterState::Connecting,
                last_error: None,
                written: 0,
                duplicates: 0,
                lost_outage: false,
            },
            migrated: false,
            next_retention: now,
            backoff: Backoff::new(),
            next_attempt: now,
        }
    }

    fn has_work(&self, now: Instant) -> bool {
        !self.migrated || !self.queue.is_empty() || now >= self.next_retention
    }

    async fn run(mut self) {
        while self.inbox.is_some() {
            let was_waiting = !self.queue.is_empty();
            let now = Instant::now();
            let wake = if self.has_work(now) {
                self.next_attempt
            } else {
                self.next_retention
            };
            tokio::select! {
                received = recv(&mut self.inbox) => match received {
                    Some(w) => self.queue.push(w),
                    None => self.inbox = None,
                },
                () = sleep_until(wake) => {}
            }
            while let Some(w) = self.inbox.as_mut().and_then(|rx| rx.try_recv().ok()) {
                self.queue.push(w);
            }
            if !was_waiting && !self.queue.is_empty() && self.report.state == WriterState::Connected
            {
                // A fleet closes its windows on the same grid line: each collector sends its
                // own a stable while later, so the database sees an even stream.
                self.next_attempt = self.next_attempt.max(Instant::now() + self.flush_offset);
            }
            // What arrived is pending before it is sent: `/health` never shows an empty
            // queue while a batch is in flight.
            self.publish();
            let now = Instant::now();
            if now >= self.next_attempt && self.has_work(now) {
                self.attempt().await;
                self.publish();
            }
        }
        self.flush_on_shutdown().await;
    }

    /// One go at the database: migrate if not yet, retention if due, then the queue.
    async fn attempt(&mut self) {
        match self.work().await {
            Ok(()) => {
                let r = &mut self.report;
                if r.lost_outage {
                    tracing::info!(
                        written = r.written,
                        "database reachable again; backlog written"
                    );
                }
                r.state = WriterState::Connected;
                r.last_error = None;
                r.lost_outage = false;
                self.backoff.reset();
                self.next_attempt = Instant::now();
            }
            Err(e) => {
                // A server's message may quote what it was given; the password is never
                // shown, whatever it was given.
                let summary = e.summary_masked(self.config.password.as_deref());
                let r = &mut self.report;
                if !r.lost_outage {
                    if e.is_server_restart() {
                        tracing::info!(error = %summary, "database restarting; windows wait in memory");
                    } else {
                        tracing::warn!(error = %summary, "database unreachable; windows wait in memory");
                    }
                    r.lost_outage = true;
                }
                r.state = WriterState::Unreachable;
                r.last_error = Some(summary);
                self.next_attempt = Instant::now() + self.backoff.next_delay();
            }
        }
    }

    async fn work(&mut self) -> Result<(), Error> {
        let (inbox, queue, report) = (&mut self.inbox, &mut self.queue, &mut self.report);
        let mut client = match self.client.take() {
            Some(c) => c,
            None => {
                let get = async { Ok(self.pool.get().await?) };
                meanwhile("connecting", STATEMENT_BOUND, get, inbox, queue, report).await?
            }
        };
        // On any error below, `client` is dropped with this frame: the next attempt takes a
        // fresh, verified connection from the pool.
        if !self.migrated {
            let migrate = db::migrate(&mut client);
            meanwhile("migrating", MIGRATION_BOUND, migrate, inbox, queue, report).await?;
            self.migrated = true;
        }
        if Instant::now() >= self.next_retention {
            // Days made ahead first, so a write never waits on making one.
            let days = db::days_around(SystemTime::now());
            let make = db::make_days(&client, &days);
            let made = meanwhile(
                "making partitions",
                STATEMENT_BOUND,
                make,
                inbox,
                queue,
                report,
            )
            .await?;
            if made > 0 {
                tracing::info!(made, "partitions made for the days ahead");
            }
            let cutoff = SystemTime::now() - self.config.retention;
            let drop = db::drop_older_than(&client, cutoff);
            let (days, deleted) =
                meanwhile("retention", STATEMENT_BOUND, drop, inbox, queue, report).await?;
            if days > 0 || deleted > 0 {
                tracing::info!(
                    days,
                    deleted,
                    "retention: dropped the days older than the retention period"
                );
            }
            self.next_retention = Instant::now() + RETENTION_EVERY.min(self.config.retention);
        }
        while !queue.is_empty() {
            let n = queue.len().min(BATCH);
            let batch = db::Batch::new(&self.config.metrics_host, queue.front(n));
            let dropped = queue.dropped();
            let write = batch.write(&client);
            let inserted = match meanwhile(
                "writing a batch",
                STATEMENT_BOUND,
                write,
                inbox,
                queue,
                report,
            )
            .await
            {
                // No partition took a row (someone dropped the DEFAULT one): make what the
                // batch needs and write it again. The windows stay queued meanwhile.
                Err(e) if e.is_no_partition() => {
                    tracing::warn!(error = %e.summary(), "no partition for a batch; making its days");
                    let days = batch.days();
                    let make = db::make_days(&client, &days);
                    meanwhile(
                        "making partitions",
                        STATEMENT_BOUND,
                        make,
                        inbox,
                        queue,
                        report,
                    )
                    .await?;
                    let write = batch.write(&client);
                    meanwhile(
                        "writing a batch",
                        STATEMENT_BOUND,
                        write,
                        inbox,
                        queue,
                        report,
                    )
                    .await?
                }
                done => done?,
            };
            if inserted < batch.rows {
                // The unique key kept these once: an earlier attempt wrote them and its
                // reply was lost.
                tracing::info!(
                    rows = batch.rows - inserted,
                    "rows already written by an attempt whose reply was lost; kept once"
                );
                report.duplicates += batch.rows - inserted;
            }
            // A full queue drops its oldest to take arrivals: those were this batch's
            // first windows, written now, so fewer are left to remove.
            let gone = usize::try_from(queue.dropped() - dropped).unwrap_or(usize::MAX);
            queue.remove_front(n.saturating_sub(gone));
            report.written += n as u64;
            report.publish(queue);
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
                    .report
                    .last_error
                    .as_deref()
                    .unwrap_or("flush deadline reached"),
                "shutting down with windows not written"
            );
        }
        self.publish();
    }

    fn publish(&self) {
        self.report.publish(&self.queue);
    }
}

/// A stable delay in `[0, persist)` for `host`: its FNV-1a hash, as a fraction of the
/// window. The same host gets the same offset on every start and every machine.
pub fn flush_offset(host: &str, persist: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV-1a alone barely moves its top bits for a last byte that differs (host-0001,
    // host-0002, ...): SplitMix64's finaliser spreads them.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    // The top 53 bits as a fraction in [0, 1): exact in an f64, never 1.
    persist.mul_f64((h >> 11) as f64 / (1u64 << 53) as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_of_numbered_hosts_spreads_its_flushes_over_the_whole_window() {
        let persist = Duration::from_secs(30);
        let mut per_second = [0u32; 30];
        for i in 0..10_000 {
            let offset = flush_offset(&format!("host-{i:05}"), persist);
            assert!(offset < persist, "{offset:?}");
            per_second[offset.as_secs() as usize] += 1;
        }
        // 333 a second if even; a burst would put thousands in one second.
        let (least, most) = (per_second.iter().min(), per_second.iter().max());
        assert!(
            least >= Some(&250) && most <= Some(&420),
            "flushes per second of the window: {per_second:?}"
        );
    }

    #[test]
    fn a_hosts_offset_is_the_same_on_every_start() {
        let persist = Duration::from_secs(30);
        assert_eq!(
            flush_offset("jetson-17", persist),
            flush_offset("jetson-17", persist)
        );
        // Pinned: a change of hash would move every collector of a fleet at once.
        assert_eq!(flush_offset("test-host", persist).as_millis(), 28_655);
        assert_eq!(flush_offset("", Duration::ZERO), Duration::ZERO);
    }
}
