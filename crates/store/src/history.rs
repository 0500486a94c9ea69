//! Reading history back (SPEC §6): buckets older than memory's for `/metrics/history`, and
//! the last day's windows that refill the ring after a restart. On a pool of its own,
//! small, with a short statement timeout and every wait bounded, so a slow database delays
//! only the requests that need it and never the writer.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{ToSql, Type};

use sampler::{ArchiveFuture, Columns, DiskRow, Grid, Series, Stat, Window};

use crate::{Config, Error, db};

/// The server ends a history statement after this.
const STATEMENT_TIMEOUT_MS: u32 = 3_000;
/// The end of year 9999, in ms: past what anyone asks for, within what PostgreSQL holds.
const LAST_MS: i64 = 253_402_300_799_999;
/// Everything one call may take, connecting included.
const CALL_BOUND: Duration = Duration::from_secs(4);

/// This host's rows, read for history. Cheap to share (`Arc`).
pub struct HistoryReader {
    pool: Pool,
    host: String,
    /// The persist interval, in ms: where a row's window began.
    every_ms: i64,
    /// Samples per window in a steady run: the weight of one row.
    nominal: f64,
    password: Option<String>,
}

impl std::fmt::Debug for HistoryReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryReader")
            .field("host", &self.host)
            .field("every_ms", &self.every_ms)
            .finish_non_exhaustive()
    }
}

impl HistoryReader {
    /// A reader with a pool of its own (two connections at most, made on first use).
    /// `live` is the live interval, for the weight of a window.
    pub fn new(config: &Config, live: Duration) -> Result<Self, Error> {
        let manager = Manager::from_config(
            db::connection_config(config),
            config.tls.connector(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(2)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(1)))
            .create_timeout(Some(Duration::from_secs(2)))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()?;
        Ok(Self {
            pool,
            host: config.metrics_host.clone(),
            every_ms: i64::try_from(config.persist_interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            nominal: (config.persist_interval.as_secs_f64() / live.as_secs_f64().max(0.001))
                .round()
                .max(1.0),
            password: config.password.clone(),
        })
    }

    /// One line about `e`, the password never in it.
    fn describe(&self, e: &Error) -> String {
        e.summary_masked(self.password.as_deref())
    }

    async fn bounded<T>(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(CALL_BOUND, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.describe(&e)),
            Err(_) => Err(self.describe(&Error::Timeout(what))),
        }
    }

