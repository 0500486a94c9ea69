use std::time::Duration;

use super::*;

const LIVE: Duration = Duration::from_secs(5);
const PERSIST: Duration = Duration::from_secs(30);
/// 2026-12-01T11:00:00Z
const NOW: i64 = 1_796_122_800_000;

fn q(query: &str) -> Result<Query, Refusal> {
    parse(Some(query), NOW, LIVE, PERSIST)
}

#[test]
fn the_default_is_the_last_hour_at_the_persist_step() {
    let got = parse(None, NOW, LIVE, PERSIST).unwrap();
    assert_eq!(got.end_ms, NOW);
    assert_eq!(got.start_ms, NOW - 3_600_000);
    assert_eq!(
        got.step_ms, 30_000,
        "120 buckets: the persist interval is enough"
    );
    assert_eq!(got.series, Series::ALL);
}

#[test]
fn the_default_step_is_the_smallest_persist_multiple_with_at_most_1000_buckets() {
    // A day: 2,880 windows; 3 windows per bucket is 960 buckets.
    let got = q("start=-86400").unwrap();
    assert_eq!(got.step_ms, 90_000);
    // A range whose alignment would give 1,001 buckets at the obvious step.
    let got = q(&format!(
        "start={}&end={}",
        (NOW - 30_000_000 + 1) / 1000,
        NOW / 1000
    ))
    .unwrap();
    assert!(Grid::count_for(got.start_ms, got.end_ms, got.step_ms) <= 1000);
    assert_eq!(got.step_ms % 30_000, 0);
}

#[test]
fn times_are_rfc3339_with_any_offset_unix_seconds_or_relative() {
    let a = q("start=2026-12-01T11:00:00%2B01:00&end=2026-12-01T10:30:00Z").unwrap();
    assert_eq!(a.start_ms, NOW - 3_600_000);
    assert_eq!(a.end_ms, NOW - 1_800_000);
    let b = q("start=2026-12-01T11:00:00+01:00&end=1796121000.5").unwrap();
    assert_eq!(
        b.start_ms, a.start_ms,
        "a + that was not escaped is still an offset"
    );
    assert_eq!(b.end_ms, 1_796_121_000_500);
    let c = q("start=-90.5&end=-0").unwrap();
    assert_eq!((c.start_ms, c.end_ms), (NOW - 90_500, NOW));
}

#[test]
fn every_bad_value_is_refused_with_what_to_send() {
    let refused = |query: &str, says: &str| {
        let e = q(query).expect_err(query);
        assert!(e.contains(says), "{query}: {e}");
    };
    refused("start=yesterday", "start=\"yesterday\" is not a time");
    refused("end=2026-13-01T00:00:00Z", "not a time");
    refused("start=NaN", "not a time");
    refused("start=1e300", "out of range");
    refused("start=-60&end=-120", "must be after start");
    refused("start=-60&end=-60", "must be after start");
    refused("step=0", "more than 0");
    refused("step=-30", "more than 0");
    refused("step=abc", "not a number");
    refused("step=1", "below the live interval");
    refused("start=-86400&step=5", "the limit is 11000");
    refused("metrics=cpu,swap", "unknown metric \"swap\"");
    refused("metrics=", "unknown metric \"\"");
    // Before the epoch no bucket could be named (its year would be before 0000).
    refused(
        "start=0001-01-01T00:00:00Z&end=0001-01-02T00:00:00Z&step=3155760000",
        "before 1970-01-01T00:00:00Z",
    );
    refused("start=-1800000000", "before 1970");
    assert!(q("start=0&end=60&step=30").is_ok());
    // Unknown parameters are not refused.
    assert!(q("_=1733050000&metrics=cpu,cpu").is_ok_and(|q| q.series == [Series::Cpu]));
}

