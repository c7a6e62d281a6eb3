//! InfluxDB line protocol: a hand-written parser and the mapping of points to samples.
//!
//! The parser scans bytes and lends out slices of the input; only identifiers that contain escapes
//! are copied, unescaped, into a scratch buffer the [`Parser`] reuses across lines, so a typical
//! Telegraf line costs no allocation at all. [`Decoder`] maps each numeric field of a point to one
//! sample: metric name `<measurement>_<field>` (as VictoriaMetrics does, also for a field named
//! `value`), tags as labels, names sanitized to the Prometheus character set, booleans as 1/0,
//! integers as floats; string fields are skipped and counted. A bad line is reported with its
//! 1-based number and never stops the lines after it.

use crate::names::{is_valid_label_name, push_sanitized};

/// Unit of the timestamps in a request, chosen by the `precision` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// InfluxDB 1.x `/write?precision=`: `n`, `ns`, `u`, `us`, `µ`, `ms`, `s`, `m`, `h`; empty = ns.
    pub fn from_v1(s: &str) -> Option<Self> {
        Some(match s {
            "" | "n" | "ns" => Self::Nanoseconds,
            "u" | "us" | "µ" | "μ" | "µs" | "μs" => Self::Microseconds,
            "ms" => Self::Milliseconds,
            "s" => Self::Seconds,
            "m" => Self::Minutes,
            "h" => Self::Hours,
            _ => return None,
        })
    }

    /// InfluxDB 2.x `/api/v2/write?precision=`: `ns`, `us`, `ms`, `s`; empty = ns.
    pub fn from_v2(s: &str) -> Option<Self> {
        Some(match s {
            "" | "ns" => Self::Nanoseconds,
            "us" => Self::Microseconds,
            "ms" => Self::Milliseconds,
            "s" => Self::Seconds,
            _ => return None,
        })
    }

    /// Converts a timestamp in this unit to milliseconds (finer units are floored); `None` when the
    /// result does not fit.
    pub fn to_ms(self, t: i64) -> Option<i64> {
        match self {
            Self::Nanoseconds => Some(t.div_euclid(1_000_000)),
            Self::Microseconds => Some(t.div_euclid(1_000)),
            Self::Milliseconds => Some(t),
            Self::Seconds => t.checked_mul(1_000),
            Self::Minutes => t.checked_mul(60_000),
            Self::Hours => t.checked_mul(3_600_000),
        }
    }
}

/// The units a hint may suggest, with their `precision=` value (valid in both APIs).
const HINT_UNITS: [(Precision, &str, &str); 4] = [
    (Precision::Seconds, "s", "seconds"),
    (Precision::Milliseconds, "ms", "milliseconds"),
    (Precision::Microseconds, "us", "microseconds"),
    (Precision::Nanoseconds, "ns", "nanoseconds"),
];

impl Precision {
    /// A timestamp in milliseconds back in this unit (approximate for finer units).
    fn ms_to_unit(self, t: i64) -> i64 {
        match self {
            Self::Nanoseconds => t.saturating_mul(1_000_000),
            Self::Microseconds => t.saturating_mul(1_000),
            Self::Milliseconds => t,
            Self::Seconds => t / 1_000,
            Self::Minutes => t / 60_000,
            Self::Hours => t / 3_600_000,
        }
    }
}

/// For a refused timestamp (`t_ms`, read in `precision`): if the number as written is a plausible
/// time (the last ten years up to a day ahead of `now_ms`) only in another unit, says so, e.g.
/// `looks like seconds: did you mean precision=s?`. The usual cause is a client writing seconds
/// while the endpoint defaults to nanoseconds.
pub fn precision_hint(t_ms: i64, precision: Precision, now_ms: i64) -> Option<String> {
    const YEAR_MS: i64 = 365 * 86_400_000;
    let plausible = |ms: i64| ms >= now_ms - 10 * YEAR_MS && ms <= now_ms + 86_400_000;
    if plausible(t_ms) {
        return None;
    }
    let raw = precision.ms_to_unit(t_ms);
    HINT_UNITS
        .iter()
        .filter(|(p, _, _)| *p != precision)
        .find(|(p, _, _)| p.to_ms(raw).is_some_and(plausible))
        .map(|(_, name, long)| format!("looks like {long}: did you mean precision={name}?"))
}

