//! Taking data out of the head: truncation below a bound once a block holds it (series left
//! empty leave the head and free their slot), and deletion of samples by matchers or slot.

use super::*;

impl Head {
    /// Drops data before `mint` (now in a block) and removes series left empty. Returns how many
    /// series were removed.
    pub fn truncate(&self, mint: i64) -> u64 {
        self.set_min_valid_time(mint);
        let mut removed_slots = Vec::new();
        for (si, stripe) in self.stripes.iter().enumerate() {
            let mut st = stripe.lock();
            let st = &mut *st;
            for local in 0..st.series.len() {
                let Some(s) = st.series[local].as_mut() else {
                    continue;
                };
                s.closed.retain(|c| c.maxt >= mint);
                if s.open().is_some_and(|o| o.max_time() < mint) {
                    s.open = None;
                }
                if let Some(o) = &mut s.ooo {
                    o.retain(|x| x.t >= mint);
                    if o.is_empty() {
                        s.ooo = None;
                    }
                }
                if s.is_empty() {
                    if let Some(s) = st.series[local].take() {
                        let (hash, _) = self.seeds.key(
                            s.labels
                                .chunks_exact(2)
                                .map(|p| (st.symbols.get(p[0]), st.symbols.get(p[1]))),
                        );
                        remove_hash(st, hash, local as u32);
                        for id in s.labels.iter() {
                            st.symbols.release(*id);
                        }
                        removed_slots.push(slot_of(si, local as u32));
                    }
                }
            }
        }
        let n = removed_slots.len() as u64;
        if n > 0 {
            let mut p = self.postings.write();
            let mut gone = RoaringBitmap::new();
            gone.extend(removed_slots.iter().copied());
            p.all -= &gone;
            p.map.retain(|_, vals| {
                vals.retain(|_, b| {
                    *b -= &gone;
                    !b.is_empty()
                });
                !vals.is_empty()
            });
        }
        // Slots are reusable only once the postings no longer name them.
        for slot in removed_slots {
            let (si, local) = split_slot(slot);
            self.stripes[si].lock().free.push(local);
        }
        self.num_series.fetch_sub(n, Ordering::Relaxed);
        self.series_removed.fetch_add(n, Ordering::Relaxed);
        if let Some(sp) = &self.spill {
            sp.truncate(mint);
        }
        let mut new_min = i64::MAX;
        for stripe in self.stripes.iter() {
            let st = stripe.lock();
            for s in st.series.iter().flatten() {
                new_min = new_min.min(s.min_t());
            }
        }
        self.min_t.store(new_min, Ordering::Relaxed);
        n
    }

    /// Deletes samples in [mint, maxt] of matching series by rewriting their chunks. Returns the
    /// WAL references of the series touched.
    pub fn delete(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<u64> {
        let slots = self.postings(ms);
        let mut touched = Vec::new();
        for slot in slots.iter() {
            let ok = {
                let (si, local) = split_slot(slot);
                let st = self.stripes[si].lock();
                match st.series.get(local as usize) {
                    Some(Some(s)) => {
                        let labels = st.materialize(s);
                        ms.iter()
                            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
                    }
                    _ => false,
                }
            };
            if ok {
                if let Some(id) = self.delete_slot(slot, mint, maxt) {
                    touched.push(id);
                }
            }
        }
        touched
    }

    /// Deletes samples in [mint, maxt] of the series in `slot`; returns its WAL reference if it had any.
    pub fn delete_slot(&self, slot: u32, mint: i64, maxt: i64) -> Option<u64> {
        let (si, local) = split_slot(slot);
        let mut st = self.stripes[si].lock();
        let Some(Some(s)) = st.series.get_mut(local as usize) else {
            return None;
        };
        if s.max_t().max(ooo_max(s)) < mint || s.min_t() > maxt {
            return None;
        }
        let mut it = self.series_iter(s, i64::MIN, i64::MAX);
        let mut keep = Vec::new();
        while let Some(x) = it.next() {
            if x.t < mint || x.t > maxt {
                keep.push(x);
            }
        }
        s.closed.clear();
        s.ooo = None;
        let mut open = XorChunk::new();
        for x in keep {
            if open.num_samples() >= CHUNK_SAMPLES {
                let mut full = std::mem::take(&mut open);
                full.shrink();
                push_exact(
                    &mut s.closed,
                    ClosedChunk {
                        mint: full.min_time(),
                        maxt: full.max_time(),
                        loc: ChunkLoc::Mem(full.bytes().into()),
                    },
                );
            }
            open.append(x.t, x.v);
        }
        s.open = (open.num_samples() > 0).then(|| Box::new(open));
        Some(s.id)
    }
}