#[test]
fn bucket_times_have_milliseconds_only_when_there_are_any() {
    for (ms, expected) in [
        (0, "1970-01-01T00:00:00Z"),
        (1_796_122_800_000, "2026-12-01T11:00:00Z"),
        (1_796_122_800_250, "2026-12-01T11:00:00.250Z"),
        // A leap day, and the last millisecond of year 9999.
        (951_782_400_000, "2000-02-29T00:00:00Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (-1_000, "1969-12-31T23:59:59Z"),
    ] {
        let mut out = Vec::new();
        write_timestamp(&mut out, ms);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{ms}");
    }
}

#[test]
fn values_have_one_decimal_and_gaps_are_null() {
    let mut out = Vec::new();
    for v in [
        Some(12.5),
        Some(-5.0),
        Some(100.0),
        Some(0.0),
        Some(-0.04),
        None,
    ] {
        write_value(&mut out, v);
        out.push(b' ');
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "12.5 -5.0 100.0 0.0 0.0 null "
    );
}

#[test]
fn the_answer_has_one_entry_per_bucket_in_every_array() {
    let query = q("start=2026-12-01T10:00:10Z&end=2026-12-01T10:01:00Z&metrics=cpu,disk").unwrap();
    let grid = Grid::covering(query.start_ms, query.end_ms, query.step_ms);
    let mut columns = Columns::empty(grid, &query.series);
    columns.column_mut(Series::Cpu).unwrap()[0].add_sample(12.5);
    let body = encode("edge-01", &query, &columns, Source::Memory, false);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "host": "edge-01",
            "start": "2026-12-01T10:00:10Z",
            "end": "2026-12-01T10:01:00Z",
            "step_seconds": 30.0,
            "source": "memory",
            "partial": false,
            "timestamps": ["2026-12-01T10:00:00Z", "2026-12-01T10:00:30Z"],
            "series": {
                "cpu": {"avg": [12.5, null], "min": [12.5, null], "max": [12.5, null]},
                "disk": {"avg": [null, null], "min": [null, null], "max": [null, null]}
            }
        })
    );
}

// ---- Defects fixed with the property tests below ---------------------------------------

/// A step such as 1e300 is a finite number: the refusal printed it with `{}`, three hundred
/// digits. A refusal now quotes what was sent, cut when it is long.
#[test]
fn a_refusal_quotes_the_value_sent_and_cuts_a_long_one() {
    let e = q("step=1e300").unwrap_err();
    assert_eq!(e, "step=\"1e300\" is longer than any range");
    let long = "9".repeat(5_000);
    let e = q(&format!("start={long}x")).unwrap_err();
    assert!(e.starts_with("start=\"9999"), "{e}");
    assert!(
        e.contains("… (5001 bytes) is not a time") && e.len() < 300,
        "{e}"
    );
}

// ---- Property tests: the query string, times and steps ---------------------------------

mod properties {
    use proptest::prelude::*;
    use time::UtcOffset;

    use super::*;

    use testkit::proptest_config as config;

    /// Every byte but the unreserved ones percent-encoded, as a browser's URL encoder may.
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// Times any year 1970 to 9999 can name, with milliseconds or without.
    fn time_ms() -> impl Strategy<Value = i64> {
        prop_oneof![
            (0i64..LATEST_MS - 86_400_000).prop_map(|ms| ms / 1000 * 1000),
            0i64..LATEST_MS - 86_400_000,
            Just(0i64),
            NOW - 86_400_000..NOW,
        ]
    }

