use super::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use tocsin_model::{STALE_NAN, STALE_NAN_BITS};

fn encode(samples: &[(i64, u64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, vb) in samples {
        c.append(t, f64::from_bits(vb));
    }
    c
}

fn decode<B: AsRef<[u8]> + Send>(mut it: XorIter<B>) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    while let Some(s) = it.next() {
        out.push((s.t, s.v.to_bits()));
    }
    assert!(!it.is_corrupt());
    out
}

fn check_round_trip(samples: &[(i64, u64)]) {
    let c = encode(samples);
    assert_eq!(c.num_samples(), samples.len());
    assert_eq!(decode(c.iter()), samples);
    assert_eq!(decode(XorIter::new(c.bytes().to_vec()).unwrap()), samples);
    let arc: std::sync::Arc<[u8]> = c.bytes().into();
    assert_eq!(decode(XorIter::new(arc).unwrap()), samples);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        assert_eq!(c.min_time(), first.0);
        assert_eq!(c.max_time(), last.0);
        let (lt, lv) = c.last().unwrap();
        assert_eq!((lt, lv.to_bits()), *last);
    }
}

fn specials() -> Vec<u64> {
    vec![
        0,
        (-0.0f64).to_bits(),
        STALE_NAN_BITS,
        f64::NAN.to_bits(),
        0xfff8_0000_0000_0001, // negative quiet NaN with a payload
        0x7ff0_0000_0000_0001,
        f64::INFINITY.to_bits(),
        f64::NEG_INFINITY.to_bits(),
        f64::MAX.to_bits(),
        f64::MIN.to_bits(),
        f64::MIN_POSITIVE.to_bits(),
        1,                           // smallest subnormal
        1e308f64.to_bits(),
        (-1e308f64).to_bits(),
        1.0f64.to_bits(),
        0.1f64.to_bits(),
        9007199254740992.0f64.to_bits(), // 2^53
        9007199254740993.0f64.to_bits(),
        (-9007199254740992.0f64).to_bits(),
        1e15f64.to_bits(),
        1e-15f64.to_bits(),
        123.456f64.to_bits(),
        u64::MAX,
    ]
}

fn value_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        proptest::sample::select(specials()),
        (-1_000_000i64..1_000_000).prop_map(|i| (i as f64).to_bits()),
        (-100_000i64..100_000, 0u32..16).prop_map(|(m, s)| (m as f64 / 10f64.powi(s as i32)).to_bits()),
        any::<f64>().prop_map(f64::to_bits),
    ]
}

/// Strictly increasing timestamps: regular with jitter, tiny steps, huge gaps, anywhere in i64.
fn timestamps_strategy() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        proptest::collection::btree_set(any::<i64>(), 1..150).prop_map(|s| s.into_iter().collect()),
        proptest::collection::btree_set(prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), Just(-1i64), any::<i64>()], 1..8)
            .prop_map(|s| s.into_iter().collect()),
        (
            any::<i64>(),
            proptest::collection::vec(
                prop_oneof![
                    8 => 9_990u64..10_010,
                    2 => 1u64..100,
                    1 => 1u64..u64::MAX,
                    1 => 30_000u64..120_000,
                ],
                0..200
            )
        )
            .prop_map(|(start, deltas)| {
                let mut out = vec![start];
                let mut t = start as i128;
                for d in deltas {
                    t += d as i128;
                    if t > i64::MAX as i128 {
                        break;
                    }
                    out.push(t as i64);
                }
                out
            }),
    ]
}

fn series_strategy() -> impl Strategy<Value = Vec<(i64, u64)>> {
    timestamps_strategy().prop_flat_map(|ts| {
        let n = ts.len();
        (Just(ts), proptest::collection::vec(value_strategy(), n))
            .prop_map(|(ts, vs)| ts.into_iter().zip(vs).collect())
    })
}

