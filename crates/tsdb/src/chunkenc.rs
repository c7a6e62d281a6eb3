//! The compressed chunk format of the in-memory head: `XorChunk`, an appendable Gorilla-style
//! encoding of one series' samples, and `XorIter`, its decoder over any byte container.
//!
//! # Format
//!
//! ```text
//! [count: u16 BE][t0: i64 BE][v0: f64 bits BE][bit stream, MSB first, zero padded]
//! ```
//!
//! Every later sample appends a timestamp code and then a value code to the bit stream.
//!
//! Timestamps are delta-of-delta (`dod = delta - previous delta`, the first delta taken against 0):
//!
//! | prefix | payload                      |
//! |--------|------------------------------|
//! | `0`    | none: dod = 0                |
//! | `10`   | 6-bit signed dod             |
//! | `110`  | 13-bit signed dod            |
//! | `1110` | 20-bit signed dod            |
//! | `1111` | the 64-bit delta itself      |
//!
//! Deltas are unsigned 64-bit (timestamps strictly increase, so any pair of `i64`s has a delta that
//! fits), which is why the escape carries the delta rather than a dod that could need 65 bits.
//!
//! Values pick, per sample, whichever of these is cheapest:
//!
//! | prefix | meaning                                                                   |
//! |--------|---------------------------------------------------------------------------|
//! | `0`    | same bits as the previous value                                           |
//! | `10`   | decimal: `v = m / 10^scale`; a signed delta of `m` follows (buckets below) |
//! | `110`  | XOR with the previous value, reusing the last leading/trailing-zero window |
//! | `111`  | XOR with a new window: 6 bits leading zeros, 6 bits (significant bits - 1) |
//!
//! The decimal scheme is the "better than XOR" part: counters are integers and most gauges have a
//! few significant decimal digits, so the difference of their scaled integers is small where their
//! float bit patterns differ over most of the mantissa. A value qualifies only if
//! `m as f64 / 10^scale` reproduces its bits exactly, so -0.0, NaN and infinities always take the XOR
//! path. Decimal deltas use the buckets `0`+5, `10`+9, `110`+16, `1110`+32 bits and `1111`+64 bits.
//! A delta of 0 cannot occur (it would repeat the value, which `0` already covers), so it is the
//! escape for a scale change: 4 bits of new scale, then the real delta at that scale. Both sides
//! derive the previous mantissa at a new scale (or after an XOR-coded value) as
//! `round(prev * 10^scale)`, which the encoder has checked to be exact.

use tocsin_model::Sample;
use tocsin_storage::SampleIter;

use crate::error::{Error, Result};

/// Bytes before the bit stream: count, first timestamp, first value.
const HEADER_LEN: usize = 2 + 8 + 8;
/// Upper bound of the bits one sample can take (68 timestamp + 80 value), in bytes, rounded up.
const MAX_SAMPLE_BYTES: usize = 20;
/// Smallest capacity step; big enough that a typical 120-sample chunk grows a handful of times.
const GROW_STEP: usize = 32;

/// Payload widths of the timestamp buckets `0`, `10`, `110`, `1110`; `1111` escapes to a raw delta.
const TS_WIDTHS: [u32; 4] = [0, 6, 13, 20];
/// Payload widths of the decimal-delta buckets; `1111` escapes to a raw 64-bit delta.
const DEC_WIDTHS: [u32; 4] = [5, 9, 16, 32];
/// Largest decimal scale; 10^15 is still exact as an f64 and fits the 4-bit field.
const MAX_SCALE: u8 = 15;
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
/// Mantissas stay within the range where i64 -> f64 is exact.
const MAX_MANTISSA: f64 = (1u64 << 53) as f64;
/// Marks "no XOR window yet" in the encoder, so the first XOR value opens one.
const NO_WINDOW: u8 = u8::MAX;
/// After this many consecutive values no decimal scale fits, the encoder searches only now and then:
/// full-precision series would otherwise pay a 16-scale search on every append.
const SEARCH_GIVE_UP: u8 = 4;

