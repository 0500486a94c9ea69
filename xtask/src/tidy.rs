//! Tidy checks: the workspace's shape, asserted as plain tests (`cargo test -p xtask`).
//! Dependencies point one way (probes ← gpu ← sampler ← {store, api} ← bin), the
//! runtime-free crates stay runtime-free, and the docs name every crate.

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

/// The layers, lowest first: a crate may depend on crates of lower layers only.
const LAYERS: &[(&str, u8)] = &[
    ("probes", 0),
    ("gpu", 1),
    ("sampler", 2),
    ("store", 3),
    ("api", 3),
    ("metrics-collector", 4),
];

fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

fn package_name(member: &str) -> String {
    let manifest = std::fs::read_to_string(root().join(member).join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

#[test]
fn dependencies_point_one_way_probes_gpu_sampler_then_store_and_api_then_the_binary() {
    for member in members() {
        let name = package_name(&member);
        let deps = dependencies(&member);
        for dep in &deps {
            // Development tools are for tests and xtask only.
            assert!(
                !(dep == "testkit" || (dep == "devpg" && name != "xtask")),
                "{member} depends on {dep}: a [dev-dependencies] entry only"
            );
            if let (Some(mine), Some(theirs)) = (layer(&name), layer(dep)) {
                assert!(
                    theirs < mine,
                    "{member} ({name}) must not depend on {dep}: dependencies point from \
                     the binary down to probes (see docs/ARCHITECTURE.md)"
                );
            }
        }
    }
    // The engine sits below both readers of what it publishes, which never see each other.
    for reader in ["crates/api", "crates/store"] {
        assert!(
            dependencies(reader).iter().any(|d| d == "sampler"),
            "{reader} reads the engine's types from sampler"
        );
    }
}

#[test]
fn lower_crates_never_depend_on_a_runtime_http_or_sql() {
    // (crate, what it must never depend on)
    let rules: &[(&str, &[&str])] = &[
        (
            "crates/probes",
            &[
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
                "tokio",
                "hyper",
                "serde_json",
                "tokio-postgres",
                "deadpool-postgres",
            ],
        ),
        (
            // tokio for its sync channels only: the engine runs no runtime.
            "crates/sampler",
            &[
                "hyper",
                "hyper-util",
                "http",
                "serde_json",
                "tokio-postgres",
                "deadpool-postgres",
                "refinery",
            ],
        ),
        ("crates/api", &["tokio-postgres", "deadpool-postgres"]),
        ("crates/store", &["hyper", "http"]),
    ];
    for (member, forbidden) in rules {
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
fn compose_keeps_the_service_internal_and_learns_the_host_name() {
    let compose = std::fs::read_to_string(root().join("deploy/docker-compose.yml")).unwrap();
    let active: Vec<&str> = compose
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        !active.iter().any(|l| l.trim() == "ports:"),
        "deploy/docker-compose.yml publishes a port: the service is internal, publishing \
         it is the operator's choice (commented, on 127.0.0.1)"
    );
    assert!(
        !active.iter().any(|l| l.contains("METRICS_HOST")),
        "deploy/docker-compose.yml sets METRICS_HOST: a fallback there names every machine \
         alike; unset, the service reads the host's own name under METRICS_ROOTFS"
    );
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

/// The systemd unit's sandboxing as `systemd-analyze security` scores it (0 is locked down,
/// 10 fully exposed; node_exporter's example unit scores 9.2): at most 2.0. Offline, so it
/// scores the file as written, on any machine with systemd's tools, systemd running or not.
#[test]
fn the_systemd_unit_scores_at_most_2_0_in_systemd_analyze_security() {
    let unit = root().join("deploy/metrics-collector.service");
    let output = match std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("systemd-analyze is needed: install it with `apt-get install systemd`")
        }
        Err(e) => panic!("running systemd-analyze: {e}"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            let rest = l.split_once("Overall exposure level for ")?.1;
            rest.split_once(": ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure level in systemd-analyze's output ({}):\n{text}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let exposed: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    assert!(
        score <= 2.0,
        "{} scores {score} (at most 2.0 wanted); still exposed:\n{}",
        unit.display(),
        exposed.join("\n")
    );
}
