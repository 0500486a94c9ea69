//! `cargo xtask bench fleet`: one PostgreSQL 15 serving a simulated fleet of collectors,
//! with real durability (`fsync=on`, `synchronous_commit=on`, `full_page_writes=on`).
//!
//! Builds this xtask in release and runs itself again (`--in-release`): the generator
//! shares two vCPUs with the server, so it must not be a debug build. Then: a throwaway
//! cluster (`devpg`, with the settings in [`SERVER_SETTINGS`]) and a PgBouncer 1.18 in
//! transaction mode in front of it (`max_client_conn` above N, a pool of `--pool-size`
//! server connections), both with their open-files limit raised. Each mode gets its own
//! database and the same load, one mode after the other, in the same run:
//! - `store`: N real writers, `store::spawn(config)` each with its own `metrics_host`, queue
//!   and connection, on the partitioned schema the store migrates to. A driver hands every
//!   collector its window on each grid line (what a fleet's engines do: windows close on
//!   the epoch grid), and the store spreads the writes by its per-host flush offset.
//! - `per-row`: the same rows, one `INSERT` statement per row (five per window), in one
//!   transaction per window (BEGIN, five INSERTs, COMMIT: seven round trips), written by
//!   our own tasks (one connection each) on the same partitioned schema, at the same
//!   per-host offset.
//! - `unpartitioned`: the schema before day partitions (migrations V1–V3, applied from the
//!   files, plus V5's `metrics_write`), written with the store's own statement
//!   ([`store::WRITE`], one call per window, its own transaction) by our own tasks: the
//!   store itself would migrate that database to V4.
//!
//! Window commit latency: for `store`, the time from the writer's flush moment (the
//! window handed over plus the host's flush offset, [`store::flush_offset`]) to the moment its
//! `WriterStatus.written_windows` counts it (published after COMMIT returns); for our own
//! writers, from the flush moment to COMMIT's reply. "send → durable" adds the offset.
//! Resources over the measured window: CPU of the postgres processes, pgbouncer and this
//! generator (`/proc/PID/stat`), the machine's busy share (`/proc/stat`), `pg_stat_wal`,
//! `pg_stat_bgwriter`, `pg_stat_database.xact_commit`, the data disk's `/proc/diskstats`
//! (writes, flushes, busy time) and PgBouncer's `SHOW STATS` (time clients waited for a
//! server connection).
//!
//! Afterwards: heap + index bytes per row of each schema's tables, and retention's cost:
//! a past day of `--day-hosts` hosts at 30 s windows made with `INSERT … SELECT
//! generate_series` in all five tables, then `metrics_drop_days_before` (DETACH + DROP of
//! that day's five partitions) timed. `--ceiling` then steps the store's load up (shorter
//! windows, same collectors) until p99 or throughput fails.
//!
//! Everything started is stopped by a guard's `Drop`; every wait is bounded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{clock_ticks_per_second, cpu_ticks, machine, print_report, stat_fields, target_dir};
use crate::util::{self, cargo, root};

const USAGE: &str = "usage: cargo xtask bench fleet [--collectors N] [--interval S] [--minutes M] [--compare-minutes M]
       [--mode store,per-row,unpartitioned] [--via pgbouncer|direct] [--pool-size N]
       [--day-hosts N] [--ceiling] [--step-secs N] [--set NAME=VALUE]...
  --collectors N  simulated collectors (default 10000; direct: at most 90)
  --interval S    their window, seconds (default 3: 10,000 at 3 s is 10x the fleet's 30 s load)
  --minutes M     measured minutes per mode (default 1; the issue's run is --minutes 10)
  --compare-minutes M  measured minutes of per-row and unpartitioned (default: --minutes)
  --mode LIST     which writers, in order (default store,per-row,unpartitioned)
  --via WAY       pgbouncer (transaction mode, the deployment; default) or direct
  --pool-size N   PgBouncer's server connections (default 50)
  --day-hosts N   hosts in the generated day that retention drops (default 1000; 0 skips)
  --ceiling       then step the store's load up (shorter windows) until p99 > 1 s or
                  throughput falls behind
  --step-secs N   measured seconds of each ceiling step (default 60)
  --set N=V       a server setting instead of, or beside, the bench's own";

/// Server settings of the bench's cluster, after devpg's (which turn durability off).
const SERVER_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
    ("max_connections", "100"),
    ("shared_buffers", "1GB"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "15min"),
    ("track_wal_io_timing", "on"),
    ("track_io_timing", "on"),
    // Group commit: a committing backend waits 0.7 ms (about half this disk's 1.3–1.9 ms
    // WAL fsync) for others to join its flush when 5 or more are in a transaction. At a
    // fleet's thousands of small commits a second it is 3,068 against 2,802 tx/s here.
    ("commit_delay", "700"),
];

/// The fleet of the issue: 10,000 hosts, 30 s windows, 5 rows a window.
const FLEET_HOSTS: f64 = 10_000.0;
const FLEET_INTERVAL_S: f64 = 30.0;
const ROWS_PER_WINDOW: f64 = 5.0;
/// The goal: p99 window commit under 1 s.
const GOAL_P99_MS: f64 = 1000.0;
/// A step keeps up when it commits at least this share of what was offered.
const KEEPS_UP: f64 = 0.97;
/// Windows before the measured ones.
// 30 s: a fresh database's server connections plan, compile `metrics_write` and fill
// their caches in the first windows (at 4x: p99 1.26 s after 10 s of warm-up, 129 ms
// after 30 s).
const WARM_UP: Duration = Duration::from_secs(30);
/// How long a fleet may take to connect and migrate.
const START_WITHIN: Duration = Duration::from_secs(900);
/// Own writers connecting at once.
const CONNECTING_AT_ONCE: usize = 64;
/// Ceiling steps, as multiples of the fleet's load: from below the 10x goal up, until one
/// fails.
const CEILING_STEPS: &[f64] = &[4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 15.0];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Store,
    PerRow,
    Unpartitioned,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::PerRow => "per-row",
            Self::Unpartitioned => "unpartitioned",
        }
    }
}

