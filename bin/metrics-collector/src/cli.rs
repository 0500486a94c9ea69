//! Subcommands and their exit codes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Config};

/// Exit code for a bad setting or argument.
pub(crate) const BAD_SETTING: u8 = 2;

pub(crate) fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        None | Some("serve") => with_config(crate::serve::serve),
        Some("sample") => with_config(sample),
        Some("healthcheck") => with_config(healthcheck),
        Some("migrate") => with_config(migrate),
        Some("-h" | "--help" | "help") => {
            out(&help());
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            out(&format!(
                "metrics-collector {}\n",
                env!("CARGO_PKG_VERSION")
            ));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("metrics-collector: unknown argument {other:?} (see --help)");
            ExitCode::from(BAD_SETTING)
        }
    }
}

/// Loads the settings from the environment and `./.env`; a bad one ends here with exit 2.
fn with_config(f: fn(Config) -> ExitCode) -> ExitCode {
    // Variables that are not valid UTF-8 cannot be ours: skip them instead of panicking.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    match config::load(Path::new(".env"), env) {
        Ok(config) => f(config),
        Err(e) => {
            eprintln!("metrics-collector: {e}");
            ExitCode::from(BAD_SETTING)
        }
    }
}

/// Standard output is this program's interface for `sample`, `--help` and `--version`.
#[allow(clippy::print_stdout)]
fn out(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

fn help() -> String {
    let mut text = format!(
        "metrics-collector {}: samples CPU, memory, disk, temperature and GPU; serves them over HTTP\n\n\
         Usage: metrics-collector [COMMAND]\n\n\
         Commands:\n  \
           (none)       serve GET /metrics, /health and /gpu on METRICS_LISTEN\n  \
           sample       take one sample, print it as /metrics would, and exit\n  \
           healthcheck  ask the running service's /health; exit 0 when it answers 200, else 1\n  \
           migrate      apply the database migrations (POSTGRES_*) and exit\n  \
           --help, --version\n\n\
         Settings (environment variables, or a .env file in the working directory; the environment wins):\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in config::SETTINGS {
        text.push_str(&format!("  {name:<26} {meaning} [default: {default}]\n"));
    }
    text.push_str("  RUST_LOG                   log filter for stderr [default: info]\n");
    text.push_str("\nExit codes: 0 ok, 1 failure (or unhealthy), 2 bad setting or argument.\n");
    text
}

fn sample(config: Config) -> ExitCode {
    let deadline = crate::serve::GPU_DISCOVERY_DEADLINE;
    let gpu = match sampler::discover_gpu(config.gpu, &config.roots, deadline) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "metrics-collector: METRICS_GPU_BACKEND=\"{}\": {e}",
                config.gpu.as_str()
            );
            return ExitCode::from(BAD_SETTING);
        }
    };
    let probes = probes::HostProbes::new(&config.roots, &config.disk_path);
    let mut engine = match sampler::Engine::new(probes.into(), gpu, Duration::from_secs(5)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("metrics-collector: starting the probe threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The CPU percentage needs two readings of the counters: wait as the service's first
    // tick does.
    std::thread::sleep(sampler::first_tick_delay(config.live_interval));
    let snapshot = engine.sample();
    let bodies = api::Bodies::of(&snapshot);
    out(&format!("{}\n", String::from_utf8_lossy(bodies.metrics())));
    for (name, family) in snapshot.families.named() {
        if let Some(e) = &family.error {
            eprintln!("{name}: {}", e.reason());
        }
    }
    ExitCode::SUCCESS
}

fn migrate(config: Config) -> ExitCode {
    let Some(pg) = &config.postgres else {
        eprintln!("metrics-collector: POSTGRES_HOST is empty: no database to migrate");
        return ExitCode::from(BAD_SETTING);
    };
    let store_config = crate::serve::store_config(&config, pg);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("metrics-collector: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(store::migrate_database(&store_config)) {
        Ok(()) => {
            eprintln!(
                "metrics-collector: migrations applied to {} on {}:{}",
                pg.dbname, pg.host, pg.port
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "metrics-collector: migrating {} on {}:{}: {}",
                pg.dbname,
                pg.host,
                pg.port,
                pg.password.mask(&e.summary())
            );
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 when our `/health` answers 200. With the web configuration's TLS, over TLS to
/// the server's own certificate. The health check has no password (the file holds only
/// hashes) and no client certificate: when `basic_auth_users` is set, a 401 from the server
/// counts as alive; when a client certificate is required, the server refusing the
/// handshake for want of one (after proving it holds the key of its own certificate)
/// counts as alive. Either way it then cannot see a `503` (no sample for three intervals).
fn healthcheck(config: Config) -> ExitCode {
    let address = api::local_address(config.listen);
    let web = config.web.as_ref();
    let scheme = if web.is_some_and(api::WebConfig::tls) {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{address}/health");
    match api::health_status(address, Duration::from_secs(3), web) {
        Ok(api::Health::Status(200)) => ExitCode::SUCCESS,
        Ok(api::Health::Status(401)) if web.is_some_and(api::WebConfig::basic_auth) => {
            ExitCode::SUCCESS
        }
        Ok(api::Health::NeedsClientCertificate) => ExitCode::SUCCESS,
        Ok(api::Health::Status(status)) => {
            eprintln!("metrics-collector healthcheck: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("metrics-collector healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
