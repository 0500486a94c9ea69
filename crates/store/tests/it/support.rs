use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::{Client, NoTls};

/// The test server's settings, from `cargo xtask test`.
pub(crate) fn server() -> (String, u16) {
    let host = testkit::postgres_setting("host").unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = testkit::postgres_setting("port").map_or(5432, |p| p.parse().unwrap());
    (host, port)
}

/// The pooler the store's own connections go through, when `METRICS_TEST_POOLER` names
/// one (`host=… port=…`): `cargo xtask test` runs these tests a second time through
/// PgBouncer in transaction mode. The tests' own connections stay direct.
fn pooler() -> Option<(String, u16)> {
    let conninfo = std::env::var("METRICS_TEST_POOLER").ok()?;
    let setting = |key: &str| {
        conninfo
            .split_whitespace()
            .find_map(|p| p.strip_prefix(&format!("{key}=")).map(str::to_owned))
    };
    let port = setting("port")?.parse().ok()?;
    Some((
        setting("host").unwrap_or_else(|| "127.0.0.1".to_owned()),
        port,
    ))
}

pub(crate) fn config(host: &str, port: u16, dbname: &str) -> store::Config {
    // The test server's databases are reached through the pooler, when there is one.
    let (host, port) = match pooler() {
        Some(p) if (host.to_owned(), port) == server() => p,
        _ => (host.to_owned(), port),
    };
    store::Config {
        host,
        port,
        user: "postgres".into(),
        password: None,
        dbname: dbname.to_owned(),
        tls: store::Tls::default(),
        metrics_host: "test-host".into(),
        retention: Duration::from_secs(7 * 86_400),
        // Short: a window is sent within a second of arriving (the per-host flush offset).
        persist_interval: Duration::from_secs(1),
        flush_deadline: Duration::from_secs(3),
    }
}

/// A connection of the test's own, straight to the server (past the pooler, if `host` and
/// `port` are the pooler's): the tests' queries use named prepared statements.
pub(crate) async fn connect(host: &str, port: u16, dbname: &str) -> Client {
    let (host, port) = match pooler() {
        Some(p) if (host.to_owned(), port) == p => server(),
        _ => (host.to_owned(), port),
    };
    let (client, connection) = tokio_postgres::connect(
        &format!("host={host} port={port} user=postgres dbname={dbname}"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
}

/// A new, empty database on `host:port` for one test.
pub(crate) async fn fresh_database(host: &str, port: u16, tag: &str) -> store::Config {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{tag}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let admin = connect(host, port, "postgres").await;
    admin
        .execute(&format!("DROP DATABASE IF EXISTS {name}"), &[])
        .await
        .unwrap();
    admin
        .execute(&format!("CREATE DATABASE {name}"), &[])
        .await
        .unwrap();
    config(host, port, &name)
}

pub(crate) async fn test_database(tag: &str) -> store::Config {
    let (host, port) = server();
    fresh_database(&host, port, tag).await
}

pub(crate) fn window(at: SystemTime, cpu: Option<f64>) -> sampler::Window {
    let steady = |v| Some(sampler::Stat::steady(v, 6));
    sampler::Window {
        start: sampler::window_start(at, std::time::Duration::from_secs(30)),
        at,
        cpu: cpu.map(|c| sampler::Stat::steady(c, 6)),
        ram: steady(50.0),
        gpu: None,
        temperature: steady(45.5),
        disk: Some(sampler::DiskRow {
            used_bytes: 1 << 30,
            free_bytes: 3 << 30,
            percent: 25.0,
        }),
    }
}

/// Waits until the writer's status satisfies `f`.
pub(crate) async fn wait_status(
    status: &mut tokio::sync::watch::Receiver<sampler::WriterStatus>,
    timeout: Duration,
    what: &str,
    f: impl Fn(&sampler::WriterStatus) -> bool,
) -> sampler::WriterStatus {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let s = status.borrow_and_update();
            if f(&s) {
                return s.clone();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {what}; status {:?}",
            status.borrow()
        );
        let _ = tokio::time::timeout(left, status.changed()).await;
    }
}

pub(crate) async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}
