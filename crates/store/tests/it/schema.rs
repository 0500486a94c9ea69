//! The schema as the seed's consumers query it.

use crate::support::{connect, count, test_database};

#[tokio::test]
async fn tables_and_columns_are_the_seeds_plus_host_with_a_unique_window_key() {
    let config = test_database("schema").await;
    let mut client = connect(&config.host, config.port, &config.dbname).await;
    store::migrate(&mut client).await.unwrap();

    let columns = |table: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns
                     WHERE table_name = $1 ORDER BY column_name",
                    &[&table],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>()
        }
    };
    for table in [
        "metrics_cpu",
        "metrics_ram",
        "metrics_gpu",
        "metrics_temperature",
    ] {
        let cols = columns(table).await;
        assert_eq!(
            cols,
            [
                ("host".to_owned(), "text".to_owned()),
                (
                    "timestamp".to_owned(),
                    "timestamp with time zone".to_owned()
                ),
                ("value".to_owned(), "double precision".to_owned()),
                ("value_max".to_owned(), "double precision".to_owned()),
                ("value_min".to_owned(), "double precision".to_owned()),
            ],
            "{table}"
        );
        let nullable: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_name = $1 AND is_nullable = 'YES' ORDER BY column_name",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            nullable,
            ["value_max", "value_min"],
            "{table}: rows from before the extremes stay valid"
        );
    }
    let disk: Vec<String> = columns("metrics_disk")
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(disk, ["free", "host", "percent", "timestamp", "used"]);

    // What the consumers run keeps working.
    client
        .query(
            "SELECT timestamp, value FROM metrics_cpu ORDER BY timestamp DESC LIMIT 10",
            &[],
        )
        .await
        .unwrap();
    client
        .query(
            "SELECT timestamp, used, free, percent FROM metrics_disk",
            &[],
        )
        .await
        .unwrap();

    for table in store::TABLES {
        let unique = count(
            &client,
            &format!(
                "SELECT count(*) FROM pg_indexes WHERE tablename = '{table}'
                 AND indexdef LIKE 'CREATE UNIQUE INDEX%(host, \"timestamp\")'"
            ),
        )
        .await;
        assert_eq!(unique, 1, "{table}: unique (host, timestamp)");
        let by_time = count(
            &client,
            &format!("SELECT count(*) FROM pg_indexes WHERE tablename = '{table}' AND indexdef LIKE '%(\"timestamp\")'"),
        )
        .await;
        assert_eq!(by_time, 1, "{table}: an index on timestamp");
    }
}

#[tokio::test]
async fn two_collectors_migrating_an_empty_database_at_once_both_succeed() {
    let config = test_database("race").await;
    let mut a = connect(&config.host, config.port, &config.dbname).await;
    let mut b = connect(&config.host, config.port, &config.dbname).await;
    let (ra, rb) = tokio::join!(store::migrate(&mut a), store::migrate(&mut b));
    ra.unwrap();
    rb.unwrap();
    let applied = count(&a, "SELECT count(*) FROM refinery_schema_history").await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files, "each migration applied once");
    // And again later (a restart) is a no-op.
    store::migrate(&mut a).await.unwrap();
}

/// The five tables as the original (Python) service created them, with its rules:
/// `timestamp` alone as the primary key, value checks, `created_at`, an index by time and
/// a view its consumers read.
const ORIGINAL_SCHEMA: &str = "
CREATE TABLE metrics_cpu (
    timestamp TIMESTAMPTZ PRIMARY KEY,
    value FLOAT NOT NULL CHECK (value >= 0 AND value <= 100),
    created_at TIMESTAMPTZ DEFAULT NOW());
CREATE INDEX idx_metrics_cpu_timestamp ON metrics_cpu (timestamp DESC);
CREATE TABLE metrics_ram (
    timestamp TIMESTAMPTZ PRIMARY KEY,
    value FLOAT NOT NULL CHECK (value >= 0 AND value <= 100),
    created_at TIMESTAMPTZ DEFAULT NOW());
CREATE TABLE metrics_gpu (
    timestamp TIMESTAMPTZ PRIMARY KEY,
    value FLOAT NOT NULL CHECK (value >= 0 AND value <= 100),
    created_at TIMESTAMPTZ DEFAULT NOW());
CREATE TABLE metrics_temperature (
    timestamp TIMESTAMPTZ PRIMARY KEY,
    value FLOAT NOT NULL CHECK (value >= 0 AND value <= 150),
    created_at TIMESTAMPTZ DEFAULT NOW());
