//! Flushing a 7-day backlog (20,160 windows of 30 s × 5 tables) into an empty database:
//! the writer's batched statement against one INSERT per row, same server, same run.
//!
//! `cargo bench -p store --bench backlog` starts a throwaway PostgreSQL (devpg). Under
//! `cargo test` (no `--bench` argument) it runs a small smoke version of the same steps.

// A measuring program: it prints its figures, and a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

fn windows(n: u64) -> Vec<sampler::Window> {
    (0..n)
        .map(|i| sampler::Window {
            start: UNIX_EPOCH + Duration::from_secs(1_760_000_000 + i * 30 - 30),
            at: UNIX_EPOCH + Duration::from_secs(1_760_000_000 + i * 30),
            cpu: Some(sampler::Stat::steady((i % 100) as f64, 6)),
            ram: Some(sampler::Stat::steady(50.0, 6)),
            gpu: Some(sampler::Stat::steady(10.0, 6)),
            temperature: Some(sampler::Stat::steady(45.0, 6)),
            disk: Some(sampler::DiskRow {
                used_bytes: 1 << 30,
                free_bytes: 1 << 31,
                percent: 33.3,
            }),
        })
        .collect()
}

async fn database(cluster: &devpg::Cluster, name: &str) -> (store::Config, tokio_postgres::Client) {
    let info = cluster.conninfo();
    let (admin, conn) = tokio_postgres::connect(&format!("{info} dbname=postgres"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .execute(&format!("CREATE DATABASE {name}"), &[])
        .await
        .unwrap();
    let (mut client, conn) = tokio_postgres::connect(&format!("{info} dbname={name}"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    store::migrate(&mut client).await.unwrap();
    let config = store::Config {
        host: "127.0.0.1".into(),
        port: cluster.port(),
        user: "postgres".into(),
        password: None,
        dbname: name.into(),
        tls: store::Tls::default(),
        metrics_host: "bench".into(),
        retention: Duration::from_secs(7 * 86_400),
        persist_interval: Duration::from_secs(30),
        flush_deadline: Duration::from_secs(30),
    };
    (config, client)
}

async fn batched(config: store::Config, backlog: &[sampler::Window]) -> Duration {
    let (handle, mut status, task) = store::spawn(config).unwrap();
    // Let the writer connect and migrate first: we time the flush, not the start-up.
    while status.borrow().state != sampler::WriterState::Connected {
        status.changed().await.unwrap();
    }
    let started = Instant::now();
    for w in backlog {
        // The inbox holds 256: wait for room like a burst after an outage would.
        while !handle.send(w.clone()) {
            tokio::task::yield_now().await;
        }
    }
    let n = backlog.len() as u64;
    while status.borrow().written_windows < n {
        status.changed().await.unwrap();
    }
    let took = started.elapsed();
    drop(handle);
    task.await.unwrap();
    took
}

async fn row_by_row(client: &tokio_postgres::Client, backlog: &[sampler::Window]) -> Duration {
    let started = Instant::now();
    let value =
        |t: &str| format!("INSERT INTO {t} (host, timestamp, value) VALUES ('bench', $1, $2)");
    let (cpu, ram, gpu, temp) = (
        client.prepare(&value("metrics_cpu")).await.unwrap(),
        client.prepare(&value("metrics_ram")).await.unwrap(),
        client.prepare(&value("metrics_gpu")).await.unwrap(),
        client.prepare(&value("metrics_temperature")).await.unwrap(),
    );
    let disk = client
        .prepare("INSERT INTO metrics_disk (host, timestamp, used, free, percent) VALUES ('bench', $1, $2, $3, $4)")
        .await
        .unwrap();
    for w in backlog {
        let at: &SystemTime = &w.at;
        client
            .execute(&cpu, &[at, &w.cpu.map(|s| s.value())])
            .await
            .unwrap();
        client
            .execute(&ram, &[at, &w.ram.map(|s| s.value())])
            .await
            .unwrap();
        client
            .execute(&gpu, &[at, &w.gpu.map(|s| s.value())])
            .await
            .unwrap();
        client
            .execute(&temp, &[at, &w.temperature.map(|s| s.value())])
            .await
            .unwrap();
        let d = w.disk.unwrap();
        client
            .execute(
                &disk,
                &[
                    at,
                    &(d.used_bytes as i64),
                    &(d.free_bytes as i64),
                    &d.percent,
                ],
            )
            .await
            .unwrap();
    }
    started.elapsed()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 20_160 } else { 200 };
    let cluster = devpg::Cluster::start("bench").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backlog = windows(n);
        let (config, client) = database(&cluster, "batched").await;
        let ours = batched(config, &backlog).await;
        let rows: i64 = client.query_one("SELECT count(*) FROM metrics_cpu", &[]).await.unwrap().get(0);
        assert_eq!(rows as u64, n);
        let (_, naive_client) = database(&cluster, "naive").await;
        let naive = row_by_row(&naive_client, &backlog).await;
        // The first window reached a connected writer with an empty queue, so the writer
        // waited its host's flush offset before sending (what spreads a fleet's commits);
        // the flush itself is the rest.
        let offset = store::flush_offset("bench", Duration::from_secs(30));
        let flush = ours.saturating_sub(offset);
        println!(
            "backlog of {n} windows x 5 tables: batched writer {:.3} s ({:.3} s of it the flush offset, {:.3} s writing), one INSERT per row {:.3} s ({:.1}x the writing)",
            ours.as_secs_f64(),
            offset.as_secs_f64(),
            flush.as_secs_f64(),
            naive.as_secs_f64(),
            naive.as_secs_f64() / flush.as_secs_f64()
        );
    });
}
