use super::*;

fn for_metrics(accept: &[&str]) -> Format {
    metrics(accept.iter().map(|a| a.as_bytes()))
}

fn for_prometheus(accept: &[&str]) -> Format {
    prometheus(accept.iter().map(|a| a.as_bytes()))
}

/// What Prometheus servers send with their default settings, verbatim.
const PROMETHEUS_2_42: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// 2.49 to 2.55 (`scrape_protocols` default).
const PROMETHEUS_2_49: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// 3.x.
const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// 3.3, which added `escaping` to every entry.
const PROMETHEUS_3_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,*/*;q=0.2";
/// Prometheus 2.x before OpenMetrics 1.0 (2.5 to 2.42's predecessors).
const PROMETHEUS_OLD: &str =
    "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// Prometheus 3.x with `scrape_protocols: [PrometheusText0.0.4]`.
const PROMETHEUS_TEXT_ONLY: &str = "text/plain;version=0.0.4;q=0.6,*/*;q=0.5";
const FIREFOX: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const CHROME: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

#[test]
fn prometheus_servers_get_openmetrics_with_their_default_settings() {
    for accept in [
        PROMETHEUS_2_42,
        PROMETHEUS_2_49,
        PROMETHEUS_3,
        PROMETHEUS_3_3,
    ] {
        assert_eq!(for_metrics(&[accept]), Format::OpenMetrics, "{accept}");
        assert_eq!(for_prometheus(&[accept]), Format::OpenMetrics, "{accept}");
    }
}

#[test]
fn an_openmetrics_version_we_do_not_write_falls_to_the_text_format() {
    assert_eq!(for_metrics(&[PROMETHEUS_OLD]), Format::Text);
    assert_eq!(for_metrics(&[PROMETHEUS_TEXT_ONLY]), Format::Text);
    assert_eq!(for_prometheus(&[PROMETHEUS_OLD]), Format::Text);
    assert_eq!(
        for_metrics(&["application/openmetrics-text;version=0.0.1"]),
        Format::Json
    );
}

#[test]
fn the_original_consumers_and_browsers_keep_the_json() {
    for accept in [
        &[][..],
        &["*/*"],
        &["application/json"],
        &["application/json, text/plain, */*"],
        &[FIREFOX],
        &[CHROME],
        &["text/plain"],
        &["text/*"],
        &["text/html"],
        &[""],
        &["garbage"],
    ] {
        assert_eq!(for_metrics(accept), Format::Json, "{accept:?}");
    }
}

#[test]
fn openmetrics_with_no_version_is_openmetrics_1_0() {
    assert_eq!(
        for_metrics(&["application/openmetrics-text"]),
        Format::OpenMetrics
    );
    assert_eq!(
        for_metrics(&["Application/OpenMetrics-Text; Version=\"1.0.0\""]),
        Format::OpenMetrics
    );
    assert_eq!(for_metrics(&["text/plain; version=0.0.4"]), Format::Text);
}

#[test]
fn the_highest_q_wins_and_a_tie_goes_to_the_json() {
    assert_eq!(
        for_metrics(&["application/json;q=0.5, text/plain;version=0.0.4"]),
        Format::Text
    );
    assert_eq!(
        for_metrics(&["application/json, text/plain;version=0.0.4"]),
        Format::Json
    );
    assert_eq!(
        for_metrics(&["application/openmetrics-text;q=0.8, */*;q=0.8"]),
        Format::Json
    );
    assert_eq!(
        for_metrics(&["application/openmetrics-text;q=0.801, */*;q=0.8"]),
        Format::OpenMetrics
    );
    // A specific `q=0` refuses the JSON although `*/*` would allow it.
    assert_eq!(
        for_metrics(&["application/json;q=0, */*, text/plain;version=0.0.4;q=0.1"]),
        Format::Text
    );
    // Several `Accept` lines are one list.
    assert_eq!(
        for_metrics(&["text/html", "application/openmetrics-text"]),
        Format::OpenMetrics
    );
}

