//! Prometheus remote-write 1.0: decoding of snappy-compressed `prometheus.WriteRequest` bodies on
//! the ingest hot path, and encoding of them for tests and load generation.
//!
//! The decoder is hand-written rather than generated because generated code allocates a `String`
//! per label and a `Vec` per series; here one request costs a handful of allocations in total.
//! The decompressed body is kept whole and labels are recorded as byte ranges into it, validated
//! once while parsing, then lent out by [`DecodedWrite::series`] as `&str` pairs sorted by name,
//! which is what `Appender::append_pairs` takes, so appending to an existing series needs no
//! allocation at all.
//!
//! Validation is all-or-nothing: a request with one bad series is rejected whole, with a message
//! naming the series, because a partial accept would leave the sender unable to tell what was kept.

use crate::error::{Error, Result};

/// Default bound on the decompressed size of one request; Prometheus sends a few hundred KiB, so
/// anything near this is a misconfigured or hostile client, not a real batch.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// How many label positions remember the previous series' names; see `parse_series`.
const NAME_CACHE: usize = 16;

/// A byte range into the decompressed buffer. `u32` halves the index size; the size limit keeps
/// buffers well under 4 GiB.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct LabelSpan {
    name: Span,
    value: Span,
}

#[derive(Debug, Clone, Copy)]
struct SeriesSpan {
    labels_end: u32,
    samples_end: u32,
}

/// A decoded, validated remote-write request. Owns the decompressed body; labels are `&str`
/// borrowed from it. Reusable: [`DecodedWrite::decode_into`] keeps the allocations of the
/// previous request.
///
/// Deliberately not `Clone`: a clone would copy `pairs`, which point into this value's buffer.
#[derive(Debug, Default)]
pub struct DecodedWrite {
    /// Label pairs of all series, back to back, pointing into `buf`'s heap allocation. The
    /// `'static` is a lie kept private: accessors hand them out with the lifetime of `&self`, and
    /// the invariant is that `pairs` is emptied before `buf` is modified, reallocated or dropped
    /// (see `clear`). Moving a `DecodedWrite` moves the `Vec` header, not the heap bytes.
    pairs: Vec<(&'static str, &'static str)>,
    /// Decompressed body in `buf[..len]`. The rest is zeroed slack kept from larger requests, so
    /// that reuse does not re-zero the buffer for every request.
    buf: Vec<u8>,
    len: usize,
    labels: Vec<LabelSpan>,
    /// Per series, the end of its labels and samples in the flat arrays; the start is the previous
    /// series' end, which saves storing it.
    series: Vec<SeriesSpan>,
    samples: Vec<(i64, f64)>,
    histograms: u64,
    exemplars: u64,
    metadata: u64,
}

/// Decodes a snappy-compressed (block format) remote-write 1.0 request body.
pub fn decode(body: &[u8]) -> Result<DecodedWrite> {
    let mut w = DecodedWrite::default();
    w.decode_into(body, DEFAULT_MAX_DECOMPRESSED_BYTES)?;
    Ok(w)
}

/// Decodes an uncompressed `WriteRequest` protobuf; for callers that did the decompression.
pub fn decode_protobuf(msg: Vec<u8>) -> Result<DecodedWrite> {
    let len = msg.len();
    let mut w = DecodedWrite {
        buf: msg,
        len,
        ..DecodedWrite::default()
    };
    w.parse()?;
    Ok(w)
}

impl DecodedWrite {
    /// Decodes `body` into `self`, replacing what was there and reusing its allocations. On error
    /// `self` is left empty.
    pub fn decode_into(&mut self, body: &[u8], max_decompressed: usize) -> Result<()> {
        self.clear();
        let size = snap::raw::decompress_len(body).map_err(|e| Error::Snappy(e.to_string()))?;
        if size > max_decompressed || size > u32::MAX as usize {
            return Err(Error::TooLarge {
                size,
                limit: max_decompressed.min(u32::MAX as usize),
            });
        }
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        self.len = snap::raw::Decoder::new()
            .decompress(body, &mut self.buf[..size])
            .map_err(|e| Error::Snappy(e.to_string()))?;
        let r = self.parse();
        if r.is_err() {
            self.clear();
        }
        r
    }

