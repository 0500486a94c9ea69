//! Subcommands and their exit codes.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Config};

/// Exit code for a bad setting or argument.
const BAD_SETTING: u8 = 2;

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
    let gpu = match gpu::select(config.gpu, &config.roots) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "metrics-collector: METRICS_GPU_BACKEND=\"{}\": {e}",
                config.gpu.as_str()
            );
            return ExitCode::from(BAD_SETTING);
        }
    };
    let host = probes::HostProbes::new(&config.roots, &config.disk_path);
    // The CPU percentage needs two readings of the counters: wait as the service's first
    // tick does.
    std::thread::sleep(crate::sampler::first_tick_delay(config.live_interval));
    let mut sampler = match crate::sampler::HostSampler::for_host(host, gpu, Duration::from_secs(5))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("metrics-collector: starting the probe threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("metrics-collector: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let published = runtime.block_on(sampler.tick());
    out(&format!(
        "{}\n",
        String::from_utf8_lossy(published.metrics_body())
    ));
    for probe in &published.snapshot.probes {
        if let Some(e) = &probe.error {
            eprintln!("{}: {}", probe.name, e.reason());
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
                e.summary()
            );
            ExitCode::FAILURE
        }
    }
}

/// Where to reach our own API: the listen address, with a wildcard turned into loopback.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

fn healthcheck(config: Config) -> ExitCode {
    let address = local_address(config.listen);
    match get_status(address, "/health", Duration::from_secs(3)) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("metrics-collector healthcheck: http://{address}/health answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("metrics-collector healthcheck: http://{address}/health: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal HTTP/1.1 GET with a deadline on every step; returns the status code.
fn get_status(address: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < 12 {
        let n = stream.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(&head[..filled])
        .ok()
        .and_then(|s| s.split_ascii_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}
