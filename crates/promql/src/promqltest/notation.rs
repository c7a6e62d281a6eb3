//! The small languages inside a `.test` script: numbers, durations, series descriptors
//! (`name{l="v"}`) and the value-sequence notation (`0+10x3 _ stale {{...}}`).

use tocsin_model::{Labels, LabelsBuilder, METRIC_NAME, STALE_NAN};

/// One slot of an expanded value sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum SeqValue {
    /// A float sample (the stale marker is a float with its own NaN bits).
    Float(f64),
    /// `_`: no sample, but the slot still takes up a timestamp.
    Missing,
    /// A native histogram literal, kept as written: we have no native histograms, so the runner only
    /// needs to know one is there.
    Histogram(String),
}

/// Parses a Prometheus duration into milliseconds; `0` alone is allowed.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    tocsin_model::duration::parse_duration_ms(s)
}

/// Parses a float the way Go's `ParseFloat` accepts it in these files: decimals, exponents and
/// `Inf`/`NaN` in any case, with an optional sign.
pub fn parse_float(s: &str) -> Result<f64, String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    // Rust would also take "infinity" and "inf" alike; Go does too, so only guard against
    // forms Rust accepts and Go does not (none matter here) by requiring a digit or a keyword.
    let keyword = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if !keyword && !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(format!("invalid number {s:?}"));
    }
    s.parse::<f64>()
        .map_err(|_| format!("invalid number {s:?}"))
}

/// Parses a bare number as an expected scalar line is read: an integer with Go base prefixes
/// (`0x10`, `0o17`, `0b1`, leading-zero octal) first, else a float.
pub fn parse_scalar_line(s: &str) -> Option<f64> {
    if let Some(v) = parse_go_int(s) {
        return Some(v as f64);
    }
    parse_float(s).ok()
}

fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let body = body.replace('_', "");
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// Unquotes a Go string literal (`"..."`, `'...'` or a backquoted raw string) that starts at the
/// beginning of `s`; returns the value and the number of bytes consumed.
pub fn unquote_prefix(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    let q = match chars.next() {
        Some((_, c @ ('"' | '\'' | '`'))) => c,
        _ => return Err(format!("expected a quoted string at {s:?}")),
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, i + c.len_utf8()));
        }
        if c != '\\' || q == '`' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' | '\'' | '"' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut hex = String::new();
                for _ in 0..n {
                    match chars.next() {
                        Some((_, h)) if h.is_ascii_hexdigit() => hex.push(h),
                        _ => return Err(format!("bad \\{e} escape in {s:?}")),
                    }
                }
                let v = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                let ch = char::from_u32(v).ok_or_else(|| format!("bad code point in {s:?}"))?;
                out.push(ch);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.next() {
                        Some((_, d)) if d.is_digit(8) => v = v * 8 + d.to_digit(8).unwrap_or(0),
                        _ => return Err(format!("bad octal escape in {s:?}")),
                    }
                }
                let ch = char::from_u32(v).ok_or_else(|| format!("bad code point in {s:?}"))?;
                out.push(ch);
            }
            other => return Err(format!("unknown escape \\{other} in {s:?}")),
        }
    }
    Err(format!("unterminated string {s:?}"))
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses the series descriptor at the start of `s` (`name`, `name{...}`, `{...}`, with quoted
/// UTF-8 names such as `{"some.metric", a="b"}`); returns the label set and the rest of the line.
pub fn parse_series(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let mut b = LabelsBuilder::new();
    let name_len = s
        .char_indices()
        .find(|&(i, c)| {
            if i == 0 {
                !is_name_start(c)
            } else {
                !is_name_char(c)
            }
        })
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let mut seen_name = name_len > 0;
    if seen_name {
        b.set(METRIC_NAME, &s[..name_len]);
    }
    let mut rest = &s[name_len..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            // A label name: an identifier or a quoted string; a quoted string not followed by
            // `=` is the metric name.
            let (lname, quoted) = if rest.starts_with(['"', '\'', '`']) {
                let (v, n) = unquote_prefix(rest)?;
                rest = &rest[n..];
                (v, true)
            } else {
                let n = rest
                    .char_indices()
                    .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map(|(i, _)| i)
                    .unwrap_or(rest.len());
                if n == 0 {
                    return Err(format!("expected a label name at {rest:?}"));
                }
                let v = rest[..n].to_string();
                rest = &rest[n..];
                (v, false)
            };
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('=') {
                rest = r.trim_start();
                let (v, n) = unquote_prefix(rest)?;
                rest = &rest[n..];
                if b.iter().any(|l| l.name == lname) || (lname == METRIC_NAME && seen_name) {
                    return Err(format!("duplicate label {lname:?}"));
                }
                if lname == METRIC_NAME {
                    seen_name = true;
                }
                b.set(&lname, &v);
            } else if quoted {
                if seen_name {
                    return Err(format!("second metric name {lname:?}"));
                }
                seen_name = true;
                b.set(METRIC_NAME, &lname);
            } else {
                return Err(format!("expected '=' after label name {lname:?}"));
            }
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' at {rest:?}"));
            }
        }
    } else if !seen_name {
        return Err(format!("expected a series descriptor at {s:?}"));
    }
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(format!(
            "unexpected text after the series descriptor: {rest:?}"
        ));
    }
    Ok((b.build(), rest))
}

