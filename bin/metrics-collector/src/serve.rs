//! The service: the engine, the store's writer and the API wired together on one tokio
//! runtime, with the signals that stop them. Wiring only: what each part does, and every
//! bound it keeps, lives in its crate.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

/// How long start-up waits for GPU discovery (NVML can hang in the driver) before it
/// serves without the GPU and lets discovery finish in the background.
pub(crate) const GPU_DISCOVERY_DEADLINE: Duration = Duration::from_secs(5);
/// Connections kept for requests other than streams, whatever `METRICS_MAX_STREAMS` says.
const STREAM_RESERVE: usize = 64;
/// How long the writer may take, from SIGTERM, to write what is queued (its own flush
/// deadline is 3 s; this also covers an attempt in progress).
const WRITER_STOP_BOUND: Duration = Duration::from_secs(4);
/// Blocking work still running at exit (a DNS lookup of `POSTGRES_HOST` that hangs) is
/// abandoned after this: dropping the runtime would otherwise wait for it.
const RUNTIME_STOP_BOUND: Duration = Duration::from_millis(500);

pub(crate) fn serve(config: Config) -> ExitCode {
    init_logging();
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
    let code = runtime.block_on(run(config));
    runtime.shutdown_timeout(RUNTIME_STOP_BOUND);
    code
}