    fn clear(&mut self) {
        // First, so no pair outlives the bytes it points to (see `pairs`).
        self.pairs.clear();
        self.len = 0;
        self.labels.clear();
        self.series.clear();
        self.samples.clear();
        self.histograms = 0;
        self.exemplars = 0;
        self.metadata = 0;
    }

    /// Number of time series entries in the request (the same series may appear more than once).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
    /// Number of float samples over all series.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }
    /// Native histogram samples, which are not stored yet.
    pub fn histogram_count(&self) -> u64 {
        self.histograms
    }
    /// Exemplars, which are not stored yet.
    pub fn exemplar_count(&self) -> u64 {
        self.exemplars
    }
    /// Metric metadata entries, which are not stored yet.
    pub fn metadata_count(&self) -> u64 {
        self.metadata
    }

    /// The series in request order.
    pub fn series(&self) -> impl ExactSizeIterator<Item = SeriesRef<'_>> + '_ {
        let mut l0 = 0usize;
        let mut s0 = 0usize;
        self.series.iter().map(move |s| {
            let (l1, s1) = (s.labels_end as usize, s.samples_end as usize);
            let r = SeriesRef {
                labels: &self.pairs[l0..l1],
                samples: &self.samples[s0..s1],
            };
            l0 = l1;
            s0 = s1;
            r
        })
    }

    /// The `i`-th series; `None` past the end.
    pub fn series_at(&self, i: usize) -> Option<SeriesRef<'_>> {
        let s = self.series.get(i)?;
        let (l0, s0) = match i.checked_sub(1).and_then(|p| self.series.get(p)) {
            Some(p) => (p.labels_end as usize, p.samples_end as usize),
            None => (0, 0),
        };
        Some(SeriesRef {
            labels: &self.pairs[l0..s.labels_end as usize],
            samples: &self.samples[s0..s.samples_end as usize],
        })
    }

    /// Builds `pairs` from the validated spans; called once per successful parse.
    fn build_pairs(&mut self) {
        let buf = &self.buf[..self.len];
        let pairs = &mut self.pairs;
        pairs.clear();
        pairs.reserve(self.labels.len());
        for l in &self.labels {
            pairs.push((
                static_str(&buf[l.name.range()]),
                static_str(&buf[l.value.range()]),
            ));
        }
    }

    fn parse(&mut self) -> Result<()> {
        let mut idx = Index {
            // Zero-length spans never match a real name, which is never empty once valid.
            names: [Span { start: 0, len: 0 }; NAME_CACHE],
            labels: std::mem::take(&mut self.labels),
            series: std::mem::take(&mut self.series),
            samples: std::mem::take(&mut self.samples),
            histograms: 0,
            exemplars: 0,
            metadata: 0,
        };
        // A series is ~250 bytes on the wire with ~8 labels and one sample; reserving up front
        // avoids most regrowth without over-committing for odd request shapes.
        let guess = self.len / 256;
        idx.series.reserve(guess);
        idx.samples.reserve(guess);
        idx.labels.reserve(guess * 8);
        let r = parse_write_request(&self.buf[..self.len], &mut idx);
        self.labels = idx.labels;
        self.series = idx.series;
        self.samples = idx.samples;
        self.histograms = idx.histograms;
        self.exemplars = idx.exemplars;
        self.metadata = idx.metadata;
        r?;
        self.build_pairs();
        Ok(())
    }
}

/// Extends a validated label's lifetime for storage in `DecodedWrite::pairs`.
fn static_str(bytes: &[u8]) -> &'static str {
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: (1) UTF-8: `parse` accepted every stored span only after checking it: names against
    // an ASCII-only charset, values with `str::from_utf8` (or `is_ascii`); re-validating here would
    // cost as much as the rest of decoding. (2) Lifetime: the bytes live in the heap allocation of
    // `DecodedWrite::buf`, which stays put when the struct moves and is not touched while `pairs`
    // is non-empty; every path that mutates or drops `buf` goes through `clear` (or drops `pairs`
    // along with it), and accessors only hand out references bounded by `&self`.
    unsafe {
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()))
    }
}