/// Where an identifier's text lives: in the line itself, or unescaped in the parser's scratch.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    scratch: bool,
}

#[derive(Debug, Clone, Copy)]
enum RawValue {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Span),
}

/// A field value as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(&'a str),
}

impl FieldValue<'_> {
    /// The sample value: numbers as f64, booleans as 1/0; `None` for strings.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            FieldValue::Float(v) => Some(v),
            FieldValue::Int(v) => Some(v as f64),
            FieldValue::UInt(v) => Some(v as f64),
            FieldValue::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            FieldValue::Str(_) => None,
        }
    }
}

/// One parsed line, borrowing the input and the parser's scratch buffer.
#[derive(Debug, Clone, Copy)]
pub struct Point<'a> {
    line: &'a str,
    scratch: &'a str,
    measurement: Span,
    tags: &'a [(Span, Span)],
    fields: &'a [(Span, RawValue)],
    /// The timestamp as written, in the request's precision.
    pub timestamp: Option<i64>,
}

impl<'a> Point<'a> {
    fn text(&self, s: Span) -> &'a str {
        let src = if s.scratch { self.scratch } else { self.line };
        src.get(s.start..s.end).unwrap_or("")
    }

    pub fn measurement(&self) -> &'a str {
        self.text(self.measurement)
    }

    /// Tag keys and values, unescaped, in the order written.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + '_ {
        self.tags.iter().map(|&(k, v)| (self.text(k), self.text(v)))
    }

    /// Field keys and values, unescaped, in the order written.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&'a str, FieldValue<'a>)> + '_ {
        self.fields.iter().map(|&(k, v)| {
            let v = match v {
                RawValue::Float(f) => FieldValue::Float(f),
                RawValue::Int(i) => FieldValue::Int(i),
                RawValue::UInt(u) => FieldValue::UInt(u),
                RawValue::Bool(b) => FieldValue::Bool(b),
                RawValue::Str(s) => FieldValue::Str(self.text(s)),
            };
            (self.text(k), v)
        })
    }
}

/// Which escapes an identifier honours: measurements escape commas and spaces, tag keys, tag
/// values and field keys also escape equals signs. A backslash before any other byte is literal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Measurement,
    Key,
    TagValue,
}

fn escapable(ctx: Ctx, c: u8) -> bool {
    match ctx {
        Ctx::Measurement => matches!(c, b',' | b' ' | b'\\'),
        Ctx::Key | Ctx::TagValue => matches!(c, b',' | b'=' | b' ' | b'\\'),
    }
}

fn stops(ctx: Ctx, c: u8) -> bool {
    match ctx {
        Ctx::Measurement | Ctx::TagValue => c == b',' || c == b' ',
        Ctx::Key => c == b',' || c == b' ' || c == b'=',
    }
}