async fn run(config: Config) -> ExitCode {
    // First, before anything can hang: a signal from now on is a clean stop.
    let mut signals = Signals::install();
    tracing::debug!(
        gpu = config.gpu.as_str(),
        "signals caught; discovering the GPU"
    );
    // Waited for on a thread of its own that ends with it (not the runtime's blocking
    // pool, whose idle threads linger), while signals are heard.
    let (found, discovery) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("gpu-wait".into()).spawn({
        let (choice, roots) = (config.gpu, config.roots.clone());
        move || {
            let _ = found.send(sampler::discover_gpu(
                choice,
                &roots,
                GPU_DISCOVERY_DEADLINE,
            ));
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start GPU discovery");
        return ExitCode::FAILURE;
    }
    let gpu = tokio::select! {
        found = discovery => match found {
            Ok(Ok(gpu)) => gpu,
            Ok(Err(e)) => {
                // The operator asked for a backend this machine or build does not have.
                eprintln!(
                    "metrics-collector: METRICS_GPU_BACKEND=\"{}\": {e}",
                    config.gpu.as_str()
                );
                return ExitCode::from(crate::cli::BAD_SETTING);
            }
            Err(_) => {
                tracing::error!("GPU discovery ended without an answer");
                return ExitCode::FAILURE;
            }
        },
        signal = signals.recv() => {
            tracing::info!(signal, "stopped during start-up");
            return ExitCode::SUCCESS;
        }
    };
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
    let store = match start_store(&config) {
        Ok(s) => s,
        Err(e) => {
            let error = config.password().mask(&e.summary());
            tracing::error!(error, "cannot set up the database connection pool");
            return ExitCode::FAILURE;
        }
    };
    let (persist, database, writer, archive) = match store {
        Some(s) => (
            Some(s.persist),
            Some(s.database),
            Some(s.writer),
            Some(s.archive),
        ),
        None => (None, None, None, None),
    };
    // The memory ring: the last hour of samples, the last day of windows (history and
    // stream resumes), refilled from the database in the background.
    let ring = Arc::new(sampler::Ring::new(
        config.live_interval,
        config.persist_interval,
    ));
    if let Some(archive) = &archive {
        tokio::spawn(refill(Arc::clone(&ring), Arc::clone(archive)));
    }

    let probes = probes::HostProbes::new(&config.roots, &config.disk_path);
    let deadline = config.live_interval.min(Duration::from_secs(2));
    let engine = match sampler::Engine::new(probes.into(), gpu, deadline) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the probe threads");
            return ExitCode::FAILURE;
        }
    };

    let limits = api::Limits {
        max_connections: api::connection_budget(),
        ..api::Limits::default()
    };
    // Streams never take the last connections: /health and /metrics must still get in.
    let stream_room = limits.max_connections.saturating_sub(STREAM_RESERVE).max(1);
    if config.max_streams > stream_room {
        tracing::warn!(
            max_streams = config.max_streams,
            serving = stream_room,
            "METRICS_MAX_STREAMS is more than the open-files limit allows; raise it (ulimit -n)"
        );
    }
    let outputs = sampler::Outputs {
        persist,
        ring: Some(Arc::clone(&ring)),
    };
    let state = api::AppState::new(latest, database, config.live_interval, &config.host)
        .with_history(ring, archive.map(|a| a as Arc<dyn sampler::Archive>))
        .with_max_streams(config.max_streams.min(stream_room));
    let state = match &config.web {
        Some(web) => state.with_web_config(web),
        None => state,
    };
    // The Prometheus filesystem series carry the mount's labels (node_exporter's); the
    // mount table is read once, and never touches the filesystem itself.
    let filesystem = probes::mount::mount_of(&config.roots, &config.disk_path).unwrap_or_else(|e| {
        tracing::warn!(
            path = %config.disk_path.display(),
            error = %probes::Unavailable::from(e),
            "cannot find the mount of METRICS_DISK_PATH; its Prometheus series have no device or fstype"
        );
        probes::Mount {
            mountpoint: config.disk_path.display().to_string(),
            ..probes::Mount::default()
        }
    });
    // The probe thread reads, encodes and publishes each tick by itself: an idle tick wakes
    // that one thread, and the HTTP workers sleep until a client comes.
    let encoder = api::Encoder::for_server(&state, filesystem);
    let running = sampler::start(engine, encoder, config.live_interval, publish, outputs);
    tracing::info!(
        listen = %local,
        interval_s = config.live_interval.as_secs_f64(),
        disk = %config.disk_path.display(),
        gpu = ?config.gpu,
        max_connections = limits.max_connections,
        max_streams = config.max_streams,
        tls = config.web.as_ref().and_then(|w| w.client_auth_type()).map_or("off", |c| if c == "NoClientCert" { "on" } else { c }),
        basic_auth = config.web.as_ref().is_some_and(|w| w.basic_auth()),
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
    // The engine hands its last window over and lets go of the writer, which then
    // flushes its queue within its own deadline while the server drains.
    running.stop();
    if let Some(writer) = writer
        && tokio::time::timeout(WRITER_STOP_BOUND, writer)
            .await
            .is_err()
    {
        tracing::warn!("the database writer did not finish in time; windows not written are lost");
    }
    let _ = server.await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// SIGTERM and SIGINT, caught from the moment this is built: it must exist before
/// anything that can hang (GPU discovery) and before the service says it is serving, or a
/// signal sent then would kill the process with the default action.
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// The store as the service uses it: the engine's side of the writer, what `/health`
/// reads of it, its task, and the history reader (its own small pool).
struct Store {
    persist: sampler::Persist,
    database: sampler::DatabaseView,
    writer: tokio::task::JoinHandle<()>,
    archive: Arc<store::HistoryReader>,
}

/// Starts the database writer and the history reader when persistence is on. `None` when
/// `POSTGRES_HOST` is empty.
fn start_store(config: &Config) -> Result<Option<Store>, store::Error> {
    let Some(pg) = &config.postgres else {
        tracing::info!("POSTGRES_HOST is empty: persistence disabled");
        return Ok(None);
    };
    let store_config = store_config(config, pg);
    let mask = |text: &str| pg.password.mask(text);
    tracing::info!(
        host = mask(&pg.host),
        port = pg.port,
        user = mask(&pg.user),
        db = mask(&pg.dbname),
        sslmode = %pg.tls.mode(),
        persist_s = config.persist_interval.as_secs_f64(),
        retention_days = config.retention.as_secs_f64() / 86_400.0,
        queue_windows = store_config.queue_capacity(),
        "persisting to PostgreSQL"
    );
    let archive = Arc::new(store::HistoryReader::new(
        &store_config,
        config.live_interval,
    )?);
    let (handle, status, writer) = store::spawn(store_config)?;
    let persist = sampler::Persist::new(handle, config.persist_interval);
    let database = sampler::DatabaseView::new(status, persist.lost());
    Ok(Some(Store {
        persist,
        database,
        writer,
        archive,
    }))
}

/// How long refilling waits between attempts while the database is away.
const REFILL_RETRY_MIN: Duration = Duration::from_secs(1);
const REFILL_RETRY_MAX: Duration = Duration::from_secs(30);

/// Reads this host's last day of windows back into the ring, once, retrying (with
/// back-off) while the database is away or not migrated yet. The service serves all the
/// while: history answers what memory has, with `partial` where that is not all.
async fn refill(ring: Arc<sampler::Ring>, archive: Arc<store::HistoryReader>) {
    let mut wait = REFILL_RETRY_MIN;
    let mut told = false;
    loop {
        let started = std::time::Instant::now();
        match sampler::refill(&ring, &*archive, std::time::SystemTime::now()).await {
            Ok(n) => {
                tracing::info!(
                    windows = n,
                    took_ms = started.elapsed().as_millis() as u64,
                    "history refilled from the database"
                );
                return;
            }
            Err(e) => {
                if !told {
                    tracing::info!(error = %e, "history not refilled yet; retrying while serving");
                    told = true;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(REFILL_RETRY_MAX);
            }
        }
    }
}

/// The store's settings from the validated configuration.
pub(crate) fn store_config(config: &Config, pg: &crate::config::Postgres) -> store::Config {
    store::Config {
        host: pg.host.clone(),
        port: pg.port,
        user: pg.user.clone(),
        password: pg.password.expose().map(str::to_owned),
        dbname: pg.dbname.clone(),
        tls: pg.tls.clone(),
        metrics_host: config.host.clone(),
        retention: config.retention,
        persist_interval: config.persist_interval,
        flush_deadline: Duration::from_secs(3),
    }
}