/// An appendable compressed chunk of one series' samples.
///
/// Holds at most [`XorChunk::MAX_SAMPLES`] samples; the head cuts chunks long before that.
#[derive(Debug, Clone)]
pub struct XorChunk {
    /// Empty until the first append, so an unused chunk allocates nothing.
    buf: Vec<u8>,
    /// Last timestamp; `i64::MIN` while empty so `max_time` needs no branch.
    t: i64,
    delta: u64,
    /// Bits of the last value.
    vb: u64,
    /// Decimal mantissa of the last value at `scale`, valid when `m_ok`.
    m: i64,
    /// Unused low bits of the last byte of `buf`.
    free: u8,
    lead: u8,
    trail: u8,
    scale: u8,
    m_ok: bool,
    misses: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// The sample count is a u16 in the header.
    pub const MAX_SAMPLES: usize = u16::MAX as usize;

    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            t: i64::MIN,
            delta: 0,
            vb: 0,
            m: 0,
            free: 0,
            lead: NO_WINDOW,
            trail: 0,
            scale: 0,
            m_ok: false,
            misses: 0,
        }
    }

    /// Appends a sample. Caller guarantees t is strictly greater than the previous timestamp and
    /// that the chunk is not full ([`XorChunk::is_full`]); a sample appended to a full chunk is
    /// dropped (and trips a debug assertion) because the count could not record it.
    pub fn append(&mut self, t: i64, v: f64) {
        let n = self.num_samples();
        if n >= Self::MAX_SAMPLES {
            debug_assert!(false, "append to a full chunk");
            tracing::error!("sample appended to a full chunk was dropped");
            return;
        }
        let vb = v.to_bits();
        if n == 0 {
            self.buf.reserve_exact(HEADER_LEN + GROW_STEP);
            self.buf.extend_from_slice(&1u16.to_be_bytes());
            self.buf.extend_from_slice(&t.to_be_bytes());
            self.buf.extend_from_slice(&vb.to_be_bytes());
            self.t = t;
            self.vb = vb;
            return;
        }
        let spare = self.buf.capacity() - self.buf.len();
        if spare < MAX_SAMPLE_BYTES {
            // Small linear steps instead of doubling: 100,000s of chunks each wasting up to half
            // their buffer would cost more than the extra reallocations.
            self.buf.reserve_exact(GROW_STEP.max(self.buf.len() / 8));
        }
        self.append_timestamp(t);
        self.append_value(vb, n);
        let count = (n + 1) as u16;
        if let Some(h) = self.buf.get_mut(0..2) {
            h.copy_from_slice(&count.to_be_bytes());
        }
    }

    fn append_timestamp(&mut self, t: i64) {
        let delta = (t as u64).wrapping_sub(self.t as u64);
        let dod = delta as i128 - self.delta as i128;
        match bucket_of(dod, &TS_WIDTHS) {
            Some((code, len)) => self.write_bits(code, len),
            None => {
                self.write_bits(0b1111, 4);
                self.write_bits(delta, 64);
            }
        }
        self.t = t;
        self.delta = delta;
    }

    fn append_value(&mut self, vb: u64, n: usize) {
        if vb == self.vb {
            self.write_bits(0, 1);
            return;
        }
        let xor = vb ^ self.vb;
        let lz = xor.leading_zeros();
        let tz = xor.trailing_zeros();
        let reuse = self.lead != NO_WINDOW && lz >= u32::from(self.lead) && tz >= u32::from(self.trail);
        let reuse_cost = if reuse { 3 + 64 - u32::from(self.lead) - u32::from(self.trail) } else { u32::MAX };
        let new_cost = 3 + 12 + 64 - lz - tz;
        let xor_cost = reuse_cost.min(new_cost);

        let v = f64::from_bits(vb);
        let prev = f64::from_bits(self.vb);
        let at_scale = |s: u8| -> Option<(i64, i64)> {
            let mv = mantissa(v, s)?;
            let pm = mantissa(prev, s)?;
            Some((mv, pm))
        };
        let mut decimal: Option<(u8, i64, i64, u32)> = None;
        let cur = if self.m_ok { mantissa(v, self.scale).map(|mv| (mv, self.m)) } else { at_scale(self.scale) };
        if let Some((mv, pm)) = cur {
            decimal = Some((self.scale, mv, mv.wrapping_sub(pm), 2 + bucket_cost(mv.wrapping_sub(pm), &DEC_WIDTHS)));
        } else if self.misses < SEARCH_GIVE_UP || n % 16 == 0 {
            decimal = (0..=MAX_SCALE).filter(|&s| s != self.scale).find_map(|s| {
                let (mv, pm) = at_scale(s)?;
                let d = mv.wrapping_sub(pm);
                Some((s, mv, d, 2 + bucket_cost(0, &DEC_WIDTHS) + 4 + bucket_cost(d, &DEC_WIDTHS)))
            });
            self.misses = if decimal.is_some() { 0 } else { self.misses.saturating_add(1) };
        }

        if let Some((s, mv, d, cost)) = decimal {
            if cost <= xor_cost {
                self.write_bits(0b10, 2);
                if s != self.scale {
                    self.write_dec(0);
                    self.write_bits(u64::from(s), 4);
                    self.scale = s;
                }
                self.write_dec(d);
                self.m = mv;
                self.m_ok = true;
                self.vb = vb;
                return;
            }
        }

        if reuse_cost <= new_cost {
            self.write_bits(0b110, 3);
            let sig = 64 - u32::from(self.lead) - u32::from(self.trail);
            self.write_bits(xor >> self.trail, sig);
        } else {
            let sig = 64 - lz - tz;
            self.write_bits(0b111, 3);
            self.write_bits(u64::from(lz), 6);
            self.write_bits(u64::from(sig - 1), 6);
            self.write_bits(xor >> tz, sig);
            self.lead = lz as u8;
            self.trail = tz as u8;
        }
        self.m_ok = false;
        self.vb = vb;
    }

    fn write_dec(&mut self, d: i64) {
        match bucket_of(i128::from(d), &DEC_WIDTHS) {
            Some((code, len)) => self.write_bits(code, len),
            None => {
                self.write_bits(0b1111, 4);
                self.write_bits(d as u64, 64);
            }
        }
    }

    /// Writes the low `n` (<= 64) bits of `v`, most significant first.
    fn write_bits(&mut self, v: u64, mut n: u32) {
        while n > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let take = n.min(u32::from(self.free));
            let bits = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= bits << (u32::from(self.free) - take);
            }
            self.free -= take as u8;
            n -= take;
        }
    }

    pub fn num_samples(&self) -> usize {
        match self.buf.first_chunk::<2>() {
            Some(h) => usize::from(u16::from_be_bytes(*h)),
            None => 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.num_samples() >= Self::MAX_SAMPLES
    }

    /// First timestamp; `i64::MAX` when empty, so an empty chunk overlaps no range.
    pub fn min_time(&self) -> i64 {
        match self.buf.get(2..).and_then(|b| b.first_chunk::<8>()) {
            Some(b) => i64::from_be_bytes(*b),
            None => i64::MAX,
        }
    }

    /// Last timestamp; `i64::MIN` when empty.
    pub fn max_time(&self) -> i64 {
        self.t
    }

    pub fn last(&self) -> Option<(i64, f64)> {
        if self.buf.is_empty() {
            None
        } else {
            Some((self.t, f64::from_bits(self.vb)))
        }
    }

    /// The complete encoding, decodable on its own (includes the sample count). An empty chunk
    /// yields a bare zero count.
    pub fn bytes(&self) -> &[u8] {
        if self.buf.is_empty() {
            &[0, 0]
        } else {
            &self.buf
        }
    }

    /// Heap bytes held (capacity), for memory accounting.
    pub fn heap_size(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops spare capacity; called when the chunk is closed.
    pub fn shrink(&mut self) {
        self.buf.shrink_to_fit();
    }

    pub fn iter(&self) -> XorIter<&[u8]> {
        XorIter::new_unchecked(self.bytes())
    }
}

/// The prefix code and payload of `x` in the first of the four buckets it fits, as one bit string
/// and its length; `None` when it needs the 64-bit escape.
fn bucket_of(x: i128, widths: &[u32; 4]) -> Option<(u64, u32)> {
    for (i, &w) in widths.iter().enumerate() {
        let fits = if w == 0 { x == 0 } else { x >= -(1i128 << (w - 1)) && x < (1i128 << (w - 1)) };
        if fits {
            let i = i as u32;
            let prefix = ((1u64 << i) - 1) << 1; // i ones, then a zero
            let payload = if w == 0 { 0 } else { (x as u64) & ((1u64 << w) - 1) };
            return Some(((prefix << w) | payload, i + 1 + w));
        }
    }
    None
}

fn bucket_cost(x: i64, widths: &[u32; 4]) -> u32 {
    match bucket_of(i128::from(x), widths) {
        Some((_, len)) => len,
        None => 4 + 64,
    }
}

/// The decimal mantissa of `v` at `scale` if `m / 10^scale` reproduces `v` bit for bit.
fn mantissa(v: f64, scale: u8) -> Option<i64> {
    let x = v * POW10[usize::from(scale)];
    // Written so that NaN fails too.
    if !(x.abs() <= MAX_MANTISSA) {
        return None;
    }
    let m = x.round() as i64;
    (from_mantissa(m, scale).to_bits() == v.to_bits()).then_some(m)
}

/// The mantissa the encoder used for a value it already checked with [`mantissa`].
fn mantissa_unchecked(v: f64, scale: u8) -> i64 {
    (v * POW10[usize::from(scale & MAX_SCALE)]).round() as i64
}

#[inline(always)]
fn from_mantissa(m: i64, scale: u8) -> f64 {
    if scale == 0 {
        m as f64
    } else {
        // Correctly rounded division of an exact integer by an exact power of ten is the nearest
        // double to the decimal, i.e. what parsing the decimal literal gives.
        m as f64 / POW10[usize::from(scale & MAX_SCALE)]
    }
}

/// The next 64 bits at bit `pos` (at least 57 of them meaningful), zeros past the end.
#[inline(always)]
fn peek(data: &[u8], pos: usize) -> u64 {
    let i = pos >> 3;
    let w = match data.get(i..).and_then(|s| s.first_chunk::<8>()) {
        Some(b) => u64::from_be_bytes(*b),
        None => peek_tail(data, i),
    };
    w << (pos & 7)
}

#[cold]
fn peek_tail(data: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(rest) = data.get(i..) {
        let n = rest.len().min(8);
        b[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_be_bytes(b)
}

/// Reads `n` bits, 1 <= n <= 64.
#[inline(always)]
fn read_bits(data: &[u8], pos: &mut usize, n: u32) -> u64 {
    if n <= 56 {
        let w = peek(data, *pos);
        *pos += n as usize;
        w >> (64 - n)
    } else {
        let hi = read_bits(data, pos, n - 32);
        let lo = read_bits(data, pos, 32);
        (hi << 32) | lo
    }
}

fn sign_extend(x: u64, w: u32) -> i64 {
    ((x << (64 - w)) as i64) >> (64 - w)
}

/// Decodes one bucket whose prefix starts at the top of `w` (the peek at `*pos`); `None` means the
/// 64-bit escape, whose payload the caller reads.
#[inline(always)]
fn read_bucket(w: u64, pos: &mut usize, widths: &[u32; 4]) -> Option<i64> {
    let ones = (!w).leading_zeros();
    let width = *widths.get(ones as usize)?;
    let plen = ones + 1;
    *pos += (plen + width) as usize;
    if width == 0 {
        Some(0)
    } else {
        Some(sign_extend((w << plen) >> (64 - width), width))
    }
}

/// Decodes the samples of one chunk from any byte container holding [`XorChunk::bytes`].
///
/// A truncated or corrupt body ends iteration early (see [`XorIter::is_corrupt`]); it never panics.
#[derive(Debug, Clone)]
pub struct XorIter<B: AsRef<[u8]>> {
    buf: B,
    /// Bit position of the next code.
    pos: usize,
    remaining: u16,
    started: bool,
    corrupt: bool,
    t: i64,
    delta: u64,
    vb: u64,
    m: i64,
    m_ok: bool,
    scale: u8,
    lead: u8,
    trail: u8,
}

impl<B: AsRef<[u8]>> XorIter<B> {
    /// Fails when `b` is too short to hold the sample count.
    pub fn new(b: B) -> Result<Self> {
        if b.as_ref().len() < 2 {
            return Err(Error::corrupt("<chunk>", "chunk shorter than its 2-byte header"));
        }
        Ok(Self::new_unchecked(b))
    }

    fn new_unchecked(buf: B) -> Self {
        let remaining = match buf.as_ref().first_chunk::<2>() {
            Some(h) => u16::from_be_bytes(*h),
            None => 0,
        };
        Self {
            buf,
            pos: HEADER_LEN * 8,
            remaining,
            started: false,
            corrupt: false,
            t: 0,
            delta: 0,
            vb: 0,
            m: 0,
            m_ok: false,
            scale: 0,
            lead: 0,
            trail: 0,
        }
    }

    /// Whether iteration ended because the bytes ran out before the count in the header said.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    /// Samples not yet returned, per the header.
    pub fn remaining(&self) -> usize {
        usize::from(self.remaining)
    }

    #[cold]
    fn fail(&mut self) -> Option<Sample> {
        self.corrupt = true;
        self.remaining = 0;
        None
    }

    #[inline]
    fn decode_next(&mut self) -> Option<Sample> {
        if self.remaining == 0 {
            return None;
        }
        let data = self.buf.as_ref();
        if !self.started {
            let (Some(t), Some(v)) = (
                data.get(2..).and_then(|b| b.first_chunk::<8>()),
                data.get(10..).and_then(|b| b.first_chunk::<8>()),
            ) else {
                return self.fail();
            };
            self.started = true;
            self.t = i64::from_be_bytes(*t);
            self.vb = u64::from_be_bytes(*v);
            self.remaining -= 1;
            return Some(Sample::new(self.t, f64::from_bits(self.vb)));
        }

        let mut pos = self.pos;
        let w = peek(data, pos);
        if w >> 63 == 0 {
            pos += 1;
        } else {
            match read_bucket(w, &mut pos, &TS_WIDTHS) {
                Some(dod) => self.delta = self.delta.wrapping_add(dod as u64),
                None => {
                    pos += 4;
                    self.delta = read_bits(data, &mut pos, 64);
                }
            }
        }
        self.t = self.t.wrapping_add(self.delta as i64);

        let w = peek(data, pos);
        if w >> 63 == 0 {
            pos += 1;
        } else if w >> 62 == 0b10 {
            pos += 2;
            let mut d = self.read_dec(data, w << 2, &mut pos);
            if d == 0 {
                self.scale = read_bits(data, &mut pos, 4) as u8;
                self.m_ok = false;
                let w = peek(data, pos);
                d = self.read_dec(data, w, &mut pos);
            }
            if !self.m_ok {
                self.m = mantissa_unchecked(f64::from_bits(self.vb), self.scale);
                self.m_ok = true;
            }
            self.m = self.m.wrapping_add(d);
            self.vb = from_mantissa(self.m, self.scale).to_bits();
        } else {
            pos += 3;
            if w >> 61 == 0b111 {
                let lead = read_bits(data, &mut pos, 6) as u32;
                let sig = read_bits(data, &mut pos, 6) as u32 + 1;
                if lead + sig > 64 {
                    return self.fail();
                }
                self.lead = lead as u8;
                self.trail = (64 - lead - sig) as u8;
            }
            let sig = 64 - u32::from(self.lead) - u32::from(self.trail);
            self.vb ^= read_bits(data, &mut pos, sig) << self.trail;
            self.m_ok = false;
        }

        if pos > data.len() * 8 {
            return self.fail();
        }
        self.pos = pos;
        self.remaining -= 1;
        Some(Sample::new(self.t, f64::from_bits(self.vb)))
    }

    /// A decimal delta whose bucket prefix starts at the top of `w`.
    #[inline(always)]
    fn read_dec(&self, data: &[u8], w: u64, pos: &mut usize) -> i64 {
        match read_bucket(w, pos, &DEC_WIDTHS) {
            Some(d) => d,
            None => {
                *pos += 4;
                read_bits(data, pos, 64) as i64
            }
        }
    }
}

impl<B: AsRef<[u8]> + Send> SampleIter for XorIter<B> {
    fn next(&mut self) -> Option<Sample> {
        self.decode_next()
    }

    /// Advances to the first remaining sample with timestamp >= t (always consuming at least one,
    /// as the trait's contract says) and returns it.
    fn seek(&mut self, t: i64) -> Option<Sample> {
        loop {
            let s = self.decode_next()?;
            if s.t >= t {
                return Some(s);
            }
        }
    }
}

#[cfg(test)]
mod tests;
