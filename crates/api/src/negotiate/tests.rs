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
