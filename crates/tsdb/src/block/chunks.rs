//! Chunk encoding of the `chunks` file: one chunk holds up to `MAX_CHUNK_SAMPLES` samples of one
//! series, timestamps and values compressed separately with pco (wrapped format; the pco file
//! header lives once in the chunks file header), choosing per chunk the smallest of a few
//! encodings. The sample count and first timestamp live in the index, not in the chunk.

use pco::wrapped::{FileCompressor, FileDecompressor};
use pco::ChunkConfig;
use tocsin_model::Sample;

use super::enc::{put_uvarint, put_varint, Dec, DecResult};

/// Upper bound of samples per chunk. pco's per-chunk metadata costs tens of bytes, so chunks are
/// large: a 2 h block of a 10 s series (720 samples) is one chunk, longer ranges are split evenly.
pub const MAX_CHUNK_SAMPLES: usize = 4096;

const T_REGULAR: u8 = 0;
const T_PCO_RAW: u8 = 1;
const T_PCO_RESIDUAL: u8 = 2;
/// Timestamps identical to those of an earlier chunk in the file (all series of one scrape target
/// share the scrape's jittered timestamps), stored as the backwards distance to that chunk.
const T_SHARED: u8 = 3;

const V_CONST_F64: u8 = 0;
const V_CONST_INT: u8 = 1;
const V_PCO_I64: u8 = 2;
const V_PCO_F64: u8 = 3;

/// The pco wrapped-format header written once at the start of the chunks file.
pub fn pco_header() -> DecResult<Vec<u8>> {
    FileCompressor::default()
        .write_header(Vec::new())
        .map_err(|e| format!("pco header: {e}"))
}

/// Whether `v` survives a round trip through i64 bit-exactly (rules out -0.0, NaN, inf, fractions).
fn as_exact_int(v: f64) -> Option<i64> {
    let i = v as i64;
    ((i as f64).to_bits() == v.to_bits()).then_some(i)
}

/// pco's compression level (its default is 8). Level 4 writes a 2 h block of the 100k-series
/// fleet in about half the time for 0.1% more bytes; block writes are on the head cut's path.
const PCO_LEVEL: usize = 4;

fn pco_stream<T: pco::data_types::Number>(src: &[T]) -> DecResult<Vec<u8>> {
    let fc = FileCompressor::default();
    let mut cc = fc
        .chunk_compressor(
            src,
            &ChunkConfig::default().with_compression_level(PCO_LEVEL),
        )
        .map_err(|e| format!("pco compress: {e}"))?;
    let mut out = Vec::new();
    out = cc
        .write_meta(out)
        .map_err(|e| format!("pco compress: {e}"))?;
    out = cc
        .write_page(0, out)
        .map_err(|e| format!("pco compress: {e}"))?;
    Ok(out)
}

fn pco_read<T: pco::data_types::Number>(
    fd: &FileDecompressor,
    src: &[u8],
    n: usize,
) -> DecResult<Vec<T>> {
    let (mut cd, rest) = fd
        .chunk_decompressor::<T, &[u8]>(src)
        .map_err(|e| format!("pco chunk: {e}"))?;
    let mut pd = cd
        .page_decompressor(rest, n)
        .map_err(|e| format!("pco page: {e}"))?;
    let mut dst = vec![T::default(); n];
    let p = pd.read(&mut dst).map_err(|e| format!("pco page: {e}"))?;
    if p.n_processed != n {
        return Err(format!(
            "pco page: decoded {} of {n} numbers",
            p.n_processed
        ));
    }
    Ok(dst)
}

