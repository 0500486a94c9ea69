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
            ],
            "{table}"
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
