//! Parsing of scrape bodies: the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.
//!
//! This is the scrape hot path, so the parser is hand-written over bytes and allocation-free in
//! steady state: a [`Parser`] keeps its scratch buffers across scrapes, names and label values are
//! borrowed from the body unless they contain escapes, and entries are handed to a callback
//! instead of being collected. The callback sees each [`Entry`] only for the duration of the call
//! (label pairs live in a reused buffer), so a caller that keeps anything copies or interns it.
//!
//! Parsing is all-or-nothing, as in Prometheus: the first syntax error ends the parse with an
//! [`ExpfmtError`] naming the 1-based line, and the scraper fails the whole scrape. Entries
//! already passed to the callback before the error must then be discarded by the caller.
//!
//! Behaviour follows Prometheus's own scrape parsers where the published formats leave room:
//!
//! * Line endings are `\n` only, as in Prometheus. A `\r` before the `\n` is not whitespace, so a
//!   sample line ending in `\r\n` fails (its value or timestamp is malformed); the error then
//!   says the line has a Windows line ending. In HELP text and comments the `\r` is kept, as
//!   Prometheus keeps it.
//! * Values are parsed like Go's `strconv.ParseFloat` minus hex floats and `_` separators (which
//!   Prometheus also refuses): optional sign, decimal digits with optional fraction and exponent,
//!   `Inf`/`Infinity` in any case with optional sign, `NaN` in any case without a sign. A value
//!   that overflows to infinity is an error, as in Go. Parsed NaNs are the ordinary quiet NaN,
//!   never the staleness marker's bit pattern.
//! * Text 0.0.4: spaces and tabs between tokens, blank lines, a trailing comma in a label set,
//!   and (like Prometheus) a missing comma between label pairs are accepted. Timestamps are
//!   unsigned integer milliseconds. The last line must end with `\n` unless it is a plain
//!   comment. `# TYPE` takes `counter`, `gauge`, `histogram`, `summary`, `untyped` (reported as
//!   [`MetricType::Unknown`]), spelled exactly, with nothing after it. HELP text unescapes `\\`
//!   and `\n`; label values also `\"`. Other escapes are kept verbatim, as Prometheus does.
//! * OpenMetrics 1.0: single spaces only, no blank lines, no comments besides `# HELP`,
//!   `# TYPE`, `# UNIT` and `# EOF`; `# EOF` must be the last line (its own `\n` is optional) —
//!   all as Prometheus's OpenMetrics parser enforces. Like that parser, it accepts a trailing
//!   comma in label sets. Timestamps are float seconds, converted to milliseconds by truncating
//!   `ts * 1000` toward zero, which is what Prometheus does; NaN and infinite timestamps are
//!   errors. HELP text and label values unescape `\\`, `\n` and `\"`. Exemplars
//!   (`value [ts] # {labels} value [ts]`) are checked and dropped. A non-empty
//!   `# UNIT` must be a `_`-separated suffix of the metric name. Semantic rules of the spec that
//!   Prometheus does not check at parse time (family ordering, `_total` on counters, bucket
//!   order) are not checked here either.
//! * Stricter than Prometheus in two corner cases nobody should rely on: a raw line feed inside a
//!   quoted label value (Prometheus text accepts it) and a HELP/TYPE metric name followed by
//!   something other than whitespace (Prometheus silently drops one character) are errors.
//! * Names are the classic character sets: metrics `[a-zA-Z_:][a-zA-Z0-9_:]*`, labels
//!   `[a-zA-Z_][a-zA-Z0-9_]*` (no quoted UTF-8 names). A sample whose labels repeat a name, or
//!   that has a `__name__` label, is an error here rather than later at append time.
//! * Label values and HELP text must be valid UTF-8; invalid bytes are allowed only in plain
//!   comments of the text format, which are skipped.

mod num;
mod om;
mod prom;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

/// The `Accept` header a scraper sends: OpenMetrics 1.0.0 first, then OpenMetrics 0.0.1, then the
/// text format 0.0.4, then anything, with the same preferences Prometheus expresses.
pub const SCRAPE_ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    PromText,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format of a response with this `Content-Type`: `application/openmetrics-text` (any
    /// parameters, any case) is OpenMetrics; anything else, including a missing header, is the
    /// text format, because that is what targets that do not negotiate send.
    pub fn from_content_type(ct: Option<&str>) -> Format {
        let Some(ct) = ct else {
            return Format::PromText;
        };
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PromText
        }
    }
}

/// A metric family type from a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// OpenMetrics `unknown`, and text-format `untyped`.
    Unknown,
}

impl MetricType {
    /// The OpenMetrics spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// One sample line. Borrowed for the duration of the callback only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRef<'a> {
    /// The metric name as written on the line (`foo_bucket`, `foo_total`, ...).
    pub name: &'a str,
    /// Label pairs in input order, unescaped, never containing `__name__`, names unique.
    pub labels: &'a [(&'a str, &'a str)],
    pub value: f64,
    /// Milliseconds since the epoch; OpenMetrics seconds are converted.
    pub timestamp_ms: Option<i64>,
}