/// A reusable line parser. Parsing a line resets it; the returned [`Point`] borrows it.
#[derive(Debug, Default)]
pub struct Parser {
    scratch: String,
    tags: Vec<(Span, Span)>,
    fields: Vec<(Span, RawValue)>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored). Blank lines and comments
    /// give `Ok(None)`. The error is a reason for the person who wrote the line.
    pub fn parse<'a>(&'a mut self, line: &'a str) -> Result<Option<Point<'a>>, String> {
        self.scratch.clear();
        self.tags.clear();
        self.fields.clear();
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_start_matches([' ', '\t']);
        let b = line.as_bytes();
        if b.is_empty() || b[0] == b'#' {
            return Ok(None);
        }
        let (measurement, mut pos) = self.ident(line, 0, Ctx::Measurement);
        if measurement.start == measurement.end && !measurement.scratch {
            return Err("missing measurement name".into());
        }
        while b.get(pos) == Some(&b',') {
            let (k, p) = self.ident(line, pos + 1, Ctx::Key);
            if span_empty(k) {
                return Err(format!("missing tag key at column {}", pos + 2));
            }
            if b.get(p) != Some(&b'=') {
                return Err(format!(
                    "tag key {:?} has no value (expected '=' at column {})",
                    text_of(line, &self.scratch, k),
                    p + 1
                ));
            }
            let (v, p) = self.ident(line, p + 1, Ctx::TagValue);
            if span_empty(v) {
                return Err(format!(
                    "tag {:?} has an empty value",
                    text_of(line, &self.scratch, k)
                ));
            }
            self.tags.push((k, v));
            pos = p;
        }
        if b.get(pos) != Some(&b' ') {
            return Err(
                "missing fields (expected a space and field=value after the measurement and tags)"
                    .into(),
            );
        }
        while b.get(pos) == Some(&b' ') {
            pos += 1;
        }
        loop {
            let (k, p) = self.ident(line, pos, Ctx::Key);
            if span_empty(k) {
                return Err(format!("missing field key at column {}", pos + 1));
            }
            if b.get(p) != Some(&b'=') {
                return Err(format!(
                    "field {:?} has no value",
                    text_of(line, &self.scratch, k)
                ));
            }
            let (v, p) = self.value(line, p + 1).map_err(|reason| {
                format!("field {:?}: {reason}", text_of(line, &self.scratch, k))
            })?;
            self.fields.push((k, v));
            pos = p;
            match b.get(pos) {
                Some(b',') => pos += 1,
                _ => break,
            }
        }
        while b.get(pos) == Some(&b' ') {
            pos += 1;
        }
        let mut timestamp = None;
        if pos < b.len() {
            let start = pos;
            while pos < b.len() && b[pos] != b' ' {
                pos += 1;
            }
            let tok = &line[start..pos];
            timestamp = Some(parse_int(tok).ok_or_else(|| format!("invalid timestamp {tok:?}"))?);
            while pos < b.len() && matches!(b[pos], b' ' | b'\t') {
                pos += 1;
            }
            if pos < b.len() {
                return Err(format!(
                    "unexpected text after the timestamp at column {}",
                    pos + 1
                ));
            }
        }
        Ok(Some(Point {
            line,
            scratch: &self.scratch,
            measurement,
            tags: &self.tags,
            fields: &self.fields,
            timestamp,
        }))
    }

    /// Scans an identifier from `start`; returns its span and the position of the byte that ended
    /// it. Unescapes into the scratch buffer only when the identifier holds an escape.
    fn ident(&mut self, line: &str, start: usize, ctx: Ctx) -> (Span, usize) {
        let b = line.as_bytes();
        let mut i = start;
        let mut escaped = false;
        while i < b.len() {
            let c = b[i];
            if c == b'\\' && i + 1 < b.len() && escapable(ctx, b[i + 1]) {
                escaped = true;
                i += 2;
                continue;
            }
            if stops(ctx, c) {
                break;
            }
            i += 1;
        }
        if !escaped {
            return (
                Span {
                    start,
                    end: i,
                    scratch: false,
                },
                i,
            );
        }
        let s0 = self.scratch.len();
        let mut j = start;
        let mut run = start;
        while j < i {
            if b[j] == b'\\' && j + 1 < i && escapable(ctx, b[j + 1]) {
                self.scratch.push_str(&line[run..j]);
                run = j + 1;
                j += 2;
                continue;
            }
            j += 1;
        }
        self.scratch.push_str(&line[run..i]);
        (
            Span {
                start: s0,
                end: self.scratch.len(),
                scratch: true,
            },
            i,
        )
    }

    /// Parses a field value starting at `start`; returns it and the position after it.
    fn value(&mut self, line: &str, start: usize) -> Result<(RawValue, usize), String> {
        let b = line.as_bytes();
        if b.get(start) == Some(&b'"') {
            let mut i = start + 1;
            let mut escaped = false;
            loop {
                match b.get(i) {
                    None => return Err("unterminated string value".into()),
                    Some(b'\\') if matches!(b.get(i + 1), Some(b'"' | b'\\')) => {
                        escaped = true;
                        i += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            let inner = &line[start + 1..i];
            let span = if escaped {
                let s0 = self.scratch.len();
                let mut chars = inner.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        if let Some(&n) = chars.peek() {
                            if n == '"' || n == '\\' {
                                self.scratch.push(n);
                                chars.next();
                                continue;
                            }
                        }
                    }
                    self.scratch.push(c);
                }
                Span {
                    start: s0,
                    end: self.scratch.len(),
                    scratch: true,
                }
            } else {
                Span {
                    start: start + 1,
                    end: i,
                    scratch: false,
                }
            };
            let after = i + 1;
            if after < b.len() && b[after] != b',' && b[after] != b' ' {
                return Err(format!(
                    "unexpected text after the closing quote at column {}",
                    after + 1
                ));
            }
            return Ok((RawValue::Str(span), after));
        }
        let mut i = start;
        while i < b.len() && b[i] != b',' && b[i] != b' ' {
            i += 1;
        }
        let tok = &line[start..i];
        Ok((parse_scalar(tok)?, i))
    }
}

