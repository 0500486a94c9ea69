//! The writer: windows reach the tables once each, in order, through outages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{config, connect, count, fresh_database, test_database, wait_status, window};

fn at(seconds_ago: u64) -> SystemTime {
    // Whole milliseconds: timestamptz keeps microseconds, the comparison stays exact.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    UNIX_EPOCH + Duration::from_millis(now - seconds_ago * 1000)
}

#[tokio::test]
async fn windows_become_one_row_per_table_once_and_nulls_write_nothing() {
    let config = test_database("write").await;
    let (handle, mut status, task) = store::spawn(config.clone()).unwrap();
    let last = at(30);
    assert!(handle.send(window(at(90), Some(10.5))));
    assert!(handle.send(window(at(60), None)));
    assert!(handle.send(window(last, Some(30.0))));
    let s = wait_status(
        &mut status,
        Duration::from_secs(20),
        "3 windows written",
        |s| s.written_windows == 3,
    )
    .await;
    assert_eq!(s.state, sampler::WriterState::Connected);
    assert_eq!(
        (s.pending_windows, s.pending_rows, s.dropped_windows),
        (0, 0, 0)
    );

    let db = connect(&config.host, config.port, &config.dbname).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM metrics_cpu").await,
        2,
        "the null cpu wrote no row"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_ram").await, 3);
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_gpu").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM metrics_temperature").await,
        3
    );
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_disk WHERE used = 1073741824 AND free = 3221225472 AND percent = 25").await, 3);
    let values: Vec<f64> = db
        .query(
            "SELECT value FROM metrics_cpu WHERE host = 'test-host' ORDER BY timestamp",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, [10.5, 30.0]);

    // The same window again (a retry after a lost reply) changes nothing.
    assert!(handle.send(window(last, Some(30.0))));
    wait_status(
        &mut status,
        Duration::from_secs(20),
        "the repeat written",
        |s| s.written_windows == 4,
    )
    .await;
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_cpu").await, 2);
    drop(handle);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn retention_drops_whole_expired_days_and_old_rows_of_the_default_partition() {
    let config = test_database("retention").await;
    let mut db = connect(&config.host, config.port, &config.dbname).await;
    store::migrate(&mut db).await.unwrap();
    // A day 9 days ago with a partition of its own (as a collector running then made it),
    // 12,000 rows 8 days ago with none (they are in the DEFAULT partition), and rows of
    // 6 days ago that retention keeps.
    db.batch_execute(
        "SELECT metrics_make_days(ARRAY[(now() AT TIME ZONE 'UTC')::date - 9]);
         INSERT INTO metrics_cpu (host, timestamp, value)
           SELECT 'other-host', date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                  - interval '9 days' + n * interval '1 second', 0
           FROM generate_series(1, 3000) n;
         INSERT INTO metrics_cpu (host, timestamp, value)
           SELECT 'test-host', now() - interval '8 days' - n * interval '1 second', 1 FROM generate_series(1, 12000) n;
         INSERT INTO metrics_cpu (host, timestamp, value) VALUES ('test-host', now() - interval '6 days', 2);
         INSERT INTO metrics_cpu (host, timestamp, value) VALUES ('other-host', now() - interval '6 days', 3);
         INSERT INTO metrics_disk (host, timestamp, used, free, percent) VALUES ('test-host', now() - interval '9 days', 1, 1, 50);",
    )
    .await
    .unwrap();
    let nine_days_ago: String = db
        .query_one(
            "SELECT 'metrics_cpu_p' || to_char((now() AT TIME ZONE 'UTC')::date - 9, 'YYYYMMDD')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let partitions = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'metrics_cpu'::regclass";
    let before = count(&db, partitions).await;
    let (handle, mut status, _task) = store::spawn(config.clone()).unwrap();
    wait_status(
        &mut status,
        Duration::from_secs(20),
        "the first attempt",
        |s| s.state == sampler::WriterState::Connected,
    )
    .await;
    // Every host's expired rows went: the old day as a table, the DEFAULT partition's
    // 12,000 in batches of 5,000. The young rows stay.
    let values: Vec<(String, f64)> = db
        .query("SELECT host, value FROM metrics_cpu ORDER BY value", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        values,
        [
            ("test-host".to_owned(), 2.0),
            ("other-host".to_owned(), 3.0)
        ]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_disk").await, 0);
    let gone = db
        .query_opt(
            "SELECT 1 FROM pg_class WHERE relname = $1",
            &[&nine_days_ago],
        )
        .await
        .unwrap();
    assert!(gone.is_none(), "{nine_days_ago} was dropped");
    assert_eq!(count(&db, partitions).await, before - 1);
    // Yesterday to 4 days ahead exist, and the DEFAULT partition.
    let ahead = count(
        &db,
        "SELECT count(*) FROM generate_series(-1, 4) d
         WHERE to_regclass('metrics_cpu_p' || to_char((now() AT TIME ZONE 'UTC')::date + d, 'YYYYMMDD')) IS NOT NULL",
    )
    .await;
    assert_eq!(ahead, 6);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname = 'metrics_cpu_default'"
        )
        .await,
        1
    );
    drop(handle);
}

