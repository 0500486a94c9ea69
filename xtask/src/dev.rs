//! `cargo xtask dev`: build and run the service on loopback, with a throwaway PostgreSQL
//! when no database is configured (in the environment or `./.env`).

use crate::pg;
use crate::util::{self, cargo, root};

/// Whether the developer configured a database themselves.
fn database_configured() -> bool {
    std::env::var_os("POSTGRES_HOST").is_some()
        || std::fs::read_to_string(root().join(".env")).is_ok_and(|env| {
            env.lines()
                .any(|l| l.trim_start().starts_with("POSTGRES_HOST="))
        })
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut command = cargo();
    command
        .args(["run", "--package", "metrics-collector", "--"])
        .args(args);
    // Development defaults; anything set in the environment or .env wins.
    for (key, value) in [("METRICS_LISTEN", "127.0.0.1:9100"), ("RUST_LOG", "info")] {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    // Kept alive until the service exits; stopped and deleted on drop.
    let _cluster = if database_configured() {
        None
    } else {
        let cluster = pg::start("dev")?;
        command
            .env("POSTGRES_HOST", "127.0.0.1")
            .env("POSTGRES_PORT", cluster.port().to_string())
            .env("POSTGRES_USER", "postgres")
            .env("POSTGRES_DB", "postgres");
        Some(cluster)
    };
    let listen = std::env::var("METRICS_LISTEN").unwrap_or_else(|_| "127.0.0.1:9100".into());
    eprintln!("xtask: serving on http://{listen}/metrics (Ctrl-C stops it)");
    util::run(&mut command)
}
