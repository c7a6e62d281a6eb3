//! Reading the head for queries: postings for matchers, series with their samples merged from
//! closed, spilled, open and out-of-order chunks, and label names and values.

use super::*;

impl Head {
    pub(super) fn series_iter(&self, s: &MemSeries, mint: i64, maxt: i64) -> Box<dyn SampleIter> {
        let mut srcs: Vec<ChunkSrc> = Vec::new();
        let mut read_failures = None;
        for c in &s.closed {
            if c.maxt < mint || c.mint > maxt {
                continue;
            }
            match &c.loc {
                ChunkLoc::Mem(b) => srcs.push(ChunkSrc::Bytes(b.to_vec())),
                ChunkLoc::Disk(r) => {
                    let Some(sp) = &self.spill else { continue };
                    let counter = read_failures.get_or_insert_with(|| sp.read_failure_counter());
                    match sp.file(r.file) {
                        Some(f) => srcs.push(ChunkSrc::Disk(f, *r)),
                        None => {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
        }
        if let Some(o) = s.open() {
            if o.max_time() >= mint && o.min_time() <= maxt {
                srcs.push(ChunkSrc::Bytes(o.bytes().to_vec()));
            }
        }
        srcs.reverse();
        let inorder: Box<dyn SampleIter> = Box::new(ChunksIter {
            srcs,
            cur: None,
            mint,
            maxt,
            read_failures,
        });
        match &s.ooo {
            Some(o) if !o.is_empty() => {
                let v: Vec<Sample> = o
                    .iter()
                    .filter(|x| x.t >= mint && x.t <= maxt)
                    .copied()
                    .collect();
                Box::new(MergedSamples::new(vec![
                    Box::new(VecSamples::new(v)),
                    inorder,
                ]))
            }
            _ => inorder,
        }
    }

    /// Slots matching the matchers.
    pub fn postings(&self, ms: &[Matcher]) -> RoaringBitmap {
        let p = self.postings.read();
        postings_for_matchers(&PostingsView(&p), ms)
    }

    /// Series matching the matchers with samples in [mint, maxt], sorted by labels.
    pub fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<Series> {
        let slots = self.postings(ms);
        let mut out = Vec::with_capacity(slots.len() as usize);
        let mut by_stripe: Vec<Vec<u32>> = vec![Vec::new(); STRIPES];
        for slot in slots.iter() {
            let (si, local) = split_slot(slot);
            by_stripe[si].push(local);
        }
        for (si, locals) in by_stripe.into_iter().enumerate() {
            if locals.is_empty() {
                continue;
            }
            let st = self.stripes[si].lock();
            for local in locals {
                let Some(Some(s)) = st.series.get(local as usize) else {
                    continue;
                };
                if s.is_empty() || s.max_t().max(ooo_max(s)) < mint || s.min_t() > maxt {
                    continue;
                }
                let labels = st.materialize(s);
                // Matchers are rechecked because a slot may have been reused since the postings read.
                if !ms
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
                {
                    continue;
                }
                out.push(Series {
                    labels,
                    samples: self.series_iter(s, mint, maxt),
                });
            }
        }
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    pub fn label_names(&self, ms: &[Matcher]) -> Vec<String> {
        let p = self.postings.read();
        let mut names: Vec<String> = if ms.is_empty() {
            p.map.keys().cloned().collect()
        } else {
            let sel = postings_for_matchers(&PostingsView(&p), ms);
            p.map
                .iter()
                .filter(|(_, vals)| vals.values().any(|b| !b.is_disjoint(&sel)))
                .map(|(n, _)| n.clone())
                .collect()
        };
        names.sort();
        names
    }

    pub fn label_values(&self, name: &str, ms: &[Matcher]) -> Vec<String> {
        let p = self.postings.read();
        let Some(vals) = p.map.get(name) else {
            return Vec::new();
        };
        let mut out: Vec<String> = if ms.is_empty() {
            vals.keys().cloned().collect()
        } else {
            let sel = postings_for_matchers(&PostingsView(&p), ms);
            vals.iter()
                .filter(|(_, b)| !b.is_disjoint(&sel))
                .map(|(v, _)| v.clone())
                .collect()
        };
        out.sort();
        out
    }
}

enum ChunkSrc {
    Bytes(Vec<u8>),
    Disk(Arc<File>, SpillRef),
}

/// Iterates a series' in-order chunks (oldest last in `srcs`), reading spilled chunks lazily.
struct ChunksIter {
    srcs: Vec<ChunkSrc>,
    cur: Option<XorIter<Vec<u8>>>,
    mint: i64,
    maxt: i64,
    /// Bumped when a spilled chunk cannot be read, so a block cut can tell it got less than the
    /// head holds (the WAL still has it) instead of persisting the gap.
    read_failures: Option<Arc<AtomicU64>>,
}

impl SampleIter for ChunksIter {
    fn next(&mut self) -> Option<Sample> {
        loop {
            if let Some(c) = &mut self.cur {
                match c.next() {
                    Some(s) if s.t < self.mint => continue,
                    Some(s) if s.t > self.maxt => {
                        self.srcs.clear();
                        self.cur = None;
                        return None;
                    }
                    Some(s) => return Some(s),
                    None => self.cur = None,
                }
            }
            let bytes = match self.srcs.pop()? {
                ChunkSrc::Bytes(b) => b,
                ChunkSrc::Disk(f, r) => match ChunkSpill::read(&f, r) {
                    Ok(b) => b,
                    Err(e) => {
                        if let Some(c) = &self.read_failures {
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                        tracing::error!(error = %e, "reading a spilled head chunk failed; series data truncated in this query");
                        return None;
                    }
                },
            };
            self.cur = XorIter::new(bytes).ok();
        }
    }
}
