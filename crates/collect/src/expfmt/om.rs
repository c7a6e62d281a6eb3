//! OpenMetrics 1.0 text: the strict line grammar (single spaces, `# EOF` last), float-second
//! timestamps, and exemplars, which are validated and dropped.

use super::num::{self, NumError};
use super::scan::{unescape, Cur, LabelTok, Scratch};
use super::{bad, line_str, Bad, Entry, ExpfmtError, Lines, MetricType, ParseStats};

const MISSING_EOF: &str = "the body does not end with \"# EOF\"";

pub(super) fn parse<'a, F: FnMut(Entry<'_>)>(
    input: &'a [u8],
    s: &mut Scratch<'a>,
    f: &mut F,
) -> Result<ParseStats, ExpfmtError> {
    let whole = std::str::from_utf8(input).ok();
    let mut stats = ParseStats::default();
    let mut lines = Lines { input, pos: 0 };
    while let Some((start, end, terminated)) = lines.next() {
        stats.lines += 1;
        let raw = input.get(start..end).unwrap_or_default();
        let r = match line_str(whole, input, start, end) {
            Some(line) => parse_line(line, terminated, s, f, &mut stats),
            None => Err(bad("invalid UTF-8")),
        };
        match r {
            Ok(false) => {}
            Ok(true) => {
                return match lines.next() {
                    None => Ok(stats),
                    Some((start, end, _)) => Err(bad("unexpected data after \"# EOF\"")
                        .at(stats.lines + 1, input.get(start..end).unwrap_or_default())),
                };
            }
            Err(e) => return Err(e.at(stats.lines, raw)),
        }
    }
    Err(ExpfmtError {
        line: stats.lines + 1,
        message: MISSING_EOF.to_string(),
    })
}

/// One line; `Ok(true)` for `# EOF`.
#[inline]
fn parse_line<'a, F: FnMut(Entry<'_>)>(
    line: &'a str,
    terminated: bool,
    s: &mut Scratch<'a>,
    f: &mut F,
    stats: &mut ParseStats,
) -> Result<bool, Bad> {
    let mut c = Cur::new(line);
    match c.peek() {
        None => return Err(bad("empty lines are not allowed in OpenMetrics")),
        Some(b'#') => return descriptor(c, terminated, s, f),
        Some(_) => {}
    }
    let name = c.metric_name();
    if name.is_empty() {
        return Err(bad(
            "expected a metric name or '#' at the start of the line",
        ));
    }
    s.begin_sample();
    if c.eat(b'{') {
        labels(&mut c, s)?;
    }
    if !c.eat(b' ') {
        return Err(bad(
            "expected a single space and the value after the metric name and labels",
        ));
    }
    let tok = c.token(|b| b == b' ');
    let value = float(tok, "sample value")?;
    let mut ts = None;
    let mut has_exemplar = false;
    if c.eat(b' ') {
        has_exemplar = c.eat_str("# {");
        if !has_exemplar {
            ts = Some(timestamp(c.token(|b| b == b' '), "timestamp")?);
            if c.eat(b' ') {
                has_exemplar = c.eat_str("# {");
                if !has_exemplar {
                    return Err(bad(
                        "expected an exemplar (\" # {\") or the end of the line after the timestamp",
                    ));
                }
            }
        }
    }
    if has_exemplar {
        exemplar(&mut c, s)?;
    }
    if !c.at_end() {
        return Err(bad("unexpected text at the end of the sample line"));
    }
    if !terminated {
        return Err(bad(MISSING_EOF));
    }
    s.check_labels()?;
    s.emit(name, value, ts, f);
    stats.samples += 1;
    Ok(false)
}

fn float(tok: &str, what: &str) -> Result<f64, Bad> {
    num::parse_float(tok.as_bytes()).map_err(|e| match e {
        NumError::Syntax if tok.is_empty() => Bad::owned(format!(
            "expected a {what} (OpenMetrics separates tokens by exactly one space)"
        )),
        NumError::Syntax => Bad::owned(format!("invalid {what} {tok:?}")),
        NumError::Range => Bad::owned(format!("{what} {tok:?} is out of range")),
    })
}

fn timestamp(tok: &str, what: &str) -> Result<i64, Bad> {
    num::seconds_to_ms(float(tok, what)?)
        .ok_or_else(|| Bad::owned(format!("{what} {tok:?} is not a finite number")))
}