#[test]
fn malformed_weights_make_an_entry_unusable() {
    for bad in ["q=2", "q=1.5", "q=0.1234", "q=-1", "q=x", "q="] {
        let accept = format!("application/openmetrics-text;{bad}");
        assert_eq!(for_metrics(&[&accept]), Format::Json, "{accept}");
    }
    assert_eq!(qvalue(b"0.5"), Some(500));
    assert_eq!(qvalue(b"1.000"), Some(1000));
    assert_eq!(qvalue(b"0"), Some(0));
    assert_eq!(qvalue(b"0."), Some(0));
}

#[test]
fn the_prometheus_path_never_answers_json() {
    for accept in [
        &[][..],
        &["*/*"],
        &["application/json"],
        &[FIREFOX],
        &["text/plain"],
        &["application/openmetrics-text;q=0.5, text/plain;q=0.9"],
        &["application/openmetrics-text;q=0.5, */*"],
    ] {
        assert_eq!(for_prometheus(accept), Format::Text, "{accept:?}");
    }
    assert_eq!(
        for_prometheus(&["application/openmetrics-text"]),
        Format::OpenMetrics
    );
    assert_eq!(
        for_prometheus(&["text/plain;q=0.2, application/openmetrics-text;q=0.3"]),
        Format::OpenMetrics
    );
}

/// RFC 9110 allows a quoted parameter value to hold `,` and `;`. Split on every comma, the
/// entry below lost its `q=0.1` into a second, broken entry, and the OpenMetrics it gave
/// weight 0.1 won over the JSON at 0.5 with weight 1.
#[test]
fn a_comma_or_semicolon_inside_a_quoted_value_does_not_split_the_entry() {
    let accept = "application/openmetrics-text;note=\"a, b; c\";q=0.1, application/json;q=0.5";
    assert_eq!(for_metrics(&[accept]), Format::Json);
    let escaped = "application/openmetrics-text;note=\"say \\\"hi, there\\\"\";q=0.1, */*;q=0.5";
    assert_eq!(for_metrics(&[escaped]), Format::Json);
    assert_eq!(
        for_metrics(&["text/plain;version=\"0.0.4\";x=\",\""]),
        Format::Text
    );
}

