//! Decoding of Prometheus's XOR chunks (`chunkenc.XORChunk`), the float encoding of streamed
//! remote-read answers. Tocsin's own head chunks use a different bit layout (see the tsdb
//! crate), so this small decoder reads Prometheus's:
//!
//! ```text
//! [count: u16 BE] then a bit stream, MSB first:
//!   sample 0: t as a zigzag varint (bytes), v as 64 raw bits
//!   sample 1: t delta as a uvarint (bytes), v XOR-coded
//!   sample n: t delta-of-delta: 0 | 10+14 bits | 110+17 | 1110+20 | 1111+64, v XOR-coded
//! XOR code: 0 = same value | 10 = reuse the previous window | 11 + 5 bits leading zeros +
//!   6 bits significant bits (0 means 64) + the significant bits
//! ```

use tocsin_model::Sample;

/// Bit reader over a chunk's bytes. Reading past the end is an error, never a panic.
struct Bits<'a> {
    b: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> Bits<'a> {
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.b.get(self.pos / 8)?;
        let v = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(v)
    }

    fn bits(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Some(v)
    }

    fn byte(&mut self) -> Option<u8> {
        self.bits(8).map(|b| b as u8)
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        let mut shift = 0u32;
        for i in 0..10 {
            let b = self.byte()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return None;
                }
                return Some(x | (u64::from(b) << shift));
            }
            x |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        None
    }

    fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Every sample of a Prometheus XOR chunk, or a message saying where the chunk is damaged.
