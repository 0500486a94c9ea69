//! Compaction of closed days: one collector rebuilds a day's indexes once, rows and keys
//! untouched, and a rebuild cut short is cleaned up by the next.

use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::{Client, NoTls};

use crate::support::{connect, count, test_database};

/// A connection as a collector's: through the pooler when the tests run behind one.
async fn collector(config: &store::Config) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname={}",
            config.host, config.port, config.dbname
        ),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
}

/// `days_ago`'s partitions (UTC) filled as a fleet fills them: every host's row of one
/// window after the other (30 s windows, `hosts` hosts), so each unique index takes its
/// inserts at one place per host. Returns the day as `YYYY-MM-DD`.
async fn fleet_day(db: &Client, days_ago: i32, hosts: i32, windows: i32) -> String {
    let day: String = db
        .query_one(
            "SELECT ((now() AT TIME ZONE 'UTC')::date - $1::int4)::text",
            &[&days_ago],
        )
        .await
        .unwrap()
        .get(0);
    db.batch_execute(&format!(
        "SELECT metrics_make_days(ARRAY['{day}'::date]);
         CREATE TEMP TABLE w AS
           SELECT 'host-' || lpad(h::text, 5, '0') AS host,
                  '{day}'::date::timestamp AT TIME ZONE 'UTC' + n * interval '30 seconds' AS at,
                  (h * 7 + n) % 100 AS v
           FROM generate_series(1, {windows}) n, generate_series(1, {hosts}) h
           ORDER BY n, h;
         INSERT INTO metrics_cpu (host, timestamp, value, value_min, value_max) SELECT host, at, v, v, v FROM w;
         INSERT INTO metrics_ram (host, timestamp, value, value_min, value_max) SELECT host, at, v, v, v FROM w;
         INSERT INTO metrics_gpu (host, timestamp, value, value_min, value_max) SELECT host, at, v, v, v FROM w;
         INSERT INTO metrics_temperature (host, timestamp, value, value_min, value_max) SELECT host, at, v, v, v FROM w;
         INSERT INTO metrics_disk (host, timestamp, used, free, percent) SELECT host, at, 1, 2, v FROM w;
         DROP TABLE w;"
    ))
    .await
    .unwrap();
    day
}

/// Rows and a checksum of every table's values: what compaction must not change.
async fn fingerprint(db: &Client) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for t in store::TABLES {
        let value = if t == "metrics_disk" {
            "percent"
        } else {
            "value"
        };
        let row = db
            .query_one(
                &format!("SELECT count(*), coalesce(sum({value}), 0)::float8 FROM {t}"),
                &[],
            )
            .await
            .unwrap();
        out.push((row.get(0), row.get(1)));
    }
    out
}

