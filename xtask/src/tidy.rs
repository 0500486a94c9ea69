//! Tidy checks: the workspace's shape, asserted as plain tests (`cargo test -p xtask`).
//! Dependencies point one way (probes ← gpu ← {store, api} ← bin), the runtime-free crates
//! stay runtime-free, and the docs name every crate.

use std::path::Path;

use crate::util::root;

/// The `[dependencies]` names of a member's manifest (not dev-dependencies: tests may use
/// whatever they need).
fn dependencies(member: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join(member).join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once(['=', '.']) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn members() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| format!("crates/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    found.sort();
    found.extend(["bin/metrics-collector".to_owned(), "xtask".to_owned()]);
    found
}

#[test]
fn lower_crates_never_depend_on_higher_ones_or_on_a_runtime() {
    // (crate, what it must never depend on)
    let rules: &[(&str, &[&str])] = &[
        (
            "crates/probes",
            &[
                "gpu",
                "api",
                "store",
                "tokio",
                "hyper",
                "serde_json",
                "tokio-postgres",
                "deadpool-postgres",
            ],
        ),
        (
            "crates/gpu",
            &[
                "api",
                "store",
                "tokio",
                "hyper",
                "serde_json",
                "tokio-postgres",
                "deadpool-postgres",
            ],
        ),
        (
            "crates/api",
            &["store", "tokio-postgres", "deadpool-postgres"],
        ),
    ];
    for (member, forbidden) in rules {
        if !root().join(member).exists() {
            continue;
        }
        let deps = dependencies(member);
        for f in *forbidden {
            assert!(
                !deps.iter().any(|d| d == f),
                "{member} must not depend on {f} (see docs/ARCHITECTURE.md)"
            );
        }
    }
}

#[test]
fn every_member_uses_the_workspace_lints_and_is_unpublished() {
    for member in members() {
        let manifest = std::fs::read_to_string(root().join(&member).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{member}: add [lints] workspace = true"
        );
        assert!(
            manifest.contains("publish.workspace = true"),
            "{member}: publish.workspace = true"
        );
    }
}

#[test]
fn the_architecture_map_names_every_crate() {
    let map = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    for member in members() {
        let name = Path::new(&member)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            map.contains(&format!("`{member}`")) || map.contains(&format!("`{name}`")),
            "docs/ARCHITECTURE.md does not mention {member}"
        );
    }
}

#[test]
fn the_toolchain_is_pinned_to_the_installed_one() {
    let pin = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
    assert!(
        pin.contains("channel = \"1.95.0\""),
        "rust-toolchain.toml must pin 1.95.0"
    );
}

#[test]
fn the_dockerfile_stubs_every_member_and_declared_bench() {
    // Its dependency layer builds from manifests alone: each member needs a stub target and
    // each declared [[bench]] its file, or the image cannot be built from a clean clone.
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    for member in members() {
        assert!(
            dockerfile.contains(&format!("COPY {member}/Cargo.toml")),
            "deploy/Dockerfile does not copy {member}/Cargo.toml"
        );
        let manifest = std::fs::read_to_string(root().join(&member).join("Cargo.toml")).unwrap();
        let mut lines = manifest.lines();
        while let Some(line) = lines.next() {
            if line.trim() == "[[bench]]"
                && let Some(name) = lines.next().and_then(|l| l.trim().strip_prefix("name = "))
            {
                let file = format!("{member}/benches/{}.rs", name.trim_matches('"'));
                assert!(
                    dockerfile.contains(&file),
                    "deploy/Dockerfile does not stub {file}"
                );
            }
        }
    }
}
