//! Configuration, in two stages: raw strings from the environment and a `.env` file (the
//! process environment wins), then validated, typed values. The only place in the
//! workspace that reads the environment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(test)]
mod tests;

/// Every setting, validated.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) live_interval: Duration,
    pub(crate) persist_interval: Duration,
    pub(crate) retention: Duration,
    pub(crate) listen: SocketAddr,
    /// The filesystem whose usage is reported, as the host sees it.
    pub(crate) disk_path: PathBuf,
    pub(crate) gpu: gpu::Choice,
    /// Recorded with every persisted row.
    pub(crate) host: String,
    pub(crate) roots: probes::Roots,
    /// Live streams served at once.
    pub(crate) max_streams: usize,
    /// `None` when `POSTGRES_HOST` is empty: persistence is off.
    pub(crate) postgres: Option<Postgres>,
    /// `METRICS_WEB_CONFIG`'s file, read and checked: TLS and basic authentication for the
    /// API. `None`: plain HTTP, open to all, as always.
    pub(crate) web: Option<api::WebConfig>,
}

impl Config {
    /// The database password, to mask what is shown (none without persistence).
    pub(crate) fn password(&self) -> Password {
        self.postgres
            .as_ref()
            .map(|p| p.password.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Postgres {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: Password,
    pub(crate) dbname: String,
    /// `POSTGRES_SSLMODE` with `POSTGRES_SSLROOTCERT`'s certificates, read at start-up.
    pub(crate) tls: store::Tls,
}

/// A password: usable, never shown. `Debug` and `Display` print `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Password(Option<String>);

impl Password {
    pub(crate) fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `text` with every occurrence of the password replaced by `***` (for anything shown
    /// that came from outside: a value, a server's message).
    pub(crate) fn mask(&self, text: &str) -> String {
        mask(text, self.expose())
    }
}

/// `text` with `secret` replaced by `***`, when there is a secret.
fn mask(text: &str, secret: Option<&str>) -> String {
    match secret.filter(|s| !s.is_empty()) {
        Some(s) => text.replace(s, "***"),
        None => text.to_owned(),
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A setting with a bad value: one line naming the variable, the value and what is expected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    #[error("{variable}={}: expected {expected}", quoted(value))]
    Invalid {
        variable: &'static str,
        value: String,
        expected: String,
    },
    /// A `.env` line that cannot be parsed: the line is never echoed (it may hold the
    /// password), only where it is and the variable it seems to set.
    #[error("{path}: line {line}{}: {message}", variable.as_ref().map(|v| format!(" ({v})")).unwrap_or_default())]
    DotEnvLine {
        path: String,
        line: usize,
        variable: Option<String>,
        message: &'static str,
    },
    #[error("{path}: {message}")]
    DotEnv { path: String, message: String },
    /// A file a setting names that cannot be used: what is wrong with it.
    #[error("{variable}={}: {problem}", quoted(value))]
    File {
        variable: &'static str,
        value: String,
        problem: String,
    },
}

impl Error {
    /// The same error with any value that holds the password shown as `***`.
    fn masked(self, password: Option<&str>) -> Self {
        match self {
            Self::Invalid {
                variable,
                value,
                expected,
            } => Self::Invalid {
                variable,
                value: mask(&value, password),
                expected,
            },
            Self::DotEnv { path, message } => Self::DotEnv {
                path,
                message: mask(&message, password),
            },
            other => other,
        }
    }
}

/// `value` quoted as `{:?}` does, cut after its first 64 characters (with its length in
/// bytes) when longer, so the one line stays a line. Shown after masking: a password cut
/// in half could not be found to mask.
fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    match value.char_indices().nth(MAX_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

fn invalid(variable: &'static str, value: &str, expected: impl Into<String>) -> Error {
    Error::Invalid {
        variable,
        value: value.to_owned(),
        expected: expected.into(),
    }
}

/// The variables, with their defaults, as `--help` lists them.
pub(crate) const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "METRICS_INTERVAL_LIVE",
        "5",
        "seconds between samples; decimals allowed (0.5)",
    ),
    (
        "METRICS_INTERVAL_PERSIST",
        "30",
        "seconds per persisted window (>= the live interval)",
    ),
    (
        "METRICS_RETENTION_DAYS",
        "7",
        "days of history kept in PostgreSQL",
    ),
    (
        "METRICS_LISTEN",
        "0.0.0.0:9100",
        "address and port of the HTTP API",
    ),
    (
        "METRICS_DISK_PATH",
        "/",
        "the filesystem whose usage is reported",
    ),
    ("METRICS_GPU_BACKEND", "auto", "auto, nvml, jetson or none"),
    (
        "METRICS_HOST",
        "(the host name)",
        "the host recorded with every row; by default the kernel's name, or in a container METRICS_ROOTFS/etc/hostname",
    ),
    (
        "METRICS_ROOTFS",
        "/",
        "where the host's root filesystem is mounted",
    ),
    (
        "METRICS_PROCFS",
        "/proc",
        "where the host's /proc is mounted",
    ),
    ("METRICS_SYSFS", "/sys", "where the host's /sys is mounted"),
    (
        "METRICS_MAX_STREAMS",
        "1024",
        "live streams (/metrics/stream) served at once",
    ),
    (
        "METRICS_WEB_CONFIG",
        "(none: plain HTTP)",
        "a web configuration file (YAML, node_exporter's --web.config.file format): tls_server_config, basic_auth_users",
    ),
    (
        "POSTGRES_HOST",
        "postgres-db",
        "database host; empty disables persistence",
    ),
    ("POSTGRES_PORT", "5432", "database port"),
    ("POSTGRES_USER", "arasul", "database user"),
    (
        "POSTGRES_PASSWORD",
        "(none)",
        "database password; never printed",
    ),
    ("POSTGRES_DB", "arasul_db", "database name"),
    (
        "POSTGRES_SSLMODE",
        "prefer",
        "TLS to the database, as libpq: disable, prefer, require, verify-ca, verify-full",
    ),
    (
        "POSTGRES_SSLROOTCERT",
        "(none)",
        "CA certificate(s), PEM, that signed the server's (verify-ca, verify-full)",
    ),
];

/// Reads `.env` from `dotenv` (if it exists) and overlays `process_env` on it.
pub(crate) fn load(
    dotenv: &Path,
    process_env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Error> {
    let process_env = ours(process_env);
    let password = process_env.get("POSTGRES_PASSWORD").cloned();
    let mut map = read_dotenv(dotenv).map_err(|e| e.masked(password.as_deref()))?;
    map.extend(process_env);
    from_map(map)
}

/// Our variables among `entries`, under the names `SETTINGS` gives them (a name matches
/// whatever its case, as it always has). Nothing else is kept: the process environment
/// holds whatever the shell exports, and the raw layer reads a name such as
/// `TOOL[4294967295]` as an array index to allocate and `METRICS_LISTEN.x` as a table
/// that hides `METRICS_LISTEN`. When two spellings of one name are given, the exact one
/// wins, else the greatest, so the outcome never depends on a map's order.
fn ours(entries: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    let mut kept: HashMap<String, (String, String)> = HashMap::new();
    for (key, value) in entries {
        let Some((name, _, _)) = SETTINGS
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(&key))
        else {
            continue;
        };
        let rank = |k: &str| (k == *name, k.to_owned());
        match kept.get(*name) {
            Some((held, _)) if rank(held) > rank(&key) => {}
            _ => {
                kept.insert((*name).to_owned(), (key, value));
            }
        }
    }
    kept.into_iter().map(|(name, (_, v))| (name, v)).collect()
}

/// The settings in the `.env` file at `path`; a missing file has none.
fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, Error> {
    match std::fs::read(path) {
        Ok(content) => parse_dotenv(&path.display().to_string(), &content),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(Error::DotEnv {
            path: path.display().to_string(),
            message: format!("cannot read it: {}", e.kind()),
        }),
    }
}

/// Our settings in the content of a `.env` file (`shown` names it in errors). Bytes that
/// are not UTF-8 are refused naming their line, never read as something else.
fn parse_dotenv(shown: &str, content: &[u8]) -> Result<HashMap<String, String>, Error> {
    let text = std::str::from_utf8(content).map_err(|e| {
        let valid = &content[..e.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        Error::DotEnvLine {
            path: shown.to_owned(),
            line,
            variable: variable_of(&String::from_utf8_lossy(&content[start..])),
            message: "is not UTF-8",
        }
    })?;
    let mut entries = Vec::new();
    for entry in dotenvy::from_read_iter(text.as_bytes()) {
        entries.push(entry.map_err(|e| dotenv_error(shown, text, e))?);
    }
    Ok(ours(entries))
}

/// What went wrong with `.env`, without its content: dotenvy's own message quotes the whole
/// line, which may be `POSTGRES_PASSWORD=two words`.
fn dotenv_error(shown: &str, content: &str, e: dotenvy::Error) -> Error {
    let shown = shown.to_owned();
    match e {
        dotenvy::Error::LineParse(value, _) => {
            let (line, text) = failing_line(content, &value).unwrap_or((0, ""));
            Error::DotEnvLine {
                path: shown,
                line,
                variable: variable_of(text),
                message: "cannot be parsed (quote a value that holds spaces, quotes or `#`)",
            }
        }
        dotenvy::Error::Io(io) => Error::DotEnv {
            path: shown,
            message: format!("cannot read it: {}", io.kind()),
        },
        dotenvy::Error::EnvVar(_) => Error::DotEnv {
            path: shown,
            message: "a variable it refers to is not valid".to_owned(),
        },
        _ => Error::DotEnv {
            path: shown,
            message: "cannot be read".to_owned(),
        },
    }
}

/// The line (1-based, and its text) where `.env` stops parsing: the first line holding
/// the start of what dotenvy choked on (a quote left open makes that several lines) where
/// the file cut before it still parses and cut after it no longer does.
fn failing_line<'a>(content: &'a str, value: &str) -> Option<(usize, &'a str)> {
    let lines: Vec<&str> = content.lines().collect();
    let first = value.lines().next().unwrap_or(value).trim_end_matches('\r');
    let parses = |end: usize| {
        let prefix = lines[..end].join("\n");
        dotenvy::from_read_iter(prefix.as_bytes()).all(|entry| entry.is_ok())
    };
    (0..lines.len())
        .filter(|&i| lines[i].contains(first))
        .find(|&i| parses(i) && !parses(i + 1))
        .map(|i| (i + 1, lines[i]))
}

/// The setting a `.env` line sets (`export NAME=...` or `NAME=...`), when it is one of
/// ours: a name we know, never anything else of the line (which may be anything at all).
fn variable_of(line: &str) -> Option<String> {
    let line = line.trim_start();
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (name, _) = line.split_once('=')?;
    let name = name.trim();
    SETTINGS
        .iter()
        .find(|(known, _, _)| known.eq_ignore_ascii_case(name))
        .map(|(known, _, _)| (*known).to_owned())
}

/// Validates raw values. Tests call this with a map; the service with `load`.
pub(crate) fn from_map(map: HashMap<String, String>) -> Result<Config, Error> {
    let map = ours(map);
    let password = map.get("POSTGRES_PASSWORD").cloned();
    validate(map).map_err(|e| e.masked(password.as_deref()))
}

fn validate(map: HashMap<String, String>) -> Result<Config, Error> {
    // The `config` crate holds the raw layer (keys case-insensitive, values as strings).
    let raw = config::Config::builder()
        .add_source(
            config::Environment::default()
                .source(Some(map))
                .try_parsing(false),
        )
        .build()
        .map_err(|e| Error::DotEnv {
            path: "environment".into(),
            message: e.to_string(),
        })?;
    let get = |name: &str| raw.get_string(&name.to_ascii_lowercase()).ok();

    let live_interval = seconds(&get, "METRICS_INTERVAL_LIVE", 5.0)?;
    let persist_interval = seconds(&get, "METRICS_INTERVAL_PERSIST", 30.0)?;
    if persist_interval < live_interval {
        let value = get("METRICS_INTERVAL_PERSIST").unwrap_or_else(|| "30".into());
        return Err(invalid(
            "METRICS_INTERVAL_PERSIST",
            &value,
            format!(
                "seconds >= METRICS_INTERVAL_LIVE ({})",
                live_interval.as_secs_f64()
            ),
        ));
    }
    let retention = match get("METRICS_RETENTION_DAYS") {
        None => Duration::from_secs(7 * 86_400),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(days) if days.is_finite() && days > 0.0 && days <= 3650.0 => {
                Duration::from_secs_f64(days * 86_400.0)
            }
            _ => {
                return Err(invalid(
                    "METRICS_RETENTION_DAYS",
                    &v,
                    "days > 0 (at most 3650)",
                ));
            }
        },
    };
    let listen = match get("METRICS_LISTEN") {
        None => SocketAddr::from(([0, 0, 0, 0], 9100)),
        Some(v) => v.trim().parse().map_err(|_| {
            invalid(
                "METRICS_LISTEN",
                &v,
                "an address and port such as 0.0.0.0:9100 or [::]:9100",
            )
        })?,
    };
    let disk_path = absolute(&get, "METRICS_DISK_PATH", "/")?;
    let gpu = match get("METRICS_GPU_BACKEND") {
        None => gpu::Choice::Auto,
        Some(v) => v
            .parse()
            .map_err(|()| invalid("METRICS_GPU_BACKEND", &v, "auto, nvml, jetson or none"))?,
    };
    let roots = probes::Roots {
        rootfs: absolute(&get, "METRICS_ROOTFS", "/")?,
        procfs: absolute(&get, "METRICS_PROCFS", "/proc")?,
        sysfs: absolute(&get, "METRICS_SYSFS", "/sys")?,
    };
    let host = match get("METRICS_HOST") {
        Some(v) if v.trim().is_empty() => {
            return Err(invalid("METRICS_HOST", &v, "a non-empty host name"));
        }
        Some(v) => v.trim().to_owned(),
        None => host_name(&roots.rootfs),
    };
    let max_streams = match get("METRICS_MAX_STREAMS") {
        None => api::DEFAULT_MAX_STREAMS,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "METRICS_MAX_STREAMS",
                    &v,
                    "a whole number of streams, 1 to 1000000",
                ));
            }
        },
    };
    let web = match get("METRICS_WEB_CONFIG") {
        Some(v) if !v.trim().is_empty() => {
            let path = Path::new(v.trim());
            Some(api::WebConfig::load(path).map_err(|e| Error::File {
                variable: "METRICS_WEB_CONFIG",
                value: v.clone(),
                problem: e.to_string(),
            })?)
        }
        _ => None,
    };
    // Checked even when persistence is off: a typo is reported now, not when it is enabled.
    let port = match get("POSTGRES_PORT") {
        None => 5432,
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(invalid("POSTGRES_PORT", &v, "a port number 1-65535")),
        },
    };
    let sslmode = match get("POSTGRES_SSLMODE") {
        None => store::SslMode::default(),
        Some(v) => v.trim().parse().map_err(|()| {
            invalid(
                "POSTGRES_SSLMODE",
                &v,
                "disable, prefer, require, verify-ca or verify-full",
            )
        })?,
    };
    let root_cert = get("POSTGRES_SSLROOTCERT").filter(|v| !v.trim().is_empty());
    let postgres_host = get("POSTGRES_HOST").unwrap_or_else(|| "postgres-db".into());
    let postgres = if postgres_host.trim().is_empty() {
        None
    } else {
        // Read now: a missing or unreadable CA file is a bad setting, not a later outage.
        let tls = store::Tls::new(sslmode, root_cert.as_deref().map(Path::new)).map_err(|e| {
            match e {
                store::TlsError::NoRootCert(_) => invalid(
                    "POSTGRES_SSLMODE",
                    sslmode.as_str(),
                    "a POSTGRES_SSLROOTCERT as well: verify-ca and verify-full check the server against that CA",
                ),
                store::TlsError::RootCert { reason, .. } => invalid(
                    "POSTGRES_SSLROOTCERT",
                    root_cert.as_deref().unwrap_or_default(),
                    format!("a readable PEM file of CA certificates ({reason})"),
                ),
            }
        })?;
        Some(Postgres {
            host: postgres_host.trim().to_owned(),
            port,
            user: get("POSTGRES_USER").unwrap_or_else(|| "arasul".into()),
            password: Password(get("POSTGRES_PASSWORD")),
            dbname: get("POSTGRES_DB").unwrap_or_else(|| "arasul_db".into()),
            tls,
        })
    };
    Ok(Config {
        live_interval,
        persist_interval,
        retention,
        listen,
        disk_path,
        gpu,
        host,
        roots,
        max_streams,
        postgres,
        web,
    })
}