fn span_empty(s: Span) -> bool {
    s.start == s.end
}

fn text_of<'a>(line: &'a str, scratch: &'a str, s: Span) -> &'a str {
    let src = if s.scratch { scratch } else { line };
    src.get(s.start..s.end).unwrap_or("")
}

/// `-?[0-9]+` as i64; stricter than `str::parse` (no `+`, no empty digits).
fn parse_int(tok: &str) -> Option<i64> {
    let digits = tok.strip_prefix('-').unwrap_or(tok);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    tok.parse().ok()
}

fn parse_scalar(tok: &str) -> Result<RawValue, String> {
    match tok {
        "" => return Err("empty value".into()),
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(RawValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(RawValue::Bool(false)),
        _ => {}
    }
    if let Some(n) = tok.strip_suffix('i') {
        return parse_int(n)
            .map(RawValue::Int)
            .ok_or_else(|| format!("invalid integer {tok:?}"));
    }
    if let Some(n) = tok.strip_suffix('u') {
        if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("invalid unsigned integer {tok:?}"));
        }
        return n
            .parse()
            .map(RawValue::UInt)
            .map_err(|_| format!("unsigned integer {tok:?} out of range"));
    }
    // Only digits, signs, dots and exponents: `str::parse` would also take `inf` and `NaN`, which
    // line protocol does not allow.
    let first_ok = tok
        .bytes()
        .find(|c| *c != b'-' && *c != b'+')
        .is_some_and(|c| c.is_ascii_digit() || c == b'.');
    if !first_ok
        || !tok
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err(format!(
            "invalid value {tok:?} (not a number, integer, boolean or quoted string)"
        ));
    }
    match tok.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(RawValue::Float(v)),
        Ok(_) => Err(format!("float {tok:?} out of range")),
        Err(_) => Err(format!("invalid float {tok:?}")),
    }
}

/// How a request's lines are read.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub precision: Precision,
    /// Timestamp, in milliseconds, of points written without one.
    pub now_ms: i64,
}

/// At most this many bad lines are described in a [`Report`]; the rest are only counted.
pub const MAX_REPORTED_LINES: usize = 20;

/// What a decode did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Lines holding a point (not blank, not comments).
    pub points: u64,
    /// Samples handed to the sink.
    pub samples: u64,
    /// String fields skipped (they have no numeric value).
    pub strings_skipped: u64,
    /// The first [`MAX_REPORTED_LINES`] bad lines: 1-based line number and reason.
    pub bad_lines: Vec<(usize, String)>,
    /// All bad lines, including those not described.
    pub bad_total: u64,
}

impl Report {
    fn bad(&mut self, line: usize, reason: String) {
        self.bad_total += 1;
        if self.bad_lines.len() < MAX_REPORTED_LINES {
            self.bad_lines.push((line, reason));
        }
    }

    /// One message listing the bad lines, e.g. `line 3: invalid integer "x"; line 9: ...`.
    pub fn bad_lines_message(&self) -> String {
        let mut s = String::new();
        for (i, (n, r)) in self.bad_lines.iter().enumerate() {
            if i > 0 {
                s.push_str("; ");
            }
            s.push_str(&format!("line {n}: {r}"));
        }
        let more = self.bad_total.saturating_sub(self.bad_lines.len() as u64);
        if more > 0 {
            s.push_str(&format!("; and {more} more bad lines"));
        }
        s
    }
}

/// Maps line protocol to samples, reusing its buffers across lines and requests.
#[derive(Debug, Default)]
pub struct Decoder {
    parser: Parser,
    names: String,
    name_spans: Vec<(usize, usize, f64)>,
    keys: String,
    key_spans: Vec<Option<(usize, usize)>>,
    pairs: Vec<(&'static str, &'static str)>,
}

