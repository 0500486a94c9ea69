//! `cargo xtask test --container`: the image against a real PostgreSQL, as compose runs it.
//!
//! Builds the image (`--local-base`), starts a throwaway PostgreSQL on the host, runs the
//! container with the compose file's host mounts and settings, waits for Docker's health
//! check to say healthy, checks that `/metrics` reports the host's disk (not the
//! container's overlay) and that rows arrive, then `docker stop`s it and checks exit code
//! 0 and the last window flushed.
//!
//! Once more with `METRICS_WEB_CONFIG` (TLS with a certificate made for the run, and
//! `basic_auth_users`), the files mounted read-only: the health check must say healthy,
//! and HTTPS to the same port answers 200 with the password, 401 with a wrong one.
//!
//! Locked down as compose runs it: `--read-only --cap-drop ALL --security-opt
//! no-new-privileges`. Checked from the host, as the kernel sees the container's PID 1
//! (the image has no shell to ask from inside): no capability in any set (`CapEff`,
//! `CapPrm`, `CapBnd` of `/proc/PID/status` all 0), `NoNewPrivs: 1`, and a write to its root
//! filesystem (through `/proc/PID/root`) fails with "read-only file system", while
//! `/metrics` and `/health` answer 200.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::docker::{self, IMAGE};
use crate::pg;
use crate::util;

const NAME: &str = "metrics-collector-smoke";

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .context("running docker")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The container's output (the service logs to stderr).
fn logs() -> String {
    Command::new("docker")
        .args(["logs", NAME])
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
}

fn psql(port: u16, db: &str, sql: &str) -> anyhow::Result<String> {
    let bindir = devpg::find_bindir().context("PostgreSQL binaries")?;
    let out = Command::new(bindir.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-tAc",
            sql,
        ])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!(
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn wait_for(
    what: &str,
    timeout: Duration,
    ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    util::wait_for(what, timeout, Duration::from_millis(250), ready)
}

/// Removes the container whatever happens.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", NAME]).output();
    }
}

pub(crate) fn smoke() -> anyhow::Result<()> {
    let started = Instant::now();
    docker::ensure_engine()?;
    docker::build(true)?;
    let cluster = pg::start("container")?;
    let port = cluster.port();
    psql(port, "postgres", "CREATE DATABASE smoke")?;

    let _ = docker(&["rm", "-f", NAME]);
    let _cleanup = Cleanup;
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let env = [
        format!("METRICS_LISTEN={listen}"),
        "METRICS_INTERVAL_LIVE=0.5".into(),
        "METRICS_INTERVAL_PERSIST=1".into(),
        "METRICS_ROOTFS=/host".into(),
        "METRICS_PROCFS=/host/proc".into(),
        "METRICS_SYSFS=/host/sys".into(),
        "POSTGRES_HOST=127.0.0.1".into(),
        format!("POSTGRES_PORT={port}"),
        "POSTGRES_USER=postgres".into(),
        "POSTGRES_DB=smoke".into(),
        "POSTGRES_PASSWORD=smoke-secret".into(),
    ];
    // As compose does, less `rslave` (it needs / to be a shared mount, which a build
    // sandbox's is not; it only matters for mounts made after start).
    let mut run = vec![
        "run",
        "-d",
        "--name",
        NAME,
        "--network",
        "host",
        "-v",
        "/:/host:ro",
        // As compose runs it (deploy/docker-compose.yml): nothing writable, no capability.
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ];
    run.extend(["--health-interval", "1s", "--health-start-period", "2s"]);
    for e in &env {
        run.extend(["-e", e]);
    }
    run.push(IMAGE);
    docker(&run)?;
    let ran = Instant::now();

    wait_healthy("")?;
    eprintln!(
        "xtask: container healthy {:.1} s after docker run",
        ran.elapsed().as_secs_f64()
    );

    locked_down(listen)?;

    // The host's disk, not the container's overlay.
    let body = http_get(listen, "/metrics")?;
    let total = json_u64(&body, "\"total\":").context("disk.total in /metrics")?;
    let df = Command::new("df")
        .args(["-B1", "--output=size", "/"])
        .output()?;
    let host_total: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap_or("")
        .trim()
        .parse()
        .context("df")?;
    if total != host_total {
        bail!("/metrics disk.total is {total}, the host's / is {host_total}: not the host's disk");
    }
    // Without METRICS_HOST, as compose runs it: the rows carry the host's own name.
    let host_name = std::fs::read_to_string("/etc/hostname")
        .context("reading this host's /etc/hostname")?
        .trim()
        .to_owned();
    wait_for("rows in metrics_cpu", Duration::from_secs(30), || {
        Ok(psql(
            port,
            "smoke",
            &format!("SELECT count(*) FROM metrics_cpu WHERE host = '{host_name}'"),
        )?
        .parse::<u64>()
        .unwrap_or(0)
            >= 2)
    })?;
    let health = http_get(listen, "/health")?;
    if health.contains("smoke-secret") || logs().contains("smoke-secret") {
        bail!("the password leaked into /health or the logs");
    }

    docker(&["stop", "-t", "15", NAME])?;
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", NAME])?;
    if code != "0" {
        bail!("docker stop: exit code {code}; logs:\n{}", logs());
    }
    docker(&["rm", "-f", NAME])?;

    // The same image and settings with METRICS_WEB_CONFIG: HTTPS and a password.
    web_config(&run, listen)?;
    docker(&["rm", "-f", NAME])?;

    // docker stop half-way through a long window: PID 1 gets SIGTERM, flushes the open
    // window (its only row) and exits 0.
    let mut run = run.clone();
    for arg in run.iter_mut() {
        if *arg == "METRICS_INTERVAL_PERSIST=1" {
            *arg = "METRICS_INTERVAL_PERSIST=600";
        }
    }
    let image_at = run.len() - 1;
    run.splice(image_at..image_at, ["-e", "METRICS_HOST=smoke-flush"]);
    docker(&run)?;
    wait_for(
        "three samples in the long window",
        Duration::from_secs(30),
        || {
            let body = http_get(listen, "/health").unwrap_or_default();
            Ok(json_u64(&body, "\"sample_seq\":").is_some_and(|seq| seq >= 3))
        },
    )?;
    let rows = |host: &str| -> anyhow::Result<u64> {
        Ok(psql(
            port,
            "smoke",
            &format!("SELECT count(*) FROM metrics_ram WHERE host = '{host}'"),
        )?
        .parse()
        .unwrap_or(0))
    };
    if rows("smoke-flush")? != 0 {
        bail!("a row was written before the 600 s window closed");
    }
    docker(&["stop", "-t", "15", NAME])?;
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", NAME])?;
    if code != "0" {
        bail!("docker stop: exit code {code}; logs:\n{}", logs());
    }
    let after = rows("smoke-flush")?;
    if after != 1 {
        bail!(
            "docker stop did not flush the open window ({after} rows); logs:\n{}",
            logs()
        );
    }
    let size = docker(&["image", "inspect", "-f", "{{.Size}}", IMAGE])?;
    eprintln!(
        "xtask: container smoke test passed in {:.0} s, image build included (image {:.1} MB, last window flushed, exit 0 on docker stop)",
        started.elapsed().as_secs_f64(),
        size.parse::<f64>().unwrap_or(0.0) / 1e6
    );
    Ok(())
}

