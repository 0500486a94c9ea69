//! `cargo xtask docker [--local-base]`: build the container image `metrics-collector:latest`
//! from `deploy/Dockerfile`.
//!
//! `--local-base` is for machines without an image registry: the binary is built here
//! with the pinned toolchain, laid out by `deploy/rootfs.sh`, wrapped in a local image,
//! and passed to the Dockerfile as `BUILDER`, so the runtime stage users get is the one
//! built and tested.

use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{self, cargo, have, root};

pub(crate) const IMAGE: &str = "metrics-collector:latest";
const ARTIFACTS: &str = "metrics-collector-artifacts:local";

/// The docker CLI to build with. The Dockerfile needs BuildKit (it skips the Rust stage
/// when `BUILDER` is given); Docker 23+ CLIs reach it only through the buildx plugin, 20.x
/// ones (Debian's `docker.io`) have it built in. So: `docker` when buildx answers, else
/// Debian's `/usr/bin/docker` when present.
pub(crate) fn cli() -> Command {
    let buildx = Command::new("docker")
        .args(["buildx", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let program = if !buildx && std::path::Path::new("/usr/bin/docker").is_file() {
        "/usr/bin/docker"
    } else {
        "docker"
    };
    let mut c = Command::new(program);
    c.env("DOCKER_BUILDKIT", "1");
    c
}

fn daemon_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes sure a container engine answers: as root on Debian, installs `docker.io` and
/// starts `dockerd` when needed; otherwise fails with one line saying what to do.
pub(crate) fn ensure_engine() -> anyhow::Result<()> {
    if !have("docker") || !have("dockerd") {
        util::ensure_tool_with("docker.io", || have("docker") && have("dockerd"))
            .context("a container engine is needed: install Docker (apt-get install docker.io) and start dockerd")?;
    }
    if daemon_answers() {
        return Ok(());
    }
    if !util::is_root() {
        bail!("the Docker daemon does not answer: start it (dockerd, or systemctl start docker)");
    }
    eprintln!("xtask: starting dockerd (log: target/dockerd.log)");
    std::fs::create_dir_all(root().join("target")).context("creating target/")?;
    let log = std::fs::File::create(root().join("target/dockerd.log"))
        .context("creating target/dockerd.log")?;
    Command::new("dockerd")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting dockerd")?;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        if daemon_answers() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    bail!("dockerd did not answer within 60 s: see target/dockerd.log")
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let local = match args {
        [] => false,
        [flag] if flag == "--local-base" => true,
        other => bail!("unknown arguments {other:?}: cargo xtask docker [--local-base]"),
    };
    ensure_engine()?;
    build(local)?;
    let size = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Size}}", IMAGE])
        .output()?;
    let bytes: f64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    eprintln!("xtask: built {IMAGE}: {:.1} MB", bytes / 1e6);
    Ok(())
}

pub(crate) fn build(local: bool) -> anyhow::Result<()> {
    let mut docker = cli();
    docker
        .current_dir(root())
        .args(["build", "-f", "deploy/Dockerfile", "-t", IMAGE]);
    if local {
        util::run(cargo().args(["build", "--release", "--locked", "-p", "metrics-collector"]))?;
        let stage = root().join("target/docker");
        let _ = std::fs::remove_dir_all(&stage);
        std::fs::create_dir_all(&stage).context("creating target/docker")?;
        util::run(
            Command::new("sh")
                .arg(root().join("deploy/rootfs.sh"))
                .arg(root().join("target/release/metrics-collector"))
                .arg(stage.join("out/rootfs")),
        )?;
        std::fs::write(stage.join("Dockerfile"), "FROM scratch\nCOPY out/ /out/\n")
            .context("writing target/docker/Dockerfile")?;
        util::run(cli().args(["build", "-q", "-t", ARTIFACTS]).arg(&stage))?;
        docker.args(["--build-arg", &format!("BUILDER={ARTIFACTS}")]);
    }
    util::run(docker.arg("."))
}