#[derive(Clone, Debug)]
struct Options {
    collectors: usize,
    interval_s: f64,
    minutes: f64,
    /// Measured minutes of the comparison modes (per-row, unpartitioned).
    compare_minutes: Option<f64>,
    modes: Vec<Mode>,
    pgbouncer: bool,
    pool_size: u32,
    day_hosts: u32,
    ceiling: bool,
    step_secs: u64,
    in_release: bool,
    out: Option<PathBuf>,
    /// [`SERVER_SETTINGS`] with `--set` applied.
    settings: Vec<(String, String)>,
}

fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut o = Options {
        collectors: 10_000,
        interval_s: 3.0,
        minutes: 1.0,
        compare_minutes: None,
        modes: vec![Mode::Store, Mode::PerRow, Mode::Unpartitioned],
        pgbouncer: true,
        pool_size: 50,
        day_hosts: 1000,
        ceiling: false,
        step_secs: 60,
        in_release: false,
        settings: SERVER_SETTINGS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        out: None,
    };
    let go_on = super::each_flag(args, USAGE, |flag, value| {
        let v = if matches!(flag, "--ceiling" | "--in-release") {
            String::new()
        } else {
            value()?
        };
        let number = |v: &str| -> anyhow::Result<f64> {
            match v.parse::<f64>() {
                Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
                _ => bail!("{flag} {v:?}: expected a number > 0"),
            }
        };
        match flag {
            "--collectors" => o.collectors = number(&v)? as usize,
            "--interval" => o.interval_s = number(&v)?,
            "--minutes" => o.minutes = number(&v)?,
            "--compare-minutes" => o.compare_minutes = Some(number(&v)?),
            "--pool-size" => o.pool_size = number(&v)? as u32,
            "--day-hosts" => {
                o.day_hosts = v
                    .parse()
                    .with_context(|| format!("--day-hosts {v:?}: expected a count"))?;
            }
            "--step-secs" => o.step_secs = number(&v)? as u64,
            "--ceiling" => o.ceiling = true,
            "--in-release" => o.in_release = true,
            "--set" => {
                let (name, value) = v
                    .split_once('=')
                    .with_context(|| format!("--set {v:?}: expected name=value"))?;
                o.settings.retain(|(k, _)| k != name);
                o.settings.push((name.to_owned(), value.to_owned()));
            }
            "--out" => o.out = Some(PathBuf::from(v)),
            "--via" => match v.as_str() {
                "pgbouncer" => o.pgbouncer = true,
                "direct" => o.pgbouncer = false,
                _ => bail!("--via {v:?}: expected pgbouncer or direct"),
            },
            "--mode" => {
                o.modes = v
                    .split(',')
                    .map(|m| match m.trim() {
                        "store" => Ok(Mode::Store),
                        "per-row" => Ok(Mode::PerRow),
                        "unpartitioned" => Ok(Mode::Unpartitioned),
                        _ => bail!("--mode {m:?}: expected store, per-row or unpartitioned"),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
        Ok(())
    })?;
    if !go_on {
        return Ok(None);
    }
    if !o.pgbouncer && o.collectors > 90 {
        bail!(
            "--via direct: at most 90 collectors (max_connections is 100); use fewer collectors and a shorter --interval"
        );
    }
    Ok(Some(o))
}

pub(super) fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(options) = parse_args(args)? else {
        return Ok(());
    };
    if !options.in_release {
        eprintln!(
            "xtask: building xtask in release (the generator shares the CPUs with PostgreSQL)"
        );
        util::run(cargo().args(["build", "--release", "-p", "xtask"]))?;
        let target = target_dir()?;
        let out = target.join("bench").join(format!("fleet-{}", unix_s()));
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let me = target.join("release/xtask");
        util::run(
            Command::new(&me)
                .args(["bench", "fleet"])
                .args(args)
                .arg("--in-release")
                .arg("--out")
                .arg(&out),
        )?;
        return Ok(());
    }
    if devpg::find_bindir().is_none() {
        bail!(
            "PostgreSQL server binaries are needed: install them with `apt-get install postgresql`"
        );
    }
    if options.pgbouncer {
        util::ensure_tool("pgbouncer", "pgbouncer")?;
    }
    let out = options
        .out
        .clone()
        .context("--out is set by the parent process")?;
    let want = options.collectors as u64 + 512;
    raise_open_files(want)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the generator's runtime")?;
    let report = runtime.block_on(bench(&options, &out))?;
    let path = out.join("fleet.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    print_report(&report);
    eprintln!("xtask: report and logs in {}", out.display());
    Ok(())
}

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Raises this process's open-files soft limit to its hard limit when below `want`;
/// children (pgbouncer) inherit it.
fn raise_open_files(want: u64) -> anyhow::Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if hard < want {
        bail!("{want} open files are needed; the hard limit is {hard} (raise it: ulimit -Hn)");
    }
    limit.current = Some(hard);
    setrlimit(Resource::Nofile, limit).context("raising the open-files soft limit")?;
    Ok(())
}

/// Where collectors connect.
#[derive(Clone, Debug)]
struct Target {
    port: u16,
}

async fn connect(port: u16, dbname: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(10))
        .connect(NoTls)
        .await
        .with_context(|| format!("connecting to {dbname} on port {port}"))?;
    tokio::spawn(connection);
    Ok(client)
}

async fn bench(options: &Options, out: &Path) -> anyhow::Result<String> {
    let mut pg_options = devpg::Options::default();
    for (name, value) in &options.settings {
        pg_options = pg_options.setting(name, value);
    }
    let cluster = devpg::Cluster::start_with("fleet", pg_options).context("starting PostgreSQL")?;
    let pg_port = cluster.port();
    eprintln!(
        "xtask: PostgreSQL on 127.0.0.1:{pg_port}, data in {}",
        cluster.data().display()
    );
    let bouncer = if options.pgbouncer {
        let max_clients = u32::try_from(options.collectors + 100).unwrap_or(u32::MAX);
        let b = devpg::Bouncer::start(pg_port, max_clients, options.pool_size)?;
        eprintln!(
            "xtask: PgBouncer (transaction mode) on 127.0.0.1:{}",
            b.port()
        );
        Some(b)
    } else {
        None
    };
    let target = Target {
        port: bouncer.as_ref().map_or(pg_port, devpg::Bouncer::port),
    };
    let watch = Watch {
        postmaster: cluster.postmaster_pid().context("the postmaster's pid")?,
        bouncer: bouncer.as_ref().and_then(devpg::Bouncer::pid),
        disk: disk_of(&cluster.data()),
        pg_port,
        bouncer_port: bouncer.as_ref().map(devpg::Bouncer::port),
    };
    let admin = connect(pg_port, "postgres").await?;
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);

    let mut phases = Vec::new();
    for &mode in &options.modes {
        let db = format!("fleet_{}", mode.name().replace('-', "_"));
        fresh_database(&admin, &db).await?;
        prepare_schema(mode, pg_port, &db).await?;
        let minutes = match mode {
            Mode::Store => options.minutes,
            _ => options.compare_minutes.unwrap_or(options.minutes),
        };
        let measure = Duration::from_secs_f64(minutes * 60.0);
        eprintln!(
            "xtask: {}: {} collectors at {} s windows, {:.0} s measured",
            mode.name(),
            options.collectors,
            options.interval_s,
            measure.as_secs_f64()
        );
        let phase = run_phase(
            mode,
            &target,
            &watch,
            &db,
            options.collectors,
            options.interval_s,
            measure,
        )
        .await?;
        eprintln!("xtask: {}", phase.one_line());
        phases.push(phase);
    }

    let mut sizes = Vec::new();
    for &mode in &options.modes {
        if mode == Mode::PerRow {
            continue; // the same schema as the store's
        }
        let db = format!("fleet_{}", mode.name().replace('-', "_"));
        let client = connect(pg_port, &db).await?;
        sizes.push((mode, bytes_per_row(&client).await?));
    }

    let mut retention = None;
    if options.day_hosts > 0 {
        fresh_database(&admin, "fleet_day").await?;
        prepare_schema(Mode::Store, pg_port, "fleet_day").await?;
        let client = connect(pg_port, "fleet_day").await?;
        retention = Some(day_drop(&client, options.day_hosts).await?);
    }

    let mut steps = Vec::new();
    if options.ceiling {
        let step = Duration::from_secs(options.step_secs);
        for &factor in CEILING_STEPS {
            let interval = options.collectors as f64 * FLEET_INTERVAL_S / FLEET_HOSTS / factor;
            let db = format!("fleet_step_{}", factor as u32);
            fresh_database(&admin, &db).await?;
            prepare_schema(Mode::Store, pg_port, &db).await?;
            eprintln!("xtask: ceiling: {factor}x the fleet's load ({interval:.3} s windows)");
            let phase = run_phase(
                Mode::Store,
                &target,
                &watch,
                &db,
                options.collectors,
                interval,
                step,
            )
            .await?;
            eprintln!("xtask: {}", phase.one_line());
            let failed = !phase.passes();
            steps.push((factor, phase));
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
                .await
                .ok();
            if failed {
                break;
            }
        }
    }
    if let Some(b) = &bouncer {
        let log = out.join("pgbouncer.log");
        std::fs::write(&log, b.log()).with_context(|| format!("writing {}", log.display()))?;
    }
    drop(bouncer);
    Ok(report(
        options,
        &version,
        &phases,
        &sizes,
        retention.as_ref(),
        &steps,
    ))
}