/// Splits a value list into items at whitespace, keeping `{{ ... }}` histogram literals (which
/// contain spaces) inside one item.
pub fn split_items(s: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i..].starts_with(b"{{") {
                match s[i..].find("}}") {
                    Some(end) => i += end + 2,
                    None => return Err(format!("unterminated histogram literal in {s:?}")),
                }
            } else {
                i += 1;
            }
        }
        items.push(&s[start..i]);
    }
    Ok(items)
}

/// Expands a whitespace-separated value list (section 3 of the format) into slots.
pub fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for item in split_items(s)? {
        expand_item(item, &mut out)?;
    }
    Ok(out)
}

fn parse_count(s: &str, item: &str) -> Result<usize, String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid repetition count in {item:?}"));
    }
    s.parse::<usize>()
        .map_err(|_| format!("invalid repetition count in {item:?}"))
}

/// Splits a histogram item `{{...}}rest` into the literal and what follows it.
fn split_histogram(item: &str) -> Result<(&str, &str), String> {
    let end = item
        .find("}}")
        .ok_or_else(|| format!("unterminated histogram literal {item:?}"))?;
    Ok((&item[..end + 2], &item[end + 2..]))
}

/// Expands one item; `xN` means N+1 values except for `_xN`, which is N slots.
pub fn expand_item(item: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    if item == "_" {
        out.push(SeqValue::Missing);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n = parse_count(n, item)?;
        out.extend(std::iter::repeat_n(SeqValue::Missing, n));
        return Ok(());
    }
    if item == "stale" {
        out.push(SeqValue::Float(STALE_NAN));
        return Ok(());
    }
    if item.starts_with("{{") {
        let (first, rest) = split_histogram(item)?;
        let n = if rest.is_empty() {
            0
        } else if let Some(n) = rest.strip_prefix('x') {
            parse_count(n, item)?
        } else if let Some(step) = rest.strip_prefix(['+', '-']) {
            if !step.starts_with("{{") {
                return Err(format!("invalid histogram series item {item:?}"));
            }
            let (_, tail) = split_histogram(step)?;
            let n = tail
                .strip_prefix('x')
                .ok_or_else(|| format!("histogram step without 'xN' in {item:?}"))?;
            parse_count(n, item)?
        } else {
            return Err(format!("invalid histogram series item {item:?}"));
        };
        // Histogram arithmetic is not modelled: every copy carries the item's text, which is
        // enough to know the slot holds a histogram.
        out.extend(std::iter::repeat_n(
            SeqValue::Histogram(first.to_string()),
            n + 1,
        ));
        return Ok(());
    }
    // In value lists `x` always means repetition (`0x10` is eleven zeros, not hex).
    let (body, count) = match item.rfind('x') {
        Some(p) => (&item[..p], Some(parse_count(&item[p + 1..], item)?)),
        None => (item, None),
    };
    // The operator of `a+bxN` is the first sign after position 0 that is not an exponent's sign.
    let bytes = body.as_bytes();
    let op = (1..bytes.len())
        .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    match (op, count) {
        (None, None) => out.push(SeqValue::Float(parse_float(body)?)),
        (None, Some(n)) => {
            let v = parse_float(body)?;
            out.extend(std::iter::repeat_n(SeqValue::Float(v), n + 1));
        }
        (Some(_), None) => return Err(format!("series step without 'xN' in {item:?}")),
        (Some(p), Some(n)) => {
            let start = parse_float(&body[..p])?;
            let step = parse_float(&body[p + 1..])?;
            let step = if bytes[p] == b'-' { -step } else { step };
            // Repeated addition, not start + i*step, to round exactly as the reference does.
            let mut cur = start;
            out.push(SeqValue::Float(cur));
            for _ in 0..n {
                cur += step;
                out.push(SeqValue::Float(cur));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tocsin_model::is_stale_nan;

    fn floats(s: &str) -> Vec<f64> {
        parse_values(s)
            .unwrap()
            .into_iter()
            .map(|v| match v {
                SeqValue::Float(f) => f,
                SeqValue::Missing => -12345.0,
                SeqValue::Histogram(_) => -99999.0,
            })
            .collect()
    }

    #[test]
    fn value_notation() {
        assert_eq!(floats("1x5"), vec![1.0; 6]);
        assert_eq!(floats("0+10x3"), vec![0.0, 10.0, 20.0, 30.0]);
        assert_eq!(floats("10-2x2"), vec![10.0, 8.0, 6.0]);
        assert_eq!(floats("-2+3x2"), vec![-2.0, 1.0, 4.0]);
        assert_eq!(floats("1 _ 3"), vec![1.0, -12345.0, 3.0]);
        assert_eq!(floats("_x3 1"), vec![-12345.0, -12345.0, -12345.0, 1.0]);
        assert_eq!(floats("0x10").len(), 11);
        assert_eq!(floats("1e-3 -1.5E+2"), vec![0.001, -150.0]);
        assert_eq!(floats("1e+3+1x1"), vec![1000.0, 1001.0]);
        let v = floats("Inf -Inf +Inf NaN nan");
        assert_eq!(&v[..3], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);
        assert!(v[3].is_nan() && v[4].is_nan() && !is_stale_nan(v[3]));
        let s = floats("stale");
        assert!(is_stale_nan(s[0]));
        assert!(parse_values("1+2").is_err());
        assert!(parse_values("abc").is_err());
        assert!(parse_values("1x").is_err());
    }

    #[test]
    fn repeated_addition_rounding() {
        let v = floats("0+0.1x3");
        let mut cur = 0.0f64;
        for x in &v {
            assert_eq!(x.to_bits(), cur.to_bits());
            cur += 0.1;
        }
        assert_ne!(v[3], 0.3);
    }

    #[test]
    fn histogram_items() {
        let v = parse_values("1 {{schema:0 sum:5 count:4 buckets:[1 2 1]}} 2").unwrap();
        assert_eq!(v.len(), 3);
        assert!(matches!(v[1], SeqValue::Histogram(_)));
        assert_eq!(parse_values("{{sum:1}}x2").unwrap().len(), 3);
        assert_eq!(
            parse_values("{{sum:1 count:1}}+{{sum:2}}x3 _")
                .unwrap()
                .len(),
            5
        );
        assert!(parse_values("{{sum:1").is_err());
    }

    #[test]
    fn series_descriptors() {
        let (l, rest) = parse_series(r#"http_requests{job="api", instance="0"}  0+10x10"#).unwrap();
        assert_eq!(
            l,
            Labels::from_pairs(&[
                ("__name__", "http_requests"),
                ("job", "api"),
                ("instance", "0")
            ])
        );
        assert_eq!(rest.trim(), "0+10x10");
        let (l, _) = parse_series(r#"{__name__="x", a="b",} 1"#).unwrap();
        assert_eq!(l, Labels::from_pairs(&[("__name__", "x"), ("a", "b")]));
        let (l, rest) = parse_series("{} 1 2").unwrap();
        assert!(l.is_empty());
        assert_eq!(rest.trim(), "1 2");
        let (l, _) = parse_series(r#"{"some.metric", "a.b"="c\"d\n"} 1"#).unwrap();
        assert_eq!(
            l,
            Labels::from_pairs(&[("__name__", "some.metric"), ("a.b", "c\"d\n")])
        );
        let (l, _) = parse_series(r#"m{a="x y}z", b='q'} 1"#).unwrap();
        assert_eq!(l.get("a"), Some("x y}z"));
        assert_eq!(l.get("b"), Some("q"));
        let (l, rest) = parse_series("metric:sub_total").unwrap();
        assert_eq!(l.metric_name(), Some("metric:sub_total"));
        assert_eq!(rest, "");
        let (l, _) = parse_series(r#"m{a="\u00e9\x41"} 1"#).unwrap();
        assert_eq!(l.get("a"), Some("éA"));
        assert!(parse_series(r#"m{a="b" 1"#).is_err());
        assert!(parse_series("1 2").is_err());
        assert!(parse_series(r#"m{__name__="x"} 1"#).is_err());
    }

    #[test]
    fn scalar_lines() {
        assert_eq!(parse_scalar_line("3000"), Some(3000.0));
        assert_eq!(parse_scalar_line("0x10"), Some(16.0));
        assert_eq!(parse_scalar_line("-0.5"), Some(-0.5));
        assert_eq!(parse_scalar_line("1e3"), Some(1000.0));
        assert!(parse_scalar_line("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_scalar_line("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_scalar_line("{} 1"), None);
        assert_eq!(parse_scalar_line("metric"), None);
        assert_eq!(parse_scalar_line("Infinite"), None);
    }
}