    /// Buckets of `grid` from this host's windows that began in `[from_ms, to_ms)`: one
    /// statement per series, run on both connections of the pool at once.
    pub async fn buckets(
        &self,
        grid: Grid,
        series: &[Series],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Columns, Error> {
        let mut columns = Columns::empty(grid, series);
        if series.is_empty() || from_ms >= to_ms {
            return Ok(columns);
        }
        // A window began on the grid line before its row's timestamp, so "began in
        // [from, to)" is "stamped in (L, U]" with L and U the grid lines at or after from
        // and to: a plain range on the (host, timestamp) index.
        let every = self.every_ms;
        let line_at_or_after =
            |t: i64| t.div_euclid(every) * every + every * i64::from(t.rem_euclid(every) != 0);
        let (lo, hi) = (
            sampler::from_unix_ms(line_at_or_after(from_ms).clamp(0, LAST_MS)),
            sampler::from_unix_ms(line_at_or_after(to_ms).clamp(0, LAST_MS)),
        );
        let mut tasks = tokio::task::JoinSet::new();
        for s in series {
            let (pool, host, s) = (self.pool.clone(), self.host.clone(), *s);
            let (every_s, step_s) = (every as f64 / 1000.0, grid.step_ms as f64 / 1000.0);
            let origin = sampler::from_unix_ms(grid.first_ms);
            tasks.spawn(async move {
                let client = pool.get().await?;
                let sql = bucket_sql(s);
                let params: [(&(dyn ToSql + Sync), Type); 6] = [
                    (&host, Type::TEXT),
                    (&lo, Type::TIMESTAMPTZ),
                    (&hi, Type::TIMESTAMPTZ),
                    (&every_s, Type::FLOAT8),
                    (&step_s, Type::FLOAT8),
                    (&origin, Type::TIMESTAMPTZ),
                ];
                let query = client.query_typed(&sql, &params);
                let rows = db::in_transaction(&client, STATEMENT_TIMEOUT_MS, query).await?;
                Ok::<_, Error>((s, rows))
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (s, rows) = match done {
                Ok(result) => result?,
                // It panicked, or the runtime is shutting down.
                Err(_) => return Err(Error::Interrupted("a history query")),
            };
            let Some(buckets) = columns.column_mut(s) else {
                continue;
            };
            for row in rows {
                let bucket: SystemTime = row.get(0);
                let (sum, windows): (Option<f64>, i64) = (row.get(1), row.get(2));
                let (min, max, with_extremes): (Option<f64>, Option<f64>, i64) =
                    (row.get(3), row.get(4), row.get(5));
                let (Some(i), Some(sum)) = (grid.index(sampler::unix_ms(bucket)), sum) else {
                    continue;
                };
                let known = with_extremes == windows && windows > 0;
                buckets[i].add_aggregate(
                    sum / windows.max(1) as f64,
                    windows as f64 * self.nominal,
                    min.filter(|_| known),
                    max.filter(|_| known),
                );
            }
        }
        Ok(columns)
    }

    /// This host's windows whose rows are stamped in `(from, to]`, oldest first.
    pub async fn windows(&self, from: SystemTime, to: SystemTime) -> Result<Vec<Window>, Error> {
        let client = self.pool.get().await?;
        let params: [(&(dyn ToSql + Sync), Type); 3] = [
            (&self.host, Type::TEXT),
            (&from, Type::TIMESTAMPTZ),
            (&to, Type::TIMESTAMPTZ),
        ];
        let query = client.query_typed(WINDOWS_BETWEEN, &params);
        let rows = db::in_transaction(&client, STATEMENT_TIMEOUT_MS, query).await?;
        let mut windows: BTreeMap<i64, Window> = BTreeMap::new();
        self.add_rows(&mut windows, rows);
        Ok(windows.into_values().collect())
    }

    fn add_rows(&self, windows: &mut BTreeMap<i64, Window>, rows: Vec<tokio_postgres::Row>) {
        for row in rows {
            let k: i32 = row.get(0);
            let at: SystemTime = row.get(1);
            let at_ms = sampler::unix_ms(at);
            let w = windows.entry(at_ms).or_insert_with(|| Window {
                start: sampler::from_unix_ms(sampler::window_start_ms(at_ms, self.every_ms)),
                at,
                cpu: None,
                ram: None,
                gpu: None,
                temperature: None,
                disk: None,
            });
            let Some(value) = row.get::<_, Option<f64>>(2) else {
                continue;
            };
            let stat = Stat {
                mean: value,
                min: row.get(3),
                max: row.get(4),
                samples: 0,
            };
            match k {
                0 => w.cpu = Some(stat),
                1 => w.ram = Some(stat),
                2 => w.gpu = Some(stat),
                3 => w.temperature = Some(stat),
                _ => {
                    let (used, free): (Option<i64>, Option<i64>) = (row.get(5), row.get(6));
                    w.disk = Some(DiskRow {
                        used_bytes: used.and_then(|u| u64::try_from(u).ok()).unwrap_or(0),
                        free_bytes: free.and_then(|f| u64::try_from(f).ok()).unwrap_or(0),
                        percent: value,
                    });
                }
            }
        }
    }
}

impl sampler::Archive for HistoryReader {
    fn buckets(
        &self,
        grid: Grid,
        series: Vec<Series>,
        from_ms: i64,
        to_ms: i64,
    ) -> ArchiveFuture<'_, Columns> {
        Box::pin(async move {
            self.bounded(
                "reading history",
                HistoryReader::buckets(self, grid, &series, from_ms, to_ms),
            )
            .await
        })
    }

    fn windows(&self, from: SystemTime, to: SystemTime) -> ArchiveFuture<'_, Vec<Window>> {
        Box::pin(async move {
            self.bounded(
                "reading windows back",
                HistoryReader::windows(self, from, to),
            )
            .await
        })
    }
}

/// The value column, and its extremes, of each series' table.
fn source(series: Series) -> (&'static str, &'static str) {
    match series {
        Series::Cpu => ("metrics_cpu", "value, value_min, value_max"),
        Series::Ram => ("metrics_ram", "value, value_min, value_max"),
        Series::Gpu => ("metrics_gpu", "value, value_min, value_max"),
        Series::Temperature => ("metrics_temperature", "value, value_min, value_max"),
        Series::Disk => ("metrics_disk", "percent, percent, percent"),
    }
}

/// One series' buckets: each row's window start (the grid line before its timestamp, rows
/// being stamped when their window closed), its bucket (`date_bin` with the grid's first
/// bucket as origin), and per bucket the sum and count of the windows' means and their
/// extremes with how many rows kept them. $1 host, $2/$3 the timestamp range, $4 the
/// persist interval and $5 the step in seconds, $6 the grid's first bucket.
fn bucket_sql(series: Series) -> String {
    let (table, columns) = source(series);
    format!(
        "SELECT date_bin(make_interval(secs => $5), \
                         date_bin(make_interval(secs => $4), timestamp - interval '1 microsecond', \
                                  timestamptz 'epoch'), \
                         $6) AS bucket, \
                sum(v), count(*), min(lo), max(hi), count(lo) \
         FROM (SELECT timestamp, {columns} FROM {table} \
               WHERE host = $1 AND timestamp > $2 AND timestamp <= $3) AS w(timestamp, v, lo, hi) \
         GROUP BY 1"
    )
}

/// Every row of this host in ($2, $3], tagged with its series (as in [`Series::index`]).
const WINDOWS_BETWEEN: &str = "
SELECT 0::int4, timestamp, value, value_min, value_max, NULL::int8, NULL::int8
  FROM metrics_cpu WHERE host = $1 AND timestamp > $2 AND timestamp <= $3
UNION ALL SELECT 1, timestamp, value, value_min, value_max, NULL, NULL
  FROM metrics_ram WHERE host = $1 AND timestamp > $2 AND timestamp <= $3
UNION ALL SELECT 2, timestamp, value, value_min, value_max, NULL, NULL
  FROM metrics_gpu WHERE host = $1 AND timestamp > $2 AND timestamp <= $3
UNION ALL SELECT 3, timestamp, value, value_min, value_max, NULL, NULL
  FROM metrics_temperature WHERE host = $1 AND timestamp > $2 AND timestamp <= $3
UNION ALL SELECT 4, timestamp, percent, percent, percent, used, free
  FROM metrics_disk WHERE host = $1 AND timestamp > $2 AND timestamp <= $3";