/// Encodes samples (sorted, unique timestamps, non-empty) into a chunk payload. The first
/// timestamp and the count are not stored: the index keeps them. With `shared_ts` = (distance,
/// length), the timestamps are those of the chunk payload of that length that many bytes earlier in
/// the file (which must not itself share).
pub fn encode(samples: &[Sample], shared_ts: Option<(u64, u64)>) -> DecResult<Vec<u8>> {
    let n = samples.len();
    let t0 = samples.first().map(|s| s.t).ok_or("empty chunk")?;
    let mut out = vec![0u8];

    // Timestamps.
    let mut tag;
    if let Some((dist, len)) = shared_ts {
        tag = T_SHARED;
        put_uvarint(&mut out, dist);
        put_uvarint(&mut out, len);
    } else if n == 1 {
        tag = T_REGULAR;
    } else {
        // Wrapping arithmetic throughout: decoding inverts it exactly, and absurd ranges must not panic.
        let step = samples[1].t.wrapping_sub(t0);
        if samples
            .windows(2)
            .all(|w| w[1].t.wrapping_sub(w[0].t) == step)
        {
            tag = T_REGULAR;
            put_uvarint(&mut out, step as u64);
        } else {
            // Scrapes jitter around a fixed interval: residuals against the ideal grid are tiny and
            // independent, cheaper than deltas (which see the jitter twice). Keep the better one.
            let span = samples[n - 1].t.wrapping_sub(t0);
            let step = span.wrapping_add((n as i64 - 1) / 2) / (n as i64 - 1);
            let resid: Vec<i64> = samples[1..]
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.t.wrapping_sub(t0)
                        .wrapping_sub((i as i64 + 1).wrapping_mul(step))
                })
                .collect();
            let raw: Vec<i64> = samples[1..].iter().map(|s| s.t.wrapping_sub(t0)).collect();
            let a = pco_stream(&resid)?;
            let b = pco_stream(&raw)?;
            if a.len() + super::enc::uvarint_len(step as u64) <= b.len() {
                tag = T_PCO_RESIDUAL;
                put_uvarint(&mut out, step as u64);
                put_uvarint(&mut out, a.len() as u64);
                out.extend_from_slice(&a);
            } else {
                tag = T_PCO_RAW;
                put_uvarint(&mut out, b.len() as u64);
                out.extend_from_slice(&b);
            }
        }
    }

    // Values.
    let v0 = samples[0].v;
    if samples.iter().all(|s| s.v.to_bits() == v0.to_bits()) {
        match as_exact_int(v0) {
            Some(i) => {
                tag |= V_CONST_INT << 2;
                put_varint(&mut out, i);
            }
            None => {
                tag |= V_CONST_F64 << 2;
                out.extend_from_slice(&v0.to_bits().to_le_bytes());
            }
        }
    } else {
        // Integer-valued chunks (counters, most gauges) go as i64 without also trying f64: trying
        // both doubled the time of the head cut for 0.3% smaller blocks.
        let ints: Option<Vec<i64>> = samples.iter().map(|s| as_exact_int(s.v)).collect();
        match ints {
            Some(i) => {
                tag |= V_PCO_I64 << 2;
                out.extend_from_slice(&pco_stream(&i)?);
            }
            None => {
                let floats: Vec<f64> = samples.iter().map(|s| s.v).collect();
                tag |= V_PCO_F64 << 2;
                out.extend_from_slice(&pco_stream(&floats)?);
            }
        }
    }
    out[0] = tag;
    Ok(out)
}

/// Whether this payload's timestamps may be referenced by later chunks: only pco-coded ones are
/// worth it, and references never chain.
pub fn shareable_timestamps(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|t| matches!(t & 3, T_PCO_RAW | T_PCO_RESIDUAL))
}

/// Decodes only the timestamps of a chunk that does not itself share them.
pub fn decode_timestamps(
    fd: &FileDecompressor,
    payload: &[u8],
    t0: i64,
    n: usize,
) -> DecResult<Vec<i64>> {
    let mut d = Dec::new(payload);
    let tag = d.u8()?;
    if tag & 3 == T_SHARED {
        return Err("shared timestamps reference another shared chunk".into());
    }
    timestamps(
        fd,
        &mut d,
        tag,
        t0,
        n,
        &mut |_, _| Err("unreachable".into()),
    )
}

fn timestamps(
    fd: &FileDecompressor,
    d: &mut Dec<'_>,
    tag: u8,
    t0: i64,
    n: usize,
    shared: SharedFn<'_>,
) -> DecResult<Vec<i64>> {
    if n == 0 || n > MAX_CHUNK_SAMPLES {
        return Err(format!("bad chunk sample count {n}"));
    }
    let mut ts = Vec::with_capacity(n);
    ts.push(t0);
    match tag & 3 {
        T_REGULAR => {
            if n > 1 {
                let step = d.uvarint()? as i64;
                ts.extend((1..n as i64).map(|i| t0.wrapping_add(i.wrapping_mul(step))));
            }
        }
        T_PCO_RAW => {
            let b = d.len_bytes()?;
            let raw: Vec<i64> = pco_read(fd, b, n - 1)?;
            ts.extend(raw.iter().map(|r| t0.wrapping_add(*r)));
        }
        T_PCO_RESIDUAL => {
            let step = d.uvarint()? as i64;
            let b = d.len_bytes()?;
            let r: Vec<i64> = pco_read(fd, b, n - 1)?;
            ts.extend(r.iter().enumerate().map(|(i, r)| {
                t0.wrapping_add((i as i64 + 1).wrapping_mul(step))
                    .wrapping_add(*r)
            }));
        }
        _ => {
            let dist = d.uvarint()?;
            let len = d.uvarint()?;
            let t = shared(dist, len)?;
            if t.len() != n || t[0] != t0 {
                return Err("shared timestamps disagree with the chunk".into());
            }
            return Ok(t);
        }
    }
    Ok(ts)
}

/// Resolves shared timestamps: given the backwards distance and payload length of the referenced
/// chunk, its timestamps.
pub type SharedFn<'a> = &'a mut dyn FnMut(u64, u64) -> DecResult<Vec<i64>>;

