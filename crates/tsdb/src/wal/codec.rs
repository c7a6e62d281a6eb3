//! Payload encoding of the three record types (series, samples, tombstones). Framing, checksums
//! and segment files live in `segment`; this module only turns records into bytes and back.

use tocsin_model::{Label, Labels};

use super::{Record, RefSample, RefSeries, Tombstone};

pub(crate) const TYPE_SERIES: u8 = 1;
pub(crate) const TYPE_SAMPLES: u8 = 2;
pub(crate) const TYPE_TOMBSTONES: u8 = 3;

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[inline]
pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// XOR of a value with its predecessor, stored as a control byte (high nibble: leading zero bytes,
/// low nibble: trailing zero bytes) followed by the remaining middle bytes, little-endian. Equal or
/// near-equal consecutive values (the common case for scraped series) then cost 1-3 bytes.
#[inline]
fn put_xor(buf: &mut Vec<u8>, xor: u64) {
    if xor == 0 {
        buf.push(0x80);
        return;
    }
    let lz = xor.leading_zeros() / 8;
    let tz = xor.trailing_zeros() / 8;
    buf.push(((lz << 4) | tz) as u8);
    let n = (8 - lz - tz) as usize;
    let mid = (xor >> (tz * 8)).to_le_bytes();
    buf.extend_from_slice(&mid[..n]);
}

pub(crate) fn encode_series(buf: &mut Vec<u8>, s: &[RefSeries]) {
    put_uvarint(buf, s.len() as u64);
    let mut prev = 0u64;
    for rs in s {
        put_varint(buf, rs.r.wrapping_sub(prev) as i64);
        prev = rs.r;
        put_uvarint(buf, rs.labels.len() as u64);
        for l in rs.labels.iter() {
            put_bytes(buf, l.name.as_bytes());
            put_bytes(buf, l.value.as_bytes());
        }
    }
}

pub(crate) fn encode_samples(buf: &mut Vec<u8>, s: &[RefSample]) {
    // Worst case per sample: two 10-byte varints and a 9-byte value.
    buf.reserve(10 + s.len() * 29);
    put_uvarint(buf, s.len() as u64);
    let (mut pr, mut pt, mut pv) = (0u64, 0i64, 0u64);
    for x in s {
        put_varint(buf, x.r.wrapping_sub(pr) as i64);
        put_varint(buf, x.t.wrapping_sub(pt));
        let bits = x.v.to_bits();
        put_xor(buf, bits ^ pv);
        pr = x.r;
        pt = x.t;
        pv = bits;
    }
}

pub(crate) fn encode_tombstones(buf: &mut Vec<u8>, s: &[Tombstone]) {
    put_uvarint(buf, s.len() as u64);
    let mut prev = 0u64;
    for ts in s {
        put_varint(buf, ts.r.wrapping_sub(prev) as i64);
        prev = ts.r;
        put_varint(buf, ts.mint);
        put_varint(buf, ts.maxt.wrapping_sub(ts.mint));
    }
}

