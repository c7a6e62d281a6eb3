//! Salvaging a damaged segment: after the first bad record, the rest of the file is searched for
//! the next record whose frame and checksum are intact, and reading resumes there. Damage that is
//! not at the very end of the log (a flipped byte, a bad sector) then costs only the records it
//! hit instead of everything written after it. Runs only once damage was found, so the normal read
//! path stays the streaming one in `segment.rs`.

use std::path::Path;

use super::codec::{TYPE_SAMPLES, TYPE_SERIES, TYPE_TOMBSTONES};
use super::segment::{
    record_crc, RecordSink, FORMAT_VERSION, MAX_RECORD_PAYLOAD, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
use crate::error::{Error, Result};

/// Bytes the search may checksum before giving up on the rest of a segment, so a garbage-filled
/// file cannot make start-up quadratic.
const SCAN_BUDGET: u64 = 256 << 20;

/// What salvaging one segment found.
#[derive(Debug, Default)]
pub(crate) struct Salvage {
    /// Damaged byte ranges `[start, end)`, in file order; the last may run to the end of the file.
    pub holes: Vec<(u64, u64)>,
    /// Intact records found after the first damage (handed to the sink).
    pub records: u64,
    /// The segment as it should be: header and every intact record, for repair to write back.
    pub rebuilt: Vec<u8>,
    /// Reason of each hole, in the same order.
    pub reasons: Vec<String>,
}

impl Salvage {
    pub fn skipped_bytes(&self) -> u64 {
        self.holes.iter().map(|(a, b)| b - a).sum()
    }
}

/// Salvages the segment at `path` (of `size` bytes when first read), whose bytes before `good` were
/// read fine and whose record at `good` is damaged for `reason`. Records found after the damage
/// go to `on_record` in file order.
pub(crate) fn salvage(
    path: &Path,
    size: u64,
    good: u64,
    reason: &str,
    on_record: &mut RecordSink<'_>,
) -> Result<Salvage> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // A live writer may have appended since: only the part that was there when reading began.
    bytes.truncate(size as usize);
    let size = bytes.len() as u64;
    let mut out = Salvage::default();
    out.rebuilt.reserve(bytes.len());
    out.rebuilt.extend_from_slice(&SEGMENT_MAGIC);
    out.rebuilt.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
    let good = good.min(size);
    if good > SEGMENT_HEADER_LEN {
        out.rebuilt
            .extend_from_slice(&bytes[SEGMENT_HEADER_LEN as usize..good as usize]);
    }
    let mut budget = SCAN_BUDGET;
    let mut hole_start = good;
    let mut reason = reason.to_string();
    loop {
        // A damaged header may still be followed by intact records at the usual place.
        let from = if hole_start < SEGMENT_HEADER_LEN {
            SEGMENT_HEADER_LEN
        } else {
            hole_start + 1
        };
        let Some(mut pos) = find_next(&bytes, from, &mut budget) else {
            if hole_start < size {
                out.holes.push((hole_start, size));
                out.reasons.push(reason);
            }
            return Ok(out);
        };
        out.holes.push((hole_start, pos));
        out.reasons.push(std::mem::take(&mut reason));
        loop {
            if pos >= size {
                return Ok(out);
            }
            let Some((typ, payload, end)) = frame_at(&bytes, pos) else {
                reason = "damaged record".into();
                break;
            };
            if let Err(r) = on_record(typ, payload) {
                reason = format!("undecodable record of type {typ}: {r}");
                break;
            }
            out.rebuilt
                .extend_from_slice(&bytes[pos as usize..end as usize]);
            out.records += 1;
            pos = end;
        }
        hole_start = pos;
    }
}

/// The record at `pos` if its frame is complete and its checksum matches: (type, payload, end).
fn frame_at(b: &[u8], pos: u64) -> Option<(u8, &[u8], u64)> {
    let p = usize::try_from(pos).ok()?;
    let head = b.get(p..p.checked_add(RECORD_HEADER_LEN)?)?;
    let typ = head[0];
    if !matches!(typ, TYPE_SERIES | TYPE_SAMPLES | TYPE_TOMBSTONES) {
        return None;
    }
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_RECORD_PAYLOAD {
        return None;
    }
    let crc = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
    let start = p + RECORD_HEADER_LEN;
    let payload = b.get(start..start.checked_add(len as usize)?)?;
    (record_crc(typ, len, payload) == crc).then_some((typ, payload, (start + len as usize) as u64))
}

/// The first offset at or after `from` where an intact record starts, within the budget.
fn find_next(b: &[u8], from: u64, budget: &mut u64) -> Option<u64> {
    let n = b.len() as u64;
    let mut p = from;
    while p + RECORD_HEADER_LEN as u64 <= n {
        let i = p as usize;
        let typ = b[i];
        if matches!(typ, TYPE_SERIES | TYPE_SAMPLES | TYPE_TOMBSTONES) {
            let len = u32::from_le_bytes([b[i + 1], b[i + 2], b[i + 3], b[i + 4]]) as u64;
            if len <= u64::from(MAX_RECORD_PAYLOAD) && p + RECORD_HEADER_LEN as u64 + len <= n {
                if *budget < len {
                    return None;
                }
                *budget -= len;
                if frame_at(b, p).is_some() {
                    return Some(p);
                }
            }
        }
        p += 1;
    }
    None
}
