//! Persistence seen from outside: rows arriving, the last window flushed on SIGTERM, a lost
//! database degrading the service without stopping it, and the password kept secret.

use std::time::Duration;

use rustix::process::Signal;
use tokio_postgres::Client;

use crate::harness::{Service, database, get, wait_for};

fn rows(rt: &tokio::runtime::Runtime, client: &Client, sql: &str) -> i64 {
    rt.block_on(client.query_one(sql, &[]))
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

#[test]
fn windows_reach_the_tables_and_sigterm_flushes_the_open_one() {
    let (db, client, rt) = database("flush");
    let mut env: Vec<(&str, &str)> = db.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_INTERVAL_PERSIST", "0.6"),
        ("METRICS_HOST", "flush-host"),
    ]);
    let mut svc = Service::start(&env).ready();
    wait_for(Duration::from_secs(20), "three windows of cpu rows", || {
        (rows(
            &rt,
            &client,
            "SELECT count(*) FROM metrics_cpu WHERE host = 'flush-host'",
        ) >= 3)
            .then_some(())
    });
    let h = svc.json("/health");
    assert_eq!(h["database"]["state"], "connected", "{h}");
    assert_eq!(
        rows(&rt, &client, "SELECT count(*) FROM metrics_gpu"),
        0,
        "no GPU: no gpu rows"
    );
    assert!(
        rows(
            &rt,
            &client,
            "SELECT count(*) FROM metrics_disk WHERE used > 0 AND free > 0"
        ) >= 3
    );
    drop(svc);

    // A long window, stopped half-way: its samples must not be lost.
    let mut env: Vec<(&str, &str)> = db.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_INTERVAL_PERSIST", "300"),
        ("METRICS_HOST", "sigterm-host"),
    ]);
    svc = Service::start(&env).ready();
    let seq = svc.json("/health")["sample_seq"].as_u64().unwrap();
    wait_for(Duration::from_secs(10), "a few samples", || {
        (svc.json("/health")["sample_seq"].as_u64().unwrap() >= seq + 3).then_some(())
    });
    assert_eq!(
        rows(
            &rt,
            &client,
            "SELECT count(*) FROM metrics_cpu WHERE host = 'sigterm-host'"
        ),
        0
    );
    svc.signal(Signal::TERM);
    let status = svc.wait_exit(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0), "{}", svc.log());
    assert_eq!(
        rows(
            &rt,
            &client,
            "SELECT count(*) FROM metrics_cpu WHERE host = 'sigterm-host'"
        ),
        1,
        "{}",
        svc.log()
    );
    assert_eq!(
        rows(
            &rt,
            &client,
            "SELECT count(*) FROM metrics_ram WHERE host = 'sigterm-host'"
        ),
        1
    );
}

#[test]
fn a_lost_database_degrades_health_keeps_serving_and_never_shows_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let secret = "hunter2-do-not-leak";
    let mut svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_INTERVAL_PERSIST", "0.4"),
        ("POSTGRES_HOST", "127.0.0.1"),
        ("POSTGRES_PORT", &closed),
        ("POSTGRES_PASSWORD", secret),
        ("RUST_LOG", "debug"),
    ])
    .ready();
    let h = wait_for(
        Duration::from_secs(20),
        "database unreachable with windows waiting",
        || {
            let r = get(svc.addr, "/health");
            let h = r.json();
            (h["database"]["state"] == "unreachable"
                && h["database"]["pending_rows"].as_u64() > Some(0))
            .then_some(r)
        },
    );
    assert_eq!(
        h.status, 200,
        "a lost database degrades the service, it does not stop it"
    );
    let body = h.text();
    assert!(body.contains("\"degraded\""), "{body}");
    assert!(!body.contains(secret), "{body}");
    assert_eq!(get(svc.addr, "/metrics").status, 200);
    // Shutdown with the database still gone is bounded too.
    svc.signal(Signal::TERM);
    let status = svc.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let log = svc.log();
    assert!(log.contains("database unreachable"), "{log}");
    assert!(!log.contains(secret), "the password leaked into the log");
}