/// Waits (60 s at most) for Docker's health check on [`NAME`] to say healthy; an unhealthy
/// or exited container fails at once, with its logs. `with` names the run in messages.
fn wait_healthy(with: &str) -> anyhow::Result<()> {
    wait_for(
        &format!("the health check to turn healthy{with}"),
        Duration::from_secs(60),
        || {
            let status = docker(&["inspect", "-f", "{{.State.Health.Status}}", NAME])?;
            if status == "unhealthy" {
                bail!("the container is unhealthy{with}: {}", logs());
            }
            if docker(&["inspect", "-f", "{{.State.Running}}", NAME])? != "true" {
                bail!("the container exited{with}: {}", logs());
            }
            Ok(status == "healthy")
        },
    )
}

/// The user and password of the TLS run's `basic_auth_users`.
const WEB_USER: &str = "prometheus";
const WEB_PASSWORD: &str = "smoke-web-password";
/// bcrypt of [`WEB_PASSWORD`], cost 4 (made once with the `bcrypt` crate, 0.19:
/// `bcrypt::hash(WEB_PASSWORD, 4)`); the run below checks that it is the right one.
const WEB_PASSWORD_HASH: &str = "$2b$04$Rx/FUh0saxd7SDnXO89UM.rNxv35LFNXyOko7erfft0TPYZ91KV1m";

