//! `cargo xtask dev`: build and run the service on loopback with a short live interval.

use crate::util::{self, cargo};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut command = cargo();
    command
        .args(["run", "--package", "metrics-collector", "--"])
        .args(args);
    // Development defaults; anything set in the environment or .env wins.
    for (key, value) in [
        ("METRICS_LISTEN", "127.0.0.1:9100"),
        ("RUST_LOG", "info,metrics_collector=debug"),
    ] {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    if std::env::var_os("POSTGRES_HOST").is_none() {
        // Persistence is not built in yet: say so rather than pretending to connect.
        command.env("POSTGRES_HOST", "");
    }
    eprintln!(
        "xtask: serving on http://{}/metrics (Ctrl-C stops it)",
        std::env::var("METRICS_LISTEN").unwrap_or_else(|_| "127.0.0.1:9100".into())
    );
    util::run(&mut command)
}
