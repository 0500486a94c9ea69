//! `cargo xtask test`: every test of the workspace, with and without default features.

use anyhow::Context;

use crate::util::{self, cargo, ensure_tool, ensure_tool_with};
use crate::{pg, python};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if let [flag] = args
        && flag == "--container"
    {
        return crate::container::smoke();
    }
    // The database fault scenarios make network namespaces, iptables rules and tmpfs
    // mounts: only root can. Said now, in one line, rather than as six failed tests.
    if !util::is_root() {
        anyhow::bail!(
            "cargo xtask test needs root: its fault scenarios use network namespaces, iptables and tmpfs mounts (run it with sudo)"
        );
    }
    // The binary's tests hang a real mount (bindfs, a FUSE filesystem) and starve the
    // service of file descriptors (prlimit).
    ensure_tool("bindfs", "bindfs")?;
    ensure_tool("fusermount", "fuse3")?;
    ensure_tool("prlimit", "util-linux")?;
    // A name server that never answers is reached through a mount namespace of the test's
    // own (unshare), and a stand-in NVML library whose initialisation hangs is compiled (cc).
    ensure_tool("unshare", "util-linux")?;
    ensure_tool("cc", "gcc")?;
    // The database fault scenarios put the collector in a network namespace joined by a
    // veth pair (ip) and drop its packets (iptables); a full disk is a tmpfs (mount).
    ensure_tool("ip", "iproute2")?;
    ensure_tool("iptables", "iptables")?;
    ensure_tool("mount", "mount")?;
    // The systemd unit's sandboxing is scored by `systemd-analyze security` (xtask's tidy
    // test): the tool, not a running systemd.
    ensure_tool("systemd-analyze", "systemd")?;
    // The Prometheus tests run a real server and promtool (both in Debian's prometheus),
    // an OpenMetrics parser and the OpenAPI fuzzer (Python packages, in a venv).
    ensure_tool("prometheus", "prometheus")?;
    ensure_tool("promtool", "prometheus")?;
    // The status page is tested in a real browser: Debian's Chromium, driven by
    // Playwright from the venv (no browser is downloaded).
    ensure_tool("chromium", "chromium")?;
    let python = python::test_venv()?;
    // The store's tests need a real PostgreSQL; each makes its own database on it.
    let cluster = pg::start("test")?;
    util::run(
        cargo()
            .args(["test", "--workspace", "--all-targets"])
            .args(args)
            .env("METRICS_TEST_POSTGRES", cluster.conninfo())
            .env("METRICS_TEST_PYTHON", &python),
    )?;
    // Once more, the store's tests with its connections through PgBouncer in transaction
    // mode, as a fleet reaches one database (no session state, no named statements).
    ensure_tool_with("pgbouncer", || devpg::find_pgbouncer().is_some())?;
    let bouncer = devpg::Bouncer::start(cluster.port(), 1000, 20)
        .context("starting PgBouncer in front of the test PostgreSQL")?;
    eprintln!(
        "xtask: the store's tests again, through PgBouncer (transaction mode) on 127.0.0.1:{}",
        bouncer.port()
    );
    util::run(
        cargo()
            .args(["test", "-p", "store", "--test", "it"])
            .env("METRICS_TEST_POSTGRES", cluster.conninfo())
            .env("METRICS_TEST_POOLER", bouncer.conninfo()),
    )?;
    drop(bouncer);
    let shots = util::root().join("target/screenshots");
    if shots.is_dir() {
        eprintln!(
            "xtask: the status page's screenshots are in {}",
            shots.display()
        );
    }
    // Doc examples and the crate docs compile too.
    util::run(cargo().args(["test", "--workspace", "--doc"]))?;
    util::run(cargo().args([
        "build",
        "--workspace",
        "--all-targets",
        "--no-default-features",
    ]))?;
    Ok(())
}