/// One time series entry of a request.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRef<'a> {
    labels: &'a [(&'a str, &'a str)],
    samples: &'a [(i64, f64)],
}

impl<'a> SeriesRef<'a> {
    /// Label pairs sorted by name, unique names, no empty values, `__name__` present: ready for
    /// `Appender::append_pairs`.
    pub fn labels(&self) -> &'a [(&'a str, &'a str)] {
        self.labels
    }
    /// `(timestamp ms, value)` in the order the sender put them.
    pub fn samples(&self) -> &'a [(i64, f64)] {
        self.samples
    }
}

struct Index {
    /// Names at each label position of the last series whose name passed the charset check.
    names: [Span; NAME_CACHE],
    labels: Vec<LabelSpan>,
    series: Vec<SeriesSpan>,
    samples: Vec<(i64, f64)>,
    histograms: u64,
    exemplars: u64,
    metadata: u64,
}

/// A structural protobuf error, turned into `Error::Protobuf` at the top.
struct Malformed {
    offset: usize,
    reason: &'static str,
}

impl From<Malformed> for Error {
    fn from(m: Malformed) -> Self {
        Error::Protobuf {
            offset: m.offset,
            reason: m.reason,
        }
    }
}

type PResult<T> = std::result::Result<T, Malformed>;

const WT_VARINT: u64 = 0;
const WT_I64: u64 = 1;
const WT_LEN: u64 = 2;
const WT_I32: u64 = 5;

