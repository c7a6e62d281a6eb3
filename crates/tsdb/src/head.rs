//! The in-memory head: every series that received samples since the last block was cut, each with
//! an open compressed chunk, its closed chunks (spilled to disk when a spill directory is given), an
//! out-of-order buffer, and an inverted index from label pairs to postings.
//!
//! Series live in stripes chosen by label hash, so appends to different series rarely contend. Label
//! strings are interned per stripe and a series keeps only symbol ids: a churning fleet repeats the
//! same names and values across thousands of series. Series ids (`u32` slots) are reused after a
//! series leaves the head; the WAL uses a separate, never-reused `u64` reference.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use tocsin_model::{Label, Labels, Matcher, Sample};
use tocsin_storage::{MergedSamples, SampleIter, Series, VecSamples};

use crate::chunkenc::{XorChunk, XorIter};
use crate::index::{postings_for_matchers, IndexReader};
use crate::spill::{ChunkSpill, SpillRef};

#[path = "head_read.rs"]
mod read;

#[path = "head_remove.rs"]
mod remove;

#[path = "head_range.rs"]
mod range;
pub use range::RangeSeries;

#[path = "head_stats.rs"]
mod stats;

const STRIPES: usize = 64;
/// Samples per head chunk before it is closed; ~20 minutes at a 10 s interval.
const CHUNK_SAMPLES: usize = 120;

#[derive(Default)]
struct Interner {
    map: HashMap<Arc<str>, u32>,
    strs: Vec<(Arc<str>, u32)>,
    free: Vec<u32>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            self.strs[id as usize].1 += 1;
            return id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.strs[id as usize] = (a.clone(), 1);
                id
            }
            None => {
                self.strs.push((a.clone(), 1));
                (self.strs.len() - 1) as u32
            }
        };
        self.map.insert(a, id);
        id
    }
    fn release(&mut self, id: u32) {
        let e = &mut self.strs[id as usize];
        e.1 -= 1;
        if e.1 == 0 {
            let s = std::mem::replace(&mut e.0, Arc::from(""));
            self.map.remove(&s);
            self.free.push(id);
        }
    }
    fn get(&self, id: u32) -> &str {
        &self.strs[id as usize].0
    }
}

enum ChunkLoc {
    Mem(Box<[u8]>),
    Disk(SpillRef),
}

struct ClosedChunk {
    mint: i64,
    maxt: i64,
    loc: ChunkLoc,
}

struct MemSeries {
    /// Symbol ids, name then value, sorted by name.
    labels: Box<[u32]>,
    /// Second half of the label set's 128-bit key (the first half keys the stripe's map).
    hash2: u64,
    id: u64,
    /// The chunk receiving samples; never empty when present. Boxed and dropped when the series
    /// goes idle (its samples spilled), because under churn most head series are idle and the
    /// encoder's state would cost them 64 bytes each.
    #[allow(clippy::box_collection)]
    open: Option<Box<XorChunk>>,
    closed: Vec<ClosedChunk>,
    /// Boxed so series without out-of-order samples (nearly all) pay 8 bytes, not 24.
    #[allow(clippy::box_collection)]
    ooo: Option<Box<Vec<Sample>>>,
}

impl MemSeries {
    /// The open chunk if it holds samples.
    fn open(&self) -> Option<&XorChunk> {
        self.open.as_deref().filter(|o| o.num_samples() > 0)
    }
    fn max_t(&self) -> i64 {
        match self.open() {
            Some(o) => o.max_time(),
            None => self.closed.last().map_or(i64::MIN, |c| c.maxt),
        }
    }
    fn min_t(&self) -> i64 {
        let mut m = self.closed.first().map_or(i64::MAX, |c| c.mint);
        if let Some(o) = self.open() {
            m = m.min(o.min_time());
        }
        if let Some(o) = &self.ooo {
            if let Some(s) = o.first() {
                m = m.min(s.t);
            }
        }
        m
    }
    fn is_empty(&self) -> bool {
        self.open().is_none()
            && self.closed.is_empty()
            && self.ooo.as_ref().is_none_or(|o| o.is_empty())
    }
    fn heap_size(&self) -> usize {
        let closed: usize = self
            .closed
            .iter()
            .map(|c| match &c.loc {
                ChunkLoc::Mem(b) => b.len(),
                ChunkLoc::Disk(_) => 0,
            })
            .sum();
        self.labels.len() * 4
            + self
                .open
                .as_ref()
                .map_or(0, |o| std::mem::size_of::<XorChunk>() + o.heap_size())
            + self.closed.capacity() * std::mem::size_of::<ClosedChunk>()
            + closed
            + self.ooo.as_ref().map_or(0, |o| o.capacity() * 16)
    }
}

