//! SPEC §4: settings from the environment and `.env`; a bad one stops start-up with exit 2
//! and one line.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Service, TempDir, command, wait_for};

/// Runs the binary with `env` and returns its exit code and standard error.
pub(crate) fn run_to_exit(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    run_to_exit_in(&TempDir::new("bad").0, env, args)
}

/// As `run_to_exit`, in `dir` (where a `.env` may wait).
fn run_to_exit_in(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Option<i32>, String) {
    let mut child = command(dir, env)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for(Duration::from_secs(10), "the binary to exit", || {
        child.try_wait().unwrap()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn every_bad_setting_exits_2_with_one_line_naming_it() {
    let cases: &[(&str, &str)] = &[
        ("METRICS_INTERVAL_LIVE", "abc"),
        ("METRICS_INTERVAL_LIVE", "0"),
        ("METRICS_INTERVAL_LIVE", "-1"),
        ("METRICS_INTERVAL_PERSIST", "fast"),
        ("METRICS_INTERVAL_PERSIST", "1"), // shorter than the live interval of 5 s
        ("METRICS_RETENTION_DAYS", "-7"),
        ("METRICS_LISTEN", "not-an-address"),
        ("METRICS_LISTEN", "127.0.0.1"),
        ("METRICS_DISK_PATH", "relative/path"),
        ("METRICS_GPU_BACKEND", "cuda"),
        ("METRICS_PROCFS", "proc"),
        ("POSTGRES_PORT", "70000"),
        ("POSTGRES_SSLMODE", "verify"),
        ("POSTGRES_SSLMODE", "allow"),
    ];
    for (variable, value) in cases {
        let (code, stderr) = run_to_exit(&[(variable, value)], &[]);
        assert_eq!(code, Some(2), "{variable}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{variable}={value}: one line, got {stderr:?}"
        );
        assert!(
            lines[0].contains(variable) && lines[0].contains(value),
            "{variable}={value}: {stderr}"
        );
        assert!(lines[0].contains("expected"), "{stderr}");
    }
}

#[test]
fn asking_for_a_gpu_backend_that_is_not_there_exits_2() {
    for backend in ["nvml", "jetson"] {
        let (code, stderr) = run_to_exit(&[("METRICS_GPU_BACKEND", backend)], &[]);
        assert_eq!(code, Some(2), "{backend}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("METRICS_GPU_BACKEND") && stderr.contains(backend),
            "{stderr}"
        );
    }
}

#[test]
fn an_unknown_argument_exits_2() {
    let (code, stderr) = run_to_exit(&[], &["--frobnicate"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--frobnicate"), "{stderr}");
}

#[test]
fn a_bad_setting_in_dotenv_is_reported_the_same_way() {
    let dir = TempDir::new("dotenv-bad");
    std::fs::write(dir.0.join(".env"), "METRICS_INTERVAL_LIVE=soon\n").unwrap();
    let (code, stderr) = run_to_exit_in(&dir.0, &[], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("METRICS_INTERVAL_LIVE=\"soon\""),
        "{stderr}"
    );
}

#[test]
fn decimal_intervals_sample_that_often() {
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.2"),
        ("METRICS_INTERVAL_PERSIST", "0.4"),
    ])
    .ready();
    let first = svc.json("/health")["sample_seq"].as_u64().unwrap();
    let started = std::time::Instant::now();
    // Ten more samples at 0.2 s arrive in about 2 s; at the 5 s default it would take 50.
    wait_for(Duration::from_secs(6), "ten more samples", || {
        (svc.json("/health")["sample_seq"].as_u64().unwrap() >= first + 10).then_some(())
    });
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "not faster than asked either"
    );
}

#[test]
fn dotenv_is_read_and_the_process_environment_wins() {
    let dir = TempDir::new("dotenv");
    std::fs::write(
        dir.0.join(".env"),
        "# settings for this host\nMETRICS_INTERVAL_LIVE=0.3\nMETRICS_HOST=from-dotenv\n",
    )
    .unwrap();
    let svc = Service::start_in(&dir.0, &[("METRICS_HOST", "from-environment")]).ready();
    let h = svc.json("/health");
    assert_eq!(h["interval_seconds"], 0.3, "from .env");
    assert_eq!(
        h["host"], "from-environment",
        "the environment wins over .env"
    );
}

#[test]
fn a_malformed_dotenv_line_stops_start_up_without_showing_the_password() {
    let dir = TempDir::new("dotenv-password");
    std::fs::write(
        dir.0.join(".env"),
        "POSTGRES_HOST=db\nPOSTGRES_PASSWORD=two words\n",
    )
    .unwrap();
    let (code, stderr) = run_to_exit_in(&dir.0, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(".env")
            && stderr.contains("line 2")
            && stderr.contains("POSTGRES_PASSWORD"),
        "names the file, the line and the variable: {stderr}"
    );
    assert!(
        !stderr.contains("two") && !stderr.contains("words"),
        "the password leaked: {stderr}"
    );
}

#[test]
fn in_a_container_the_host_name_is_the_hosts_not_the_containers() {
    let root = TempDir::new("rootfs");
    std::fs::create_dir_all(root.0.join("etc")).unwrap();
    std::fs::write(root.0.join("etc/hostname"), "edge-host-42\n").unwrap();
    let svc = Service::start(&[("METRICS_ROOTFS", root.0.to_str().unwrap())]).ready();
    assert_eq!(svc.json("/health")["host"], "edge-host-42");
}