/// Cursor over one message `buf[pos..end]`; offsets stay absolute so spans and errors can use them.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: &'static str) -> Malformed {
        Malformed {
            offset: self.pos,
            reason,
        }
    }

    fn more(&self) -> bool {
        self.pos < self.end
    }

    #[inline]
    fn varint(&mut self) -> PResult<u64> {
        // Nearly every tag and length on this path is one byte.
        if self.pos < self.end {
            let b = self.buf[self.pos];
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    #[cold]
    fn varint_slow(&mut self) -> PResult<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            if self.pos >= self.end {
                return Err(self.err("truncated varint"));
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// Reads a field key; returns (field number, wire type).
    #[inline]
    fn key(&mut self) -> PResult<(u64, u64)> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > (1 << 29) - 1 {
            return Err(self.err("invalid field number"));
        }
        Ok((field, k & 7))
    }

    /// Reads a length prefix and returns the range of the bytes it covers, advancing past them.
    #[inline]
    fn len_delimited(&mut self) -> PResult<(usize, usize)> {
        let n = self.varint()?;
        let remaining = (self.end - self.pos) as u64;
        if n > remaining {
            return Err(self.err("length prefix runs past the end of the enclosing message"));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok((start, self.pos))
    }

    fn fixed64(&mut self) -> PResult<u64> {
        if self.end - self.pos < 8 {
            return Err(self.err("truncated 64-bit field"));
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        self.pos += 8;
        Ok(u64::from_le_bytes(b))
    }

    fn skip(&mut self, wire_type: u64) -> PResult<()> {
        match wire_type {
            WT_VARINT => self.varint().map(|_| ()),
            WT_I64 => self.fixed64().map(|_| ()),
            WT_LEN => self.len_delimited().map(|_| ()),
            WT_I32 => {
                if self.end - self.pos < 4 {
                    return Err(self.err("truncated 32-bit field"));
                }
                self.pos += 4;
                Ok(())
            }
            // Groups (3, 4) are deprecated and absent from every remote-write schema.
            _ => Err(self.err("unsupported wire type")),
        }
    }

    /// Reads a field expected to have `want` wire type; a mismatch is malformed input, since
    /// treating it as unknown would silently drop data the sender meant us to have.
    fn expect(&self, wire_type: u64, want: u64) -> PResult<()> {
        if wire_type != want {
            return Err(self.err("field has the wrong wire type"));
        }
        Ok(())
    }
}

fn parse_write_request(buf: &[u8], idx: &mut Index) -> Result<()> {
    let mut r = Reader {
        buf,
        pos: 0,
        end: buf.len(),
    };
    while r.more() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect(wt, WT_LEN)?;
                let (start, end) = r.len_delimited()?;
                parse_series(buf, start, end, idx)?;
            }
            3 => {
                r.skip(wt)?;
                idx.metadata += 1;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(())
}

fn parse_series(buf: &[u8], start: usize, end: usize, idx: &mut Index) -> Result<()> {
    let index = idx.series.len();
    let labels_start = idx.labels.len();
    let mut r = Reader {
        buf,
        pos: start,
        end,
    };
    let mut has_name = false;
    let mut pos = 0usize;
    let mut problem: Option<String> = None;
    while r.more() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect(wt, WT_LEN)?;
                let (ls, le) = r.len_delimited()?;
                let l = match label_fast_path(buf, ls, le) {
                    Some(l) => l,
                    None => parse_label(buf, ls, le)?,
                };
                if problem.is_none() {
                    // Consecutive series nearly always carry the same label names in the same
                    // order, so a name equal to the one at this position in the previous series
                    // is already known to be valid, and comparing is cheaper than checking.
                    let slot = pos.min(NAME_CACHE - 1);
                    pos += 1;
                    let name = &buf[l.name.range()];
                    let known = short_eq(&buf[idx.names[slot].range()], name);
                    if !known {
                        idx.names[slot] = l.name;
                    }
                    match check_label(buf, l, known) {
                        KEEP => idx.labels.push(l),
                        KEEP_METRIC_NAME => {
                            has_name = true;
                            idx.labels.push(l);
                        }
                        EMPTY_VALUE => {}
                        // Keep parsing: a structural error later in the body is more basic and
                        // should win over a label complaint.
                        _ => problem = Some(label_problem(buf, l)),
                    }
                }
            }
            2 => {
                r.expect(wt, WT_LEN)?;
                let (ss, se) = r.len_delimited()?;
                idx.samples.push(parse_sample(buf, ss, se)?);
            }
            3 => {
                r.skip(wt)?;
                idx.exemplars += 1;
            }
            4 => {
                r.skip(wt)?;
                idx.histograms += 1;
            }
            _ => r.skip(wt)?,
        }
    }
    let series_error = |reason: String| Error::InvalidSeries {
        index,
        labels: describe_series(buf, start, end),
        reason,
    };
    if let Some(msg) = problem {
        return Err(series_error(msg));
    }
    let labels = &mut idx.labels[labels_start..];
    if labels.is_empty() {
        return Err(series_error("series has no labels".to_string()));
    }
    // Senders almost always sort; check first so the common case is one linear pass.
    let name_of = |l: &LabelSpan| &buf[l.name.range()];
    if !labels
        .windows(2)
        .all(|w| less(name_of(&w[0]), name_of(&w[1])))
    {
        labels.sort_unstable_by(|a, b| name_of(a).cmp(name_of(b)));
        if let Some(w) = labels.windows(2).find(|w| name_of(&w[0]) == name_of(&w[1])) {
            let dup = String::from_utf8_lossy(name_of(&w[0])).into_owned();
            return Err(series_error(format!("duplicate label name {dup:?}")));
        }
    }
    if !has_name {
        return Err(series_error(
            "series has no metric name (label __name__)".to_string(),
        ));
    }
    idx.series.push(SeriesSpan {
        labels_end: idx.labels.len() as u32,
        samples_end: idx.samples.len() as u32,
    });
    Ok(())
}