async fn fresh_database(admin: &Client, db: &str) -> anyhow::Result<()> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    Ok(())
}

/// The schema a mode writes to: the store's migrations (V1–V4), or V1–V3 from the files.
async fn prepare_schema(mode: Mode, pg_port: u16, db: &str) -> anyhow::Result<()> {
    match mode {
        Mode::Store | Mode::PerRow => {
            let config = store_config(pg_port, db, "fleet-migrate", Duration::from_secs(30));
            store::migrate_database(&config)
                .await
                .map_err(|e| anyhow::anyhow!("migrating {db}: {}", e.summary()))?;
        }
        Mode::Unpartitioned => {
            let client = connect(pg_port, db).await?;
            for v in [
                "V1__metrics_tables.sql",
                "V2__take_over_the_original_tables.sql",
                "V3__window_extremes.sql",
                // The store's write function, on the unpartitioned tables.
                "V5__write_function.sql",
            ] {
                let path = root().join("migrations").join(v);
                let sql = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                client
                    .batch_execute(&sql)
                    .await
                    .with_context(|| format!("applying {v}"))?;
            }
        }
    }
    Ok(())
}

fn store_config(port: u16, db: &str, host: &str, persist: Duration) -> store::Config {
    store::Config {
        host: "127.0.0.1".to_owned(),
        port,
        user: "postgres".to_owned(),
        password: None,
        dbname: db.to_owned(),
        tls: store::Tls::default(),
        metrics_host: host.to_owned(),
        retention: Duration::from_secs(7 * 86_400),
        persist_interval: persist,
        flush_deadline: Duration::from_secs(5),
    }
}

fn host_name(i: usize) -> String {
    format!("fleet-{i:05}")
}

fn window(at: SystemTime, interval: Duration, k: u64) -> sampler::Window {
    let v = (k % 100) as f64;
    let stat = |x: f64| Some(sampler::Stat::steady(x, 6));
    sampler::Window {
        start: at - interval,
        at,
        cpu: stat(v * 0.9),
        ram: stat(40.0 + v * 0.1),
        gpu: stat(v * 0.5),
        temperature: stat(45.5),
        disk: Some(sampler::DiskRow {
            used_bytes: 1 << 34,
            free_bytes: 3 << 34,
            percent: 25.0,
        }),
    }
}

/// One measured window's results.
#[derive(Debug, Default)]
struct Phase {
    mode: &'static str,
    collectors: usize,
    interval_s: f64,
    startup_s: f64,
    measured_s: f64,
    sent: u64,
    written: u64,
    errors: u64,
    /// Flush moment → durable, ms, sorted.
    commit_ms: Vec<f64>,
    /// Window handed over → durable, ms, sorted.
    e2e_ms: Vec<f64>,
    usage: Usage,
}

