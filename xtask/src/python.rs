//! The Python the tests call: a venv under `target/` with the packages pinned in
//! `tests/openapi/requirements.txt` (schemathesis for the OpenAPI check, prometheus-client
//! for its OpenMetrics parser), made once and remade when that file changes.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::util::{self, ensure_tool, ensure_tool_with, root};

/// The venv's `python`, made (or remade) first when needed.
pub(crate) fn test_venv() -> anyhow::Result<PathBuf> {
    ensure_tool("python3", "python3")?;
    // Debian splits venv's pip bootstrap into its own package.
    ensure_tool_with("python3-venv", || {
        Command::new("python3")
            .args(["-c", "import venv, ensurepip"])
            .status()
            .is_ok_and(|s| s.success())
    })
    .context("python3 -m venv is needed: install it with `apt-get install python3-venv`")?;
    let requirements = root().join("tests/openapi/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let dir = root().join("target/test-venv");
    let python = dir.join("bin/python");
    let stamp = dir.join("requirements.txt");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|had| had == wanted) {
        return Ok(python);
    }
    eprintln!("xtask: making the test venv at {}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    util::run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    // Written last: a venv whose install failed half-way is made again next time.
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}