/// Every sender we know writes a label as exactly `name` then `value`, each with a one-byte
/// length; recognising that shape directly halves the cost of label parsing. Anything else goes
/// through the general parser.
#[inline]
fn label_fast_path(buf: &[u8], start: usize, end: usize) -> Option<LabelSpan> {
    let b = buf.get(start..end)?;
    let (&[0x0a, nl], rest) = b.split_first_chunk::<2>()? else {
        return None;
    };
    if nl >= 0x80 {
        return None;
    }
    let rest = rest.get(nl as usize..)?;
    let (&[0x12, vl], tail) = rest.split_first_chunk::<2>()? else {
        return None;
    };
    if vl >= 0x80 || tail.len() != vl as usize {
        return None;
    }
    Some(LabelSpan {
        name: Span {
            start: start as u32 + 2,
            len: u32::from(nl),
        },
        value: Span {
            start: start as u32 + 4 + u32::from(nl),
            len: u32::from(vl),
        },
    })
}

fn parse_label(buf: &[u8], start: usize, end: usize) -> PResult<LabelSpan> {
    let mut r = Reader {
        buf,
        pos: start,
        end,
    };
    let mut l = LabelSpan {
        name: Span {
            start: start as u32,
            len: 0,
        },
        value: Span {
            start: start as u32,
            len: 0,
        },
    };
    while r.more() {
        let (field, wt) = r.key()?;
        match field {
            // Proto3: a repeated scalar field means the last one wins.
            1 | 2 => {
                r.expect(wt, WT_LEN)?;
                let (s, e) = r.len_delimited()?;
                let span = Span {
                    start: s as u32,
                    len: (e - s) as u32,
                };
                if field == 1 {
                    l.name = span;
                } else {
                    l.value = span;
                }
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(l)
}

fn parse_sample(buf: &[u8], start: usize, end: usize) -> PResult<(i64, f64)> {
    let mut r = Reader {
        buf,
        pos: start,
        end,
    };
    let (mut t, mut v) = (0i64, 0f64);
    while r.more() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.expect(wt, WT_I64)?;
                v = f64::from_bits(r.fixed64()?);
            }
            2 => {
                r.expect(wt, WT_VARINT)?;
                // int64 is two's complement in a varint, so the cast is the decoding.
                t = r.varint()? as i64;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok((t, v))
}

/// `a < b`, deciding on the first byte when it can: label names mostly differ there, and this
/// avoids a `memcmp` call per pair.
#[inline]
fn less(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// Byte classes for the legacy Prometheus charsets, so each check is one table lookup.
const NAME_START: u8 = 1; // [a-zA-Z_]
const NAME_REST: u8 = 2; // [a-zA-Z0-9_]
const METRIC_START: u8 = 4; // [a-zA-Z_:]
const METRIC_REST: u8 = 8; // [a-zA-Z0-9_:]

const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut v = 0;
        if alpha {
            v |= NAME_START | NAME_REST | METRIC_START | METRIC_REST;
        }
        if digit {
            v |= NAME_REST | METRIC_REST;
        }
        if b == b':' {
            v |= METRIC_START | METRIC_REST;
        }
        t[c] = v;
        c += 1;
    }
    t
};

/// Checks that every byte of `w` is in `[a-zA-Z0-9_]` (plus `:` when `colon`), eight bytes at a
/// time. Names are checked for every label of every series, and a byte loop's unpredictable exit
/// was the largest cost of decoding.
#[inline]
fn word_in_charset(w: u64, colon: bool) -> bool {
    const H: u64 = 0x8080_8080_8080_8080;
    const L: u64 = 0x0101_0101_0101_0101;
    if w & H != 0 {
        return false;
    }
    // With every byte below 0x80, adding a per-byte constant of at most 0x80 cannot carry into
    // the next byte, so the high bit of each byte answers "x >= lo" (or, negated, "x <= hi").
    let ge = |lo: u8| w.wrapping_add(L * u64::from(0x80 - lo)) & H;
    let le = |hi: u8| !w.wrapping_add(L * u64::from(0x7f - hi)) & H;
    let eq = |c: u8| !(w ^ (L * u64::from(c))).wrapping_add(L * 0x7f) & H;
    let mut ok = (ge(b'a') & le(b'z')) | (ge(b'A') & le(b'Z')) | (ge(b'0') & le(b'9')) | eq(b'_');
    if colon {
        ok |= eq(b':');
    }
    ok == H
}

#[inline]
fn load(s: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(b)
}

#[inline]
fn load4(s: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&s[at..at + 4]);
    u64::from(u32::from_le_bytes(b))
}

/// Equality for short byte strings without a `memcmp` call in the common ≤ 16-byte case.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() || n == 0 {
        return false;
    }
    if (8..=16).contains(&n) {
        load(a, 0) == load(b, 0) && load(a, n - 8) == load(b, n - 8)
    } else if (4..8).contains(&n) {
        load4(a, 0) == load4(b, 0) && load4(a, n - 4) == load4(b, n - 4)
    } else {
        a == b
    }
}

