//! Talking to PostgreSQL: the pool and its timeouts, migrations under an advisory lock,
//! the one-round-trip batch insert, and retention in small batches.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Client;

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

/// `pg_advisory_lock` key taken around migrating, so collectors starting together against
/// an empty database take turns ("mcmigrat" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d63_6d69_6772_6174;

/// Rows deleted per retention statement: small enough to hold locks for milliseconds.
const RETENTION_BATCH: i64 = 5_000;

/// Connection settings with every wait bounded: a dead or half-open server costs seconds.
pub(crate) fn connection_config(c: &Config) -> tokio_postgres::Config {
    connection_config_with(c, STATEMENT_TIMEOUT_MS)
}

/// How long the server lets a statement of the writer run.
const STATEMENT_TIMEOUT_MS: u32 = 15_000;

/// The same, with the server ending any statement after `statement_timeout_ms`.
pub(crate) fn connection_config_with(
    c: &Config,
    statement_timeout_ms: u32,
) -> tokio_postgres::Config {
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
        .tcp_user_timeout(Duration::from_secs(20))
        // The server ends any statement of ours that runs longer than this.
        .options(format!(
            "-c statement_timeout={statement_timeout_ms} -c lock_timeout=5000"
        ));
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

/// Applies the embedded migrations (`migrations/V*__*.sql`), holding an advisory lock so
/// that concurrent collectors migrate one after the other.
pub async fn migrate(client: &mut Client) -> Result<(), Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = embedded::migrations::runner().run_async(client).await;
    // Unlocks also happen when the session ends; a failed unlock changes nothing.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
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

/// The rows of some windows, as the one INSERT statement's array parameters: built from
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

    /// Writes the rows to the five tables in one statement (one round trip), skipping rows
    /// already there. Returns how many rows were inserted.
    pub(crate) async fn write(&self, client: &ClientWrapper) -> Result<u64, Error> {
        type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);
        let statement = client.prepare_cached(INSERT).await?;
        let mut params: Vec<Param<'_>> = vec![&self.host, &self.at];
        params.extend(self.values.iter().map(|v| v as Param<'_>));
        params.extend([&self.used as Param<'_>, &self.free, &self.percent]);
        let row = client.query_one(&statement, &params).await?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}

const INSERT: &str = "
WITH w AS (
    SELECT * FROM unnest($2::timestamptz[],
                         $3::float8[], $4::float8[], $5::float8[],
                         $6::float8[], $7::float8[], $8::float8[],
                         $9::float8[], $10::float8[], $11::float8[],
                         $12::float8[], $13::float8[], $14::float8[],
                         $15::int8[], $16::int8[], $17::float8[])
        AS w(ts, cpu, cpu_min, cpu_max, ram, ram_min, ram_max, gpu, gpu_min, gpu_max,
             temperature, temperature_min, temperature_max, used, free, percent)
), c AS (
    INSERT INTO metrics_cpu (host, timestamp, value, value_min, value_max)
    SELECT $1, ts, cpu, cpu_min, cpu_max FROM w WHERE cpu IS NOT NULL
    ON CONFLICT (host, timestamp) DO NOTHING RETURNING 1
), r AS (
    INSERT INTO metrics_ram (host, timestamp, value, value_min, value_max)
    SELECT $1, ts, ram, ram_min, ram_max FROM w WHERE ram IS NOT NULL
    ON CONFLICT (host, timestamp) DO NOTHING RETURNING 1
), g AS (
    INSERT INTO metrics_gpu (host, timestamp, value, value_min, value_max)
    SELECT $1, ts, gpu, gpu_min, gpu_max FROM w WHERE gpu IS NOT NULL
    ON CONFLICT (host, timestamp) DO NOTHING RETURNING 1
), t AS (
    INSERT INTO metrics_temperature (host, timestamp, value, value_min, value_max)
    SELECT $1, ts, temperature, temperature_min, temperature_max FROM w WHERE temperature IS NOT NULL
    ON CONFLICT (host, timestamp) DO NOTHING RETURNING 1
), d AS (
    INSERT INTO metrics_disk (host, timestamp, used, free, percent) SELECT $1, ts, used, free, percent FROM w WHERE percent IS NOT NULL
    ON CONFLICT (host, timestamp) DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM r) + (SELECT count(*) FROM g)
     + (SELECT count(*) FROM t) + (SELECT count(*) FROM d)";

/// Deletes this host's rows older than `cutoff` from every table, a small batch per
/// statement so no lock is held for long. Rows with an empty `host` (written by the
/// original service before this one took its tables over) age out the same way. Returns
/// the rows deleted.
pub(crate) async fn delete_older_than(
    client: &ClientWrapper,
    host: &str,
    cutoff: SystemTime,
) -> Result<u64, Error> {
    let mut deleted = 0;
    for table in TABLES {
        let sql = format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM {table} WHERE host IN ($1, '') AND timestamp < $2 LIMIT $3))"
        );
        let statement = client.prepare_cached(&sql).await?;
        loop {
            let n = client
                .execute(&statement, &[&host, &cutoff, &RETENTION_BATCH])
                .await?;
            deleted += n;
            if n < RETENTION_BATCH as u64 {
                break;
            }
        }
    }
    Ok(deleted)
}
