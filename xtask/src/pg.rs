//! The throwaway PostgreSQL behind `cargo xtask dev` and `cargo xtask test`.

use anyhow::{Context, bail};

use crate::util::{ensure_tool_with, is_root};

/// Makes sure the server binaries are installed (apt-get as root), then starts a cluster.
pub(crate) fn start(tag: &str) -> anyhow::Result<devpg::Cluster> {
    if devpg::find_bindir().is_none() {
        if !is_root() {
            bail!(
                "PostgreSQL server binaries are needed: install them with `apt-get install postgresql`"
            );
        }
        ensure_tool_with("postgresql", || devpg::find_bindir().is_some())?;
    }
    let cluster = devpg::Cluster::start(tag).context("starting a throwaway PostgreSQL")?;
    eprintln!(
        "xtask: throwaway PostgreSQL on 127.0.0.1:{} (removed on exit)",
        cluster.port()
    );
    Ok(cluster)
}