/// A 128-bit identity of a label set: two independent multiply-rotate hashes over the strings in one
/// pass, from seeds drawn at random per process. The head trusts it instead of comparing label
/// strings on every sample: that comparison chases one pointer per label into the symbol table and
/// was the largest cost of ingest. Accidental collisions are out of reach at 128 bits (n²/2¹²⁹),
/// and the random seeds keep label values chosen by a scraped target from aiming at one.
#[derive(Clone, Copy)]
struct Seeds(u64, u64);

impl Seeds {
    fn random() -> Self {
        Seeds(rand::random::<u64>() | 1, rand::random::<u64>() | 1)
    }

    #[inline]
    fn key<'a>(&self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> (u64, u64) {
        const K1: u64 = 0x517c_c1b7_2722_0a95;
        const K2: u64 = 0x9e37_79b9_7f4a_7c15;
        let (mut a, mut b) = (self.0, self.1);
        #[inline(always)]
        fn word(a: &mut u64, b: &mut u64, w: u64) {
            *a = (a.rotate_left(5) ^ w).wrapping_mul(K1);
            *b = (b.rotate_left(23) ^ w).wrapping_mul(K2).rotate_left(17);
        }
        #[inline(always)]
        fn bytes(a: &mut u64, b: &mut u64, s: &[u8]) {
            let mut chunks = s.chunks_exact(8);
            for c in &mut chunks {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                word(a, b, u64::from_le_bytes(w));
            }
            let rest = chunks.remainder();
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            word(a, b, u64::from_le_bytes(w));
            word(a, b, s.len() as u64);
        }
        for (n, v) in pairs {
            if v.is_empty() {
                continue;
            }
            bytes(&mut a, &mut b, n.as_bytes());
            bytes(&mut a, &mut b, v.as_bytes());
        }
        (fmix(a), fmix(b ^ self.0))
    }
}

fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Keys of the series maps are label hashes already; hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashIndex<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdentityHasher>>;

#[derive(Default)]
struct Stripe {
    by_hash: HashIndex<u32>,
    /// Rare: several series sharing one 64-bit hash.
    collisions: HashIndex<Vec<u32>>,
    /// Boxed: slots freed by departed series stay until reused, at 8 bytes rather than a whole
    /// series each.
    #[allow(clippy::vec_box)]
    series: Vec<Option<Box<MemSeries>>>,
    free: Vec<u32>,
    symbols: Interner,
}

impl Stripe {
    fn find(&self, hash: u64, hash2: u64) -> Option<u32> {
        let local = *self.by_hash.get(&hash)?;
        if let Some(Some(s)) = self.series.get(local as usize) {
            if s.hash2 == hash2 {
                return Some(local);
            }
        }
        self.collisions.get(&hash)?.iter().copied().find(|l| {
            self.series
                .get(*l as usize)
                .and_then(|s| s.as_ref())
                .is_some_and(|s| s.hash2 == hash2)
        })
    }
    fn materialize(&self, s: &MemSeries) -> Labels {
        Labels::from_sorted_unchecked(
            s.labels
                .chunks_exact(2)
                .map(|p| Label::new(self.symbols.get(p[0]), self.symbols.get(p[1])))
                .collect(),
        )
    }
}

/// Why a sample was not accepted by the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Older than the newest sample of its series and out-of-order is off (or outside the window).
    OutOfOrder,
    /// Older than the out-of-order window, or inside data already persisted in blocks.
    TooOld,
    /// Same timestamp as the newest sample with a different value.
    Duplicate,
}

#[derive(Default)]
struct MemPostings {
    map: HashMap<String, HashMap<String, RoaringBitmap>>,
    all: RoaringBitmap,
}

struct PostingsView<'a>(&'a MemPostings);

impl IndexReader for PostingsView<'_> {
    fn label_values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .map
            .get(name)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    fn postings(&self, name: &str, value: &str) -> RoaringBitmap {
        self.0
            .map
            .get(name)
            .and_then(|m| m.get(value))
            .cloned()
            .unwrap_or_default()
    }
    fn all_postings(&self) -> RoaringBitmap {
        self.0.all.clone()
    }
}

/// Head statistics for metrics and `tsdb analyze`.
#[derive(Debug, Clone, Default)]
pub struct HeadStats {
    pub series: u64,
    pub min_time: i64,
    pub max_time: i64,
    pub chunks_in_memory: u64,
    pub chunks_spilled: u64,
    pub heap_bytes: u64,
}

