//! Reading a time range out of the head for a block cut: the series in the range as a compact,
//! label-sorted list (`RangeSeries`) and their samples, and the WAL references still live.

use super::*;

impl Head {
    /// The series with data in [mint, maxt), sorted by labels, in a compact form for writing a
    /// block one series at a time (see `RangeSeries`). Each stripe is locked twice, briefly: once
    /// to gather the symbols, once to record the series as ids into them.
    pub fn series_in_range(&self, mint: i64, maxt_excl: i64) -> RangeSeries {
        let in_range = |s: &MemSeries| {
            !s.is_empty() && s.min_t() < maxt_excl && s.max_t().max(ooo_max(s)) >= mint
        };
        // Pass 1: the strings used by series in range, per stripe (stripe-local id, string).
        let mut used: Vec<Vec<(u32, Arc<str>)>> = Vec::with_capacity(STRIPES);
        for stripe in self.stripes.iter() {
            let st = stripe.lock();
            let mut seen = vec![false; st.symbols.strs.len()];
            let mut u = Vec::new();
            for s in st.series.iter().flatten().filter(|s| in_range(s)) {
                for &id in s.labels.iter() {
                    if let Some(f) = seen.get_mut(id as usize) {
                        if !*f {
                            *f = true;
                            u.push((id, st.symbols.strs[id as usize].0.clone()));
                        }
                    }
                }
            }
            used.push(u);
        }
        let mut symbols: Vec<Arc<str>> = used
            .iter()
            .flat_map(|u| u.iter().map(|(_, s)| s.clone()))
            .collect();
        symbols.sort_unstable();
        symbols.dedup();
        let width = match symbols.len() {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xff_ffff => 3,
            _ => 4,
        };
        // Pass 2: each series as big-endian fixed-width global ids, which compare bytewise like
        // the label sets (ids order like the strings; a prefix sorts first).
        let mut arena = Vec::new();
        let mut entries = Vec::new();
        let mut overflow = false;
        for (si, (stripe, u)) in self.stripes.iter().zip(used).enumerate() {
            let st = stripe.lock();
            let mut to_global = vec![u32::MAX; st.symbols.strs.len()];
            for (local, s) in u {
                if let (Some(slot), Ok(g)) =
                    (to_global.get_mut(local as usize), symbols.binary_search(&s))
                {
                    *slot = g as u32;
                }
            }
            'series: for (local, s) in st.series.iter().enumerate() {
                let Some(s) = s else { continue };
                if !in_range(s) {
                    continue;
                }
                let Ok(off) = u32::try_from(arena.len()) else {
                    overflow = true;
                    break;
                };
                for &id in s.labels.iter() {
                    let g = to_global.get(id as usize).copied().unwrap_or(u32::MAX);
                    if g == u32::MAX {
                        // Not in range during pass 1: it has no data for this block.
                        arena.truncate(off as usize);
                        continue 'series;
                    }
                    arena.extend_from_slice(&g.to_be_bytes()[4 - width..]);
                }
                entries.push(RangeEntry {
                    off,
                    len: (arena.len() - off as usize) as u32,
                    slot: slot_of(si, local as u32),
                });
            }
        }
        if overflow {
            tracing::error!("head range too large to sort in one pass; the block misses series");
        }
        entries.sort_unstable_by(|a, b| a.bytes(&arena).cmp(b.bytes(&arena)));
        RangeSeries {
            symbols,
            width,
            arena,
            entries,
        }
    }

    /// Samples of the series in `slot` within [mint, maxt).
    pub fn samples_of(&self, slot: u32, mint: i64, maxt_excl: i64) -> Vec<Sample> {
        let mut v = Vec::new();
        self.samples_into(slot, mint, maxt_excl, &mut v);
        v
    }

    /// Like `samples_of`, into a buffer the caller reuses across series.
    pub fn samples_into(&self, slot: u32, mint: i64, maxt_excl: i64, out: &mut Vec<Sample>) {
        out.clear();
        let (si, local) = split_slot(slot);
        let mut it = {
            let st = self.stripes[si].lock();
            let Some(Some(s)) = st.series.get(local as usize) else {
                return;
            };
            self.series_iter(s, mint, maxt_excl - 1)
        };
        while let Some(x) = it.next() {
            out.push(x);
        }
    }

    /// WAL references of every series in the head (for checkpoints). A bitmap rather than a hash
    /// set: the checkpoint asks it once per kept sample, tens of millions of times, and references
    /// are dense (allocated in sequence), so it is also a few bytes per series instead of ~20.
    pub fn live_ids(&self) -> roaring::RoaringTreemap {
        let mut ids = Vec::new();
        for stripe in self.stripes.iter() {
            let st = stripe.lock();
            ids.extend(st.series.iter().flatten().map(|s| s.id));
        }
        ids.sort_unstable();
        // Sorted and unique (references are never reused), so the fast path always applies.
        match roaring::RoaringTreemap::from_sorted_iter(ids.iter().copied()) {
            Ok(t) => t,
            Err(_) => ids.into_iter().collect(),
        }
    }
}

/// One series of a `RangeSeries`: its head slot and where its ids are in the arena.
struct RangeEntry {
    off: u32,
    len: u32,
    slot: u32,
}

impl RangeEntry {
    fn bytes<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        arena
            .get(self.off as usize..(self.off + self.len) as usize)
            .unwrap_or(&[])
    }
}

/// The series of a head range sorted by labels, without materializing their labels: the sorted
/// symbols the range uses, and per series its head slot and its labels as ids into those symbols
/// (fixed-width big-endian, so that sorting compares bytes). About 4 + 2 x labels x width bytes per
/// series, against a kilobyte or so for a `Labels`.
pub struct RangeSeries {
    pub symbols: Vec<Arc<str>>,
    width: usize,
    arena: Vec<u8>,
    entries: Vec<RangeEntry>,
}

impl RangeSeries {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`-th series in label order: its slot, and its labels as symbol ids (name, value, ...)
    /// written into `ids`.
    pub fn get(&self, i: usize, ids: &mut Vec<u32>) -> Option<u32> {
        let e = self.entries.get(i)?;
        ids.clear();
        for c in e.bytes(&self.arena).chunks_exact(self.width) {
            let mut b = [0u8; 4];
            b[4 - self.width..].copy_from_slice(c);
            ids.push(u32::from_be_bytes(b));
        }
        Some(e.slot)
    }

    /// Labels of the `i`-th series (for tests and messages).
    pub fn labels(&self, i: usize) -> Option<Labels> {
        let mut ids = Vec::new();
        self.get(i, &mut ids)?;
        let sym = |id: u32| self.symbols.get(id as usize).map_or("", |s| &**s);
        Some(Labels::from_sorted_unchecked(
            ids.chunks_exact(2)
                .map(|p| Label::new(sym(p[0]), sym(p[1])))
                .collect(),
        ))
    }
}
