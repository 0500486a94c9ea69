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

/// Fails with one line unless a container engine answers.
pub(crate) fn ensure_engine() -> anyhow::Result<()> {
    if !have("docker") {
        bail!(
            "a container engine is needed: install Docker (apt-get install docker.io) and start dockerd"
        );
    }
    let up = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    if !up.is_ok_and(|o| o.status.success()) {
        bail!("the Docker daemon does not answer: start it (dockerd, or systemctl start docker)");
    }
    Ok(())
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
    let mut docker = Command::new("docker");
    docker
        .current_dir(root())
        .env("DOCKER_BUILDKIT", "1")
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
        util::run(
            Command::new("docker")
                .env("DOCKER_BUILDKIT", "1")
                .args(["build", "-q", "-t", ARTIFACTS])
                .arg(&stage),
        )?;
        docker.args(["--build-arg", &format!("BUILDER={ARTIFACTS}")]);
    }
    util::run(docker.arg("."))
}