/// 03:00 UTC today: yesterday is closed, today is not, whatever the hour the test runs.
async fn early_today(db: &Client) -> SystemTime {
    let secs: f64 = db
        .query_one(
            "SELECT extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC') + interval '3 hours')::float8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
}

async fn invalid_indexes(db: &Client) -> Vec<String> {
    db.query(
        "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE NOT x.indisvalid ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn a_closed_day_is_compacted_once_by_one_collector_of_the_fleet_and_packs_its_indexes() {
    let config = test_database("compact").await;
    let mut db = connect(&config.host, config.port, &config.dbname).await;
    store::migrate(&mut db).await.unwrap();
    let closed = fleet_day(&db, 1, 400, 120).await;
    // Today is still being written: never compacted.
    let today = fleet_day(&db, 0, 10, 2).await;
    let rows_before = fingerprint(&db).await;

    // Two collectors ask at once: one rebuilds the day, the other finds it taken.
    let (a, b) = (collector(&config).await, collector(&config).await);
    let now = early_today(&db).await;
    let (ra, rb) = tokio::join!(
        store::compact_next(&a, "collector-a", now),
        store::compact_next(&b, "collector-b", now)
    );
    let mut done: Vec<store::Compacted> =
        [ra.unwrap(), rb.unwrap()].into_iter().flatten().collect();
    assert_eq!(done.len(), 1, "exactly one collector compacted: {done:?}");
    let c = done.remove(0);
    assert_eq!(c.day, closed);
    // A fleet's inserts leave its unique indexes' pages split half full; rebuilt they are
    // packed (about 70 % of the size for this day, on PostgreSQL 15).
    assert!(
        (c.index_bytes_after as f64) < 0.85 * c.index_bytes_before as f64,
        "{c:?}"
    );
    assert_eq!(c.invalid_dropped, 0);

    // Nothing else to do, for either: today is open, the closed day is done.
    assert_eq!(
        store::compact_next(&a, "collector-a", now).await.unwrap(),
        None
    );
    assert_eq!(
        store::compact_next(&b, "collector-b", now).await.unwrap(),
        None
    );
    let recorded: (String, Option<i64>) = db
        .query_one(
            "SELECT claimed_by, index_bytes_after FROM metrics_compaction
             WHERE day = $1::text::date AND done_at IS NOT NULL",
            &[&closed],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(recorded.0.starts_with("collector-"), "{recorded:?}");
    assert_eq!(recorded.1, Some(c.index_bytes_after));
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM metrics_compaction WHERE day = '{today}'")
        )
        .await,
        0
    );

    // Every row is still there once, and the rebuilt key still keeps a window once.
    assert_eq!(fingerprint(&db).await, rows_before);
    assert!(invalid_indexes(&db).await.is_empty());
    let again = db
        .execute(
            &format!(
                "INSERT INTO metrics_cpu (host, timestamp, value) VALUES
                 ('host-00001', '{closed}'::date::timestamp AT TIME ZONE 'UTC' + interval '30 seconds', 1)
                 ON CONFLICT (host, timestamp) DO NOTHING"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(again, 0, "the unique key of the rebuilt day still holds");

    // Once retention has dropped the day, its record goes with it.
    db.batch_execute(&format!(
        "SELECT metrics_drop_days_before('{closed}'::date::timestamp AT TIME ZONE 'UTC' + interval '1 day')"
    ))
    .await
    .unwrap();
    assert_eq!(
        store::compact_next(&a, "collector-a", now).await.unwrap(),
        None
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM metrics_compaction").await,
        0
    );
}

#[tokio::test]
async fn a_rebuild_cut_short_leaves_an_invalid_index_that_the_next_compaction_drops() {
    let config = test_database("compact_cut").await;
    let mut db = connect(&config.host, config.port, &config.dbname).await;
    store::migrate(&mut db).await.unwrap();
    let closed = fleet_day(&db, 1, 50, 20).await;
    let now = early_today(&db).await;
    let partition = format!("metrics_cpu_p{}", closed.replace('-', ""));
    let rows_before = fingerprint(&db).await;

    // A late write to that day, its transaction still open: the rebuild makes its new
    // index, then waits for this writer to finish before it fills the index.
    let late = connect(&config.host, config.port, &config.dbname).await;
    late.batch_execute(&format!(
        "BEGIN; INSERT INTO metrics_cpu (host, timestamp, value) VALUES
         ('late-host', '{closed}'::date::timestamp AT TIME ZONE 'UTC' + interval '1 hour', 5)"
    ))
    .await
    .unwrap();
    let a = collector(&config).await;
    let rebuild = tokio::spawn(async move { store::compact_next(&a, "collector-a", now).await });
    // The collector dies there (as a crash or an operator's pg_terminate_backend would
    // have it): the half-made index stays behind, invalid.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        let waiting = db
            .query_opt(
                "SELECT a.pid FROM pg_stat_activity a
                 WHERE a.query LIKE 'REINDEX TABLE CONCURRENTLY%' AND a.wait_event_type = 'Lock'
                   AND EXISTS (SELECT 1 FROM pg_class WHERE relname LIKE '%\\_ccnew%')",
                &[],
            )
            .await
            .unwrap();
        if let Some(r) = waiting {
            break r.get(0);
        }
        assert!(
            Instant::now() < deadline,
            "the rebuild never waited on the late writer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Meanwhile another collector of the fleet does not start a second rebuild.
    let b = collector(&config).await;
    assert_eq!(
        store::compact_next(&b, "collector-b", now).await.unwrap(),
        None
    );
    db.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let cut = rebuild.await.unwrap();
    assert!(cut.is_err(), "{cut:?}");
    late.batch_execute("ROLLBACK").await.unwrap();
    let left = invalid_indexes(&db).await;
    assert!(
        left.iter().any(|i| i.contains("_ccnew")),
        "an invalid index was left: {left:?}"
    );

    // The same collector, restarted, takes its claim again: the leftover goes first.
    let a = collector(&config).await;
    let c = store::compact_next(&a, "collector-a", now)
        .await
        .unwrap()
        .expect("the day is compacted after all");
    assert_eq!(c.day, closed);
    assert!(c.invalid_dropped >= 1, "{c:?}");
    let left = invalid_indexes(&db).await;
    assert!(left.is_empty(), "{left:?} {c:?}");
    // The partition has exactly its two indexes again, by their own names.
    let indexes: Vec<String> = db
        .query(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = $1::text::regclass ORDER BY 1",
            &[&partition],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert!(indexes.iter().all(|i| !i.contains("_cc")), "{indexes:?}");
    assert_eq!(fingerprint(&db).await, rows_before);
}
