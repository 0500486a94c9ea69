//! `cargo xtask <command>`: the project's chores, in Rust so they run wherever cargo does.
//!
//! - `dev`: build and run the service on 127.0.0.1:9100 with a throwaway PostgreSQL when
//!   none is configured (Ctrl-C stops both).
//! - `test`: run every test of the workspace (what CI runs), with a throwaway PostgreSQL.
//! - `migrate`: apply `migrations/` to the database named by POSTGRES_*.
//! - `docker`: build the container image (`--local-base` without a registry).
//! - `bench`: measure the running service against a bare hyper server, same load, same run.
//! - `soak`: run the release service for N minutes under load, watching it for growth.
//!
//! Every command that needs a tool it cannot find ends with one line saying what to install.

use std::process::ExitCode;

mod bench;
#[cfg(test)]
mod citus_lint;
mod container;
mod dev;
mod docker;
mod migrate;
mod pg;
mod python;
mod soak;
mod test;
#[cfg(test)]
mod tidy;
mod util;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match command {
        "dev" => dev::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "soak" => soak::run(rest),
        "migrate" => migrate::run(rest),
        "docker" => docker::run(rest),
        "help" | "-h" | "--help" => {
            eprintln!(
                "usage: cargo xtask <dev | test [--container] | migrate | docker [--local-base] | bench | soak [--minutes N]> [args]\n  dev      run the service locally (with a throwaway PostgreSQL)\n  test     run every test\n  migrate  apply migrations/ to the database named by POSTGRES_*\n  docker   build the container image\n  bench    benchmark the running service against a bare hyper server\n  soak     run the service for N minutes under load and a restarting database, watched for leaks"
            );
            return ExitCode::SUCCESS;
        }
        other => Err(anyhow::anyhow!(
            "unknown command {other:?}: try dev, test, migrate, docker, bench or soak"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
