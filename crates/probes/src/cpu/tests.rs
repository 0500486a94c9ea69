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

// ---- Property tests: `parse_stat` and `busy_percent` over any input --------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 10] = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guest_nice",
    ];

    /// Counters near the edges as often as anywhere: 0, small, huge, `u64::MAX`.
    fn counter() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            0u64..1_000_000,
            any::<u64>(),
            (u64::MAX - 10)..=u64::MAX,
        ]
    }

    /// Whitespace between columns, as the kernel writes it and worse.
    fn gap() -> impl Strategy<Value = &'static str> {
        prop::sample::select(&[" ", "  ", "\t", " \t "][..])
    }

    /// Lines a real `/proc/stat` has besides the aggregate one.
    fn other_line() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u32..512, prop::collection::vec(counter(), 4..=10)).prop_map(|(n, v)| {
                let cols: Vec<String> = v.iter().map(u64::to_string).collect();
                format!("cpu{n} {}", cols.join(" "))
            }),
            "intr( [0-9]{1,12}){1,20}",
            "(ctxt|btime|processes|procs_running|procs_blocked) [0-9]{1,20}",
            "softirq( [0-9]{1,12}){1,11}",
        ]
    }

    /// A `/proc/stat` whose aggregate line holds `values` (4 to 10 columns), among other
    /// lines, with `\n` or `\r\n` line ends.
    fn stat_text(
        values: &[u64],
        before: &[String],
        after: &[String],
        gaps: &[&str],
        crlf: bool,
    ) -> String {
        let mut line = "cpu ".to_owned();
        for (i, v) in values.iter().enumerate() {
            line.push_str(gaps[i % gaps.len()]);
            line.push_str(&v.to_string());
        }
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        for l in before.iter().chain([&line]).chain(after) {
            text.push_str(l);
            text.push_str(end);
        }
        text
    }

    /// A column that is not a u64 counter, and what its error must say about it.
    fn bad_word() -> impl Strategy<Value = (String, &'static str)> {
        prop_oneof![
            (1u64..=u64::MAX).prop_map(|n| (format!("-{n}"), "is not a counter")),
            (u128::from(u64::MAX) + 1..=u128::MAX)
                .prop_map(|n| (n.to_string(), "larger than a 64-bit counter")),
            "[0-9]{21,400}".prop_map(|n| (format!("9{n}"), "larger than a 64-bit counter")),
            prop::sample::select(&["NaN", "inf", "-inf", "1.5", "1e3", "0x10", "½", "\0"][..])
                .prop_map(|w| (w.to_owned(), "is not a counter")),
            "[0-9]{0,5}[a-zA-Z\u{80}-\u{10ffff}]{1,8}".prop_map(|w| (w, "is not a counter")),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn no_text_makes_the_parser_panic(text in any::<String>()) {
            let _ = parse_stat(&text);
        }

        #[test]
        fn no_aggregate_line_makes_the_parser_panic(rest in "[0-9 \t\r\n\0a-z.+-]{0,200}") {
            let _ = parse_stat(&format!("cpu {rest}"));
        }

        #[test]
        fn a_generated_stat_parses_to_the_numbers_generated(
            values in prop::collection::vec(counter(), 4..=10),
            before in prop::collection::vec(other_line(), 0..4),
            after in prop::collection::vec(other_line(), 0..6),
            gaps in prop::collection::vec(gap(), 1..4),
            crlf in any::<bool>(),
        ) {
            let text = stat_text(&values, &before, &after, &gaps, crlf);
            let got = parse_stat(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            let mut want = [0u64; 10];
            want[..values.len()].copy_from_slice(&values);
            let got_all: Vec<u64> = got.named().iter().map(|(_, v)| *v).collect();
            prop_assert_eq!(&got_all[..], &want[..], "{:?}", text);
        }

        #[test]
        fn a_bad_column_is_refused_naming_the_column_and_its_text(
            values in prop::collection::vec(counter(), 4..=10),
            at in any::<prop::sample::Index>(),
            (word, why) in bad_word(),
        ) {
            let at = at.index(values.len());
            let mut words: Vec<String> = values.iter().map(u64::to_string).collect();
            words[at] = word.clone();
            let text = format!("cpu {}\nintr 1 2 3\n", words.join(" "));
            let err = parse_stat(&text).expect_err("a bad column must be refused");
            let column = format!("cpu column {} ({})", at + 1, NAMES[at]);
            prop_assert!(err.contains(&column), "{err}");
            prop_assert!(err.contains(why), "{err}");
            // The offending text, or its start when it is long; never all of a huge one.
            let head: String = word.chars().take(20).collect();
            let head = format!("{head:?}");
            prop_assert!(err.contains(head.trim_end_matches('"')), "{err} lacks {head}");
            prop_assert!(err.len() < 400, "{} bytes of error", err.len());
        }

        #[test]
        fn fewer_than_four_columns_are_refused(values in prop::collection::vec(counter(), 0..4)) {
            let words: Vec<String> = values.iter().map(u64::to_string).collect();
            let text = format!("cpu {}\n", words.join(" "));
            let err = parse_stat(&text).expect_err("too few columns");
            prop_assert!(err.contains(&format!("{} columns, expected at least 4", values.len())), "{err}");
        }

        #[test]
        fn any_two_readings_give_a_percentage_in_range_or_say_why_not(
            a in prop::array::uniform10(counter()),
            step in prop::array::uniform10(counter()),
            unrelated in prop::array::uniform10(counter()),
            forward in prop::bool::weighted(0.8),
        ) {
            // Mostly a later reading (every counter grown), else any other reading.
            let b: [u64; 10] = if forward {
                std::array::from_fn(|i| a[i].saturating_add(step[i]))
            } else {
                unrelated
            };
            let [earlier, later] = [a, b].map(|v| CpuTimes {
                user: v[0], nice: v[1], system: v[2], idle: v[3], iowait: v[4],
                irq: v[5], softirq: v[6], steal: v[7], guest: v[8], guest_nice: v[9],
            });
            match busy_percent(&earlier, &later) {
                Ok(p) => prop_assert!((0.0..=100.0).contains(&p), "{p}"),
                Err(NoPercent::SteppedBack { counter, earlier: e, later: l }) => {
                    prop_assert!(l < e, "{counter}: {e} -> {l}");
                    let i = NAMES.iter().position(|n| *n == counter).unwrap();
                    prop_assert_eq!((a[i], b[i]), (e, l));
                }
                Err(NoPercent::NoTimeElapsed) => {
                    prop_assert_eq!(&a[..8], &b[..8], "time passed but no percentage");
                }
            }
        }
    }
}

/// Caught by `any_two_readings_give_a_percentage_in_range_or_say_why_not`: eight counters
/// that each fit in 64 bits summed past `u64::MAX`, a panic (an overflow) in the total.
#[test]
fn counters_summing_past_u64_max_still_give_a_percentage() {
    let max = u64::MAX.to_string();
    let later = times(&format!(
        "cpu {max} {max} {max} {max} {max} {max} {max} {max} 0 0"
    ));
    // busy = user + nice + system + irq + softirq + steal = 6 of the 8 equal parts.
    assert_eq!(busy_percent(&CpuTimes::default(), &later), Ok(75.0));
}

#[test]
fn a_column_past_64_bits_is_named_with_its_value() {
    let err = parse_stat("cpu 1 18446744073709551616 3 4\n").unwrap_err();
    assert_eq!(
        err,
        "cpu column 2 (nice) is larger than a 64-bit counter: \"18446744073709551616\""
    );
    let huge = "7".repeat(100_000);
    let err = parse_stat(&format!("cpu 1 2 {huge} 4\n")).unwrap_err();
    assert!(err.starts_with("cpu column 3 (system) is larger"), "{err}");
    assert!(
        err.ends_with("… (100000 bytes)") && err.len() < 200,
        "{err}"
    );
}
