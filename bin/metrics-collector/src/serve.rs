//! The service: wiring of sampler, API and signals on one tokio runtime.

use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::sampler::{self, HostSampler};

/// File descriptors kept back from connections for probes, logs and the database.
const RESERVED_FDS: u64 = 64;

pub(crate) fn serve(config: Config) -> ExitCode {
    init_logging();
    let gpu = match gpu::select(config.gpu) {
        Ok(g) => g,
        Err(e) => {
            // The operator asked for a backend this machine or build does not have.
            eprintln!("metrics-collector: METRICS_GPU_BACKEND: {e}");
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
    // Persistence arrives with the store; until then the database is reported disabled
    // whatever POSTGRES_* say.
    match &config.postgres {
        Some(pg) => tracing::warn!(
            host = %pg.host, port = pg.port, user = %pg.user, db = %pg.dbname,
            persist_s = config.persist_interval.as_secs_f64(),
            retention_days = config.retention.as_secs_f64() / 86_400.0,
            "persistence is not built into this version yet: samples are served, not stored"
        ),
        None => tracing::info!("POSTGRES_HOST is empty: persistence disabled"),
    }
    let (_database_tx, database) = watch::channel(api::DatabaseStatus::default());

    let host = probes::HostProbes::new(&config.roots, &config.disk_path);
    let deadline = config.live_interval.min(Duration::from_secs(2));
    let sampler = HostSampler::for_host(host, gpu, deadline);
    let sampling = tokio::spawn(sampler::run(
        sampler,
        config.live_interval,
        publish,
        shutdown.clone(),
    ));

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

    let signal = wait_for_signal().await;
    tracing::info!(
        signal,
        "shutting down: no new connections, finishing requests in flight"
    );
    stop.send_replace(true);
    let _ = sampling.await;
    let _ = server.await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT, naming it.
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
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