/// Values that mostly repeat or move a little, so the reuse and decimal paths are exercised
/// between arbitrary bit patterns.
fn sticky_series_strategy() -> impl Strategy<Value = Vec<(i64, u64)>> {
    timestamps_strategy().prop_flat_map(|ts| {
        let n = ts.len();
        (
            Just(ts),
            value_strategy(),
            proptest::collection::vec((0u8..6, value_strategy(), -1000i64..1000), n),
        )
            .prop_map(|(ts, first, steps)| {
                let mut v = first;
                let mut out = Vec::new();
                for (t, (kind, other, small)) in ts.into_iter().zip(steps) {
                    v = match kind {
                        0 | 1 => v,
                        2 => other,
                        3 => (f64::from_bits(v) + small as f64).to_bits(),
                        4 => (f64::from_bits(v) + small as f64 / 100.0).to_bits(),
                        _ => v ^ (other & 0xffff),
                    };
                    out.push((t, v));
                }
                out
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_arbitrary(samples in series_strategy()) {
        check_round_trip(&samples);
    }

    #[test]
    fn round_trip_sticky(samples in sticky_series_strategy()) {
        check_round_trip(&samples);
    }

    #[test]
    fn snapshots_decode_what_they_held(samples in sticky_series_strategy(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(samples.len() + 1);
        let mut c = XorChunk::new();
        for &(t, vb) in &samples[..cut] {
            c.append(t, f64::from_bits(vb));
        }
        let snap = c.bytes().to_vec();
        for &(t, vb) in &samples[cut..] {
            c.append(t, f64::from_bits(vb));
        }
        prop_assert_eq!(decode(XorIter::new(snap).unwrap()), &samples[..cut]);
        prop_assert_eq!(decode(c.iter()), samples);
    }

    #[test]
    fn truncated_never_panics(samples in sticky_series_strategy(), cut in any::<prop::sample::Index>()) {
        let c = encode(&samples);
        let b = c.bytes();
        let cut = cut.index(b.len() + 1);
        match XorIter::new(&b[..cut]) {
            Err(_) => prop_assert!(cut < 2),
            Ok(mut it) => {
                let mut got = Vec::new();
                while let Some(s) = it.next() {
                    got.push((s.t, s.v.to_bits()));
                }
                // Whatever comes out is a prefix of the truth; cutting inside the body is noticed.
                prop_assert!(got.len() <= samples.len());
                prop_assert_eq!(&got[..], &samples[..got.len()]);
                if got.len() < samples.len() {
                    prop_assert!(it.is_corrupt());
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(mut it) = XorIter::new(&bytes[..]) {
            let mut n = 0;
            while it.next().is_some() {
                n += 1;
            }
            prop_assert!(n <= 65535);
        }
        if let Ok(mut it) = XorIter::new(&bytes[..]) {
            let _ = it.seek(0);
            let _ = it.seek(i64::MAX);
        }
    }

    #[test]
    fn seek_matches_linear_scan(samples in series_strategy(), targets in proptest::collection::vec(any::<i64>(), 1..5)) {
        let c = encode(&samples);
        let mut it = c.iter();
        let mut idx = 0usize;
        for target in targets {
            let want = samples[idx..].iter().position(|s| s.0 >= target).map(|p| idx + p);
            let got = it.seek(target);
            match want {
                Some(i) => {
                    let s = got.unwrap();
                    prop_assert_eq!((s.t, s.v.to_bits()), samples[i]);
                    idx = i + 1;
                }
                None => {
                    prop_assert!(got.is_none());
                    idx = samples.len();
                }
            }
        }
    }
}

#[test]
fn empty_chunk() {
    let c = XorChunk::new();
    assert_eq!(c.num_samples(), 0);
    assert_eq!(c.heap_size(), 0);
    assert_eq!(c.last(), None);
    assert_eq!(c.min_time(), i64::MAX);
    assert_eq!(c.max_time(), i64::MIN);
    assert_eq!(c.bytes(), &[0, 0]);
    assert!(c.iter().next().is_none());
    assert!(XorIter::new(&[][..]).is_err());
    assert!(XorIter::new(&[0u8][..]).is_err());
    assert!(XorIter::new(vec![0u8, 0]).unwrap().next().is_none());
}

#[test]
fn struct_size() {
    assert!(std::mem::size_of::<XorChunk>() <= 64, "{}", std::mem::size_of::<XorChunk>());
}

#[test]
fn extremes_round_trip() {
    let vals = specials();
    let ts = [i64::MIN, i64::MIN + 1, -1_000_000, -1, 0, 1, 10_000, i64::MAX - 1, i64::MAX];
    let samples: Vec<_> = ts.iter().zip(vals.iter().cycle()).map(|(&t, &v)| (t, v)).collect();
    check_round_trip(&samples);
    check_round_trip(&[(i64::MIN, 0), (i64::MAX, 1e308f64.to_bits())]);
    check_round_trip(&[(i64::MIN, 0), (0, 0), (i64::MAX, 0)]);
    // Every special after every other, both directions.
    let mut all = Vec::new();
    let mut t = -5_000_000i64;
    for &a in &vals {
        for &b in &vals {
            for v in [a, b, b, a] {
                all.push((t, v));
                t += 15_000;
            }
        }
    }
    for chunk in all.chunks(120) {
        check_round_trip(chunk);
    }
}

#[test]
fn stale_markers_between_integers() {
    let mut s = Vec::new();
    for i in 0..200i64 {
        let v = if i % 7 == 3 { STALE_NAN } else { (i * 3) as f64 };
        s.push((1_700_000_000_000 + i * 10_000, v.to_bits()));
    }
    check_round_trip(&s);
}

#[test]
fn scale_changes_round_trip() {
    let vals: [f64; 13] = [1.0, 2.0, 2.5, 2.75, 3.0, 0.001, 1e-15, 7.0, -3.25, 1e15, 1e15 + 1.0, 0.3, 0.1 + 0.2];
    let s: Vec<_> = vals.iter().enumerate().map(|(i, v)| (i as i64 * 1000, v.to_bits())).collect();
    check_round_trip(&s);
}

#[test]
fn full_chunk() {
    let mut c = XorChunk::new();
    for i in 0..XorChunk::MAX_SAMPLES as i64 {
        c.append(i * 10, (i % 100) as f64);
    }
    assert!(c.is_full());
    assert_eq!(c.num_samples(), XorChunk::MAX_SAMPLES);
    let mut it = c.iter();
    let mut n = 0;
    while let Some(s) = it.next() {
        assert_eq!(s.t, n * 10);
        n += 1;
    }
    assert_eq!(n as usize, XorChunk::MAX_SAMPLES);
}

#[test]
fn growth_is_linear_and_shrink_fits() {
    let mut c = XorChunk::new();
    for i in 0..120i64 {
        c.append(i * 10_000, i as f64);
        assert!(c.heap_size() - c.bytes().len() <= GROW_STEP + MAX_SAMPLE_BYTES);
    }
    c.shrink();
    assert_eq!(c.heap_size(), c.bytes().len());
}

#[test]
fn regular_timestamps_cost_one_bit() {
    let mut c = XorChunk::new();
    for i in 0..121i64 {
        c.append(1_700_000_000_000 + i * 15_000, 5.0);
    }
    // 18 header bytes, 24 bits for the first delta, then 2 bits per sample (timestamp + value).
    assert_eq!(c.bytes().len(), 18 + (24usize + 1 + 119 * 2).div_ceil(8));
}

// ---- measurements (cargo test --release -p tocsin-tsdb --lib chunkenc -- --ignored --nocapture)

const PER_CHUNK: usize = 120;

fn jittered_ts(rng: &mut impl Rng, n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| 1_700_000_000_000 + i * 10_000 + rng.gen_range(-3..=3)).collect()
}

fn bytes_per_sample(ts: &[i64], vs: &[f64]) -> f64 {
    let mut total = 0usize;
    let mut n = 0usize;
    for (tc, vc) in ts.chunks(PER_CHUNK).zip(vs.chunks(PER_CHUNK)) {
        let mut c = XorChunk::new();
        for (&t, &v) in tc.iter().zip(vc) {
            c.append(t, v);
        }
        let got: Vec<_> = {
            let mut it = c.iter();
            std::iter::from_fn(|| it.next()).map(|s| (s.t, s.v.to_bits())).collect()
        };
        let want: Vec<_> = tc.iter().zip(vc).map(|(&t, &v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
        total += c.bytes().len();
        n += tc.len();
    }
    total as f64 / n as f64
}

#[test]
#[ignore]
fn measure_bytes_per_sample() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let n = PER_CHUNK * 1000;
    let ts = jittered_ts(&mut rng, n);
    let regular: Vec<i64> = (0..n as i64).map(|i| 1_700_000_000_000 + i * 10_000).collect();

    let mut c = 1_000_000.0f64;
    let counter: Vec<f64> = (0..n)
        .map(|_| {
            c += rng.gen_range(0..=20) as f64;
            c
        })
        .collect();
    let mut g = 50.0f64;
    let gauge2: Vec<f64> = (0..n)
        .map(|_| {
            g = (g + rng.gen_range(-3..=3) as f64).clamp(10.0, 99.0);
            g / 10.0 // e.g. 4.7: two significant digits
        })
        .collect();
    let mut g = 500.0f64;
    let gauge3: Vec<f64> = (0..n)
        .map(|_| {
            g = (g + rng.gen_range(-20..=20) as f64).clamp(100.0, 999.0);
            g / 100.0 // e.g. 5.37: three significant digits
        })
        .collect();
    let constant = vec![42.0f64; n];
    let mut w = 0.0f64;
    let walk: Vec<f64> = (0..n)
        .map(|_| {
            w += rng.gen::<f64>() - 0.5;
            w
        })
        .collect();

    println!("bytes/sample over {n} samples in {PER_CHUNK}-sample chunks (incl. 18-byte header):");
    for (name, vs) in [
        ("counter +0..20", &counter),
        ("gauge 2 digits", &gauge2),
        ("gauge 3 digits", &gauge3),
        ("constant", &constant),
        ("random walk", &walk),
    ] {
        println!(
            "  {name:16} jittered ts {:.3}   regular ts {:.3}",
            bytes_per_sample(&ts, vs),
            bytes_per_sample(&regular, vs)
        );
    }
}

#[test]
#[ignore]
fn measure_decode_speed() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let chunks = 20_000;
    let mut built = Vec::new();
    for kind in 0..3 {
        let mut cs = Vec::new();
        let mut c = 0.0f64;
        for k in 0..chunks {
            let mut ch = XorChunk::new();
            for i in 0..PER_CHUNK as i64 {
                let t = (k as i64 * PER_CHUNK as i64 + i) * 10_000;
                let v = match kind {
                    0 => 7.0,
                    1 => {
                        c += rng.gen_range(0..=20) as f64;
                        c
                    }
                    _ => {
                        c += rng.gen::<f64>() - 0.5;
                        c
                    }
                };
                ch.append(t, v);
            }
            ch.shrink();
            cs.push(ch);
        }
        built.push((["constant", "counter", "random walk"][kind], cs));
    }
    for (name, cs) in &built {
        let start = std::time::Instant::now();
        let mut n = 0usize;
        let mut sum = 0.0f64;
        for _ in 0..5 {
            for ch in cs {
                let mut it = ch.iter();
                while let Some(s) = it.next() {
                    n += 1;
                    sum += s.v;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("decode {name:12}: {:.1} M samples/s (checksum {sum})", n as f64 / secs / 1e6);
    }
}