CREATE TABLE metrics_disk (
    timestamp TIMESTAMPTZ PRIMARY KEY,
    used BIGINT NOT NULL CHECK (used >= 0),
    free BIGINT NOT NULL CHECK (free >= 0),
    percent FLOAT NOT NULL CHECK (percent >= 0 AND percent <= 100),
    created_at TIMESTAMPTZ DEFAULT NOW());
CREATE VIEW v_metrics_24h AS
    SELECT 'cpu' AS metric_type, timestamp, value FROM metrics_cpu
    WHERE timestamp > NOW() - INTERVAL '24 hours'
    UNION ALL
    SELECT 'temperature', timestamp, value FROM metrics_temperature
    WHERE timestamp > NOW() - INTERVAL '24 hours';
INSERT INTO metrics_cpu (timestamp, value) VALUES
    (now() - interval '9 days', 11), (now() - interval '8 days', 12), (now() - interval '1 day', 13);
INSERT INTO metrics_temperature (timestamp, value) VALUES
    (now() - interval '8 days', 50), (now() - interval '2 hours', 51);
INSERT INTO metrics_disk (timestamp, used, free, percent) VALUES
    (now() - interval '8 days', 1, 3, 25), (now() - interval '3 days', 2, 2, 50);
";

#[tokio::test]
async fn the_original_services_tables_keep_their_rows_and_age_them_out_like_ours() {
    use std::time::{Duration, SystemTime};

    let config = test_database("original").await;
    let db = connect(&config.host, config.port, &config.dbname).await;
    db.batch_execute(ORIGINAL_SCHEMA).await.unwrap();
    let instant = SystemTime::now() - Duration::from_secs(60);
    let (handle, mut status, task) = store::spawn(config.clone()).unwrap();
    crate::support::wait_status(
        &mut status,
        Duration::from_secs(20),
        "migrated and retention run",
        |s| s.state == sampler::WriterState::Connected,
    )
    .await;
    // Another collector wrote this instant: the original key on `timestamp` alone would
    // refuse ours, and the whole batch with it.
    db.execute(
        "INSERT INTO metrics_cpu (host, timestamp, value) VALUES ('other-host', $1, 99)",
        &[&instant],
    )
    .await
    .unwrap();
    let mut ours = crate::support::window(instant, Some(42.0));
    // A board outdoors in winter: the original's checks refused anything below 0 °C.
    ours.temperature = Some(sampler::Stat::steady(-5.5, 6));
    assert!(handle.send(ours));
    let s = crate::support::wait_status(
        &mut status,
        Duration::from_secs(20),
        "our window written",
        |s| s.written_windows == 1 && s.pending_windows == 0,
    )
    .await;
    assert_eq!(s.state, sampler::WriterState::Connected, "{s:?}");
    assert_eq!(s.duplicate_rows, 0, "{s:?}");

    // The original rows younger than the retention period are kept, with an empty host;
    // the older ones went, as this host's would.
    let kept = |sql: &'static str| {
        let db = &db;
        async move { count(db, sql).await }
    };
    assert_eq!(
        kept("SELECT count(*) FROM metrics_cpu WHERE host = '' AND value = 13").await,
        1
    );
    assert_eq!(
        kept("SELECT count(*) FROM metrics_cpu WHERE host = ''").await,
        1
    );
    assert_eq!(
        kept("SELECT count(*) FROM metrics_temperature WHERE host = ''").await,
        1
    );
    assert_eq!(
        kept("SELECT count(*) FROM metrics_disk WHERE host = ''").await,
        1
    );
    // Both hosts' rows of the same instant, ours with its reading below zero.
    assert_eq!(
        kept("SELECT count(*) FROM metrics_cpu WHERE host IN ('test-host', 'other-host')").await,
        2
    );
    assert_eq!(
        kept("SELECT count(*) FROM metrics_temperature WHERE host = 'test-host' AND value = -5.5")
            .await,
        1
    );
    // The extremes are kept for our window; the original's rows have none, and are valid.
    assert_eq!(
        kept("SELECT count(*) FROM metrics_temperature WHERE host = 'test-host' AND value_min = -5.5 AND value_max = -5.5")
            .await,
        1
    );
    assert_eq!(
        kept("SELECT count(*) FROM metrics_cpu WHERE host = '' AND value_min IS NULL AND value_max IS NULL")
            .await,
        1
    );
    // What the original's consumers read still works.
    assert!(kept("SELECT count(*) FROM v_metrics_24h").await >= 3);
    drop(handle);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// The schema as this service made it before day partitions (migrations V1 to V3).