// ---- Property tests: any `Accept` ------------------------------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    use testkit::proptest_config as config;

    /// One media range as clients write them, with its parts to vary.
    #[derive(Clone, Debug)]
    struct Range {
        media: &'static str,
        version: Option<&'static str>,
        q: Option<u16>,
    }

    impl Range {
        fn write(&self, q_zero: bool, quoted_extra: bool) -> String {
            let mut out = self.media.to_owned();
            if quoted_extra {
                out.push_str(";note=\"x, y; z\"");
            }
            if let Some(v) = self.version {
                out.push_str(&format!(";version={v}"));
            }
            match (q_zero, self.q) {
                (true, _) => out.push_str(";q=0"),
                (false, Some(q)) => out.push_str(&format!(";q={}", qtext(q))),
                (false, None) => {}
            }
            out
        }
    }

    fn qtext(q: u16) -> String {
        if q == 1000 {
            "1".to_owned()
        } else {
            format!("0.{q:03}")
        }
    }

    fn range() -> impl Strategy<Value = Range> {
        (
            prop::sample::select(
                &[
                    "application/json",
                    "application/openmetrics-text",
                    "text/plain",
                    "*/*",
                    "application/*",
                    "text/*",
                    "text/html",
                    "image/webp",
                ][..],
            ),
            prop::option::of(prop::sample::select(&["1.0.0", "0.0.1", "0.0.4"][..])),
            prop::option::of(0u16..=1000),
        )
            .prop_map(|(media, version, q)| Range { media, version, q })
    }

    fn both(lines: &[String]) -> (Format, Format) {
        let bytes = || lines.iter().map(|l| l.as_bytes());
        (metrics(bytes()), prometheus(bytes()))
    }

    fn line(ranges: &[Range]) -> String {
        ranges
            .iter()
            .map(|r| r.write(false, false))
            .collect::<Vec<_>>()
            .join(",")
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn no_header_bytes_make_negotiation_panic(lines in prop::collection::vec(any::<Vec<u8>>(), 0..4)) {
            let _ = metrics(lines.iter().map(Vec::as_slice));
            prop_assert_ne!(prometheus(lines.iter().map(Vec::as_slice)), Format::Json);
        }

        #[test]
        fn no_near_valid_header_makes_negotiation_panic(
            line in "([a-z*]{0,12}/[a-z*+-]{0,16}(;[ ]?(q|version|x)=\"?[0-9.a-z\\\\\"]{0,6}\"?){0,3}[ ]?,?){0,6}",
        ) {
            let _ = metrics([line.as_bytes()]);
            let _ = prometheus([line.as_bytes()]);
        }

        #[test]
        fn the_order_of_entries_and_lines_does_not_matter(
            ranges in prop::collection::vec(range(), 1..7),
            shuffle in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let one = both(&[line(&ranges)]);
            let mut turned = ranges.clone();
            turned.rotate_left(shuffle.index(ranges.len()));
            turned.reverse();
            prop_assert_eq!(both(&[line(&turned)]), one);
            let (a, b) = ranges.split_at(cut.index(ranges.len()));
            prop_assert_eq!(both(&[line(a), line(b)]), one, "one Accept or two lines");
        }

        #[test]
        fn case_and_spaces_do_not_matter(
            ranges in prop::collection::vec(range(), 1..7),
            upper in prop::collection::vec(any::<bool>(), 64),
        ) {
            let plain = line(&ranges);
            let mut flips = upper.iter().cycle();
            let changed: String = plain
                .chars()
                .map(|c| if *flips.next().unwrap_or(&false) { c.to_ascii_uppercase() } else { c })
                .collect::<String>()
                .replace(',', " , ")
                .replace(';', " ;  ");
            prop_assert_eq!(both(&[changed]), both(&[plain]));
        }

        #[test]
        fn a_quoted_parameter_holding_separators_changes_nothing(ranges in prop::collection::vec(range(), 1..7)) {
            let with: Vec<String> = ranges.iter().map(|r| r.write(false, true)).collect();
            prop_assert_eq!(both(&[with.join(",")]), both(&[line(&ranges)]));
        }

        #[test]
        fn a_client_that_refuses_everything_gets_the_defaults(ranges in prop::collection::vec(range(), 1..7)) {
            let refused: Vec<String> = ranges.iter().map(|r| r.write(true, false)).collect();
            prop_assert_eq!(both(&[refused.join(",")]), (Format::Json, Format::Text));
        }

        #[test]
        fn a_prometheus_format_wins_only_with_a_strictly_higher_weight(
            json_q in 0u16..=1000,
            om_q in 0u16..=1000,
        ) {
            let accept = format!("application/json;q={},application/openmetrics-text;q={}", qtext(json_q), qtext(om_q));
            let want = if om_q > json_q { Format::OpenMetrics } else { Format::Json };
            prop_assert_eq!(metrics([accept.as_bytes()]), want, "{}", accept);
        }

        #[test]
        fn every_weight_written_reads_back(q in 0u16..=1000) {
            prop_assert_eq!(qvalue(qtext(q).as_bytes()), Some(q));
            let trimmed = qtext(q).trim_end_matches('0').to_owned();
            let trimmed = if trimmed.is_empty() { "0".to_owned() } else { trimmed };
            prop_assert_eq!(qvalue(trimmed.as_bytes()), Some(q), "{}", trimmed);
        }

        #[test]
        fn no_weight_is_above_one(v in any::<Vec<u8>>()) {
            prop_assert!(qvalue(&v).is_none_or(|q| q <= 1000));
        }
    }
}