/// Empties a vector of borrowed pairs and hands its allocation to a new lifetime. `collect` from a
/// `vec::IntoIter` through `map` reuses the buffer in place when the element layout is the same.
fn recycle<'y>(mut v: Vec<(&str, &str)>) -> Vec<(&'y str, &'y str)> {
    v.clear();
    v.into_iter().map(|_| ("", "")).collect()
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a whole body, handing each sample to `sink` as label pairs sorted by name (with
    /// `__name__`), a millisecond timestamp and a value. Bad lines go to `report`; an error from
    /// the sink stops decoding and is returned.
    pub fn decode<E>(
        &mut self,
        body: &[u8],
        opts: &Options,
        report: &mut Report,
        mut sink: impl FnMut(&[(&str, &str)], i64, f64) -> Result<(), E>,
    ) -> Result<(), E> {
        let Decoder {
            parser,
            names,
            name_spans,
            keys,
            key_spans,
            pairs: pairs_store,
        } = self;
        for (idx, raw) in body.split(|&c| c == b'\n').enumerate() {
            let n = idx + 1;
            let Ok(line) = std::str::from_utf8(raw) else {
                report.bad(n, "not valid UTF-8".into());
                continue;
            };
            let point = match parser.parse(line) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(reason) => {
                    report.bad(n, reason);
                    continue;
                }
            };
            report.points += 1;
            let t = match point.timestamp {
                None => opts.now_ms,
                Some(ts) => match opts.precision.to_ms(ts) {
                    Some(t) => t,
                    None => {
                        report.bad(n, format!("timestamp {ts} out of range"));
                        continue;
                    }
                },
            };
            let mut pairs = recycle(std::mem::take(pairs_store));
            let res = emit(
                &point, t, names, name_spans, keys, key_spans, &mut pairs, report, &mut sink,
            );
            *pairs_store = recycle(pairs);
            match res {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => report.bad(n, reason),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Hands one point's samples to the sink. The inner error is a reason to report for the line.
#[allow(clippy::too_many_arguments)]
fn emit<'p, E>(
    point: &Point<'p>,
    t: i64,
    names: &'p mut String,
    name_spans: &mut Vec<(usize, usize, f64)>,
    keys: &'p mut String,
    key_spans: &mut Vec<Option<(usize, usize)>>,
    pairs: &mut Vec<(&'p str, &'p str)>,
    report: &mut Report,
    sink: &mut impl FnMut(&[(&str, &str)], i64, f64) -> Result<(), E>,
) -> Result<Result<(), String>, E> {
    names.clear();
    name_spans.clear();
    let measurement = point.measurement();
    for (key, value) in point.fields() {
        let Some(v) = value.as_f64() else {
            report.strings_skipped += 1;
            continue;
        };
        let start = names.len();
        push_sanitized(names, measurement, true, true);
        names.push('_');
        push_sanitized(names, key, true, false);
        name_spans.push((start, names.len(), v));
    }
    if name_spans.is_empty() {
        return Ok(Ok(()));
    }
    keys.clear();
    key_spans.clear();
    for (k, _) in point.tags() {
        if is_valid_label_name(k) {
            key_spans.push(None);
        } else {
            let start = keys.len();
            push_sanitized(keys, k, false, true);
            key_spans.push(Some((start, keys.len())));
        }
    }
    // Shared borrows from here on: the buffers are filled.
    let names: &'p str = names;
    let keys: &'p str = keys;
    for ((k, v), span) in point.tags().zip(key_spans.iter()) {
        let k = match span {
            None => k,
            Some((s, e)) => keys.get(*s..*e).unwrap_or(""),
        };
        if k == tocsin_model::METRIC_NAME {
            return Ok(Err(format!(
                "tag key {k:?} is reserved for the metric name"
            )));
        }
        pairs.push((k, v));
    }
    if let Err(dup) = crate::names::sort_pairs(pairs) {
        return Ok(Err(format!(
            "duplicate tag key {dup:?} (after replacing characters invalid in label names with '_')"
        )));
    }
    let at = pairs.partition_point(|(n, _)| *n < tocsin_model::METRIC_NAME);
    pairs.insert(at, (tocsin_model::METRIC_NAME, ""));
    for &(s, e, v) in name_spans.iter() {
        pairs[at].1 = names.get(s..e).unwrap_or("");
        report.samples += 1;
        sink(pairs, t, v)?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests;
