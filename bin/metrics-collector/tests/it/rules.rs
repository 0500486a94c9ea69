//! The example Prometheus setup in `deploy/prometheus/`: the scrape configuration is valid,
//! the alerting rules are valid and pass their unit tests (`alerts.test.yml`), and the
//! rules are not vacuous: enough of them, each tested firing and not firing, each naming
//! only families the collector exposes (SPEC §8).
//!
//! promtool is `$METRICS_TEST_PROMTOOL`, else `promtool` on `PATH`. Without it these tests
//! fail with a line naming `cargo xtask test`; they never pass silently.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::harness::tool;

/// Fewer alerting rules than this means alerts.yml lost some.
const MIN_RULES: usize = 10;

/// The families of SPEC §8 (and Prometheus' own `up`): a rule naming anything else
/// watches a series that never exists and can never fire.
const FAMILIES: &[&str] = &[
    "up",
    "metrics_collector_cpu_usage_ratio",
    "metrics_collector_cpu_seconds_total",
    "metrics_collector_memory_total_bytes",
    "metrics_collector_memory_available_bytes",
    "metrics_collector_memory_usage_ratio",
    "metrics_collector_filesystem_size_bytes",
    "metrics_collector_filesystem_free_bytes",
    "metrics_collector_filesystem_avail_bytes",
    "metrics_collector_filesystem_usage_ratio",
    "metrics_collector_temperature_celsius",
    "metrics_collector_gpu_utilization_ratio",
    "metrics_collector_gpu_memory_used_bytes",
    "metrics_collector_gpu_memory_total_bytes",
    "metrics_collector_gpu_temperature_celsius",
    "metrics_collector_gpu_power_watts",
    "metrics_collector_gpu_power_limit_watts",
    "metrics_collector_build_info",
    "metrics_collector_last_sample_timestamp_seconds",
    "metrics_collector_samples_total",
    "metrics_collector_probe_up",
    "metrics_collector_probe_duration_seconds",
    "metrics_collector_probe_errors_total",
    "metrics_collector_database_up",
    "metrics_collector_persist_queue_windows",
    "metrics_collector_windows_written_total",
    "metrics_collector_windows_dropped_total",
    "metrics_collector_streams",
];

/// The repository root: `CARGO_MANIFEST_DIR` is `bin/metrics-collector`.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `promtool ARGS` run in the repository root.
fn promtool(args: &[&str]) -> Output {
    let program = tool(
        "METRICS_TEST_PROMTOOL",
        "promtool",
        "the Debian package prometheus",
    );
    Command::new(&program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"))
}

/// `promtool ARGS`, which must exit 0; its stdout and stderr together.
fn promtool_ok(args: &[&str]) -> String {
    let out = promtool(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`promtool {}` failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        args.join(" "),
        out.status
    );
    format!("{stdout}{stderr}")
}

/// The names after `- alert:` in alerts.yml, in order.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The alert names of alerts.test.yml's cases that expect firing alerts, and of those that
/// expect none (`exp_alerts: []`).
fn tested_alerts(tests: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    let mut current = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
            let name = current
                .take()
                .unwrap_or_else(|| panic!("`exp_alerts` without an `alertname` before it"));
            if rest.trim() == "[]" {
                silent.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    (firing, silent)
}

/// The metric names in the `expr:` lines of alerts.yml: identifiers outside `{...}` and
/// `[...]` that are neither function calls nor PromQL keywords.
fn expr_families(rules: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "on",
        "ignoring",
        "by",
        "without",
        "bool",
        "offset",
        "group_left",
        "group_right",
    ];
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut names = BTreeSet::new();
    for expr in rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")) {
        // label matchers and range durations hold no metric names
        let mut depth = 0;
        let bare: String = expr
            .chars()
            .filter(|&c| {
                match c {
                    '{' | '[' => depth += 1,
                    '}' | ']' => depth -= 1,
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        let mut rest = bare.as_str();
        while let Some(start) = rest.find(word_char) {
            let word = &rest[start..];
            let (word, after) = word.split_at(word.find(|c| !word_char(c)).unwrap_or(word.len()));
            rest = after;
            // a number (`0.9`, `1e9`) starts with a digit; a call is followed by `(`
            let is_name = word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            if is_name && !after.trim_start().starts_with('(') && !KEYWORDS.contains(&word) {
                names.insert(word.to_owned());
            }
        }
    }
    names
}

#[test]
fn scrape_config_is_valid() {
    let out = promtool_ok(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    assert!(
        out.contains("1 rule files found"),
        "prometheus.yml should load alerts.yml:\n{out}"
    );
}

#[test]
fn alerting_rules_are_valid() {
    promtool_ok(&["check", "rules", "deploy/prometheus/alerts.yml"]);
}

#[test]
fn alerting_rules_pass_their_unit_tests() {
    promtool_ok(&["test", "rules", "deploy/prometheus/alerts.test.yml"]);
}

#[test]
fn alerting_rules_are_not_vacuous() {
    let out = promtool_ok(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    // "  SUCCESS: 12 rules found"
    let found: usize = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("SUCCESS: ")?
                .strip_suffix(" rules found")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"SUCCESS: N rules found\" from promtool:\n{out}"));
    assert!(
        found >= MIN_RULES,
        "alerts.yml has {found} rules, expected at least {MIN_RULES}"
    );

    let rules = read("deploy/prometheus/alerts.yml");
    let names = alert_names(&rules);
    assert_eq!(
        names.len(),
        found,
        "`- alert:` lines {names:?} disagree with promtool's count"
    );
    let unique: BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate alert names: {names:?}"
    );

    let (firing, silent) = tested_alerts(&read("deploy/prometheus/alerts.test.yml"));
    for name in &unique {
        assert!(
            firing.contains(name),
            "alerts.test.yml has no case where {name} fires"
        );
        assert!(
            silent.contains(name),
            "alerts.test.yml has no case where {name} does not fire"
        );
    }
    let untested: Vec<_> = firing
        .union(&silent)
        .filter(|n| !unique.contains(*n))
        .collect();
    assert!(
        untested.is_empty(),
        "alerts.test.yml tests alerts that alerts.yml lacks: {untested:?}"
    );

    let families = expr_families(&rules);
    let unknown: Vec<_> = families
        .iter()
        .filter(|f| !FAMILIES.contains(&f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "alerts.yml names families the collector does not expose (SPEC §8): {unknown:?}"
    );
    assert!(
        families.len() >= MIN_RULES,
        "only {families:?} found in the `expr:` lines; is the scan broken?"
    );
}
