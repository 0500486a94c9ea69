//! Which body `/metrics` and `/metrics/prometheus` answer, from the request's `Accept`
//! (SPEC §8, RFC 9110 §12.5.1).
//!
//! `/metrics` serves a Prometheus format only when `Accept` prefers it: the entry with
//! the highest `q` that we can serve wins and a tie goes to the JSON, so the original
//! consumers (no `Accept`, `*/*`, `application/json, text/plain, */*`, a browser) keep
//! their JSON. `application/openmetrics-text` with no version or `version=1.0.0` is
//! OpenMetrics 1.0; `text/plain` with a `version` is the text format 0.0.4; an
//! OpenMetrics version we do not write (`0.0.1`) is not ours to serve.

/// The bodies a `/metrics` request can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    /// The Prometheus text format 0.0.4.
    Text,
    OpenMetrics,
}

/// The body of `/metrics` for these `Accept` values (each header line one item).
pub(crate) fn metrics<'a>(accept: impl IntoIterator<Item = &'a [u8]>) -> Format {
    let p = Preferences::of(accept);
    let json = p.json.q();
    let (prometheus, format) = if p.openmetrics.q() >= p.versioned_text.q() {
        (p.openmetrics.q(), Format::OpenMetrics)
    } else {
        (p.versioned_text.q(), Format::Text)
    };
    if prometheus > json {
        format
    } else {
        Format::Json
    }
}

/// The body of `/metrics/prometheus`: the text format, or OpenMetrics when `Accept`
/// prefers it to text. Never the JSON.
pub(crate) fn prometheus<'a>(accept: impl IntoIterator<Item = &'a [u8]>) -> Format {
    let p = Preferences::of(accept);
    if p.any_line && p.openmetrics.q() > p.text.q() {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// The `q` that matched a representation, and how specifically (RFC 9110: the most
/// specific range that matches decides, `type/sub` over `type/*` over `*/*`).
#[derive(Clone, Copy, Debug, Default)]
struct Match {
    /// 0 none, 1 `*/*`, 2 `type/*`, 3 `type/subtype`, 4 with the parameters that pick it.
    specificity: u8,
    /// In thousandths (RFC 9110's three decimals), so ties compare exactly.
    q: u16,
}

impl Match {
    fn offer(&mut self, specificity: u8, q: u16) {
        if specificity > self.specificity || (specificity == self.specificity && q > self.q) {
            *self = Self { specificity, q };
        }
    }

    fn q(&self) -> u16 {
        self.q
    }
}

#[derive(Debug, Default)]
struct Preferences {
    /// Whether any `Accept` was sent at all.
    any_line: bool,
    json: Match,
    openmetrics: Match,
    /// `text/plain` with a `version` parameter (what a Prometheus server sends).
    versioned_text: Match,
    /// `text/plain` in any form, for `/metrics/prometheus`.
    text: Match,
}

impl Preferences {
    fn of<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut p = Self::default();
        for line in lines {
            p.any_line = true;
            for range in split_unquoted(line, b',') {
                p.add(range);
            }
        }
        if !p.any_line {
            // No `Accept` is `*/*` (RFC 9110 §12.5.1).
            p.json.offer(1, 1000);
            p.text.offer(1, 1000);
        }
        p
    }

    /// One media range: `type/subtype` and its parameters, read as bytes (a scrape sends
    /// five of them; nothing here allocates or validates UTF-8).
    fn add(&mut self, range: &[u8]) {
        let mut parts = split_unquoted(range, b';');
        let media = trim(parts.next().unwrap_or_default());
        let Some(slash) = media.iter().position(|b| *b == b'/') else {
            return;
        };
        let (kind, sub) = (trim(&media[..slash]), trim(&media[slash + 1..]));
        let mut q = 1000;
        let mut version: Option<&[u8]> = None;
        for param in parts {
            let Some(eq) = param.iter().position(|b| *b == b'=') else {
                continue;
            };
            let key = trim(&param[..eq]);
            let value = trim(&param[eq + 1..]);
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            if key.eq_ignore_ascii_case(b"q") {
                match qvalue(value) {
                    Some(v) => q = v,
                    // A malformed weight: the entry is unusable, not a first choice.
                    None => return,
                }
            } else if key.eq_ignore_ascii_case(b"version") {
                version = Some(value);
            }
        }
        let is = |a: &[u8], b: &str| a.eq_ignore_ascii_case(b.as_bytes());
        match (kind, sub) {
            (b"*", b"*") => {
                self.json.offer(1, q);
                self.text.offer(1, q);
            }
            (k, b"*") if is(k, "application") => self.json.offer(2, q),
            (k, b"*") if is(k, "text") => self.text.offer(2, q),
            (k, s) if is(k, "application") && is(s, "json") => self.json.offer(3, q),
            // An OpenMetrics version other than 1.0.0 is not ours to serve.
            (k, s)
                if is(k, "application")
                    && is(s, "openmetrics-text")
                    && version.is_none_or(|v| v == b"1.0.0") =>
            {
                self.openmetrics.offer(4, q);
            }
            (k, s) if is(k, "text") && is(s, "plain") => {
                if version.is_some() {
                    self.versioned_text.offer(4, q);
                    self.text.offer(4, q);
                } else {
                    self.text.offer(3, q);
                }
            }
            _ => {}
        }
    }
}

/// The pieces of `bytes` between the `sep`s that are outside quoted strings: a parameter
/// value may be a quoted string holding `,` or `;` (RFC 9110 §5.6.4; `\` escapes the next
/// byte inside one). An unterminated quote runs to the end. Nothing is allocated.
fn split_unquoted(bytes: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        rest = None;
        Some(s)
    })
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// RFC 9110 `qvalue`: `0`, `0.` and up to three digits, or `1` with zeros; thousandths.
fn qvalue(v: &[u8]) -> Option<u16> {
    let (whole, fraction) = match v.iter().position(|b| *b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = fraction
        .iter()
        .copied()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