/// Cardinality of the head's index for `/api/v1/status/tsdb`: the `limit` largest entries of each
/// list, largest first (ties by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostingsStats {
    /// Distinct label name/value pairs.
    pub num_label_pairs: u64,
    /// Series per metric name.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// Distinct values per label name.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Bytes of label values per label name, each value counted once per series that has it.
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// Series per `name=value` pair.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

pub struct Head {
    stripes: Box<[Mutex<Stripe>]>,
    postings: RwLock<MemPostings>,
    next_id: AtomicU64,
    num_series: AtomicU64,
    /// Samples before this time are in blocks; the head refuses them.
    min_valid_t: AtomicI64,
    min_t: AtomicI64,
    max_t: AtomicI64,
    ooo_window: i64,
    /// Chunks never span a multiple of this (the block range), so cutting a block frees whole chunks.
    chunk_range: i64,
    seeds: Seeds,
    spill: Option<ChunkSpill>,
    /// Series created since the last WAL write, with their WAL references.
    unlogged: Mutex<Vec<(u64, Labels)>>,
    pub series_created: AtomicU64,
    pub series_removed: AtomicU64,
    /// Series created per wall-clock hour, for the status page.
    created_per_hour: stats::CreatedPerHour,
}

fn slot_of(stripe: usize, local: u32) -> u32 {
    local * STRIPES as u32 + stripe as u32
}
fn split_slot(slot: u32) -> (usize, u32) {
    ((slot % STRIPES as u32) as usize, slot / STRIPES as u32)
}

/// What applying a sample did: `Ok(None)` for an exact repeat (a no-op), otherwise what the WAL
/// must record.
pub type ApplyResult = Result<Option<Applied>, Reject>;

/// A sample accepted by `Head::apply`, for the WAL.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    pub id: u64,
    pub t: i64,
    pub v: f64,
}

