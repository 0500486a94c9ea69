//! Talking to PostgreSQL: the pool and its timeouts, migrations under an advisory lock,
//! the one-round-trip batch insert, and the day partitions (made ahead, dropped whole).
//!
//! Everything here works through PgBouncer in transaction mode: no named prepared
//! statement (statements are sent with their types, unnamed), no session state (timeouts
//! are `SET LOCAL` in each statement's own transaction, locks are transaction locks).

use std::future::Future;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use sampler::Window;

use crate::{Config, Error};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The seed's tables, in the order rows are written.
pub const TABLES: [&str; 5] = [
    "metrics_cpu",
    "metrics_ram",
    "metrics_gpu",
    "metrics_temperature",
    "metrics_disk",
];

/// `pg_advisory_xact_lock` key taken by the migrating transaction, so collectors starting
/// together against an empty database take turns ("mcmigrat" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d63_6d69_6772_6174;

/// Rows deleted per retention statement from a DEFAULT partition: small enough to hold
/// locks for milliseconds.
const RETENTION_BATCH: i64 = 5_000;

/// How long the server lets a statement of the writer run.
pub(crate) const STATEMENT_TIMEOUT_MS: u32 = 15_000;

/// How long a statement of ours waits for a lock before the server gives it up.
const LOCK_TIMEOUT_MS: u32 = 5_000;

/// Days made ahead of today (UTC), besides yesterday and today.
pub(crate) const DAYS_AHEAD: i64 = 4;

/// Connection settings with every wait bounded: a dead or half-open server costs seconds.
/// No startup `options`: PgBouncer refuses them; the server's timeouts are set per
/// transaction instead ([`in_transaction`]).
pub(crate) fn connection_config(c: &Config) -> tokio_postgres::Config {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&c.host)
        .port(c.port)
        .user(&c.user)
        .dbname(&c.dbname)
        .application_name("metrics-collector")
        .ssl_mode(c.tls.postgres_mode())
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(20));
    if let Some(p) = &c.password {
        pg.password(p);
    }
    pg
}

pub(crate) fn pool(c: &Config) -> Result<Pool, Error> {
    // Verified recycling runs a trivial query before reuse, so a connection the server
    // dropped (restart, idle kill) is noticed before a write, not during it.
    let manager = Manager::from_config(
        connection_config(c),
        c.tls.connector(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(2)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(6)))
        .recycle_timeout(Some(Duration::from_secs(3)))
        .build()?)
}

/// Runs `op`, one statement not yet polled, in a transaction of its own with the server's
/// statement and lock timeouts set for it. BEGIN, the statement and COMMIT are pipelined:
/// one round trip, as a lone statement would be. (tokio-postgres sends a request when its
/// future is first polled, and `join!` polls in order.) A failed statement makes the
/// COMMIT a rollback; its own error is returned.
pub(crate) async fn in_transaction<T>(
    client: &Client,
    statement_timeout_ms: u32,
    op: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Error> {
    let begin = format!(
        "BEGIN; SET LOCAL statement_timeout = {statement_timeout_ms}; \
         SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"
    );
    let (began, done, committed) = tokio::join!(
        client.batch_execute(&begin),
        op,
        client.batch_execute("COMMIT")
    );
    began?;
    let value = done?;
    committed?;
    Ok(value)
}

/// Applies the embedded migrations (`migrations/V*__*.sql`) in one transaction that holds
/// an advisory transaction lock, so that concurrent collectors migrate one after the
/// other and a failure leaves nothing half done. refinery decides what to apply and
/// records it in its table, inside that transaction.
pub async fn migrate(client: &mut Client) -> Result<(), Error> {
    let transaction = client.transaction().await?;
    // No statement timeout: a migration may copy a large table (`metrics-collector
    // migrate` runs it unbounded; the writer bounds it on its side).
    transaction
        .batch_execute(&format!(
            "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 60000; \
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"
        ))
        .await?;
    let mut locked = Locked(transaction);
    embedded::migrations::runner()
        .run_async(&mut locked)
        .await?;
    locked.0.commit().await?;
    Ok(())
}

/// Connects with `config` and applies the migrations (what `metrics-collector migrate` and
/// `cargo xtask migrate` do).
pub async fn migrate_database(config: &Config) -> Result<(), Error> {
    let (mut client, connection) = connection_config(config)
        .connect(config.tls.connector())
        .await?;
    let driver = tokio::spawn(connection);
    let result = migrate(&mut client).await;
    drop(client);
    let _ = driver.await;
    result
}

/// The migrating transaction, as refinery's runner sees a connection: its statements run
/// in this one transaction (refinery would open one per migration) and with the simple
/// query protocol.
struct Locked<'a>(tokio_postgres::Transaction<'a>);