/// The exemplar after ` # {`: labels, value, optional timestamp. Checked, then forgotten.
#[cold]
fn exemplar<'a>(c: &mut Cur<'a>, s: &mut Scratch<'a>) -> Result<(), Bad> {
    let (nl, nu) = (s.labels.len(), s.unesc.len());
    labels(c, s)?;
    s.labels.truncate(nl);
    s.unesc.truncate(nu);
    if !c.eat(b' ') {
        return Err(bad(
            "expected a single space and a value after the exemplar labels",
        ));
    }
    float(c.token(|b| b == b' '), "exemplar value")?;
    if c.eat(b' ') {
        timestamp(c.token(|b| b == b' '), "exemplar timestamp")?;
    }
    Ok(())
}

/// Label pairs after `{`, through `}`: no whitespace anywhere, a trailing comma allowed.
#[inline]
fn labels<'a>(c: &mut Cur<'a>, s: &mut Scratch<'a>) -> Result<(), Bad> {
    if c.eat(b'}') {
        return Ok(());
    }
    loop {
        let name = c.label_name();
        if name.is_empty() {
            return Err(bad("expected a label name"));
        }
        if !c.eat(b'=') {
            return Err(bad(
                "expected '=' right after the label name (OpenMetrics allows no spaces in label sets)",
            ));
        }
        if !c.eat(b'"') {
            return Err(bad("expected a quoted label value after '='"));
        }
        let value = c.quoted(&mut s.unesc)?;
        s.labels.push(LabelTok { name, value });
        if c.eat(b',') {
            if c.eat(b'}') {
                return Ok(());
            }
        } else if c.eat(b'}') {
            return Ok(());
        } else {
            return Err(bad("expected ',' or '}' after the label value"));
        }
    }
}

/// `# HELP`, `# TYPE`, `# UNIT` or `# EOF`; `Ok(true)` for `# EOF`.
fn descriptor<'a, F: FnMut(Entry<'_>)>(
    mut c: Cur<'a>,
    terminated: bool,
    s: &mut Scratch<'a>,
    f: &mut F,
) -> Result<bool, Bad> {
    if c.s == "# EOF" {
        return Ok(true);
    }
    let kind = if c.eat_str("# HELP ") {
        "HELP"
    } else if c.eat_str("# TYPE ") {
        "TYPE"
    } else if c.eat_str("# UNIT ") {
        "UNIT"
    } else {
        return Err(bad(
            "OpenMetrics allows only \"# HELP \", \"# TYPE \", \"# UNIT \" and \"# EOF\" lines to start with '#'",
        ));
    };
    let name = c.metric_name();
    if name.is_empty() {
        return Err(Bad::owned(format!("expected a metric name after # {kind}")));
    }
    if !c.eat(b' ') {
        return Err(Bad::owned(format!(
            "expected a single space after the metric name in # {kind}"
        )));
    }
    let text = c.rest();
    if !terminated {
        return Err(bad(MISSING_EOF));
    }
    match kind {
        "HELP" => {
            let text = if text.contains('\\') {
                s.unesc.clear();
                unescape(text, true, &mut s.unesc);
                s.unesc.as_str()
            } else {
                text
            };
            f(Entry::Help { name, text });
        }
        "TYPE" => {
            let kind = match text {
                "counter" => MetricType::Counter,
                "gauge" => MetricType::Gauge,
                "histogram" => MetricType::Histogram,
                "gaugehistogram" => MetricType::GaugeHistogram,
                "summary" => MetricType::Summary,
                "info" => MetricType::Info,
                "stateset" => MetricType::StateSet,
                "unknown" => MetricType::Unknown,
                _ => return Err(Bad::owned(format!("invalid metric type {text:?}"))),
            };
            f(Entry::Type { name, kind });
        }
        _ => {
            let suffix_ok = text.is_empty()
                || (name.len() > text.len()
                    && name.ends_with(text)
                    && name.as_bytes().get(name.len() - text.len() - 1) == Some(&b'_'));
            if !suffix_ok {
                return Err(Bad::owned(format!(
                    "unit {text:?} is not a suffix of the metric name {name:?}"
                )));
            }
            f(Entry::Unit { name, unit: text });
        }
    }
    Ok(false)
}