/// One meaningful line of a body, in input order. Comments, blank lines, exemplars and `# EOF`
/// are not reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entry<'a> {
    Sample(SampleRef<'a>),
    Type {
        name: &'a str,
        kind: MetricType,
    },
    /// `text` is unescaped.
    Help {
        name: &'a str,
        text: &'a str,
    },
    /// OpenMetrics only; `unit` may be empty.
    Unit {
        name: &'a str,
        unit: &'a str,
    },
}

/// Counts of one successful parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    pub samples: usize,
    /// Lines seen, including blank lines, comments and `# EOF`.
    pub lines: usize,
}

/// A syntax error: the body is unusable and the scrape fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exposition body line {line}: {message}")]
pub struct ExpfmtError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong, with an excerpt of the line.
    pub message: String,
}

/// A reusable parser. Keep one per scrape loop: after the first few scrapes its buffers have
/// grown to fit and parsing allocates nothing.
#[derive(Debug, Default)]
pub struct Parser {
    // The `'static` in these buffers is never observed: they are always empty between parses, and
    // `recycle` re-types them to the input's lifetime for the length of one parse (or one
    // sample), keeping only the allocation.
    labels: Vec<scan::LabelTok<'static>>,
    names: Vec<&'static str>,
    pairs: Vec<(&'static str, &'static str)>,
    unesc: String,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a whole body, calling `f` for each entry in input order. On the first syntax error
    /// returns it, naming the line; entries reported before it must be discarded.
    pub fn parse(
        &mut self,
        input: &[u8],
        format: Format,
        mut f: impl FnMut(Entry<'_>),
    ) -> Result<ParseStats, ExpfmtError> {
        let mut s = scan::Scratch {
            labels: recycle(std::mem::take(&mut self.labels)),
            names: recycle(std::mem::take(&mut self.names)),
            pairs: std::mem::take(&mut self.pairs),
            unesc: std::mem::take(&mut self.unesc),
        };
        let r = match format {
            Format::PromText => prom::parse(input, &mut s, &mut f),
            Format::OpenMetrics => om::parse(input, &mut s, &mut f),
        };
        self.labels = recycle(s.labels);
        self.names = recycle(s.names);
        self.pairs = s.pairs;
        self.unesc = s.unesc;
        self.unesc.clear();
        r
    }
}

/// Empties `v` and re-types it, keeping its allocation. The standard library collects a
/// `vec::IntoIter` into a `Vec` of a same-layout type in place, so this neither allocates nor
/// copies; the `expfmt_alloc` test checks that this stays true.
fn recycle<T, U: Default>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| U::default()).collect()
}

/// Why a line is malformed, before the line number and excerpt are attached. Built only on the
/// error path.
#[derive(Debug)]
struct Bad(Cow<'static, str>);

fn bad(msg: &'static str) -> Bad {
    Bad(Cow::Borrowed(msg))
}

impl Bad {
    fn owned(msg: String) -> Bad {
        Bad(Cow::Owned(msg))
    }

    /// The error for line `line` whose bytes (without the `\n`) are `raw`.
    fn at(self, line: usize, raw: &[u8]) -> ExpfmtError {
        const MAX_EXCERPT: usize = 120;
        let excerpt = String::from_utf8_lossy(&raw[..raw.len().min(MAX_EXCERPT)]);
        let more = if raw.len() > MAX_EXCERPT { "..." } else { "" };
        let crlf = if raw.last() == Some(&b'\r') {
            " (the line ends with \\r\\n, a Windows line ending; only \\n may end a line)"
        } else {
            ""
        };
        ExpfmtError {
            line,
            message: format!("{}{crlf} in {excerpt:?}{more}", self.0),
        }
    }
}

/// Splits `input` into lines: `(start, end, terminated)` with `end` excluding the `\n`.
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Iterator for Lines<'_> {
    type Item = (usize, usize, bool);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.input.get(self.pos..).filter(|r| !r.is_empty())?;
        let start = self.pos;
        Some(match memchr::memchr(b'\n', rest) {
            Some(k) => {
                self.pos = start + k + 1;
                (start, start + k, true)
            }
            None => {
                self.pos = self.input.len();
                (start, self.input.len(), false)
            }
        })
    }
}

/// The line `start..end` as text. `whole` is the body when it is valid UTF-8 as a whole, which
/// is the common case and saves validating line by line.
#[inline]
fn line_str<'a>(
    whole: Option<&'a str>,
    input: &'a [u8],
    start: usize,
    end: usize,
) -> Option<&'a str> {
    match whole {
        Some(w) => w.get(start..end),
        None => std::str::from_utf8(input.get(start..end)?).ok(),
    }
}