/// The shortest live interval: CPU counters tick at 100 Hz, so shorter windows read noise.
const MIN_INTERVAL_S: f64 = 0.1;
const MAX_INTERVAL_S: f64 = 86_400.0;

fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: f64,
) -> Result<Duration, Error> {
    let Some(value) = get(variable) else {
        return Ok(Duration::from_secs_f64(default));
    };
    match value.trim().parse::<f64>() {
        Ok(s) if (MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(invalid(
            variable,
            &value,
            format!("seconds >= {MIN_INTERVAL_S} (at most {MAX_INTERVAL_S})"),
        )),
    }
}

fn absolute(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<PathBuf, Error> {
    let value = get(variable).unwrap_or_else(|| default.to_owned());
    let path = PathBuf::from(value.trim());
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(invalid(variable, &value, "an absolute path"))
    }
}

/// The name of the machine whose root filesystem is at `rootfs`. On the host itself
/// (`/`), the kernel's (uname's nodename). In a container the kernel's name is the
/// container's own, random and different on every run, which would scatter one machine's
/// rows over many hosts: the host's `etc/hostname` under `rootfs` names it. `localhost` if
/// neither gives a name.
fn host_name(rootfs: &Path) -> String {
    let from_file = || {
        let text = std::fs::read_to_string(rootfs.join("etc/hostname")).ok()?;
        hostname_file(&text)
    };
    let from_kernel = || {
        let uname = rustix::system::uname();
        let name = uname.nodename().to_string_lossy().trim().to_owned();
        (!name.is_empty()).then_some(name)
    };
    let name = if rootfs == Path::new("/") {
        from_kernel().or_else(from_file)
    } else {
        from_file().or_else(from_kernel)
    };
    name.unwrap_or_else(|| "localhost".to_owned())
}

/// The name in an `/etc/hostname` file: its first line that is not empty or a comment.
fn hostname_file(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
}