fn unpartitioned_schema() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    [
        "V1__metrics_tables.sql",
        "V2__take_over_the_original_tables.sql",
        "V3__window_extremes.sql",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(format!("{dir}/{f}")).unwrap())
    .collect::<Vec<_>>()
    .join("\n")
}

/// Every row of a table, as one count and one checksum: equal before and after means none
/// lost, none twice, none changed.
async fn fingerprint(client: &tokio_postgres::Client, table: &str) -> (i64, i64) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(sum(hashtext(t::text)::int8), 0)::int8 FROM {table} t"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn existing_tables_become_day_partitions_with_every_row_once_while_a_fleet_starts() {
    let config = test_database("partition").await;
    let mut a = connect(&config.host, config.port, &config.dbname).await;
    a.batch_execute(&unpartitioned_schema()).await.unwrap();
    // Three days of two hosts, one row from 100 days ago and one a clock 10 days ahead
    // wrote; a view a consumer reads, and a role it reads as.
    a.batch_execute(
        "INSERT INTO metrics_cpu (host, timestamp, value, value_min, value_max)
           SELECT h, now() - n * interval '10 minutes', n % 100, 0, 100
           FROM generate_series(0, 431) n, unnest(ARRAY['a', 'b']) h;
         INSERT INTO metrics_cpu (host, timestamp, value) VALUES
           ('a', now() - interval '100 days', 1), ('a', now() + interval '10 days', 2);
         INSERT INTO metrics_ram (host, timestamp, value)
           SELECT 'a', now() - n * interval '1 hour', 50 FROM generate_series(0, 71) n;
         INSERT INTO metrics_disk (host, timestamp, used, free, percent)
           SELECT 'a', now() - n * interval '1 hour', n, 100 - n, n FROM generate_series(0, 71) n;
         CREATE VIEW cpu_by_host AS SELECT host, count(*) AS n FROM metrics_cpu GROUP BY host;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'metrics_dashboard') THEN
             CREATE ROLE metrics_dashboard;
           END IF;
         END $$;
         GRANT SELECT ON metrics_cpu TO metrics_dashboard;",
    )
    .await
    .unwrap();
    let mut before = Vec::new();
    for table in store::TABLES {
        before.push(fingerprint(&a, table).await);
    }

    // A fleet upgraded at once: three collectors migrate together.
    let mut b = connect(&config.host, config.port, &config.dbname).await;
    let mut c = connect(&config.host, config.port, &config.dbname).await;
    let (ra, rb, rc) = tokio::join!(
        store::migrate(&mut a),
        store::migrate(&mut b),
        store::migrate(&mut c)
    );
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();

    for (table, before) in store::TABLES.iter().zip(before) {
        assert_eq!(
            fingerprint(&a, table).await,
            before,
            "{table}: every row once"
        );
        let kind: i8 = a
            .query_one(
                "SELECT relkind::\"char\" FROM pg_class WHERE oid = $1::text::regclass",
                &[table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(kind as u8, b'p', "{table} is partitioned");
        let left = count(
            &a,
            &format!("SELECT count(*) FROM pg_class WHERE relname = '{table}_unpartitioned'"),
        )
        .await;
        assert_eq!(left, 0, "{table}: the old table is gone");
    }
    // The days with rows each have a partition of their own (the one 10 days ahead too);
    // the row of 100 days ago, older than any day made, is in the DEFAULT partition.
    let in_default = count(&a, "SELECT count(*) FROM metrics_cpu_default").await;
    assert_eq!(in_default, 1);
    let days = count(
        &a,
        "SELECT count(DISTINCT tableoid) FROM metrics_cpu WHERE timestamp > now() - interval '3 days' AND timestamp <= now()",
    )
    .await;
    assert!((3..=4).contains(&days), "{days} day partitions hold 3 days");
    // The consumer's view reads the new table, and its role still may.
    assert_eq!(
        count(&a, "SELECT sum(n)::int8 FROM cpu_by_host").await,
        2 * 432 + 2
    );
    let may: bool = a
        .query_one(
            "SELECT has_table_privilege('metrics_dashboard', 'metrics_cpu', 'SELECT')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(may, "the grant was carried over");
    let applied = count(&a, "SELECT count(*) FROM refinery_schema_history").await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files, "each migration recorded once");
}