impl refinery::AsyncMigrate for Locked<'_> {}

impl refinery_core::traits::r#async::AsyncTransaction for Locked<'_> {
    type Error = tokio_postgres::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut count = 0;
        for query in queries {
            self.0.batch_execute(query).await?;
            count += 1;
        }
        Ok(count)
    }
}

impl refinery_core::traits::r#async::AsyncQuery<Vec<refinery::Migration>> for Locked<'_> {
    async fn query(&mut self, query: &str) -> Result<Vec<refinery::Migration>, Self::Error> {
        use time::format_description::well_known::Rfc3339;
        let mut applied = Vec::new();
        for message in self.0.simple_query(query).await? {
            let tokio_postgres::SimpleQueryMessage::Row(row) = message else {
                continue;
            };
            // refinery wrote these rows; one it cannot read is not one of its migrations.
            let version = row.get(0).and_then(|v| v.parse().ok());
            let applied_on = row
                .get(2)
                .and_then(|v| time::OffsetDateTime::parse(v, &Rfc3339).ok());
            let checksum = row.get(3).and_then(|v| v.parse().ok());
            if let (Some(version), Some(applied_on), Some(checksum)) =
                (version, applied_on, checksum)
            {
                applied.push(refinery::Migration::applied(
                    version,
                    row.get(1).unwrap_or_default().to_owned(),
                    applied_on,
                    checksum,
                ));
            }
        }
        Ok(applied)
    }
}

/// The rows of some windows, as `metrics_write`'s array parameters: built from
/// the queue, then written without borrowing it (windows keep arriving meanwhile).
pub(crate) struct Batch {
    host: String,
    at: Vec<SystemTime>,
    /// Mean, min and max of cpu, ram, gpu and temperature, in that order.
    values: [Vec<Option<f64>>; 12],
    used: Vec<Option<i64>>,
    free: Vec<Option<i64>>,
    percent: Vec<Option<f64>>,
    /// Rows the windows hold.
    pub(crate) rows: u64,
}