/// Decodes a chunk payload of `n` samples whose first timestamp is `t0`.
pub fn decode(
    fd: &FileDecompressor,
    payload: &[u8],
    t0: i64,
    n: usize,
    shared: SharedFn<'_>,
) -> DecResult<Vec<Sample>> {
    let mut d = Dec::new(payload);
    let tag = d.u8()?;
    let ts = timestamps(fd, &mut d, tag, t0, n, shared)?;
    let vals: Vec<f64> = match (tag >> 2) & 7 {
        V_CONST_F64 => vec![f64::from_bits(d.u64_le()?); n],
        V_CONST_INT => vec![d.varint()? as f64; n],
        V_PCO_I64 => pco_read::<i64>(fd, &payload[d.pos..], n)?
            .into_iter()
            .map(|i| i as f64)
            .collect(),
        V_PCO_F64 => pco_read::<f64>(fd, &payload[d.pos..], n)?,
        v => return Err(format!("unknown value encoding {v}")),
    };
    Ok(ts
        .into_iter()
        .zip(vals)
        .map(|(t, v)| Sample { t, v })
        .collect())
}

/// Splits `n` samples into evenly sized chunks of at most `MAX_CHUNK_SAMPLES`.
pub fn chunk_sizes(n: usize) -> impl Iterator<Item = usize> {
    let k = n.div_ceil(MAX_CHUNK_SAMPLES).max(1);
    (0..k).map(move |i| n / k + usize::from(i < n % k))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tocsin_model::STALE_NAN;

    fn rt(s: &[Sample]) -> usize {
        let fd = FileDecompressor::new(&pco_header().unwrap()[..]).unwrap().0;
        let enc = encode(s, None).unwrap();
        let dec = decode(&fd, &enc, s[0].t, s.len(), &mut |_, _| unreachable!()).unwrap();
        assert_eq!(dec.len(), s.len());
        for (a, b) in dec.iter().zip(s) {
            assert!(a.bit_eq(b), "{a:?} != {b:?}");
        }
        enc.len()
    }

    #[test]
    fn round_trips_bit_exact() {
        let specials = [
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            STALE_NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1.5,
            f64::MIN_POSITIVE / 2.0,
        ];
        let s: Vec<Sample> = specials
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample::new(1000 + i as i64 * 15_000, v))
            .collect();
        rt(&s);
        let s: Vec<Sample> = (0..700)
            .map(|i| {
                Sample::new(
                    i * 10_000 + (i * 7 % 5),
                    if i % 50 == 0 { STALE_NAN } else { i as f64 },
                )
            })
            .collect();
        rt(&s);
        // Integers mixed with -0.0 must not take the integer path.
        let s: Vec<Sample> = (0..10)
            .map(|i| Sample::new(i, if i == 3 { -0.0 } else { i as f64 }))
            .collect();
        rt(&s);
        rt(&[Sample::new(-5, -0.0)]);
        rt(&[
            Sample::new(i64::MIN + 10, 1.0),
            Sample::new(i64::MAX - 10, 2.0),
        ]);
        let big: Vec<Sample> = (0..50).map(|i| Sample::new(i, (i as f64) * 1e17)).collect();
        rt(&big);
    }

    #[test]
    fn constant_and_regular_are_tiny() {
        let s: Vec<Sample> = (0..720)
            .map(|i| Sample::new(1_700_000_000_000 + i * 10_000, 1.0))
            .collect();
        assert!(rt(&s) <= 6, "{}", rt(&s));
        let s: Vec<Sample> = (0..720).map(|i| Sample::new(i * 10_000, 0.25)).collect();
        assert!(rt(&s) <= 12);
    }

    #[test]
    fn shared_timestamps() {
        let fd = FileDecompressor::new(&pco_header().unwrap()[..]).unwrap().0;
        let a: Vec<Sample> = (0..100)
            .map(|i| Sample::new(i * 1000 + i % 3, i as f64))
            .collect();
        let b: Vec<Sample> = a.iter().map(|s| Sample::new(s.t, 0.5 * s.v)).collect();
        let ea = encode(&a, None).unwrap();
        assert!(shareable_timestamps(&ea));
        let eb = encode(&b, Some((77, ea.len() as u64))).unwrap();
        assert!(!shareable_timestamps(&eb));
        let dec = decode(&fd, &eb, 0, 100, &mut |d, l| {
            assert_eq!((d, l), (77, ea.len() as u64));
            decode_timestamps(&fd, &ea, 0, 100)
        })
        .unwrap();
        assert!(dec.iter().zip(&b).all(|(x, y)| x.bit_eq(y)));
        assert!(decode(&fd, &eb, 0, 100, &mut |_, _| Ok(vec![1; 100])).is_err());
    }

    #[test]
    fn chunk_sizes_split_evenly() {
        assert_eq!(chunk_sizes(5).collect::<Vec<_>>(), vec![5]);
        assert_eq!(
            chunk_sizes(MAX_CHUNK_SAMPLES + 2).collect::<Vec<_>>(),
            vec![MAX_CHUNK_SAMPLES / 2 + 1, MAX_CHUNK_SAMPLES / 2 + 1]
        );
        assert_eq!(
            chunk_sizes(3 * MAX_CHUNK_SAMPLES).sum::<usize>(),
            3 * MAX_CHUNK_SAMPLES
        );
    }
}
