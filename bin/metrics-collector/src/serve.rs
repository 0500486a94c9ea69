//! The service: wiring of sampler, API and signals on one tokio runtime.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::sampler::{self, HostSampler};

/// File descriptors kept back from connections for probes, logs and the database.
const RESERVED_FDS: u64 = 64;

pub(crate) fn serve(config: Config) -> ExitCode {
    init_logging();
    let gpu = match gpu::select(config.gpu, &config.roots) {
        Ok(g) => g,
        Err(e) => {
            // The operator asked for a backend this machine or build does not have.
            eprintln!(
                "metrics-collector: METRICS_GPU_BACKEND=\"{}\": {e}",
                config.gpu.as_str()
            );
            return ExitCode::from(2);
        }
    };
    let fd_limit = raise_fd_limit();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(32)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "starting the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, gpu, fd_limit))
}

async fn run(config: Config, gpu: Box<dyn gpu::GpuBackend>, fd_limit: u64) -> ExitCode {
    let mut signals = Signals::install();
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %config.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());

    let (stop, shutdown) = watch::channel(false);
    let (publish, latest) = watch::channel(None);
    let (database_tx, database) = watch::channel(api::DatabaseStatus::default());
    let (persist, writer) = match start_store(&config, database_tx) {
        Ok(Some((persist, writer))) => (Some(persist), Some(writer)),
        Ok(None) => (None, None),
        Err(e) => {
            tracing::error!(error = %e.summary(), "cannot set up the database connection pool");
            return ExitCode::FAILURE;
        }
    };

    let host = probes::HostProbes::new(&config.roots, &config.disk_path);
    let deadline = config.live_interval.min(Duration::from_secs(2));
    let sampler = match HostSampler::for_host(host, gpu, deadline) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the probe threads");
            return ExitCode::FAILURE;
        }
    };
    // The probe thread reads, encodes and publishes each tick by itself: an idle tick wakes
    // that one thread, and the HTTP workers sleep until a client comes.
    let sampling = sampler::start(sampler, config.live_interval, publish, persist);

    let limits = api::Limits {
        max_connections: usize::try_from(fd_limit.saturating_sub(RESERVED_FDS).clamp(16, 8192))
            .unwrap_or(8192),
        ..api::Limits::default()
    };
    let state = api::AppState::new(latest, database, config.live_interval, &config.host);
    tracing::info!(
        listen = %local,
        interval_s = config.live_interval.as_secs_f64(),
        disk = %config.disk_path.display(),
        gpu = ?config.gpu,
        max_connections = limits.max_connections,
        "metrics-collector {} serving",
        env!("CARGO_PKG_VERSION"),
    );
    let mut server_shutdown = shutdown.clone();
    let server = tokio::spawn(api::serve(listener, state, limits, async move {
        let _ = server_shutdown.changed().await;
    }));

    let signal = signals.recv().await;
    tracing::info!(
        signal,
        "shutting down: no new connections, finishing requests in flight"
    );
    stop.send_replace(true);
    // The sampler hands its last window over and lets go of the writer, which then
    // flushes its queue within its own deadline while the server drains.
    sampling.stop();
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    let _ = server.await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// SIGTERM and SIGINT, caught from the moment this is built: it must exist before the
/// service says it is serving, or a signal sent right then would kill the process with
/// the default action instead of a clean shutdown.
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Self(Some((term, int))),
            _ => {
                tracing::error!("cannot install signal handlers; stop with SIGKILL");
                Self(None)
            }
        }
    }

    /// Resolves on SIGTERM or SIGINT, naming it.
    async fn recv(&mut self) -> &'static str {
        let Some((term, int)) = self.0.as_mut() else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}

/// Raises the soft open-files limit to the hard one (as Go's runtime does): each client
/// connection is a file descriptor. Returns the limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if let Some(hard) = limit.maximum.or(Some(soft)).filter(|h| *h > soft) {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_ok() {
            return hard;
        }
    }
    soft
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Starts the database writer when persistence is on, and a task that mirrors its status
/// into what `/health` shows. `None` when `POSTGRES_HOST` is empty.
fn start_store(
    config: &Config,
    database: watch::Sender<api::DatabaseStatus>,
) -> Result<Option<(sampler::Persist, tokio::task::JoinHandle<()>)>, store::Error> {
    let Some(pg) = &config.postgres else {
        tracing::info!("POSTGRES_HOST is empty: persistence disabled");
        return Ok(None);
    };
    let store_config = store_config(config, pg);
    tracing::info!(
        host = %pg.host, port = pg.port, user = %pg.user, db = %pg.dbname,
        persist_s = config.persist_interval.as_secs_f64(),
        retention_days = config.retention.as_secs_f64() / 86_400.0,
        queue_windows = store_config.queue_capacity(),
        "persisting to PostgreSQL"
    );
    let (handle, mut status, writer) = store::spawn(store_config)?;
    let lost = Arc::new(AtomicU64::new(0));
    let lost_seen = lost.clone();
    tokio::spawn(async move {
        loop {
            let s = status.borrow_and_update().clone();
            database.send_replace(api::DatabaseStatus {
                state: match s.state {
                    store::WriterState::Connected => api::DatabaseState::Connected,
                    store::WriterState::Connecting | store::WriterState::Unreachable => {
                        api::DatabaseState::Unreachable
                    }
                },
                pending_rows: s.pending_rows,
                dropped_windows: s.dropped_windows + lost_seen.load(Ordering::Relaxed),
                last_error: s.last_error.or_else(|| {
                    (s.state == store::WriterState::Connecting).then(|| "connecting".to_owned())
                }),
            });
            if status.changed().await.is_err() {
                break;
            }
        }
    });
    Ok(Some((
        sampler::Persist::new(handle, config.persist_interval, lost),
        writer,
    )))
}

/// The store's settings from the validated configuration.
pub(crate) fn store_config(config: &Config, pg: &crate::config::Postgres) -> store::Config {
    store::Config {
        host: pg.host.clone(),
        port: pg.port,
        user: pg.user.clone(),
        password: pg.password.expose().map(str::to_owned),
        dbname: pg.dbname.clone(),
        metrics_host: config.host.clone(),
        retention: config.retention,
        persist_interval: config.persist_interval,
        flush_deadline: Duration::from_secs(3),
    }
}