    /// What a client may put in a query string, valid or not.
    fn junk() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-+0-9.eE:TZtz ]{0,30}",
            "(start|end|step|metrics|last_event_id|_)=[-+%0-9a-fA-F.:TZ,]{0,30}(&|;|=){0,2}",
            prop::sample::select(
                &[
                    "NaN", "inf", "-inf", "1e308", "-1e308", "1e-400", "-0", "+5", ".", "%", "%zz",
                    "%4"
                ][..]
            )
            .prop_map(str::to_owned),
        ]
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn no_query_makes_the_parser_panic_and_an_answer_keeps_the_rules(
            parts in prop::collection::vec(junk(), 0..6),
            now in 0i64..LATEST_MS,
            live_ms in 100u64..86_400_000,
            persist_factor in 1u64..100,
        ) {
            let query = parts.join("&");
            let live = Duration::from_millis(live_ms);
            let persist = Duration::from_millis((live_ms * persist_factor).min(86_400_000).max(live_ms));
            match parse(Some(&query), now, live, persist) {
                Ok(got) => {
                    prop_assert!(0 <= got.start_ms && got.start_ms < got.end_ms, "{got:?}");
                    prop_assert!(got.step_ms >= live_ms as i64, "{got:?}");
                    prop_assert!(Grid::count_for(got.start_ms, got.end_ms, got.step_ms) <= MAX_BUCKETS);
                    prop_assert!(!got.series.is_empty());
                }
                Err(e) => {
                    prop_assert!(!e.is_empty() && !e.contains('\n'), "{e:?}");
                    prop_assert!(e.len() < 400, "{} bytes: {e}", e.len());
                }
            }
        }

        #[test]
        fn a_percent_encoded_value_decodes_to_what_was_sent(value in any::<String>(), name in "[a-z_]{1,12}") {
            let query = format!("_=1&{}={}&other=x", encode(&name), encode(&value));
            prop_assert_eq!(parameter(Some(&query), &name), Some(value));
        }

        #[test]
        fn the_last_of_repeated_parameters_counts(a in "[0-9]{1,5}", b in "[0-9]{1,5}") {
            let query = format!("step={a}&x=1&step={b}");
            prop_assert_eq!(parameter(Some(&query), "step"), Some(b));
        }

        #[test]
        fn a_time_we_write_parses_back_to_the_same_millisecond(ms in time_ms()) {
            let mut text = Vec::new();
            write_timestamp(&mut text, ms);
            let text = String::from_utf8(text).unwrap();
            prop_assert_eq!(parse_time("start", &text, NOW), Ok(ms), "{}", text);
        }

        #[test]
        fn an_rfc3339_time_with_any_offset_is_the_same_instant(
            ms in 86_400_000i64..LATEST_MS - 86_400_000,
            hours in -23i8..=23,
            minutes in 0i8..60,
        ) {
            let minutes = if hours < 0 { -minutes } else { minutes };
            let offset = UtcOffset::from_hms(hours, minutes, 0).unwrap();
            let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap()
                .to_offset(offset);
            let text = t.format(&Rfc3339).unwrap();
            prop_assert_eq!(parse_time("end", &text, NOW), Ok(ms), "{}", text);
            // The same, percent-encoded in a query (`+` as %2B or sent bare).
            let got = parameter(Some(&format!("end={}", encode(&text))), "end");
            prop_assert_eq!(got.as_deref(), Some(text.as_str()));
        }

        #[test]
        fn unix_seconds_with_decimals_are_the_same_millisecond(ms in time_ms()) {
            for text in [format!("{}.{:03}", ms / 1000, ms % 1000), format!("{}", ms as f64 / 1000.0)] {
                prop_assert_eq!(parse_time("start", &text, NOW), Ok(ms), "{}", text);
            }
        }

        #[test]
        fn a_negative_number_is_seconds_before_now(back_ms in 0i64..NOW) {
            let text = format!("-{}.{:03}", back_ms / 1000, back_ms % 1000);
            prop_assert_eq!(parse_time("start", &text, NOW), Ok(NOW - back_ms), "{}", text);
        }

        #[test]
        fn a_bad_time_is_refused_naming_the_parameter_and_its_value(
            name in prop::sample::select(&["start", "end"][..]),
            value in prop_oneof![
                "[a-zA-Z \u{80}-\u{3000}]{1,40}",
                Just("NaN".to_owned()),
                Just("inf".to_owned()),
                "[0-9]{4}-[0-9]{2}-[0-9]{2}",
                (0usize..3000).prop_map(|n| format!("1{}x", "0".repeat(n))),
            ],
        ) {
            let e = parse_time(name, &value, NOW).expect_err("not a time");
            let head: String = value.chars().take(20).collect();
            let head = format!("{name}={head:?}");
            prop_assert!(e.starts_with(head.trim_end_matches('"')), "{e} lacks {head}");
            prop_assert!(e.contains("is not a time"), "{e}");
            prop_assert!(e.len() < 400, "{} bytes: {e}", e.len());
        }

        #[test]
        fn a_step_is_refused_naming_what_was_sent(
            step in prop_oneof![
                "[a-z]{1,10}",
                "-[0-9]{1,6}",
                Just("0".to_owned()),
                Just("1".to_owned()),
                Just("1e300".to_owned()),
                Just("inf".to_owned()),
                Just("-inf".to_owned()),
            ],
        ) {
            let e = q(&format!("step={}", encode(&step))).expect_err("a bad step");
            prop_assert!(e.starts_with(&format!("step={step:?}")), "{e}");
        }

        #[test]
        fn a_valid_step_gives_those_buckets(step_s in 5u32..=86_400, range_s in 1u32..86_400) {
            let got = q(&format!("start=-{range_s}&step={step_s}")).unwrap();
            prop_assert_eq!(got.step_ms, i64::from(step_s) * 1000);
            prop_assert_eq!((got.start_ms, got.end_ms), (NOW - i64::from(range_s) * 1000, NOW));
        }

        #[test]
        fn any_list_of_known_metrics_is_those_series_once_each(
            names in prop::collection::vec(prop::sample::select(&["cpu", "ram", "gpu", "temperature", "disk", " cpu ", "disk "][..]), 1..8),
        ) {
            let got = q(&format!("metrics={}", encode(&names.join(",")))).unwrap();
            let mut want: Vec<Series> = Vec::new();
            for n in &names {
                let s = Series::from_name(n.trim()).unwrap();
                if !want.contains(&s) {
                    want.push(s);
                }
            }
            prop_assert_eq!(got.series, want);
        }
    }
}
