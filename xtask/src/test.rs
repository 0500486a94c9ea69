//! `cargo xtask test`: every test of the workspace, with and without default features.

use crate::util::{self, cargo};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    util::run(
        cargo()
            .args(["test", "--workspace", "--all-targets"])
            .args(args),
    )?;
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
