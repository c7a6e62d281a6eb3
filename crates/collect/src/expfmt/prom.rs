//! The Prometheus text exposition format 0.0.4: line grammar and the lenient whitespace rules
//! Prometheus's scrape parser applies (see the module docs of `expfmt` for the decisions).

use super::num::{self, NumError};
use super::scan::{unescape, Cur, Scratch};
use super::{bad, line_str, Bad, Entry, ExpfmtError, Lines, MetricType, ParseStats};

pub(super) fn parse<'a, F: FnMut(Entry<'_>)>(
    input: &'a [u8],
    s: &mut Scratch<'a>,
    f: &mut F,
) -> Result<ParseStats, ExpfmtError> {
    let whole = std::str::from_utf8(input).ok();
    let mut stats = ParseStats::default();
    for (start, end, terminated) in (Lines { input, pos: 0 }) {
        stats.lines += 1;
        let r = match line_str(whole, input, start, end) {
            Some(line) => parse_line(line, terminated, s, f, &mut stats),
            None => non_utf8_line(input.get(start..end).unwrap_or_default()),
        };
        if let Err(e) = r {
            return Err(e.at(stats.lines, input.get(start..end).unwrap_or_default()));
        }
    }
    Ok(stats)
}

/// A line that is not UTF-8 is acceptable only as a plain comment, which is skipped.
#[cold]
fn non_utf8_line(raw: &[u8]) -> Result<(), Bad> {
    let blanks = |b: &[u8]| b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    let t = raw.get(blanks(raw)..).unwrap_or_default();
    let is_comment = t.first() == Some(&b'#') && {
        let after = t.get(1..).unwrap_or_default();
        let words = after.get(blanks(after)..).unwrap_or_default();
        // `#HELP ...` is a comment; `# HELP ...` and `# TYPE ...` are not.
        after.len() == words.len()
            || !(words.starts_with(b"HELP") || words.starts_with(b"TYPE"))
            || !matches!(words.get(4), Some(b' ' | b'\t'))
    };
    if is_comment {
        Ok(())
    } else {
        Err(bad("invalid UTF-8"))
    }
}

#[inline]
fn parse_line<'a, F: FnMut(Entry<'_>)>(
    line: &'a str,
    terminated: bool,
    s: &mut Scratch<'a>,
    f: &mut F,
    stats: &mut ParseStats,
) -> Result<(), Bad> {
    let mut c = Cur::new(line);
    c.skip_ws();
    match c.peek() {
        None => return Ok(()),
        Some(b'#') => return comment(c, terminated, s, f),
        Some(_) => {}
    }
    let name = c.metric_name();
    if name.is_empty() {
        return Err(bad("expected a metric name, '#' or an empty line"));
    }
    s.begin_sample();
    c.skip_ws();
    if c.eat(b'{') {
        labels(&mut c, s)?;
        c.skip_ws();
    }
    let tok = c.token(|b| matches!(b, b' ' | b'\t' | b'{'));
    if tok.is_empty() {
        return Err(bad("expected a value after the metric name and labels"));
    }
    let value = num::parse_float(tok.as_bytes()).map_err(|e| match e {
        NumError::Syntax => Bad::owned(format!("invalid sample value {tok:?}")),
        NumError::Range => Bad::owned(format!("sample value {tok:?} is out of range")),
    })?;
    c.skip_ws();
    let ts = if c.at_end() {
        None
    } else {
        let t = c.token(|b| !b.is_ascii_digit());
        if t.is_empty() {
            return Err(bad(
                "expected a timestamp (integer milliseconds) or the end of the line after the value",
            ));
        }
        let ts = num::parse_ms(t.as_bytes())
            .map_err(|_| Bad::owned(format!("timestamp {t:?} is out of range")))?;
        c.skip_ws();
        if !c.at_end() {
            return Err(bad("unexpected text after the timestamp"));
        }
        Some(ts)
    };
    if !terminated {
        return Err(bad("the last line does not end with a line feed"));
    }
    s.check_labels()?;
    s.emit(name, value, ts, f);
    stats.samples += 1;
    Ok(())
}

/// Label pairs after `{`, through `}`. Whitespace may surround every token and the comma between
/// pairs is optional, as in Prometheus.
#[inline]
fn labels<'a>(c: &mut Cur<'a>, s: &mut Scratch<'a>) -> Result<(), Bad> {
    loop {
        c.skip_ws();
        if c.eat(b'}') {
            return Ok(());
        }
        let name = c.label_name();
        if name.is_empty() {
            return Err(if c.at_end() {
                bad("unterminated label set (missing '}')")
            } else {
                bad("expected a label name or '}'")
            });
        }
        c.skip_ws();
        if !c.eat(b'=') {
            return Err(bad("expected '=' after the label name"));
        }
        c.skip_ws();
        if !c.eat(b'"') {
            return Err(bad("expected a quoted label value after '='"));
        }
        let value = c.quoted(&mut s.unesc)?;
        s.labels.push(super::scan::LabelTok { name, value });
        c.skip_ws();
        c.eat(b',');
    }
}

/// A line starting with `#`: `# HELP`, `# TYPE`, or a comment, which is skipped.
fn comment<'a, F: FnMut(Entry<'_>)>(
    mut c: Cur<'a>,
    terminated: bool,
    s: &mut Scratch<'a>,
    f: &mut F,
) -> Result<(), Bad> {
    c.eat(b'#');
    if !matches!(c.peek(), Some(b' ' | b'\t')) {
        return Ok(());
    }
    c.skip_ws();
    let help = if c.eat_str("HELP") {
        true
    } else if c.eat_str("TYPE") {
        false
    } else {
        return Ok(());
    };
    if !matches!(c.peek(), Some(b' ' | b'\t')) {
        return Ok(());
    }
    c.skip_ws();
    let what = if help { "HELP" } else { "TYPE" };
    let name = c.metric_name();
    if name.is_empty() {
        return Err(Bad::owned(format!("expected a metric name after # {what}")));
    }
    // One separating blank, then the rest of the line verbatim.
    let text = match c.peek() {
        None => "",
        Some(b' ' | b'\t') => {
            c.i += 1;
            c.rest()
        }
        Some(_) => {
            return Err(Bad::owned(format!(
                "expected a space after the metric name in # {what}"
            )))
        }
    };
    if !terminated {
        return Err(bad("the last line does not end with a line feed"));
    }
    if help {
        let text = if text.contains('\\') {
            s.unesc.clear();
            unescape(text, false, &mut s.unesc);
            s.unesc.as_str()
        } else {
            text
        };
        f(Entry::Help { name, text });
    } else {
        let kind = match text {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Unknown,
            _ => return Err(Bad::owned(format!("invalid metric type {text:?}"))),
        };
        f(Entry::Type { name, kind });
    }
    Ok(())
}