#[inline]
fn matches_charset(s: &[u8], start: u8, rest: u8) -> bool {
    let colon = rest & METRIC_REST != 0;
    let n = s.len();
    match s.first() {
        Some(first) if CLASSES[*first as usize] & start != 0 => {}
        _ => return false,
    }
    if n >= 8 {
        // Whole words, then one word overlapping the end: bytes checked twice are harmless.
        let mut i = 0;
        while i + 8 <= n {
            if !word_in_charset(load(s, i), colon) {
                return false;
            }
            i += 8;
        }
        i == n || word_in_charset(load(s, n - 8), colon)
    } else if n >= 4 {
        word_in_charset(load4(s, 0) | (load4(s, n - 4) << 32), colon)
    } else {
        s[1..].iter().all(|b| CLASSES[*b as usize] & rest != 0)
    }
}

const KEEP: u8 = 0;
const KEEP_METRIC_NAME: u8 = 1;
const EMPTY_VALUE: u8 = 2;
const BAD: u8 = 3;

/// Classifies a label as one of the codes above. Returns a byte rather than a `Result` with a
/// message because this runs for every label and a wide return value cost a stack round trip;
/// [`label_problem`] explains a `BAD` afterwards.
#[inline]
fn check_label(buf: &[u8], l: LabelSpan, name_known_valid: bool) -> u8 {
    let name = &buf[l.name.range()];
    let value = &buf[l.value.range()];
    if !name_known_valid && !matches_charset(name, NAME_START, NAME_REST) {
        return BAD;
    }
    // Values are nearly always ASCII, and the ASCII check is much cheaper per call.
    if !value.is_ascii() && std::str::from_utf8(value).is_err() {
        return BAD;
    }
    if value.is_empty() {
        return EMPTY_VALUE;
    }
    if name.len() == 8 && load(name, 0) == u64::from_le_bytes(*b"__name__") {
        if !matches_charset(value, METRIC_START, METRIC_REST) {
            return BAD;
        }
        return KEEP_METRIC_NAME;
    }
    KEEP
}

#[cold]
fn label_problem(buf: &[u8], l: LabelSpan) -> String {
    let name = &buf[l.name.range()];
    let value = &buf[l.value.range()];
    let lossy = String::from_utf8_lossy;
    if name.is_empty() {
        "empty label name".to_string()
    } else if !matches_charset(name, NAME_START, NAME_REST) {
        format!(
            "invalid label name {:?}: must match [a-zA-Z_][a-zA-Z0-9_]*",
            lossy(name)
        )
    } else if std::str::from_utf8(value).is_err() {
        format!("value of label {:?} is not valid UTF-8", lossy(name))
    } else {
        format!(
            "invalid metric name {:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*",
            lossy(value)
        )
    }
}

