//! `cargo xtask migrate`: apply `migrations/` to the database named by POSTGRES_* (the
//! environment or `./.env`), through the service's own `migrate` command.

use crate::util::{self, cargo};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    util::run(
        cargo()
            .args([
                "run",
                "--quiet",
                "--package",
                "metrics-collector",
                "--",
                "migrate",
            ])
            .args(args),
    )
}