impl Batch {
    pub(crate) fn new<'a>(host: &str, windows: impl ExactSizeIterator<Item = &'a Window>) -> Self {
        let n = windows.len();
        let mut b = Self {
            host: host.to_owned(),
            at: Vec::with_capacity(n),
            values: std::array::from_fn(|_| Vec::with_capacity(n)),
            used: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            percent: Vec::with_capacity(n),
            rows: 0,
        };
        for w in windows {
            b.rows += w.rows();
            b.at.push(w.at);
            for (k, stat) in [w.cpu, w.ram, w.gpu, w.temperature].iter().enumerate() {
                b.values[3 * k].push(stat.map(|s| s.value()));
                b.values[3 * k + 1].push(stat.and_then(|s| s.min));
                b.values[3 * k + 2].push(stat.and_then(|s| s.max));
            }
            let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            b.used.push(w.disk.map(|d| bytes(d.used_bytes)));
            b.free.push(w.disk.map(|d| bytes(d.free_bytes)));
            b.percent.push(w.disk.map(|d| d.percent));
        }
        b
    }

    /// Writes the rows to the five tables in one statement (one round trip, its own
    /// transaction), skipping rows already there. Returns how many rows were inserted.
    pub(crate) async fn write(&self, client: &Client) -> Result<u64, Error> {
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
            (&self.host, Type::TEXT),
            (&self.at, Type::TIMESTAMPTZ_ARRAY),
        ];
        params.extend(self.values.iter().map(|v| (v as _, Type::FLOAT8_ARRAY)));
        params.extend([
            (&self.used as _, Type::INT8_ARRAY),
            (&self.free as _, Type::INT8_ARRAY),
            (&self.percent as _, Type::FLOAT8_ARRAY),
        ]);
        let rows = client.query_typed(WRITE, &params).await?;
        let inserted = rows.first().map_or(0, |r| r.get::<_, i64>(0));
        Ok(u64::try_from(inserted).unwrap_or(0))
    }

    /// The UTC days the rows fall on, for making their partitions.
    pub(crate) fn days(&self) -> Vec<time::Date> {
        let mut days: Vec<time::Date> = self
            .at
            .iter()
            .map(|t| time::OffsetDateTime::from(*t).date())
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    }
}

/// A batch is one call of `metrics_write` (migration V5): one statement, so one
/// transaction and one round trip, with its five INSERTs planned once per server
/// connection. Its own `lock_timeout` bounds a wait on a lock.
pub const WRITE: &str = "SELECT metrics_write($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15, $16, $17)";

/// Makes every table's DEFAULT partition and its partitions for `days` where missing
/// (`metrics_make_days`, migration V4). Returns how many were made.
pub(crate) async fn make_days(client: &Client, days: &[time::Date]) -> Result<i64, Error> {
    let days: Vec<String> = days.iter().map(ToString::to_string).collect();
    let rows = in_transaction(
        client,
        STATEMENT_TIMEOUT_MS,
        client.query_typed(
            "SELECT metrics_make_days($1::text[]::date[])",
            &[(&days, Type::TEXT_ARRAY)],
        ),
    )
    .await?;
    Ok(rows.first().map_or(0, |r| i64::from(r.get::<_, i32>(0))))
}

/// Yesterday, today and [`DAYS_AHEAD`] days ahead, by this machine's clock in UTC (the
/// clock that stamps the rows).
pub(crate) fn days_around(now: SystemTime) -> Vec<time::Date> {
    let today = time::OffsetDateTime::from(now).date();
    (-1..=DAYS_AHEAD)
        .filter_map(|d| today.checked_add(time::Duration::days(d)))
        .collect()
}

/// Retention: drops the day partitions that end at or before `cutoff`, then deletes
/// older rows from the DEFAULT partitions in small batches. Returns (days dropped, rows
/// deleted). Every host's rows age out together: a day is one table.
pub(crate) async fn drop_older_than(
    client: &Client,
    cutoff: SystemTime,
) -> Result<(i64, u64), Error> {
    let rows = in_transaction(
        client,
        STATEMENT_TIMEOUT_MS,
        client.query_typed(
            "SELECT metrics_drop_days_before($1)",
            &[(&cutoff, Type::TIMESTAMPTZ)],
        ),
    )
    .await?;
    let days = rows.first().map_or(0, |r| i64::from(r.get::<_, i32>(0)));
    let mut deleted = 0;
    for table in TABLES {
        let sql = format!(
            "DELETE FROM {table}_default WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM {table}_default WHERE timestamp < $1 LIMIT $2))"
        );
        loop {
            let n = in_transaction(
                client,
                STATEMENT_TIMEOUT_MS,
                client.execute_typed(
                    &sql,
                    &[(&cutoff, Type::TIMESTAMPTZ), (&RETENTION_BATCH, Type::INT8)],
                ),
            )
            .await?;
            deleted += n;
            if n < RETENTION_BATCH as u64 {
                break;
            }
        }
    }
    Ok((days, deleted))
}
