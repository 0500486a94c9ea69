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
