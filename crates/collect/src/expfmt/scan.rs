//! Pieces shared by both text formats: the byte cursor over one line, name character classes,
//! quoted-string scanning and unescaping, and the per-parse scratch state that turns a parsed
//! sample into an [`Entry`] without allocating.

use super::{bad, recycle, Bad, Entry, SampleRef};

const METRIC_START: u8 = 1;
const METRIC_REST: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_REST: u8 = 8;

/// Character classes of names, one table lookup per byte.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut k = 0;
        if alpha || b == b':' {
            k |= METRIC_START | METRIC_REST;
        }
        if digit {
            k |= METRIC_REST | LABEL_REST;
        }
        if alpha {
            k |= LABEL_START | LABEL_REST;
        }
        t[c] = k;
        c += 1;
    }
    t
};

/// A label value: borrowed from the body, or a range of [`Scratch::unesc`] when it had escapes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'a> {
    Borrowed(&'a str),
    Unescaped(usize, usize),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct LabelTok<'a> {
    pub name: &'a str,
    pub value: Val<'a>,
}

impl Default for LabelTok<'_> {
    fn default() -> Self {
        LabelTok {
            name: "",
            value: Val::Borrowed(""),
        }
    }
}

/// Buffers lent by the [`super::Parser`] for one parse, typed with the body's lifetime.
pub(super) struct Scratch<'a> {
    /// Labels of the current sample.
    pub labels: Vec<LabelTok<'a>>,
    /// Sort space for the duplicate-name check of samples with many labels.
    pub names: Vec<&'a str>,
    /// Pairs handed to the callback; re-typed per sample because they may borrow `unesc`.
    pub pairs: Vec<(&'static str, &'static str)>,
    /// Unescaped label values of the current sample, or the current HELP text.
    pub unesc: String,
}

/// Above this many labels, duplicates are found by sorting instead of comparing every pair.
const PAIRWISE_MAX: usize = 16;

impl<'a> Scratch<'a> {
    #[inline]
    pub fn begin_sample(&mut self) {
        self.labels.clear();
        self.unesc.clear();
    }

    /// Rejects `__name__` and repeated label names in the current sample.
    pub fn check_labels(&mut self) -> Result<(), Bad> {
        let labels = &self.labels;
        if labels.iter().any(|l| l.name == "__name__") {
            return Err(bad(
                "a sample may not carry a __name__ label (the metric name goes before the braces)",
            ));
        }
        let dup = if labels.len() <= PAIRWISE_MAX {
            labels.iter().enumerate().find_map(|(i, a)| {
                labels
                    .get(i + 1..)
                    .and_then(|rest| rest.iter().find(|b| b.name == a.name))
                    .map(|b| b.name)
            })
        } else {
            self.names.clear();
            self.names.extend(labels.iter().map(|l| l.name));
            self.names.sort_unstable();
            self.names
                .windows(2)
                .find(|w| w.first() == w.get(1))
                .and_then(|w| w.first().copied())
        };
        match dup {
            Some(name) => Err(Bad::owned(format!("label name {name:?} appears twice"))),
            None => Ok(()),
        }
    }

    /// Hands the current sample to `f`.
    pub fn emit<F: FnMut(Entry<'_>)>(
        &mut self,
        name: &'a str,
        value: f64,
        timestamp_ms: Option<i64>,
        f: &mut F,
    ) {
        let mut pairs: Vec<(&str, &str)> = recycle(std::mem::take(&mut self.pairs));
        for l in &self.labels {
            let v = match l.value {
                Val::Borrowed(v) => v,
                Val::Unescaped(a, b) => self.unesc.get(a..b).unwrap_or_default(),
            };
            pairs.push((l.name, v));
        }
        f(Entry::Sample(SampleRef {
            name,
            labels: &pairs,
            value,
            timestamp_ms,
        }));
        self.pairs = recycle(pairs);
    }
}

/// A position in one line (without its `\n`). Every slice it hands out starts and ends next to
/// an ASCII byte or at the line's ends, so it is always on a character boundary; `get` keeps
/// that an invariant rather than a panic.
pub(super) struct Cur<'a> {
    pub s: &'a str,
    pub i: usize,
}

