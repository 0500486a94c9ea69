//! Small helpers shared by the commands.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// `cargo` as invoked by the user (respects the toolchain file).
pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command to completion; a non-zero exit is an error naming it.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Polls `ready` every `every` until it says yes; an error once `within` has passed.
pub(crate) fn wait_for(
    what: &str,
    within: Duration,
    every: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < within {
        if ready()? {
            return Ok(());
        }
        std::thread::sleep(every);
    }
    bail!("timed out after {within:?} waiting for {what}")
}

/// True when `program` is on PATH.
pub(crate) fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Makes sure a Debian package's program is there: installs it with apt-get when running
/// as root, else fails with one line saying what to install.
pub(crate) fn ensure_tool(program: &str, package: &str) -> anyhow::Result<()> {
    if have(program) {
        return Ok(());
    }
    ensure_tool_with(package, || have(program)).with_context(|| {
        format!("{program} is needed: install it with `apt-get install {package}`")
    })
}

/// Installs `package` with apt-get (as root) unless `present` already holds, and checks
/// `present` afterwards.
pub(crate) fn ensure_tool_with(package: &str, present: impl Fn() -> bool) -> anyhow::Result<()> {
    if present() {
        return Ok(());
    }
    if !is_root() || !have("apt-get") {
        bail!("install it with `apt-get install {package}`");
    }
    eprintln!("xtask: installing the {package} package");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if !present() {
        bail!("installed {package}, but it is still not usable");
    }
    Ok(())
}

/// Whether we run as root (`id -u` says, no syscall crate needed).
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
