use super::*;

// The head of /proc/meminfo of a 16 GiB desktop (Linux 6.1).
const DESKTOP: &str = "MemTotal:       16318412 kB\n\
MemFree:         1243880 kB\n\
MemAvailable:   10235308 kB\n\
Buffers:          612120 kB\n\
Cached:          8263828 kB\n\
SwapCached:         1288 kB\n";

#[test]
fn percent_is_total_less_available_over_total() {
    let m = parse_meminfo(DESKTOP).unwrap();
    assert_eq!(m.total_bytes, 16318412 * 1024);
    assert_eq!(m.available_bytes, 10235308 * 1024);
    // psutil: (16318412 - 10235308) / 16318412 * 100 = 37.277...
    assert_eq!(crate::round1(m.percent().unwrap()), 37.3);
}

#[test]
fn old_kernels_without_memavailable_use_free_buffers_and_cache() {
    let m = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
        .unwrap();
    assert_eq!(m.available_bytes, 400 * 1024);
    assert_eq!(m.percent(), Some(60.0));
}

#[test]
fn broken_meminfo_is_an_error() {
    for (text, want) in [
        ("", "no MemTotal"),
        ("MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal is 0"),
        ("MemTotal: lots kB\n", "MemTotal is not a number"),
        ("MemTotal: 10 kB\n", "neither MemAvailable"),
    ] {
        let err = parse_meminfo(text).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

// ---- Property tests: `parse_meminfo` over any input ------------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// KiB counts that still fit in 64 bits of bytes, edges included.
    fn kib() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            1u64..100_000_000,
            0..=u64::MAX / 1024,
            (u64::MAX / 1024 - 3)..=u64::MAX / 1024,
        ]
    }

    /// The lines of a real meminfo that this parser does not read.
    fn other_line() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                "(SwapCached|Active|Inactive|SwapTotal|Shmem|Slab|VmallocTotal|AnonPages)",
                any::<u64>()
            )
                .prop_map(|(k, v)| format!("{k}:{:>16} kB", v)),
            ("HugePages_(Total|Free|Rsvd)", 0u32..100).prop_map(|(k, v)| format!("{k}: {v}")),
            "[A-Za-z_()]{1,20}: +[0-9a-z ]{0,20}",
        ]
    }

    #[derive(Debug, Clone)]
    struct Meminfo {
        total: u64,
        available: Option<u64>,
        free: Option<u64>,
        buffers: Option<u64>,
        cached: Option<u64>,
    }

    fn meminfo() -> impl Strategy<Value = Meminfo> {
        (
            1..=u64::MAX / 1024,
            prop::option::weighted(0.8, kib()),
            prop::option::weighted(0.9, kib()),
            prop::option::of(kib()),
            prop::option::of(kib()),
        )
            .prop_map(|(total, available, free, buffers, cached)| Meminfo {
                total,
                available,
                free,
                buffers,
                cached,
            })
    }

    /// `m`'s lines (in an order given by `order`), among `others`, with `\n` or `\r\n`.
    fn text(m: &Meminfo, others: &[String], order: &[usize], crlf: bool) -> String {
        let mut lines: Vec<String> = [
            ("MemTotal", Some(m.total)),
            ("MemFree", m.free),
            ("MemAvailable", m.available),
            ("Buffers", m.buffers),
            ("Cached", m.cached),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some(format!("{k}:{:>16} kB", v?)))
        .chain(others.iter().cloned())
        .collect();
        // A permutation of the lines (the kernel's order is fixed; a parser needs no order).
        for (i, j) in order.iter().enumerate() {
            let n = lines.len();
            lines.swap(i % n, j % n);
        }
        let end = if crlf { "\r\n" } else { "\n" };
        lines.iter().map(|l| format!("{l}{end}")).collect()
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn no_text_makes_the_parser_panic(text in any::<String>()) {
            let _ = parse_meminfo(&text);
        }

        #[test]
        fn no_near_valid_text_makes_the_parser_panic(
            lines in prop::collection::vec(
                "(MemTotal|MemFree|MemAvailable|Buffers|Cached|Swap):[ \t]{0,3}[-+0-9.a-z]{0,25}( kB)?",
                0..8,
            ),
        ) {
            let _ = parse_meminfo(&lines.join("\n"));
        }

        #[test]
        fn a_generated_meminfo_parses_to_the_bytes_generated(
            m in meminfo(),
            others in prop::collection::vec(other_line(), 0..8),
            order in prop::collection::vec(any::<usize>(), 0..8),
            crlf in any::<bool>(),
        ) {
            let text = text(&m, &others, &order, crlf);
            let got = parse_meminfo(&text);
            let total = m.total * 1024;
            let estimate = m.free.map(|f| {
                (f * 1024)
                    .saturating_add(m.buffers.unwrap_or(0) * 1024)
                    .saturating_add(m.cached.unwrap_or(0) * 1024)
            });
            match m.available.map(|a| a * 1024).or(estimate) {
                Some(available) => prop_assert_eq!(
                    got,
                    Ok(MemoryUsage { total_bytes: total, available_bytes: available.min(total) }),
                    "{:?}", text
                ),
                None => prop_assert_eq!(got, Err("neither MemAvailable nor MemFree".to_owned())),
            }
        }

        #[test]
        fn a_bad_number_is_refused_naming_the_key_and_its_text(
            m in meminfo(),
            key in prop::sample::select(&["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached"][..]),
            bad in prop_oneof![
                (1u64..).prop_map(|n| format!("-{n}")),
                "[0-9]{20,300}".prop_map(|n| format!("9{n}")),
                Just("NaN".to_owned()),
                Just("inf".to_owned()),
                Just("1.5".to_owned()),
                Just("".to_owned()),
                "[a-z\u{80}-\u{3000}]{1,30}",
            ],
        ) {
            let mut text = text(&m, &[], &[], false);
            text = text.lines().filter(|l| !l.starts_with(&format!("{key}:"))).collect::<Vec<_>>().join("\n");
            let text = format!("{key}: {bad} kB\n{text}");
            let err = parse_meminfo(&text).expect_err("a bad number must be refused");
            prop_assert!(err.starts_with(&format!("{key} is ")), "{err}");
            let head: String = bad.chars().take(20).collect();
            let head = format!("{head:?}");
            prop_assert!(err.contains(head.trim_end_matches('"')), "{err} lacks {head}");
            prop_assert!(err.len() < 300, "{} bytes of error", err.len());
        }

        #[test]
        fn a_repeated_key_counts_once_the_first_time(
            m in meminfo(),
            again in any::<u64>(),
        ) {
            let text = text(&m, &[], &[], false);
            // Each key that is there, once more with another value or none at all.
            let mut repeated = format!("{text}MemTotal: {again} kB\n");
            for (key, present) in [("MemAvailable", m.available), ("MemFree", m.free), ("Cached", m.cached)] {
                if present.is_some() {
                    repeated.push_str(&format!("{key}: garbage\n"));
                }
            }
            prop_assert_eq!(parse_meminfo(&repeated), parse_meminfo(&text));
        }
    }
}

/// Caught by `a_generated_meminfo_parses_to_the_bytes_generated`: on a kernel without
/// MemAvailable, free + buffers + cached overflowed (a panic) when the counts are huge.
#[test]
fn a_huge_estimate_of_what_is_available_does_not_overflow() {
    let max = u64::MAX / 1024;
    let m = parse_meminfo(&format!(
        "MemTotal: {max} kB\nMemFree: {max} kB\nBuffers: {max} kB\nCached: 1 kB\n"
    ))
    .unwrap();
    assert_eq!(m.available_bytes, m.total_bytes);
}

#[test]
fn counts_past_64_bits_of_bytes_are_refused_not_saturated() {
    for (text, want) in [
        (
            "MemTotal: 18014398509481984 kB\n",
            "MemTotal 18014398509481984 kB is more bytes than 64 bits hold",
        ),
        (
            "MemTotal: 18446744073709551616 kB\n",
            "MemTotal is larger than a 64-bit count of KiB: \"18446744073709551616\"",
        ),
        (
            "MemTotal: -1 kB\n",
            "MemTotal is not a number of KiB: \"-1\"",
        ),
    ] {
        assert_eq!(parse_meminfo(text), Err(want.to_owned()), "{text:?}");
    }
}
