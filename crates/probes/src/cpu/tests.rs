use super::*;

fn times(line: &str) -> CpuTimes {
    parse_stat(line).unwrap()
}

#[test]
fn parses_the_aggregate_line_of_a_real_proc_stat() {
    let text = "cpu  4705 356 584 3699176 23 0 23 0 0 0\n\
                cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n\
                intr 114930548 113199788 3 0 5 263 0 4 [...]\nctxt 1990473\n";
    assert_eq!(
        times(text),
        CpuTimes {
            user: 4705,
            nice: 356,
            system: 584,
            idle: 3699176,
            iowait: 23,
            softirq: 23,
            ..Default::default()
        }
    );
}

#[test]
fn old_kernels_with_fewer_columns_parse() {
    assert_eq!(times("cpu 1 2 3 4\n").idle, 4);
}

#[test]
fn malformed_stat_files_are_errors() {
    for (text, want) in [
        ("", "no aggregate"),
        ("cpu0 1 2 3 4\n", "no aggregate"),
        ("cpu 1 2\n", "2 columns"),
        ("cpu 1 x 3 4\n", "column 2"),
    ] {
        let err = parse_stat(text).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn busy_is_total_less_idle_and_iowait() {
    // (earlier, later, expected percent): psutil cpu_percent on the same counters.
    let cases = [
        (
            "cpu 0 0 0 0 0 0 0 0 0 0",
            "cpu 50 0 0 50 0 0 0 0 0 0",
            Some(50.0),
        ),
        (
            "cpu 0 0 0 0 0 0 0 0 0 0",
            "cpu 10 0 0 60 30 0 0 0 0 0",
            Some(10.0),
        ),
        (
            "cpu 0 0 0 0 0 0 0 0 0 0",
            "cpu 25 25 25 0 0 10 10 5 0 0",
            Some(100.0),
        ),
        // guest time is already inside user: it must not count twice
        (
            "cpu 0 0 0 0 0 0 0 0 0 0",
            "cpu 40 0 0 60 0 0 0 0 40 0",
            Some(40.0),
        ),
        // a counter stepping back (CPU unplugged) is clamped, not negative
        (
            "cpu 100 0 0 100 0 0 0 0 0 0",
            "cpu 90 0 0 200 0 0 0 0 0 0",
            Some(0.0),
        ),
        ("cpu 5 0 0 5 0 0 0 0 0 0", "cpu 5 0 0 5 0 0 0 0 0 0", None),
    ];
    for (a, b, want) in cases {
        assert_eq!(busy_percent(&times(a), &times(b)), want, "{a} -> {b}");
    }
}

#[test]
fn the_probe_reads_deltas_between_calls() {
    let dir = std::env::temp_dir().join(format!("probes-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stat"), "cpu 10 0 0 10 0 0 0 0 0 0\n").unwrap();
    let mut cpu = Cpu::new(&dir);
    std::fs::write(dir.join("stat"), "cpu 40 0 0 20 0 0 0 0 0 0\n").unwrap();
    assert_eq!(cpu.read().unwrap(), 75.0);
    let err = cpu.read().unwrap_err().to_string();
    assert!(err.contains("no CPU time elapsed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_procfs_is_an_error_naming_the_file() {
    let mut cpu = Cpu::new(Path::new("/nonexistent-procfs"));
    let err = crate::Unavailable::from(cpu.read().unwrap_err()).to_string();
    assert!(err.contains("/nonexistent-procfs/stat"), "{err}");
}