#[tokio::test]
async fn a_write_that_finds_no_partition_makes_it_and_keeps_every_window() {
    let config = test_database("nopartition").await;
    let db = connect(&config.host, config.port, &config.dbname).await;
    let (handle, mut status, _task) = store::spawn(config.clone()).unwrap();
    wait_status(
        &mut status,
        Duration::from_secs(20),
        "migrated, days made",
        |s| s.state == sampler::WriterState::Connected,
    )
    .await;
    // Then an operator drops the DEFAULT partitions, and the next windows are from a day
    // that has no partition (a backlog from 20 days ago): PostgreSQL refuses such rows
    // (23514).
    for table in store::TABLES {
        db.batch_execute(&format!("DROP TABLE {table}_default"))
            .await
            .unwrap();
    }
    let old = SystemTime::now() - Duration::from_secs(20 * 86_400);
    let refused = db
        .execute(
            "INSERT INTO metrics_cpu (host, timestamp, value) VALUES ('x', $1, 1)",
            &[&old],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some("23514"), "{refused}");
    for i in 0..3 {
        assert!(handle.send(window(old + Duration::from_secs(i), Some(i as f64))));
    }
    let s = wait_status(
        &mut status,
        Duration::from_secs(20),
        "the three windows written",
        |s| s.written_windows == 3 && s.pending_windows == 0,
    )
    .await;
    assert_eq!((s.dropped_windows, s.duplicate_rows), (0, 0), "{s:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_cpu").await, 3);
    // In a partition of their day, which was made, with the DEFAULT partitions again.
    let day: String = db
        .query_one(
            "SELECT DISTINCT tableoid::regclass::text FROM metrics_cpu",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(day.starts_with("metrics_cpu_p"), "{day}");
    for table in store::TABLES {
        let made = db
            .query_opt(
                "SELECT 1 FROM pg_class WHERE relname = $1",
                &[&format!("{table}_default")],
            )
            .await
            .unwrap();
        assert!(made.is_some(), "{table}_default made again");
    }
    drop(handle);
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_windows_and_counts_them() {
    // Nothing listens on this port: every attempt fails fast.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = config("127.0.0.1", free, "nowhere");
    config.retention = Duration::from_secs(16); // capacity: 17 windows of 1 s
    config.password = Some("s3cret-do-not-print".into());
    assert_eq!(config.queue_capacity(), 17);
    let (handle, mut status, _task) = store::spawn(config.clone()).unwrap();
    for i in 0..20 {
        assert!(handle.send(window(at(1000 - i), Some(1.0))));
    }
    let s = wait_status(
        &mut status,
        Duration::from_secs(20),
        "20 windows queued and the database found unreachable",
        |s| {
            s.pending_windows + s.dropped_windows == 20
                && s.state == sampler::WriterState::Unreachable
        },
    )
    .await;
    assert_eq!((s.pending_windows, s.dropped_windows), (17, 3));
    assert_eq!(s.pending_rows, 17 * 4);
    assert_eq!(s.state, sampler::WriterState::Unreachable);
    let error = s.last_error.unwrap();
    assert!(!error.contains("s3cret"), "{error}");
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_database_down_for_ten_seconds_loses_and_duplicates_nothing() {
    let mut cluster = devpg::Cluster::start("outage").unwrap();
    let config = fresh_database("127.0.0.1", cluster.port(), "outage").await;
    let (handle, mut status, task) = store::spawn(config.clone()).unwrap();
    let mut sent = 0u64;
    let mut send = |n: u64| {
        for _ in 0..n {
            sent += 1;
            assert!(handle.send(window(
                UNIX_EPOCH + Duration::from_secs(1_700_000_000 + sent),
                Some(sent as f64)
            )));
        }
    };
    send(5);
    wait_status(&mut status, Duration::from_secs(20), "first windows", |s| {
        s.written_windows == 5
    })
    .await;

    cluster.stop().unwrap();
    let down = std::time::Instant::now();
    while down.elapsed() < Duration::from_secs(10) {
        send(1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = status.borrow().clone();
    assert_eq!(s.state, sampler::WriterState::Unreachable, "{s:?}");
    assert!(s.pending_windows > 0, "{s:?}");
    cluster.restart().unwrap();
    send(3);
    let total = sent;
    let s = wait_status(
        &mut status,
        Duration::from_secs(60),
        "the backlog written",
        |s| {
            s.pending_windows == 0
                && s.state == sampler::WriterState::Connected
                && s.written_windows >= total
        },
    )
    .await;
    assert_eq!(s.dropped_windows, 0);

    let db = connect("127.0.0.1", cluster.port(), &config.dbname).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM metrics_cpu").await as u64,
        total,
        "every window once"
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT timestamp) FROM metrics_cpu").await as u64,
        total
    );
    // In order: value i was sent at second i.
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_cpu WHERE value <> extract(epoch FROM timestamp) - 1700000000").await, 0);
    drop(handle);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

/// A TCP proxy to the server that, once armed, loses the reply to one batch: it passes
/// the batch INSERT's execution on to the server, keeps the server's answer from the
/// client until the server says it is done (ReadyForQuery, after the statement's own
/// commit), and then cuts both sides. The rows are in the tables; the client never hears.
async fn reply_losing_proxy(server_port: u16, armed: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let armed = armed.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                // Set once the batch's execution has gone to the server.
                let swallowing = AtomicBool::new(false);
                let upstream = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    let marker = b"SELECT metrics_write(";
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let chunk = &buf[..n];
                        // The batch's statement: from here on the server's replies are
                        // swallowed, up to the one that says its transaction is over.
                        if chunk.windows(marker.len()).any(|w| w == marker)
                            && armed.swap(false, Ordering::SeqCst)
                        {
                            swallowing.store(true, Ordering::SeqCst);
                        }
                        if sw.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                };
                let downstream = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = sr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let chunk = &buf[..n];
                        if swallowing.load(Ordering::SeqCst) {
                            // ReadyForQuery, idle: the statement has committed.
                            if chunk.windows(6).any(|w| w == b"Z\0\0\0\x05I") {
                                return;
                            }
                            continue;
                        }
                        if cw.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    () = upstream => {}
                    () = downstream => {}
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_reply_lost_after_the_commit_is_retried_and_the_unique_key_keeps_rows_once() {
    let (host, port) = crate::support::server();
    let real = fresh_database(&host, port, "lostreply").await;
    let armed = Arc::new(AtomicBool::new(true));
    let proxy = reply_losing_proxy(port, armed.clone()).await;
    let config = store::Config {
        host: "127.0.0.1".into(),
        port: proxy,
        ..real.clone()
    };
    let (handle, mut status, _task) = store::spawn(config).unwrap();
    for i in 0..50u64 {
        assert!(handle.send(window(
            UNIX_EPOCH + Duration::from_secs(1_800_000_000 + i),
            Some(i as f64)
        )));
    }
    let s = wait_status(
        &mut status,
        Duration::from_secs(60),
        "all 50 written after the lost reply",
        |s| s.pending_windows == 0 && s.written_windows >= 50,
    )
    .await;
    assert!(!armed.load(Ordering::SeqCst), "the proxy did lose a reply");
    assert!(
        s.duplicate_rows > 0,
        "the retry found the lost attempt's rows under the unique key: {s:?}"
    );
    assert_eq!(s.dropped_windows, 0);
    let db = connect(&host, port, &real.dbname).await;
    assert_eq!(count(&db, "SELECT count(*) FROM metrics_cpu").await, 50);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT timestamp) FROM metrics_cpu").await,
        50
    );
    drop(handle);
}
