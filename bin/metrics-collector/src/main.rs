//! `metrics-collector`: samples the host and serves the numbers over HTTP.
//!
//! `main` maps outcomes to exit codes: 0 done, 1 failed at run time (or an unhealthy
//! `healthcheck`), 2 bad settings or arguments.

use std::process::ExitCode;

mod cli;
mod config;
mod serve;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli::run(&args)
}
