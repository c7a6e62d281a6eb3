//! The `tombstones` file: deleted time ranges per series id of the block. Kept in memory as a
//! sorted map of merged, sorted intervals; rewritten whole (atomically) on every delete.

use std::collections::BTreeMap;

use super::enc::{put_uvarint, put_varint, Dec, DecResult};

pub(super) const MAGIC: &[u8; 4] = b"TTMB";
const VERSION: u8 = 1;

/// Series id -> sorted, non-overlapping, non-adjacent inclusive [mint, maxt] intervals.
pub type Tombstones = BTreeMap<u32, Vec<(i64, i64)>>;

/// Adds [mint, maxt] to a series' intervals, merging overlapping and adjacent ones.
pub fn add_interval(ivs: &mut Vec<(i64, i64)>, mint: i64, maxt: i64) {
    ivs.push((mint, maxt));
    ivs.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ivs.len());
    for &(a, b) in ivs.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *ivs = out;
}

pub fn is_deleted(ivs: &[(i64, i64)], t: i64) -> bool {
    // Intervals are sorted and disjoint: the candidate is the last one starting at or before t.
    let i = ivs.partition_point(|iv| iv.0 <= t);
    i > 0 && ivs[i - 1].1 >= t
}

pub fn count(ts: &Tombstones) -> u64 {
    ts.values().map(|v| v.len() as u64).sum()
}

pub fn encode(ts: &Tombstones) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    put_uvarint(&mut out, ts.len() as u64);
    let mut prev = 0u32;
    for (&id, ivs) in ts {
        put_uvarint(&mut out, (id - prev) as u64);
        prev = id;
        put_uvarint(&mut out, ivs.len() as u64);
        for &(a, b) in ivs {
            put_varint(&mut out, a);
            put_uvarint(&mut out, b.wrapping_sub(a) as u64);
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode(b: &[u8], num_series: u32) -> DecResult<Tombstones> {
    if b.len() < 9 || &b[..4] != MAGIC {
        return Err("bad magic or too short".into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != want {
        return Err("checksum mismatch".into());
    }
    let mut d = Dec::at(body, 4);
    let v = d.u8()?;
    if v != VERSION {
        return Err(format!("unsupported version {v}"));
    }
    let n = d.uvarint()?;
    let mut ts = Tombstones::new();
    let mut id = 0u32;
    for i in 0..n {
        let delta = d.u32_val()?;
        id = id.checked_add(delta).filter(|&x| x < num_series && (i == 0 || delta > 0)).ok_or_else(|| format!("bad series id after {id}"))?;
        let k = d.uvarint()?;
        let mut ivs = Vec::new();
        for _ in 0..k {
            let a = d.varint()?;
            let b = a.wrapping_add(d.uvarint()? as i64);
            add_interval(&mut ivs, a, b);
        }
        ts.insert(id, ivs);
    }
    if d.remaining() != 0 {
        return Err("trailing bytes".into());
    }
    Ok(ts)
}