/// Renders a series' labels for an error message, tolerating anything: the series may be the
/// reason the request failed.
fn describe_series(buf: &[u8], start: usize, end: usize) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut r = Reader {
        buf,
        pos: start,
        end,
    };
    while r.more() {
        let Ok((field, wt)) = r.key() else { break };
        if field == 1 && wt == WT_LEN {
            let Ok((s, e)) = r.len_delimited() else { break };
            if let Ok(l) = parse_label(buf, s, e) {
                pairs.push((
                    String::from_utf8_lossy(&buf[l.name.range()]).into_owned(),
                    String::from_utf8_lossy(&buf[l.value.range()]).into_owned(),
                ));
            }
        } else if r.skip(wt).is_err() {
            break;
        }
        if pairs.len() >= 32 {
            break;
        }
    }
    let mut out = String::from("{");
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(n);
        out.push('=');
        out.push_str(&format!("{v:?}"));
    }
    out.push('}');
    out
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Builds a `WriteRequest` one series at a time; [`WriteRequestBuilder::finish`] compresses it.
/// Reusable after [`WriteRequestBuilder::clear`], so a load generator allocates once per sender.
#[derive(Debug, Default)]
pub struct WriteRequestBuilder {
    buf: Vec<u8>,
    series: usize,
    samples: usize,
}

fn varint_len(v: u64) -> usize {
    // Each byte carries 7 bits; a zero still takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn label_msg_len(n: &str, v: &str) -> usize {
    1 + varint_len(n.len() as u64) + n.len() + 1 + varint_len(v.len() as u64) + v.len()
}

fn sample_msg_len(t: i64) -> usize {
    1 + 8 + 1 + varint_len(t as u64)
}

impl WriteRequestBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one `TimeSeries`. Labels are written in the order given; senders should give them
    /// sorted by name, as Prometheus does.
    pub fn add_series<'a, I>(&mut self, labels: I, samples: &[(i64, f64)])
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        let labels = labels.into_iter();
        let mut len = 0usize;
        for (n, v) in labels.clone() {
            let m = label_msg_len(n, v);
            len += 1 + varint_len(m as u64) + m;
        }
        for &(t, _) in samples {
            let m = sample_msg_len(t);
            len += 1 + varint_len(m as u64) + m;
        }
        self.buf.reserve(1 + varint_len(len as u64) + len);
        self.buf.push(0x0a); // field 1, LEN
        put_varint(&mut self.buf, len as u64);
        for (n, v) in labels {
            self.buf.push(0x0a);
            put_varint(&mut self.buf, label_msg_len(n, v) as u64);
            self.buf.push(0x0a);
            put_varint(&mut self.buf, n.len() as u64);
            self.buf.extend_from_slice(n.as_bytes());
            self.buf.push(0x12);
            put_varint(&mut self.buf, v.len() as u64);
            self.buf.extend_from_slice(v.as_bytes());
        }
        for &(t, v) in samples {
            self.buf.push(0x12); // field 2, LEN
            put_varint(&mut self.buf, sample_msg_len(t) as u64);
            self.buf.push(0x09); // field 1, I64
            self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
            self.buf.push(0x10); // field 2, VARINT
            put_varint(&mut self.buf, t as u64);
        }
        self.series += 1;
        self.samples += samples.len();
    }

    pub fn series_count(&self) -> usize {
        self.series
    }
    pub fn sample_count(&self) -> usize {
        self.samples
    }
    /// The uncompressed protobuf so far.
    pub fn protobuf(&self) -> &[u8] {
        &self.buf
    }

    /// The request body: the protobuf, snappy block-compressed.
    pub fn finish(&self) -> Vec<u8> {
        // Compression of our own protobuf only fails for inputs over ~4 GiB, which a builder of
        // remote-write batches never holds; an empty body is the conservative fallback.
        let mut out = snap::raw::Encoder::new()
            .compress_vec(&self.buf)
            .unwrap_or_default();
        // compress_vec allocates for the worst case (larger than the input); a load generator that
        // queues gigabytes of bodies held four times what it sent until this shrink.
        out.shrink_to_fit();
        out
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.series = 0;
        self.samples = 0;
    }
}

/// Encodes series (label pairs, samples) into a snappy-compressed `WriteRequest` body.
pub fn encode<'a, I>(series: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [(&'a str, &'a str)], &'a [(i64, f64)])>,
{
    let mut b = WriteRequestBuilder::new();
    for (labels, samples) in series {
        b.add_series(labels.iter().copied(), samples);
    }
    b.finish()
}

#[cfg(test)]
mod tests;
