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
            Ok(50.0),
        ),
        (
            "cpu 0 0 0 0 0 0 0 0 0 0",
            "cpu 10 0 0 60 30 0 0 0 0 0",
            Ok(10.0),
        ),
        (
            "cpu 0 0 0 0 0 0 0 0 0 0",
            "cpu 25 25 25 0 0 10 10 5 0 0",
            Ok(100.0),
        ),
        // guest time is already inside user: it must not count twice
        (
            "cpu 0 0 0 0 0 0 0 0 0 0",
            "cpu 40 0 0 60 0 0 0 0 40 0",
            Ok(40.0),
        ),
        (
            "cpu 5 0 0 5 0 0 0 0 0 0",
            "cpu 5 0 0 5 0 0 0 0 0 0",
            Err(NoPercent::NoTimeElapsed),
        ),
    ];
    for (a, b, want) in cases {
        assert_eq!(busy_percent(&times(a), &times(b)), want, "{a} -> {b}");
    }
}

#[test]
fn a_counter_stepping_back_gives_no_percentage() {
    // (earlier, later, the counter that stepped back). Clamped at zero, the first would
    // read 100 % (idle lost when a CPU goes offline), the second 0 %.
    let cases = [
        (
            "cpu 100 0 50 9000 10 0 0 0 0 0",
            "cpu 150 0 60 8000 10 0 0 0 0 0",
            "idle",
        ),
        (
            "cpu 100 0 0 100 0 0 0 0 0 0",
            "cpu 90 0 0 200 0 0 0 0 0 0",
            "user",
        ),
        (
            "cpu 1 0 0 1 500 0 0 0 0 0",
            "cpu 9 0 0 9 400 0 0 0 0 0",
            "iowait",
        ),
        (
            "cpu 1 0 0 1 0 0 0 70 0 0",
            "cpu 9 0 0 9 0 0 0 60 0 0",
            "steal",
        ),
    ];
    for (a, b, counter) in cases {
        match busy_percent(&times(a), &times(b)) {
            Err(NoPercent::SteppedBack { counter: c, .. }) => assert_eq!(c, counter, "{a} -> {b}"),
            other => panic!("{a} -> {b}: {other:?}"),
        }
    }
}

#[test]
fn the_probe_reports_a_step_back_then_measures_from_the_new_counters() {
    let dir = std::env::temp_dir().join(format!("probes-cpu-back-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("stat"),
        "cpu 100 0 0 900 0 0 0 0 0 0
",
    )
    .unwrap();
    let mut cpu = Cpu::new(&dir);
    // A CPU goes offline: its idle time leaves the aggregate.
    std::fs::write(
        dir.join("stat"),
        "cpu 150 0 0 500 0 0 0 0 0 0
",
    )
    .unwrap();
    let err = cpu.read().unwrap().percent.unwrap_err().to_string();
    assert!(
        err.contains("idle counter went backwards (900 -> 500") && err.contains("/stat"),
        "{err}"
    );
    std::fs::write(
        dir.join("stat"),
        "cpu 160 0 0 590 0 0 0 0 0 0
",
    )
    .unwrap();
    assert_eq!(
        cpu.read().unwrap().percent,
        Ok(10.0),
        "the next interval is measured again"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_probe_reads_deltas_between_calls() {
    let dir = std::env::temp_dir().join(format!("probes-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stat"), "cpu 10 0 0 10 0 0 0 0 0 0\n").unwrap();
    let mut cpu = Cpu::new(&dir);
    std::fs::write(dir.join("stat"), "cpu 40 0 0 20 0 0 0 0 0 0\n").unwrap();
    assert_eq!(cpu.read().unwrap().percent, Ok(75.0));
    let err = cpu.read().unwrap().percent.unwrap_err().to_string();
    assert!(err.contains("no CPU time elapsed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_procfs_is_an_error_naming_the_file() {
    let mut cpu = Cpu::new(Path::new("/nonexistent-procfs"));
    let err = crate::Unavailable::from(cpu.read().unwrap_err()).to_string();
    assert!(err.contains("/nonexistent-procfs/stat"), "{err}");
}

#[test]
fn the_probe_gives_the_counters_even_when_there_is_no_percentage_yet() {
    let mut cpu = Cpu::new(Path::new("/nonexistent-procfs"));
    let dir = std::env::temp_dir().join(format!("probes-cpu-first-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stat"), "cpu 10 2 3 10 0 0 0 0 0 0\n").unwrap();
    assert!(cpu.read().is_err(), "nothing to read at the missing procfs");
    let mut cpu = Cpu {
        stat: crate::procfile::ProcFile::new(dir.join("stat")),
        previous: None,
    };
    let first = cpu.read().unwrap();
    assert!(first.percent.is_err(), "a percentage needs two reads");
    assert_eq!(first.times.system, 3);
    assert_eq!(first.times.modes()[1], ("nice", 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clock_ticks_are_the_kernels_user_hz() {
    // USER_HZ is 100 on every mainstream kernel configuration.
    assert_eq!(ticks_per_second(), 100);
}