/// The container once more (`run`, the first run's arguments) with `METRICS_WEB_CONFIG`:
/// `tls_server_config` with a certificate made here (openssl, for 127.0.0.1) and
/// `basic_auth_users`, the files mounted read-only. Docker's health check (the image's
/// `healthcheck`, over TLS to the server's own certificate, a 401 counting as alive) must
/// say healthy; from the host, over HTTPS to the same port (curl trusting only that
/// certificate), the right password gets 200 and a wrong one, or none, 401; plain HTTP
/// gets 400. Then `docker stop`: exit 0.
fn web_config(run: &[&str], listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    util::ensure_tool("openssl", "openssl")?;
    util::ensure_tool("curl", "curl")?;
    let dir = util::root().join("target/container-web");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    util::run(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=metrics-collector-smoke"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null()),
    )?;
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n\
             basic_auth_users:\n  {WEB_USER}: '{WEB_PASSWORD_HASH}'\n"
        ),
    )
    .context("writing target/container-web/web.yml")?;
    // The container runs as 65532: a throwaway key, readable by it.
    for (path, mode) in [(&dir, 0o755), (&cert, 0o644), (&key, 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    let mount = format!("{}:/etc/metrics-collector:ro", dir.display());
    let mut run = run.to_vec();
    let image_at = run.len() - 1;
    run.splice(
        image_at..image_at,
        [
            "-v",
            &mount,
            "-e",
            "METRICS_WEB_CONFIG=/etc/metrics-collector/web.yml",
            "-e",
            "METRICS_HOST=smoke-web",
        ],
    );
    docker(&run)?;
    let ran = Instant::now();
    wait_healthy(" with METRICS_WEB_CONFIG")?;
    eprintln!(
        "xtask: container healthy over TLS with basic auth {:.1} s after docker run",
        ran.elapsed().as_secs_f64()
    );

    let url = format!("https://{listen}/health");
    let status = |user: Option<&str>| -> anyhow::Result<String> {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--max-time", "5", "-o", "/dev/null"])
            .args(["-w", "%{http_code}", "--cacert"])
            .arg(&cert);
        if let Some(user) = user {
            curl.args(["-u", user]);
        }
        let out = curl.arg(&url).output().context("running curl")?;
        if !out.status.success() {
            bail!(
                "curl {url}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let right = format!("{WEB_USER}:{WEB_PASSWORD}");
    // Healthy says only that it answers (401 counts): 503 until the first samples.
    wait_for(
        "GET /health over HTTPS, right password: 200",
        Duration::from_secs(15),
        || match status(Some(&right))?.as_str() {
            "200" => Ok(true),
            "503" => Ok(false),
            other => bail!(
                "GET {url} with the right password: {other}; logs:\n{}",
                logs()
            ),
        },
    )?;
    let wrong = format!("{WEB_USER}:not-{WEB_PASSWORD}");
    for (what, user) in [
        ("a wrong password", Some(wrong.as_str())),
        ("no password", None),
    ] {
        let code = status(user)?;
        if code != "401" {
            bail!("GET {url} with {what}: {code}, expected 401");
        }
    }
    let plain = http_get(listen, "/health")?;
    if !plain.starts_with("HTTP/1.1 400") {
        bail!(
            "plain HTTP to the HTTPS port: {:?}, expected 400",
            plain.lines().next()
        );
    }
    docker(&["stop", "-t", "15", NAME])?;
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", NAME])?;
    if code != "0" {
        bail!("docker stop with TLS: exit code {code}; logs:\n{}", logs());
    }
    eprintln!(
        "xtask: container with METRICS_WEB_CONFIG (TLS, basic auth): healthy, HTTPS 200 with \
         the password, 401 with a wrong one or none, plain HTTP 400, {:.1} s in all",
        ran.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The running container serves `/metrics` and `/health` with no capability, no way to gain
/// one, and a root filesystem it cannot write.
fn locked_down(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    for path in ["/metrics", "/health"] {
        let response = http_get(listen, path)?;
        if !response.starts_with("HTTP/1.1 200") {
            bail!(
                "GET {path} under --read-only --cap-drop ALL: {:?}",
                response.lines().next()
            );
        }
    }
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", NAME])?;
    let status_path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&status_path)
        .with_context(|| format!("reading the container's {status_path}"))?;
    let field = |key: &str| -> anyhow::Result<&str> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .with_context(|| format!("{status_path}: no {key}"))
    };
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        let mask = field(set)?;
        if !mask.trim_start_matches('0').is_empty() {
            bail!("the container's PID 1 has capabilities: {set} {mask}");
        }
    }
    if field("NoNewPrivs")? != "1" {
        bail!("the container's PID 1 runs without no_new_privs");
    }
    // A write to its root filesystem, from the host, through the container's own mounts:
    // the kernel refuses it (EROFS), whoever asks.
    let probe = format!("/proc/{pid}/root/written-by-the-smoke-test");
    match std::fs::write(&probe, b"x") {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()) => {}
        Err(e) => bail!("writing {probe}: expected \"read-only file system\", got: {e}"),
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            bail!("{probe} was written: the container's root filesystem is writable");
        }
    }
    eprintln!(
        "xtask: container runs read-only with no capabilities (CapEff/CapPrm/CapBnd 0, \
         NoNewPrivs 1, a write to / fails with EROFS) and serves /metrics and /health"
    );
    Ok(())
}

/// A GET over plain TCP (no HTTP client crate in xtask).
fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: smoke\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

fn json_u64(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