impl<'a> Cur<'a> {
    #[inline]
    pub fn new(s: &'a str) -> Self {
        Cur { s, i: 0 }
    }

    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    #[inline]
    pub fn eat_str(&mut self, p: &str) -> bool {
        if self
            .bytes()
            .get(self.i..)
            .is_some_and(|r| r.starts_with(p.as_bytes()))
        {
            self.i += p.len();
            true
        } else {
            false
        }
    }

    #[inline]
    pub fn slice(&self, a: usize, b: usize) -> &'a str {
        self.s.get(a..b).unwrap_or_default()
    }

    #[inline]
    pub fn rest(&self) -> &'a str {
        self.s.get(self.i..).unwrap_or_default()
    }

    /// Skips spaces and tabs (text format only).
    #[inline]
    pub fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    #[inline]
    fn class_run(&mut self, start: u8, rest: u8) -> &'a str {
        let b = self.bytes();
        let a = self.i;
        let Some(&first) = b.get(a) else { return "" };
        if CLASS[first as usize] & start == 0 {
            return "";
        }
        let mut i = a + 1;
        while b.get(i).is_some_and(|&c| CLASS[c as usize] & rest != 0) {
            i += 1;
        }
        self.i = i;
        self.slice(a, i)
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, or "" (cursor unmoved) if none starts here.
    #[inline]
    pub fn metric_name(&mut self) -> &'a str {
        self.class_run(METRIC_START, METRIC_REST)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, or "" (cursor unmoved) if none starts here.
    #[inline]
    pub fn label_name(&mut self) -> &'a str {
        self.class_run(LABEL_START, LABEL_REST)
    }

    /// The bytes up to (not including) the first one for which `stop` holds, or the line end.
    #[inline]
    pub fn token(&mut self, stop: impl Fn(u8) -> bool) -> &'a str {
        let b = self.bytes();
        let a = self.i;
        let mut i = a;
        while b.get(i).is_some_and(|&c| !stop(c)) {
            i += 1;
        }
        self.i = i;
        self.slice(a, i)
    }

    /// A quoted string whose opening `"` has been consumed; consumes through the closing `"`.
    /// A backslash escapes any following character, so `\"` never closes. The value is
    /// unescaped into `unesc` only when it contains a backslash; `quote_escape` is false only
    /// for text-format HELP, which is not quoted.
    #[inline]
    pub fn quoted(&mut self, unesc: &mut String) -> Result<Val<'a>, Bad> {
        let b = self.bytes();
        let a = self.i;
        let mut i = a;
        let mut escaped = false;
        loop {
            let found = b.get(i..).and_then(|r| memchr::memchr2(b'"', b'\\', r));
            match found.map(|k| (i + k, b.get(i + k))) {
                Some((q, Some(b'"'))) => {
                    self.i = q + 1;
                    let raw = self.slice(a, q);
                    if !escaped {
                        return Ok(Val::Borrowed(raw));
                    }
                    let start = unesc.len();
                    unescape(raw, true, unesc);
                    return Ok(Val::Unescaped(start, unesc.len()));
                }
                Some((k, _)) if k + 1 < b.len() => {
                    escaped = true;
                    i = k + 2;
                }
                _ => return Err(bad("unterminated quoted label value")),
            }
        }
    }
}

/// Appends `raw` to `out` with `\\`, `\n` and (if `quote_escape`) `\"` replaced. Any other
/// backslash is kept as written, which is what Prometheus does.
pub(super) fn unescape(raw: &str, quote_escape: bool, out: &mut String) {
    let b = raw.as_bytes();
    let mut seg = 0;
    let mut i = 0;
    while let Some(k) = b.get(i..).and_then(|r| memchr::memchr(b'\\', r)) {
        let at = i + k;
        let rep = match b.get(at + 1) {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if quote_escape => Some('"'),
            _ => None,
        };
        match rep {
            Some(c) => {
                out.push_str(raw.get(seg..at).unwrap_or_default());
                out.push(c);
                seg = at + 2;
                i = at + 2;
            }
            // The backslash stays part of the current segment.
            None => i = at + 1,
        }
    }
    out.push_str(raw.get(seg..).unwrap_or_default());
}