/// Cursor over a payload; every failure is a human-readable reason for the corruption report.
pub(crate) struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    #[inline]
    fn uvarint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err(format!(
                    "varint runs past end of payload at byte {}",
                    self.pos
                ));
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(format!("varint overflows 64 bits at byte {}", self.pos - 1));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<i64, String> {
        self.uvarint().map(unzigzag)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "{n} bytes wanted at byte {} but only {} left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| format!("string length {n} too large"))?;
        let at = self.pos;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("invalid UTF-8 in string at byte {at}"))
    }

    #[inline]
    fn xor(&mut self) -> Result<u64, String> {
        let at = self.pos;
        let ctl = self.take(1)?[0];
        let (lz, tz) = (u32::from(ctl >> 4), u32::from(ctl & 0x0f));
        if lz + tz > 8 {
            return Err(format!("bad value control byte {ctl:#04x} at byte {at}"));
        }
        let n = (8 - lz - tz) as usize;
        let mut mid = [0u8; 8];
        mid[..n].copy_from_slice(self.take(n)?);
        // n == 0 means the XOR is zero; shifting by 64 would overflow.
        if n == 0 {
            return Ok(0);
        }
        Ok(u64::from_le_bytes(mid) << (tz * 8))
    }

    /// Element count, bounded by the bytes left so garbage cannot trigger a huge allocation
    /// (every element takes at least `min_size` bytes).
    fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.uvarint()?;
        let max = (self.remaining() / min_size) as u64;
        if n > max {
            return Err(format!(
                "element count {n} exceeds what {} remaining bytes can hold",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }

    fn finish(&self) -> Result<(), String> {
        if self.remaining() != 0 {
            return Err(format!(
                "{} trailing bytes after last element",
                self.remaining()
            ));
        }
        Ok(())
    }
}

pub(crate) fn decode_series(b: &[u8]) -> Result<Vec<RefSeries>, String> {
    let mut d = Dec::new(b);
    let n = d.count(2)?;
    let mut out = Vec::with_capacity(n);
    let mut prev = 0u64;
    for _ in 0..n {
        let r = prev.wrapping_add(d.varint()? as u64);
        prev = r;
        let nl = d.count(2)?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let name = d.string()?;
            let value = d.string()?;
            labels.push(Label { name, value });
        }
        // The writer only ever encodes a valid `Labels`, and the checksum vouches the bytes are
        // those it wrote, so re-sorting or re-validating would only cost replay time.
        out.push(RefSeries {
            r,
            labels: Labels::from_sorted_unchecked(labels),
        });
    }
    d.finish()?;
    Ok(out)
}

pub(crate) fn decode_samples(b: &[u8]) -> Result<Vec<RefSample>, String> {
    let mut d = Dec::new(b);
    let n = d.count(3)?;
    let mut out = Vec::with_capacity(n);
    let (mut pr, mut pt, mut pv) = (0u64, 0i64, 0u64);
    for _ in 0..n {
        pr = pr.wrapping_add(d.varint()? as u64);
        pt = pt.wrapping_add(d.varint()?);
        pv ^= d.xor()?;
        out.push(RefSample {
            r: pr,
            t: pt,
            v: f64::from_bits(pv),
        });
    }
    d.finish()?;
    Ok(out)
}

pub(crate) fn decode_tombstones(b: &[u8]) -> Result<Vec<Tombstone>, String> {
    let mut d = Dec::new(b);
    let n = d.count(3)?;
    let mut out = Vec::with_capacity(n);
    let mut prev = 0u64;
    for _ in 0..n {
        let r = prev.wrapping_add(d.varint()? as u64);
        prev = r;
        let mint = d.varint()?;
        let maxt = mint.wrapping_add(d.varint()?);
        out.push(Tombstone { r, mint, maxt });
    }
    d.finish()?;
    Ok(out)
}

/// Decodes a checksummed payload of the given record type.
pub(crate) fn decode_record(typ: u8, payload: &[u8]) -> Result<Record, String> {
    match typ {
        TYPE_SERIES => decode_series(payload).map(Record::Series),
        TYPE_SAMPLES => decode_samples(payload).map(Record::Samples),
        TYPE_TOMBSTONES => decode_tombstones(payload).map(Record::Tombstones),
        other => Err(format!("unknown record type {other}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn xor_round_trip() {
        for x in [
            0u64,
            1,
            u64::MAX,
            0x7ff0_0000_0000_0002,
            0x00ff_0000_0000_0000,
            1 << 63,
        ] {
            let mut b = Vec::new();
            put_xor(&mut b, x);
            let mut d = Dec::new(&b);
            assert_eq!(d.xor(), Ok(x));
            assert!(d.finish().is_ok());
        }
    }

    #[test]
    fn varint_overflow_rejected() {
        let b = [0xffu8; 11];
        assert!(Dec::new(&b).uvarint().is_err());
        let mut ok = Vec::new();
        put_uvarint(&mut ok, u64::MAX);
        assert_eq!(Dec::new(&ok).uvarint(), Ok(u64::MAX));
    }
}