pub fn decode_xor(data: &[u8]) -> Result<Vec<Sample>, String> {
    if data.len() < 2 {
        return Err(format!(
            "XOR chunk of {} bytes has no sample count",
            data.len()
        ));
    }
    let n = u16::from_be_bytes([data[0], data[1]]) as usize;
    let mut r = Bits {
        b: &data[2..],
        pos: 0,
    };
    let short = |i: usize| format!("XOR chunk ends inside sample {i} of {n}");
    let mut out = Vec::with_capacity(n);
    let (mut t, mut delta, mut vbits) = (0i64, 0i64, 0u64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    let mut window = false;
    for i in 0..n {
        match i {
            0 => {
                t = r.varint().ok_or_else(|| short(i))?;
                vbits = r.bits(64).ok_or_else(|| short(i))?;
            }
            _ => {
                if i == 1 {
                    delta = r.uvarint().ok_or_else(|| short(i))? as i64;
                } else {
                    let mut ones = 0;
                    while ones < 4 && r.bit().ok_or_else(|| short(i))? {
                        ones += 1;
                    }
                    let dod = match ones {
                        0 => 0,
                        4 => r.bits(64).ok_or_else(|| short(i))? as i64,
                        k => {
                            let sz = [14u32, 17, 20][k - 1];
                            let mut b = r.bits(sz).ok_or_else(|| short(i))? as i64;
                            if b > (1 << (sz - 1)) {
                                b -= 1 << sz;
                            }
                            b
                        }
                    };
                    delta = delta.wrapping_add(dod);
                }
                t = t.wrapping_add(delta);
                if r.bit().ok_or_else(|| short(i))? {
                    if r.bit().ok_or_else(|| short(i))? {
                        leading = r.bits(5).ok_or_else(|| short(i))? as u32;
                        let mut sig = r.bits(6).ok_or_else(|| short(i))? as u32;
                        if sig == 0 {
                            sig = 64;
                        }
                        if leading + sig > 64 {
                            return Err(format!(
                                "XOR chunk sample {i}: {leading} leading zeros and {sig} significant bits exceed 64"
                            ));
                        }
                        trailing = 64 - leading - sig;
                        window = true;
                    } else if !window {
                        return Err(format!(
                            "XOR chunk sample {i} reuses a bit window that was never set"
                        ));
                    }
                    let sig = 64 - leading - trailing;
                    let x = r.bits(sig).ok_or_else(|| short(i))?;
                    vbits ^= x << trailing;
                }
            }
        }
        out.push(Sample::new(t, f64::from_bits(vbits)));
    }
    Ok(out)
}

/// Prometheus's encoder, for tests: builds the chunks a Prometheus server would send.
#[cfg(test)]
pub(crate) fn encode_xor(samples: &[(i64, f64)]) -> Vec<u8> {
    struct W {
        b: Vec<u8>,
        used: u32,
    }
    impl W {
        fn bit(&mut self, v: bool) {
            if self.used.is_multiple_of(8) {
                self.b.push(0);
            }
            if v {
                let last = self.b.len() - 1;
                self.b[last] |= 0x80 >> (self.used % 8);
            }
            self.used += 1;
        }
        fn bits(&mut self, v: u64, n: u32) {
            for k in (0..n).rev() {
                self.bit(v >> k & 1 == 1);
            }
        }
        fn uvarint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.bits((v as u8 | 0x80) as u64, 8);
                v >>= 7;
            }
            self.bits(v, 8);
        }
    }
    let mut w = W {
        b: Vec::new(),
        used: 0,
    };
    let (mut pt, mut pd, mut pv) = (0i64, 0i64, 0u64);
    let (mut lead, mut trail) = (0xffu32, 0u32);
    for (i, &(t, v)) in samples.iter().enumerate() {
        let vb = v.to_bits();
        if i == 0 {
            w.uvarint(((t << 1) ^ (t >> 63)) as u64);
            w.bits(vb, 64);
        } else {
            let d = t - pt;
            if i == 1 {
                w.uvarint(d as u64);
            } else {
                let dod = d - pd;
                let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1 << (n - 1);
                if dod == 0 {
                    w.bit(false);
                } else if fits(14) {
                    w.bits(0b10, 2);
                    w.bits(dod as u64 & ((1 << 14) - 1), 14);
                } else if fits(17) {
                    w.bits(0b110, 3);
                    w.bits(dod as u64 & ((1 << 17) - 1), 17);
                } else if fits(20) {
                    w.bits(0b1110, 4);
                    w.bits(dod as u64 & ((1 << 20) - 1), 20);
                } else {
                    w.bits(0b1111, 4);
                    w.bits(dod as u64, 64);
                }
            }
            pd = d;
            let x = vb ^ pv;
            if x == 0 {
                w.bit(false);
            } else {
                w.bit(true);
                let l = x.leading_zeros().min(31);
                let tr = x.trailing_zeros();
                if lead != 0xff && l >= lead && tr >= trail {
                    w.bit(false);
                    w.bits(x >> trail, 64 - lead - trail);
                } else {
                    lead = l;
                    trail = tr;
                    w.bit(true);
                    w.bits(u64::from(l), 5);
                    let sig = 64 - l - tr;
                    w.bits(u64::from(sig % 64), 6);
                    w.bits(x >> tr, sig);
                }
            }
        }
        pt = t;
        pv = vb;
    }
    let mut out = (samples.len() as u16).to_be_bytes().to_vec();
    out.extend(w.b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_prometheus_encoding() {
        let mut s = vec![(1_700_000_000_000i64, 1.0f64)];
        let mut t = s[0].0;
        for i in 1..500 {
            // Jitter, a long gap, a huge gap and negative-going dods exercise every bucket.
            t += match i % 7 {
                0 => 15_000,
                1 => 15_003,
                2 => 14_990,
                3 => 100_000,
                4 => 1_000_000,
                5 => 15_000,
                _ => 1 << 40,
            };
            let v = match i % 5 {
                0 => s[i - 1].1,
                1 => i as f64 * 0.1,
                2 => f64::NAN,
                3 => -1e300,
                _ => i as f64,
            };
            s.push((t, v));
        }
        let got = decode_xor(&encode_xor(&s)).unwrap();
        assert_eq!(got.len(), s.len());
        for (g, w) in got.iter().zip(&s) {
            assert_eq!(g.t, w.0);
            assert_eq!(g.v.to_bits(), w.1.to_bits());
        }
    }

    #[test]
    fn empty_and_truncated_chunks_are_errors_not_panics() {
        assert_eq!(decode_xor(&[0, 0]).unwrap(), vec![]);
        assert!(decode_xor(&[0]).is_err());
        let c = encode_xor(&[(1, 1.0), (2, 2.0), (3, 3.5)]);
        for cut in 2..c.len() {
            let e = decode_xor(&c[..cut]).unwrap_err();
            assert!(e.contains("ends inside sample"), "{e}");
        }
        // A count larger than the data.
        let mut bad = c.clone();
        bad[1] = 200;
        assert!(decode_xor(&bad).is_err());
    }
}