impl Head {
    pub fn new(ooo_window: i64, chunk_range: i64, spill: Option<ChunkSpill>) -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| Mutex::new(Stripe::default()))
                .collect(),
            postings: RwLock::new(MemPostings::default()),
            next_id: AtomicU64::new(1),
            num_series: AtomicU64::new(0),
            min_valid_t: AtomicI64::new(i64::MIN),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            ooo_window,
            chunk_range: chunk_range.max(1),
            seeds: Seeds::random(),
            spill,
            unlogged: Mutex::new(Vec::new()),
            series_created: AtomicU64::new(0),
            series_removed: AtomicU64::new(0),
            created_per_hour: Default::default(),
        }
    }

    pub fn num_series(&self) -> u64 {
        self.num_series.load(Ordering::Relaxed)
    }
    /// Oldest sample the head serves; never before the persisted range.
    pub fn min_time(&self) -> i64 {
        let m = self.min_t.load(Ordering::Relaxed);
        if m == i64::MAX {
            return m;
        }
        m.max(self.min_valid_t.load(Ordering::Relaxed))
    }
    pub fn max_time(&self) -> i64 {
        self.max_t.load(Ordering::Relaxed)
    }
    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_t.load(Ordering::Relaxed)
    }
    pub fn set_min_valid_time(&self, t: i64) {
        self.min_valid_t.fetch_max(t, Ordering::SeqCst);
    }
    /// Takes back a `set_min_valid_time(raised)` whose block could not be written, so the range
    /// is accepted and cut again; a no-op if the bound has moved on meanwhile.
    pub fn lower_min_valid_time(&self, raised: i64, back_to: i64) {
        let _ =
            self.min_valid_t
                .compare_exchange(raised, back_to, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Finds or creates the series and applies one sample to it under a single stripe lock, so the
    /// series is touched once per sample. Returns whether the series was created and what
    /// `apply` returns.
    pub fn append(&self, pairs: &[(&str, &str)], t: i64, v: f64) -> (bool, u32, ApplyResult) {
        let key = self.seeds.key(pairs.iter().copied());
        let si = (key.0 % STRIPES as u64) as usize;
        let mut st = self.stripes[si].lock();
        let (local, created) = self.lookup_or_create_locked(&mut st, si, key, pairs, true);
        (
            created,
            slot_of(si, local),
            self.apply_locked(&mut st, local, t, v, false),
        )
    }

    /// Appends to the series in `slot` if it still is the one with id `id` (slots are reused once
    /// a series leaves the head). `None`: it is not; the caller appends by labels instead. Skips
    /// hashing the labels and the map lookup, which dominate a scrape's cost for known series.
    pub fn append_slot(&self, slot: u32, id_low: u32, t: i64, v: f64) -> Option<ApplyResult> {
        let (si, local) = split_slot(slot);
        let mut st = self.stripes.get(si)?.lock();
        match st.series.get(local as usize) {
            Some(Some(s)) if s.id as u32 == id_low => {}
            _ => return None,
        }
        Some(self.apply_locked(&mut st, local, t, v, false))
    }

    /// With `log`, a created series is queued for the WAL (see `take_unlogged`) before the stripe
    /// lock is released, so no writer can commit a sample of it ahead of its series record.
    fn lookup_or_create_locked(
        &self,
        st: &mut Stripe,
        si: usize,
        (hash, hash2): (u64, u64),
        pairs: &[(&str, &str)],
        log: bool,
    ) -> (u32, bool) {
        if let Some(local) = st.find(hash, hash2) {
            return (local, false);
        }
        let mut syms = Vec::with_capacity(pairs.len() * 2);
        for (n, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            syms.push(st.symbols.intern(n));
            syms.push(st.symbols.intern(v));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if log {
            self.unlogged.lock().push((
                id,
                Labels::from_sorted_unchecked(
                    pairs
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(n, v)| Label::new(*n, *v))
                        .collect(),
                ),
            ));
        }
        let s = MemSeries {
            labels: syms.into_boxed_slice(),
            hash2,
            id,
            open: None,
            closed: Vec::new(),
            ooo: None,
        };
        let local = match st.free.pop() {
            Some(l) => {
                st.series[l as usize] = Some(Box::new(s));
                l
            }
            None => {
                st.series.push(Some(Box::new(s)));
                (st.series.len() - 1) as u32
            }
        };
        match st.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(local);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                st.collisions.entry(hash).or_default().push(local)
            }
        }
        let slot = slot_of(si, local);
        // The index is updated while the stripe lock is held so a query never finds a slot in the
        // postings whose series is not there yet or is a different, reused one.
        {
            let mut p = self.postings.write();
            for (n, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
                p.map
                    .entry((*n).to_string())
                    .or_default()
                    .entry((*v).to_string())
                    .or_default()
                    .insert(slot);
            }
            p.all.insert(slot);
        }
        self.num_series.fetch_add(1, Ordering::Relaxed);
        self.series_created.fetch_add(1, Ordering::Relaxed);
        self.created_per_hour.record(stats::wall_ms());
        (local, true)
    }

    /// Creates a series under a given WAL reference during replay.
    pub fn replay_series(&self, id: u64, labels: &Labels) -> u32 {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        let key = self.seeds.key(pairs.iter().copied());
        let si = (key.0 % STRIPES as u64) as usize;
        let (local, _) =
            self.lookup_or_create_locked(&mut self.stripes[si].lock(), si, key, &pairs, false);
        let slot = slot_of(si, local);
        let mut st = self.stripes[si].lock();
        if let Some(Some(s)) = st.series.get_mut(local as usize) {
            s.id = id;
        }
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
        slot
    }

    /// Validates and applies one sample to the series in `slot`. On success returns what the WAL must
    /// record, plus the series' labels if the series has not been logged yet; `None` when the sample
    /// repeats the newest one exactly (a no-op, as in Prometheus).
    pub fn apply(&self, slot: u32, t: i64, v: f64, replay: bool) -> ApplyResult {
        let (si, local) = split_slot(slot);
        let mut st = self.stripes[si].lock();
        self.apply_locked(&mut st, local, t, v, replay)
    }

    fn apply_locked(
        &self,
        st: &mut Stripe,
        local: u32,
        t: i64,
        v: f64,
        replay: bool,
    ) -> ApplyResult {
        // Checked under the stripe lock: a block cut raises the bound and then reads each series
        // under its lock, so a sample either lands before the read or is refused here.
        if t < self.min_valid_t.load(Ordering::SeqCst) {
            return Err(Reject::TooOld);
        }
        let Some(Some(s)) = st.series.get_mut(local as usize) else {
            return Err(Reject::TooOld);
        };
        let max_t = s.max_t();
        if t <= max_t {
            if t == max_t {
                let same = s
                    .open()
                    .and_then(|o| o.last())
                    .is_some_and(|(_, lv)| lv.to_bits() == v.to_bits());
                if same {
                    return Ok(None);
                }
                if !replay {
                    return Err(Reject::Duplicate);
                }
            }
            if self.ooo_window == 0 && !replay {
                return Err(Reject::OutOfOrder);
            }
            if t < max_t - self.ooo_window && !replay {
                return Err(Reject::TooOld);
            }
            let o = s.ooo.get_or_insert_with(Default::default);
            match o.binary_search_by(|x| x.t.cmp(&t)) {
                Ok(i) => o[i] = Sample::new(t, v),
                Err(i) => o.insert(i, Sample::new(t, v)),
            }
        } else {
            let range = self.chunk_range;
            let full_or_crossing = |o: &XorChunk| {
                o.num_samples() >= CHUNK_SAMPLES
                    || (o.num_samples() > 0
                        && t.div_euclid(range) != o.min_time().div_euclid(range))
            };
            // The box stays for the next chunk: the series is active.
            if let Some(o) = s.open.as_deref_mut().filter(|o| full_or_crossing(o)) {
                let mut full = std::mem::take(o);
                full.shrink();
                let loc = match &self.spill {
                    Some(sp) => match sp.write(full.bytes(), full.max_time()) {
                        Ok(r) => ChunkLoc::Disk(r),
                        Err(_) => ChunkLoc::Mem(full.bytes().into()),
                    },
                    None => ChunkLoc::Mem(full.bytes().into()),
                };
                push_exact(
                    &mut s.closed,
                    ClosedChunk {
                        mint: full.min_time(),
                        maxt: full.max_time(),
                        loc,
                    },
                );
            }
            s.open
                .get_or_insert_with(|| Box::new(XorChunk::new()))
                .append(t, v);
        }
        // A plain load first: nearly every sample is inside the known range, and skipping the
        // read-modify-write keeps the shared cache line from bouncing between ingest threads.
        if t < self.min_t.load(Ordering::Relaxed) {
            self.min_t.fetch_min(t, Ordering::Relaxed);
        }
        if t > self.max_t.load(Ordering::Relaxed) {
            self.max_t.fetch_max(t, Ordering::Relaxed);
        }
        Ok(Some(Applied { id: s.id, t, v }))
    }

    /// Series created since the last call; the committer logs them before any sample it writes.
    pub fn take_unlogged(&self) -> Vec<(u64, Labels)> {
        std::mem::take(&mut *self.unlogged.lock())
    }

    /// Closes and spills open chunks of series idle since before `before` (no sample newer), so
    /// series that stopped cost only their labels and chunk references until they leave the head.
    pub fn spill_idle(&self, before: i64) {
        let Some(sp) = &self.spill else { return };
        for stripe in self.stripes.iter() {
            let mut st = stripe.lock();
            for s in st.series.iter_mut().flatten() {
                if s.open().is_some_and(|o| o.max_time() < before) {
                    let Some(full) = s.open.take() else { continue };
                    if let Ok(r) = sp.write(full.bytes(), full.max_time()) {
                        push_exact(
                            &mut s.closed,
                            ClosedChunk {
                                mint: full.min_time(),
                                maxt: full.max_time(),
                                loc: ChunkLoc::Disk(r),
                            },
                        );
                    } else {
                        s.open = Some(full);
                    }
                }
            }
        }
    }

    /// Closed chunks that could not be written to the spill files and stayed in memory.
    pub fn spill_failures(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.failures())
    }

    /// Spilled chunks that could not be read back since start-up.
    pub fn spill_read_failures(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.read_failures())
    }
}

fn ooo_max(s: &MemSeries) -> i64 {
    s.ooo
        .as_ref()
        .and_then(|o| o.last())
        .map_or(i64::MIN, |x| x.t)
}

/// Pushes without the default growth policy, which would give every series room for four closed
/// chunks at its first push: with hundreds of thousands of short-lived series that slack was a
/// large share of the head's memory.
fn push_exact(v: &mut Vec<ClosedChunk>, c: ClosedChunk) {
    v.reserve_exact(1);
    v.push(c);
}

fn remove_hash(st: &mut Stripe, hash: u64, local: u32) {
    if st.by_hash.get(&hash) == Some(&local) {
        st.by_hash.remove(&hash);
        if let Some(c) = st.collisions.get_mut(&hash) {
            if let Some(next) = c.pop() {
                st.by_hash.insert(hash, next);
            }
            if c.is_empty() {
                st.collisions.remove(&hash);
            }
        }
    } else if let Some(c) = st.collisions.get_mut(&hash) {
        c.retain(|l| *l != local);
        if c.is_empty() {
            st.collisions.remove(&hash);
        }
    }
}
