//! Compaction of closed days (migration V6): the indexes of a UTC day that has ended are
//! rebuilt once, by one collector of the fleet, with `REINDEX TABLE CONCURRENTLY` (writes
//! go on meanwhile). A fleet's inserts land at one place per host in each unique index, so
//! its pages split half full as they are written; rebuilt in key order they are packed
//! (148 → 117 bytes per row for a day of 1,000 hosts, docs/SCALING.md).
//!
//! A rebuild cut short (the collector or the server died, the statement was cancelled)
//! leaves an invalid index behind (`…_ccnew`); the next compaction of that day drops it
//! first. The claim of a collector that died is taken again after [`STALE`].

use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::{Error, TABLES, db};

/// A day is closed this long after it ends (UTC): windows stamped in its last minutes
/// are written by then, whatever each collector's flush offset.
pub(crate) const CLOSED_AFTER: Duration = Duration::from_secs(3600);
/// A claim not done after this long is taken to be a collector that died mid-rebuild.
pub(crate) const STALE: Duration = Duration::from_secs(6 * 3600);
/// How often a collector looks for a day to compact.
const EVERY: Duration = Duration::from_secs(3600);

/// One day compacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The five tables' index bytes of that day, before and after.
    pub index_bytes_before: i64,
    pub index_bytes_after: i64,
    /// Invalid indexes left by an earlier rebuild cut short, dropped first.
    pub invalid_dropped: usize,
    pub took: Duration,
}

/// Claims the newest closed day not compacted yet (as of `now`) for `host`, drops what an
/// earlier rebuild of it left, rebuilds its five partitions' indexes and records it done.
/// `None` when there is no day to compact, or another collector is compacting one.
pub async fn compact_next(
    client: &Client,
    host: &str,
    now: SystemTime,
) -> Result<Option<Compacted>, Error> {
    let started = Instant::now();
    let closed_before = now - CLOSED_AFTER;
    let stale = format!("{} seconds", STALE.as_secs());
    let rows = db::in_transaction(
        client,
        db::STATEMENT_TIMEOUT_MS,
        client.query_typed(
            "SELECT metrics_claim_compaction($1, $2, $3::text::interval)::text",
            &[
                (&host, Type::TEXT),
                (&closed_before, Type::TIMESTAMPTZ),
                (&stale, Type::TEXT),
            ],
        ),
    )
    .await?;
    let Some(day) = rows.first().and_then(|r| r.get::<_, Option<String>>(0)) else {
        return Ok(None);
    };
    let suffix = format!("_p{}", day.replace('-', ""));
    let partitions: Vec<String> = TABLES.iter().map(|t| format!("{t}{suffix}")).collect();
    let mut invalid_dropped = 0;
    for p in &partitions {
        for index in invalid_indexes(client, p).await? {
            tracing::info!(
                index,
                "dropping an index an earlier rebuild left unfinished"
            );
            client
                .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                .await?;
            invalid_dropped += 1;
        }
    }
    let before = index_bytes(client, &partitions).await?;
    for p in &partitions {
        // A day made by an older collector may lack a table's partition: nothing to do.
        if !exists(client, p).await? {
            continue;
        }
        client
            .batch_execute(&format!("REINDEX TABLE CONCURRENTLY {p}"))
            .await?;
    }
    let after = index_bytes(client, &partitions).await?;
    db::in_transaction(
        client,
        db::STATEMENT_TIMEOUT_MS,
        client.execute_typed(
            "UPDATE metrics_compaction SET done_at = now(), index_bytes_before = $2, \
             index_bytes_after = $3 WHERE day = $1::text::date",
            &[
                (&day, Type::TEXT),
                (&before, Type::INT8),
                (&after, Type::INT8),
            ],
        ),
    )
    .await?;
    Ok(Some(Compacted {
        day,
        index_bytes_before: before,
        index_bytes_after: after,
        invalid_dropped,
        took: started.elapsed(),
    }))
}

/// The invalid indexes of `table` and of its TOAST table (qualified where needed and
/// quoted, ready for DDL): what a `REINDEX … CONCURRENTLY` or `CREATE INDEX CONCURRENTLY`
/// cut short leaves. We build no other.
async fn invalid_indexes(client: &Client, table: &str) -> Result<Vec<String>, Error> {
    let rows = client
        .query_typed(
            "SELECT x.indexrelid::regclass::text FROM pg_index x \
             JOIN pg_class t ON t.oid = to_regclass($1) \
             WHERE x.indrelid IN (t.oid, t.reltoastrelid) AND NOT x.indisvalid",
            &[(&table, Type::TEXT)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn exists(client: &Client, table: &str) -> Result<bool, Error> {
    let row = client
        .query_typed_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[(&table, Type::TEXT)],
        )
        .await?;
    Ok(row.get(0))
}

async fn index_bytes(client: &Client, tables: &[String]) -> Result<i64, Error> {
    let row = client
        .query_typed_one(
            "SELECT coalesce(sum(pg_indexes_size(to_regclass(t))), 0)::int8 \
             FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
            &[(&tables, Type::TEXT_ARRAY)],
        )
        .await?;
    Ok(row.get(0))
}

/// The compaction task of a collector: every hour (the first time a stable, per-host
/// while after start, so a fleet started together does not ask at once) it compacts the
/// closed days not compacted yet, one after the other. It borrows one of the writer's
/// pool connections only while it works. A failure is logged once until it works again;
/// compaction is an optimisation, never a reason to stop.
pub(crate) async fn run(pool: Pool, host: String, password: Option<String>) {
    let first = crate::flush_offset(&host, EVERY).max(Duration::from_secs(60));
    let mut next = Instant::now() + first;
    let mut failing = false;
    loop {
        tokio::time::sleep_until(next).await;
        next = Instant::now() + EVERY;
        // The writer says why when the database is away.
        let Ok(client) = pool.get().await else {
            continue;
        };
        let outcome = tokio::time::timeout(EVERY, async {
            while let Some(c) = compact_next(&client, &host, SystemTime::now()).await? {
                tracing::info!(
                    day = c.day,
                    index_mib_before = c.index_bytes_before as f64 / 1_048_576.0,
                    index_mib_after = c.index_bytes_after as f64 / 1_048_576.0,
                    invalid_dropped = c.invalid_dropped,
                    took_s = c.took.as_secs_f64(),
                    "compacted a closed day's indexes"
                );
            }
            Ok::<_, Error>(())
        })
        .await;
        let error = match outcome {
            Ok(Ok(())) => {
                failing = false;
                continue;
            }
            Ok(Err(e)) => e.summary_masked(password.as_deref()),
            Err(_) => {
                // Not back to the pool: its statement may still be running there.
                drop(deadpool_postgres::Object::take(client));
                format!("no answer within {} s", EVERY.as_secs())
            }
        };
        if !failing {
            tracing::warn!(
                error,
                "compacting a closed day failed; trying again in an hour"
            );
            failing = true;
        }
    }
}