impl Phase {
    /// This phase's cells of the phase table, after the mode's.
    fn row(&self) -> String {
        let (p, u) = (self, &self.usage);
        format!(
            "{:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} / {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {} |",
            p.startup_s,
            p.measured_s,
            p.offered_tx(),
            p.offered_tx() * ROWS_PER_WINDOW,
            u.xact_per_s,
            p.written,
            p.sent,
            ms(p.p(0.5)),
            ms(p.p(0.99)),
            ms(p.commit_ms.last().copied().unwrap_or(f64::NAN)),
            ms(percentile(&p.e2e_ms, 0.99)),
            u.pg_cpu,
            u.bouncer_cpu,
            u.self_cpu,
            u.machine_busy,
            u.wal_mb_s,
            u.wal_syncs_s,
            u.wal_sync_ms,
            u.wal_fpi_s,
            u.checkpoints,
            u.disk_writes_s,
            u.disk_mb_s,
            u.disk_flushes_s,
            u.disk_busy,
            u.bouncer_wait_us,
            if p.passes() { "PASS" } else { "FAIL" },
        )
    }
    fn offered_tx(&self) -> f64 {
        self.collectors as f64 / self.interval_s
    }
    fn p(&self, q: f64) -> f64 {
        percentile(&self.commit_ms, q)
    }
    fn passes(&self) -> bool {
        self.p(0.99) < GOAL_P99_MS
            && self.written as f64 >= KEEPS_UP * self.sent as f64
            && self.usage.xact_per_s >= KEEPS_UP * self.offered_tx()
    }
    fn one_line(&self) -> String {
        format!(
            "{}: offered {:.0} tx/s, committed {:.0} tx/s; {} of {} windows written ({} refused by a writer's inbox or failed); commit min {:.1} p50 {:.1} ms p99 {:.1} ms max {:.1} ms; send→durable p50 {:.1} ms; postgres CPU {:.0} %, machine busy {:.0} %; {}",
            self.mode,
            self.offered_tx(),
            self.usage.xact_per_s,
            self.written,
            self.sent,
            self.errors,
            self.commit_ms.first().copied().unwrap_or(f64::NAN),
            self.p(0.5),
            self.p(0.99),
            self.commit_ms.last().copied().unwrap_or(f64::NAN),
            percentile(&self.e2e_ms, 0.5),
            self.usage.pg_cpu,
            self.usage.machine_busy,
            if self.passes() { "PASS" } else { "FAIL" }
        )
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The grid of a phase: window k is handed over at `t0 + k × interval`; windows
/// `first..end` are measured.
#[derive(Clone, Copy, Debug)]
struct Grid {
    t0: Instant,
    wall0: SystemTime,
    interval: Duration,
    first: u64,
    end: u64,
}

impl Grid {
    fn new(interval: Duration, measure: Duration) -> Self {
        // Start on a whole grid line of wall time a second from now, like a fleet's engines.
        let now = SystemTime::now();
        let ms = interval.as_millis().max(1);
        let unix_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) + 1000;
        let line_ms = unix_ms.div_ceil(ms) * ms;
        let wall0 = UNIX_EPOCH + Duration::from_millis(line_ms as u64);
        let t0 = Instant::now() + wall0.duration_since(now).unwrap_or_default();
        let per = interval.as_secs_f64();
        let first = (WARM_UP.as_secs_f64() / per).ceil().max(2.0) as u64;
        let end = first + (measure.as_secs_f64() / per).round().max(1.0) as u64;
        Self {
            t0,
            wall0,
            interval,
            first,
            end,
        }
    }
    fn at(&self, k: u64) -> Instant {
        self.t0 + self.interval * k as u32
    }
    fn wall(&self, k: u64) -> SystemTime {
        self.wall0 + self.interval * k as u32
    }
    fn measured(&self, k: u64) -> bool {
        (self.first..self.end).contains(&k)
    }
    /// How long after the last window the writers may take to finish.
    fn drain(&self) -> Duration {
        self.interval * 2 + Duration::from_secs(10)
    }
}

async fn run_phase(
    mode: Mode,
    target: &Target,
    watch: &Watch,
    db: &str,
    n: usize,
    interval_s: f64,
    measure: Duration,
) -> anyhow::Result<Phase> {
    let interval = Duration::from_secs_f64(interval_s);
    let mut phase = Phase {
        mode: mode.name(),
        collectors: n,
        interval_s,
        ..Phase::default()
    };
    let started = Instant::now();
    let records = match mode {
        Mode::Store => {
            store_fleet(target, watch, db, n, interval, measure, &mut phase, started).await?
        }
        Mode::PerRow | Mode::Unpartitioned => {
            own_fleet(
                mode, target, watch, db, n, interval, measure, &mut phase, started,
            )
            .await?
        }
    };
    for r in records {
        phase.sent += 1;
        if let Some((commit, e2e)) = r {
            phase.written += 1;
            phase.commit_ms.push(commit);
            phase.e2e_ms.push(e2e);
        }
    }
    phase.commit_ms.sort_by(f64::total_cmp);
    phase.e2e_ms.sort_by(f64::total_cmp);
    // PgBouncer keeps a pool of server connections per database: closed now, so the next
    // phase's pool (and the watch's own connections) fit under max_connections.
    if let Some(port) = watch.bouncer_port {
        let admin = connect(port, "pgbouncer").await?;
        admin
            .simple_query(&format!("KILL {db}"))
            .await
            .with_context(|| format!("closing PgBouncer's pool of {db}"))?;
    }
    Ok(phase)
}

/// One measured window of one collector: (commit ms, send → durable ms), or `None` if it
/// was not written by the end of the drain.
type Record = Option<(f64, f64)>;

#[allow(clippy::too_many_arguments)]
async fn store_fleet(
    target: &Target,
    watch: &Watch,
    db: &str,
    n: usize,
    interval: Duration,
    measure: Duration,
    phase: &mut Phase,
    started: Instant,
) -> anyhow::Result<Vec<Record>> {
    let mut handles = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let config = store_config(target.port, db, &host_name(i), interval);
        let (handle, status, task) =
            store::spawn(config).map_err(|e| anyhow::anyhow!("store::spawn: {}", e.summary()))?;
        handles.push(handle);
        statuses.push(status);
        tasks.push(task);
    }
    // Every writer connects and migrates (and makes its days) before the load starts.
    loop {
        let ready = statuses
            .iter()
            .filter(|s| s.borrow().state == sampler::WriterState::Connected)
            .count();
        if ready == n {
            break;
        }
        if started.elapsed() > START_WITHIN {
            bail!("{ready} of {n} writers connected within {START_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    phase.startup_s = started.elapsed().as_secs_f64();
    eprintln!(
        "xtask: {n} writers connected and migrated in {:.1} s",
        phase.startup_s
    );

    let grid = Grid::new(interval, measure);
    // When each window was handed over (the same moment for every collector, give or take
    // the loop over them).
    let sent_at: Arc<RwLock<Vec<Instant>>> = Arc::new(RwLock::new(Vec::new()));
    let stop_at = grid.at(grid.end) + grid.drain();
    let mut watchers = Vec::with_capacity(n);
    for (i, mut status) in statuses.into_iter().enumerate() {
        let sent_at = sent_at.clone();
        let offset = store::flush_offset(&host_name(i), interval);
        watchers.push(tokio::spawn(async move {
            let mut seen = status.borrow().written_windows;
            let base = seen;
            let mut records: Vec<Record> = Vec::new();
            loop {
                let changed = tokio::time::timeout_at(stop_at.into(), status.changed()).await;
                let now = Instant::now();
                let written = status.borrow_and_update().written_windows;
                while seen < written {
                    let k = seen - base;
                    seen += 1;
                    let at = sent_at.read().ok().and_then(|s| s.get(k as usize).copied());
                    if let Some(at) = at
                        && grid.measured(k)
                    {
                        let e2e = now.saturating_duration_since(at);
                        let commit = e2e.saturating_sub(offset);
                        records.push(Some((commit.as_secs_f64() * 1e3, e2e.as_secs_f64() * 1e3)));
                    }
                }
                if !matches!(changed, Ok(Ok(()))) {
                    break;
                }
            }
            // Measured windows never written.
            let done = records.len() as u64;
            let want = grid.end - grid.first;
            records.extend((done..want).map(|_| None));
            records
        }));
    }
    let mut usage_start = None;
    let mut errors = 0;
    for k in 0..grid.end {
        tokio::time::sleep_until(grid.at(k).into()).await;
        if k == grid.first {
            usage_start = Some(watch.snapshot().await?);
        }
        let at = Instant::now();
        if let Ok(mut s) = sent_at.write() {
            s.push(at);
        }
        let wall = grid.wall(k);
        for h in &handles {
            if !h.send(window(wall, interval, k)) {
                errors += 1;
            }
        }
    }
    tokio::time::sleep_until(grid.at(grid.end).into()).await;
    let usage_end = watch.snapshot().await?;
    let before = usage_start.context("the measured window never began")?;
    phase.usage = Usage::between(&before, &usage_end);
    phase.measured_s = usage_end.at.duration_since(before.at).as_secs_f64();
    phase.errors = errors;
    let mut records = Vec::new();
    for w in watchers {
        records.extend(w.await.context("a watcher panicked")?);
    }
    drop(handles);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(records)
}

const PER_ROW: [&str; 5] = [
    "INSERT INTO metrics_cpu (host, \"timestamp\", value, value_min, value_max) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    "INSERT INTO metrics_ram (host, \"timestamp\", value, value_min, value_max) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    "INSERT INTO metrics_gpu (host, \"timestamp\", value, value_min, value_max) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    "INSERT INTO metrics_temperature (host, \"timestamp\", value, value_min, value_max) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    "INSERT INTO metrics_disk (host, \"timestamp\", used, free, percent) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
];

async fn write_own(
    mode: Mode,
    client: &Client,
    host: &str,
    w: &sampler::Window,
) -> Result<(), tokio_postgres::Error> {
    let stats =
        [w.cpu, w.ram, w.gpu, w.temperature].map(|s| s.unwrap_or(sampler::Stat::steady(0.0, 0)));
    let disk = w.disk.unwrap_or(sampler::DiskRow {
        used_bytes: 0,
        free_bytes: 0,
        percent: 0.0,
    });
    let used = i64::try_from(disk.used_bytes).unwrap_or(i64::MAX);
    let free = i64::try_from(disk.free_bytes).unwrap_or(i64::MAX);
    if mode == Mode::PerRow {
        client.batch_execute("BEGIN").await?;
        let f8 = [
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::FLOAT8,
            Type::FLOAT8,
            Type::FLOAT8,
        ];
        for (sql, s) in PER_ROW.iter().zip(stats) {
            let (mean, lo, hi) = (s.value(), s.min, s.max);
            let params: [(&(dyn ToSql + Sync), Type); 5] = [
                (&host, f8[0].clone()),
                (&w.at, f8[1].clone()),
                (&mean, f8[2].clone()),
                (&lo, f8[3].clone()),
                (&hi, f8[4].clone()),
            ];
            client.query_typed(sql, &params).await?;
        }
        let params: [(&(dyn ToSql + Sync), Type); 5] = [
            (&host, Type::TEXT),
            (&w.at, Type::TIMESTAMPTZ),
            (&used, Type::INT8),
            (&free, Type::INT8),
            (&disk.percent, Type::FLOAT8),
        ];
        client.query_typed(PER_ROW[4], &params).await?;
        return client.batch_execute("COMMIT").await;
    }
    let at = vec![w.at];
    let cols: Vec<Vec<Option<f64>>> = stats
        .iter()
        .flat_map(|s| [vec![Some(s.value())], vec![s.min], vec![s.max]])
        .collect();
    let (used, free, percent) = (vec![Some(used)], vec![Some(free)], vec![Some(disk.percent)]);
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> =
        vec![(&host, Type::TEXT), (&at, Type::TIMESTAMPTZ_ARRAY)];
    params.extend(
        cols.iter()
            .map(|c| (c as &(dyn ToSql + Sync), Type::FLOAT8_ARRAY)),
    );
    params.extend([
        (&used as &(dyn ToSql + Sync), Type::INT8_ARRAY),
        (&free as &(dyn ToSql + Sync), Type::INT8_ARRAY),
        (&percent as &(dyn ToSql + Sync), Type::FLOAT8_ARRAY),
    ]);
    // As the store does: one call of metrics_write (V5), its own transaction.
    client.query_typed(store::WRITE, &params).await.map(drop)
}

#[allow(clippy::too_many_arguments)]
async fn own_fleet(
    mode: Mode,
    target: &Target,
    watch: &Watch,
    db: &str,
    n: usize,
    interval: Duration,
    measure: Duration,
    phase: &mut Phase,
    started: Instant,
) -> anyhow::Result<Vec<Record>> {
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut connecting = Vec::with_capacity(n);
    for _ in 0..n {
        let gate = gate.clone();
        let (port, db) = (target.port, db.to_owned());
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            connect(port, &db).await
        }));
    }
    let mut clients = Vec::with_capacity(n);
    for c in connecting {
        clients.push(c.await.context("a connecting task panicked")??);
    }
    phase.startup_s = started.elapsed().as_secs_f64();
    eprintln!("xtask: {n} connections in {:.1} s", phase.startup_s);
    let grid = Grid::new(interval, measure);
    let stop_at = grid.at(grid.end) + grid.drain();
    let mut writers = Vec::with_capacity(n);
    for (i, client) in clients.into_iter().enumerate() {
        let host = host_name(i);
        let offset = store::flush_offset(&host, interval);
        let (port, db) = (target.port, db.to_owned());
        writers.push(tokio::spawn(async move {
            let mut client = Some(client);
            let mut records: Vec<Record> = Vec::new();
            let mut errors = 0u64;
            for k in 0..grid.end {
                let flush = grid.at(k) + offset;
                tokio::time::sleep_until(flush.into()).await;
                if Instant::now() > stop_at {
                    break;
                }
                if client.as_ref().is_none_or(Client::is_closed) {
                    client = connect(port, &db).await.ok();
                }
                let Some(c) = client.as_ref() else {
                    errors += 1;
                    if grid.measured(k) {
                        records.push(None);
                    }
                    continue;
                };
                let w = window(grid.wall(k), interval, k);
                let ok = write_own(mode, c, &host, &w).await.is_ok();
                let now = Instant::now();
                if !ok {
                    errors += 1;
                }
                if grid.measured(k) {
                    records.push(ok.then(|| {
                        let commit = now.saturating_duration_since(flush).as_secs_f64() * 1e3;
                        let e2e = now.saturating_duration_since(grid.at(k)).as_secs_f64() * 1e3;
                        (commit, e2e)
                    }));
                }
            }
            let want = (grid.end - grid.first) as usize;
            records.resize(want, None);
            (records, errors)
        }));
    }
    tokio::time::sleep_until(grid.at(grid.first).into()).await;
    let before = watch.snapshot().await?;
    tokio::time::sleep_until(grid.at(grid.end).into()).await;
    let after = watch.snapshot().await?;
    phase.usage = Usage::between(&before, &after);
    phase.measured_s = after.at.duration_since(before.at).as_secs_f64();
    let mut records = Vec::new();
    for w in writers {
        let (r, e) = w.await.context("a writer panicked")?;
        records.extend(r);
        phase.errors += e;
    }
    Ok(records)
}

/// What is watched for resources.
#[derive(Debug)]
struct Watch {
    postmaster: u32,
    bouncer: Option<u32>,
    disk: Option<(u32, u32)>,
    pg_port: u16,
    bouncer_port: Option<u16>,
}

#[derive(Debug, Default)]
struct Snapshot {
    at: Option<Instant>,
    pg_ticks: u64,
    bouncer_ticks: u64,
    self_ticks: u64,
    machine: (u64, u64),
    wal: [f64; 6],
    xact_commit: f64,
    bgwriter: [f64; 4],
    disk: [u64; 5],
    bouncer: [f64; 2],
}

struct Stamped {
    at: Instant,
    s: Snapshot,
}

impl Watch {
    async fn snapshot(&self) -> anyhow::Result<Stamped> {
        let mut s = Snapshot {
            at: Some(Instant::now()),
            ..Snapshot::default()
        };
        s.pg_ticks = tree_ticks(self.postmaster);
        s.bouncer_ticks = self.bouncer.map_or(0, |p| cpu_ticks(p).unwrap_or(0));
        s.self_ticks = cpu_ticks(std::process::id()).unwrap_or(0);
        s.machine = machine_ticks();
        s.disk = self.disk.map_or([0; 5], disk_stats);
        let c = connect(self.pg_port, "postgres").await?;
        let row = c
            .query_one(
                "SELECT wal_records::float8, wal_fpi::float8, wal_bytes::float8, wal_write::float8, wal_sync::float8, wal_sync_time::float8 FROM pg_stat_wal",
                &[],
            )
            .await?;
        s.wal = std::array::from_fn(|i| row.get(i));
        s.xact_commit = c
            .query_one("SELECT sum(xact_commit)::float8 FROM pg_stat_database", &[])
            .await?
            .get(0);
        let row = c
            .query_one(
                "SELECT (checkpoints_timed + checkpoints_req)::float8, buffers_checkpoint::float8, buffers_backend::float8, buffers_backend_fsync::float8 FROM pg_stat_bgwriter",
                &[],
            )
            .await?;
        s.bgwriter = std::array::from_fn(|i| row.get(i));
        if let Some(port) = self.bouncer_port {
            s.bouncer = bouncer_stats(port).await.unwrap_or_default();
        }
        Ok(Stamped {
            at: s.at.unwrap_or_else(Instant::now),
            s,
        })
    }
}

/// PgBouncer's totals over every database: transactions, and µs clients waited for a
/// server connection.
async fn bouncer_stats(port: u16) -> anyhow::Result<[f64; 2]> {
    let c = connect(port, "pgbouncer").await?;
    let mut totals = [0.0; 2];
    for m in c.simple_query("SHOW STATS").await? {
        if let SimpleQueryMessage::Row(row) = m {
            let col = |name: &str| -> f64 {
                row.columns()
                    .iter()
                    .position(|c| c.name() == name)
                    .and_then(|i| row.get(i))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            totals[0] += col("total_xact_count");
            totals[1] += col("total_wait_time");
        }
    }
    Ok(totals)
}

/// CPU ticks of `pid`, its live children and (through cutime/cstime) those that ended.
fn tree_ticks(pid: u32) -> u64 {
    let sum = |f: &[u64], at: &[usize]| at.iter().filter_map(|&i| f.get(i)).sum::<u64>();
    let own = stat_fields(pid).map_or(0, |f| sum(&f, &[11, 12, 13, 14]));
    let mut children = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(f) = stat_fields(child)
            && f.get(1) == Some(&u64::from(pid))
        {
            children += sum(&f, &[11, 12]);
        }
    }
    own + children
}

/// (busy, total) ticks of the machine, `/proc/stat`'s first line (busy = total - idle - iowait).
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The (major, minor) of the block device holding `path`.
fn disk_of(path: &Path) -> Option<(u32, u32)> {
    let st = rustix::fs::stat(path).ok()?;
    Some((rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)))
}

/// `/proc/diskstats` of a device: writes completed, sectors written, ms writing, ms busy,
/// flushes completed.
fn disk_stats((major, minor): (u32, u32)) -> [u64; 5] {
    let text = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 14 && f[0] == major.to_string() && f[1] == minor.to_string() {
            let n = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            return [n(7), n(9), n(10), n(12), n(18)];
        }
    }
    [0; 5]
}

/// Rates over a measured window.
#[derive(Debug, Default)]
struct Usage {
    pg_cpu: f64,
    bouncer_cpu: f64,
    self_cpu: f64,
    machine_busy: f64,
    xact_per_s: f64,
    wal_mb_s: f64,
    wal_fpi_s: f64,
    wal_syncs_s: f64,
    wal_sync_ms: f64,
    checkpoints: f64,
    disk_writes_s: f64,
    disk_mb_s: f64,
    disk_flushes_s: f64,
    disk_busy: f64,
    bouncer_wait_us: f64,
}

impl Usage {
    fn between(a: &Stamped, b: &Stamped) -> Self {
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
        let hz = clock_ticks_per_second();
        let cores = |t0: u64, t1: u64| t1.saturating_sub(t0) as f64 / hz / secs * 100.0;
        let (a, b) = (&a.s, &b.s);
        let d = |i: usize| b.wal[i] - a.wal[i];
        let syncs = d(4);
        let disk = |i: usize| b.disk[i].saturating_sub(a.disk[i]) as f64;
        let xacts = b.bouncer[0] - a.bouncer[0];
        Self {
            pg_cpu: cores(a.pg_ticks, b.pg_ticks),
            bouncer_cpu: cores(a.bouncer_ticks, b.bouncer_ticks),
            self_cpu: cores(a.self_ticks, b.self_ticks),
            machine_busy: (b.machine.0.saturating_sub(a.machine.0)) as f64
                / (b.machine.1.saturating_sub(a.machine.1)).max(1) as f64
                * 100.0,
            xact_per_s: (b.xact_commit - a.xact_commit) / secs,
            wal_mb_s: d(2) / secs / 1e6,
            wal_fpi_s: d(1) / secs,
            wal_syncs_s: syncs / secs,
            wal_sync_ms: if syncs > 0.0 { d(5) / syncs } else { 0.0 },
            checkpoints: b.bgwriter[0] - a.bgwriter[0],
            disk_writes_s: disk(0) / secs,
            disk_mb_s: disk(1) * 512.0 / secs / 1e6,
            disk_flushes_s: disk(4) / secs,
            disk_busy: disk(3) / (secs * 1000.0) * 100.0,
            bouncer_wait_us: if xacts > 0.0 {
                (b.bouncer[1] - a.bouncer[1]) / xacts
            } else {
                0.0
            },
        }
    }
}

/// A table's name, rows, heap + index bytes per row and total bytes per row.
type TableSize = (String, i64, f64, f64);

/// Heap and index bytes per row of each table (summed over its partitions), and the total
/// relation size per row (with free-space and visibility maps, TOAST) beside it.
async fn bytes_per_row(c: &Client) -> anyhow::Result<Vec<TableSize>> {
    let mut out = Vec::new();
    for table in store::TABLES {
        let row = c
            .query_one(
                "WITH parts AS (
                     SELECT $1::text::regclass AS oid
                     UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::text::regclass)
                 SELECT sum(pg_relation_size(oid) + pg_indexes_size(oid))::float8,
                        sum(pg_total_relation_size(oid))::float8
                 FROM parts",
                &[&table],
            )
            .await?;
        let (heap_index, total): (f64, f64) = (row.get(0), row.get(1));
        let rows: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        let per = |b: f64| if rows > 0 { b / rows as f64 } else { f64::NAN };
        out.push((table.to_owned(), rows, per(heap_index), per(total)));
    }
    Ok(out)
}

#[derive(Debug)]
struct DayDrop {
    hosts: u32,
    rows: i64,
    insert_s: f64,
    drop_s: f64,
    dropped: i32,
    sizes: Vec<TableSize>,
    /// The same day after the collector's compaction: its indexes rebuilt in key order.
    reindex_s: f64,
    reindexed: Vec<TableSize>,
}

/// A past day of `hosts` hosts at 30 s windows in all five tables, then retention's
/// DETACH + DROP of that day timed.
async fn day_drop(c: &Client, hosts: u32) -> anyhow::Result<DayDrop> {
    let day: String = c
        .query_one("SELECT ((now() AT TIME ZONE 'UTC')::date - 10)::text", &[])
        .await?
        .get(0);
    c.batch_execute(&format!("SELECT metrics_make_days(ARRAY['{day}'::date])"))
        .await?;
    eprintln!("xtask: generating {day}: {hosts} hosts x 2880 windows x 5 tables");
    let started = Instant::now();
    // Time-major, as a fleet writes: every host's window, then the next window.
    let series = format!(
        "FROM generate_series(0, 2879) AS t, generate_series(1, {hosts}) AS h, \
         LATERAL (SELECT '{day}'::date::timestamp AT TIME ZONE 'UTC' + t * interval '30 s' AS ts, \
                  'fleet-' || lpad(h::text, 5, '0') AS host) AS x ORDER BY t, h"
    );
    for table in [
        "metrics_cpu",
        "metrics_ram",
        "metrics_gpu",
        "metrics_temperature",
    ] {
        c.batch_execute(&format!(
            "INSERT INTO {table} (host, \"timestamp\", value, value_min, value_max) \
             SELECT host, ts, (t % 100) * 0.9, (t % 100) * 0.8, (t % 100) * 1.0 {series}"
        ))
        .await
        .with_context(|| format!("generating {table}"))?;
    }
    c.batch_execute(&format!(
        "INSERT INTO metrics_disk (host, \"timestamp\", used, free, percent) \
         SELECT host, ts, 17179869184 + t, 51539607552 - t, 25.0 {series}"
    ))
    .await?;
    let insert_s = started.elapsed().as_secs_f64();
    c.batch_execute("VACUUM ANALYZE").await?;
    let sizes = bytes_per_row(c).await?;
    let rows = sizes.iter().map(|s| s.1).sum();
    // Time-major inserts land at the end of each host's run of keys, in the middle of the
    // (host, "timestamp") index: its pages split in half and stay half full. A closed day
    // gets no more inserts, so rebuilding its index packs it: the collector's compaction
    // (`store::compact_next`, REINDEX TABLE CONCURRENTLY), which takes the newest closed
    // day first (yesterday's, empty here) and this one in its turn.
    let mut reindex_s = f64::NAN;
    while let Some(done) = store::compact_next(c, "bench", std::time::SystemTime::now())
        .await
        .context("compacting the generated day")?
    {
        if done.day == day {
            reindex_s = done.took.as_secs_f64();
            break;
        }
    }
    anyhow::ensure!(!reindex_s.is_nan(), "compaction never reached {day}");
    let reindexed = bytes_per_row(c).await?;
    let cutoff = format!("'{day}'::date::timestamp AT TIME ZONE 'UTC' + interval '1 day'");
    let started = Instant::now();
    let dropped: i32 = c
        .query_one(&format!("SELECT metrics_drop_days_before({cutoff})"), &[])
        .await?
        .get(0);
    let drop_s = started.elapsed().as_secs_f64();
    Ok(DayDrop {
        hosts,
        rows,
        insert_s,
        drop_s,
        dropped,
        sizes,
        reindex_s,
        reindexed,
    })
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn report(
    o: &Options,
    version: &str,
    phases: &[Phase],
    sizes: &[(Mode, Vec<TableSize>)],
    day: Option<&DayDrop>,
    steps: &[(f64, Phase)],
) -> String {
    let mut r = String::new();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--", "crates/store", "migrations"])
        .current_dir(root())
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let _ = writeln!(
        r,
        "## Fleet: one PostgreSQL {version}, {} collectors at {} s windows\n",
        o.collectors, o.interval_s
    );
    let _ = writeln!(r, "```\n{}\n```\n", machine());
    let _ = writeln!(
        r,
        "Commit {commit}{}; via {}; server settings: {}. Load: {:.1}x the fleet's (10,000 hosts at 30 s: {:.0} tx/s, {:.0} rows/s).\n",
        if dirty {
            " with uncommitted changes in crates/store or migrations"
        } else {
            ""
        },
        if o.pgbouncer {
            format!(
                "PgBouncer 1.18, transaction mode, {} server connections",
                o.pool_size
            )
        } else {
            "direct connections".to_owned()
        },
        o.settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        (o.collectors as f64 / o.interval_s) / (FLEET_HOSTS / FLEET_INTERVAL_S),
        FLEET_HOSTS / FLEET_INTERVAL_S,
        FLEET_HOSTS / FLEET_INTERVAL_S * ROWS_PER_WINDOW,
    );
    phase_table(&mut r, phases.iter().map(|p| (p.mode.to_owned(), p)));
    if !sizes.is_empty() {
        let _ = writeln!(
            r,
            "\nBytes per row after the run (heap + indexes, summed over partitions; total relation size beside it):\n"
        );
        let _ = writeln!(
            r,
            "| schema | table | rows | heap+index B/row | total B/row |\n|---|---|---:|---:|---:|"
        );
        for (mode, tables) in sizes {
            for (t, rows, hi, total) in tables {
                let _ = writeln!(
                    r,
                    "| {} | {t} | {rows} | {hi:.1} | {total:.1} |",
                    if *mode == Mode::Store {
                        "partitioned (V4)"
                    } else {
                        "unpartitioned (V1–V3)"
                    }
                );
            }
        }
    }
    if let Some(d) = day {
        let _ = writeln!(
            r,
            "\nRetention: a generated past day, {} hosts x 2,880 windows in each of the five tables ({} rows, {:.1} s to insert); `metrics_drop_days_before` detached and dropped {} partitions in **{:.3} s** (goal ≤ 1 s).\n",
            d.hosts, d.rows, d.insert_s, d.dropped, d.drop_s
        );
        let _ = writeln!(
            r,
            "| table (that full day) | rows | heap+index B/row as written | total B/row | heap+index B/row compacted | total B/row |\n|---|---:|---:|---:|---:|---:|"
        );
        for ((t, rows, hi, total), (_, _, rhi, rtotal)) in d.sizes.iter().zip(&d.reindexed) {
            let _ = writeln!(
                r,
                "| {t} | {rows} | {hi:.1} | {total:.1} | {rhi:.1} | {rtotal:.1} |"
            );
        }
        let _ = writeln!(
            r,
            "\nAs written: after VACUUM ANALYZE, rows inserted time-major as a fleet writes them. Compacted: the collector's compaction of a closed day (`REINDEX TABLE CONCURRENTLY` of its five partitions, writes going on; {:.1} s for the day).",
            d.reindex_s
        );
    }
    if !steps.is_empty() {
        let _ = writeln!(
            r,
            "\nCeiling (store, {} collectors, shorter windows, {} s each, until p99 ≥ 1 s or under {:.0} % committed):\n",
            o.collectors,
            o.step_secs,
            KEEPS_UP * 100.0
        );
        phase_table(
            &mut r,
            steps.iter().map(|(f, p)| (format!("store {f}x"), p)),
        );
    }
    r
}

fn phase_table<'a>(r: &mut String, phases: impl Iterator<Item = (String, &'a Phase)>) {
    let _ = writeln!(
        r,
        "| mode | start s | measured s | offered tx/s | rows/s | committed tx/s | windows written | commit p50 | p99 | max | send→durable p99 | postgres CPU % | pgbouncer CPU % | generator CPU % | machine busy % | WAL MB/s | WAL syncs/s | ms/sync | FPI/s | checkpoints | disk writes/s | disk MB/s | disk flushes/s | disk busy % | pool wait µs/tx | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for (name, p) in phases {
        let _ = writeln!(r, "| {name} | {}", p.row());
    }
}
