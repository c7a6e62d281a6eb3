//! `BlockWriter`: streams series into a new block directory `<ULID>.tmp`. The caller names the
//! block's symbols up front, so both files are written as series arrive: chunks, and the index's
//! symbols and series records. What stays in memory until `finish` is per-series offsets (4 bytes),
//! the postings lists in their compact on-disk form (1-2 bytes per label of each series) and the
//! previous series' symbol ids; `finish` writes the rest of the index, `meta.json` and empty
//! tombstones, fsyncs everything and publishes the block by renaming it to `<ULID>`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tocsin_model::{Labels, Sample};

use super::chunks;
use super::enc::{put_bytes, put_uvarint, put_varint};
use super::{
    fsync_dir, BlockMeta, BlockStats, CompactionMeta, BLOCK_VERSION, CHUNKS_FILE, INDEX_FILE,
    META_FILE, TMP_SUFFIX, TOMBSTONES_FILE,
};
use crate::error::{Error, Result};

pub(super) const CHUNKS_MAGIC: &[u8; 4] = b"TCHK";
pub(super) const INDEX_MAGIC: &[u8; 4] = b"TIDX";
pub(super) const FORMAT_VERSION: u8 = 1;
/// Index sections in file order; the footer lists (offset, length, crc32c) of each.
pub(super) const NUM_SECTIONS: usize = 5;
pub(super) const SEC_SYMBOLS: usize = 0;
pub(super) const SEC_SERIES: usize = 1;
pub(super) const SEC_SERIES_OFFSETS: usize = 2;
pub(super) const SEC_LABELS: usize = 3;
pub(super) const SEC_POSTINGS: usize = 4;
/// Footer: per section u64 offset, u64 length, u32 crc; then u32 crc of those bytes, then magic.
pub(super) const FOOTER_LEN: usize = NUM_SECTIONS * 20 + 4 + 4;
pub(super) const POSTINGS_LIST: u8 = 0;
pub(super) const POSTINGS_ROARING: u8 = 1;

/// One chunk of the series being added, until its index record is written.
struct ChunkRef {
    mint: i64,
    maxt: i64,
    n: u32,
    /// Payload length; the frame adds a 4-byte crc32c.
    len: u32,
}

/// Multiply-shift hashing for the postings map's u64 keys (two symbol ids): SipHash would cost more
/// than the rest of adding a label.
#[derive(Default, Clone, Copy)]
struct PairHasher(u64);

impl std::hash::Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 32;
    }
}

type PairMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PairHasher>>;

/// Postings of one label pair, built as series arrive: series ids come in ascending order, so the
/// list is kept in its on-disk delta-varint form (about 1-2 bytes per id) rather than as ids.
struct PostingsBuf {
    /// Tag byte, then the ids as deltas (the first against 0).
    bytes: Vec<u8>,
    last: u32,
    n: u32,
}

/// The `index` file, written front to back while series arrive: the symbols section when the
/// writer is created, each series record as it is added; only the series offsets (4 bytes per
/// series) and the postings lists stay in memory until `finish`.
struct IndexWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes written so far.
    pos: u64,
    /// (offset, length, crc32c) of each finished section.
    sections: Vec<(u64, u64, u32)>,
    sec_start: u64,
    sec_crc: u32,
    /// Offset of each series record within the series section.
    offsets: Vec<u32>,
    postings: PairMap<PostingsBuf>,
    scratch: Vec<u8>,
}

impl IndexWriter {
    fn create(path: PathBuf) -> Result<Self> {
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = Self {
            path,
            out: BufWriter::with_capacity(1 << 20, f),
            pos: 0,
            sections: Vec::with_capacity(NUM_SECTIONS),
            sec_start: 0,
            sec_crc: 0,
            offsets: Vec::new(),
            postings: PairMap::default(),
            scratch: Vec::new(),
        };
        w.write(INDEX_MAGIC)?;
        w.write(&[FORMAT_VERSION])?;
        w.begin_section();
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        crate::fault::check(&self.path)
            .and_then(|_| self.out.write_all(b))
            .map_err(|e| Error::io(&self.path, e))?;
        self.sec_crc = crc32c::crc32c_append(self.sec_crc, b);
        self.pos += b.len() as u64;
        Ok(())
    }

    fn begin_section(&mut self) {
        self.sec_start = self.pos;
        self.sec_crc = 0;
    }

    fn end_section(&mut self) {
        self.sections
            .push((self.sec_start, self.pos - self.sec_start, self.sec_crc));
        self.begin_section();
    }

    fn write_symbols(&mut self, syms: &[Arc<str>]) -> Result<()> {
        let mut buf = Vec::with_capacity(64 << 10);
        put_uvarint(&mut buf, syms.len() as u64);
        for s in syms {
            put_bytes(&mut buf, s.as_bytes());
            if buf.len() >= 60 << 10 {
                self.write(&buf)?;
                buf.clear();
            }
        }
        self.write(&buf)?;
        self.end_section();
        Ok(())
    }

    /// Appends the record of the next series (id = number of series before it).
    fn add_series(
        &mut self,
        pairs: &[u32],
        first_offset: u64,
        chunks: &[ChunkRef],
        min_time: i64,
    ) -> Result<()> {
        let id = u32::try_from(self.offsets.len())
            .map_err(|_| internal("more than 2^32 series in one block".into()))?;
        let off = u32::try_from(self.pos - self.sec_start)
            .map_err(|_| internal("series section exceeds 4 GiB".into()))?;
        self.offsets.push(off);
        let mut rec = std::mem::take(&mut self.scratch);
        rec.clear();
        put_uvarint(&mut rec, (pairs.len() / 2) as u64);
        for p in pairs.chunks_exact(2) {
            put_uvarint(&mut rec, p[0] as u64);
            put_uvarint(&mut rec, p[1] as u64);
            let key = (u64::from(p[0]) << 32) | u64::from(p[1]);
            let pb = self.postings.entry(key).or_insert_with(|| PostingsBuf {
                bytes: vec![POSTINGS_LIST],
                last: 0,
                n: 0,
            });
            put_uvarint(&mut pb.bytes, u64::from(id - pb.last));
            pb.last = id;
            pb.n += 1;
        }
        put_uvarint(&mut rec, chunks.len() as u64);
        put_uvarint(&mut rec, first_offset);
        let mut prev = min_time;
        for c in chunks {
            put_varint(&mut rec, c.mint.wrapping_sub(prev));
            put_uvarint(&mut rec, c.maxt.wrapping_sub(c.mint) as u64);
            put_uvarint(&mut rec, c.n as u64);
            put_uvarint(&mut rec, c.len as u64);
            prev = c.maxt;
        }
        let r = self.write(&rec);
        self.scratch = rec;
        r
    }

    /// Writes the series offsets, label value lists, postings and footer, and syncs the file.
    fn finish(&mut self) -> Result<()> {
        self.end_section(); // series
        let offsets = std::mem::take(&mut self.offsets);
        let mut buf = Vec::with_capacity(64 << 10);
        for o in offsets {
            buf.extend_from_slice(&o.to_le_bytes());
            if buf.len() >= 64 << 10 {
                self.write(&buf)?;
                buf.clear();
            }
        }
        self.write(&buf)?;
        self.end_section();

        // Symbol ids order like the strings, so sorting the (name, value) id pairs orders the
        // label value lists and postings as the format requires.
        let mut pairs: Vec<(u64, PostingsBuf)> =
            std::mem::take(&mut self.postings).into_iter().collect();
        pairs.sort_unstable_by_key(|p| p.0);
        let mut labels = Vec::new();
        let mut nnames = 0u64;
        let mut prev_name = None;
        for (k, _) in &pairs {
            if prev_name != Some(k >> 32) {
                nnames += 1;
                prev_name = Some(k >> 32);
            }
        }
        put_uvarint(&mut labels, nnames);
        let mut i = 0;
        while i < pairs.len() {
            let name = pairs[i].0 >> 32;
            let start = i;
            while i < pairs.len() && pairs[i].0 >> 32 == name {
                i += 1;
            }
            put_uvarint(&mut labels, name);
            put_uvarint(&mut labels, (i - start) as u64);
            let mut prev_sym = 0;
            for (k, pb) in &mut pairs[start..i] {
                let v = *k & 0xffff_ffff;
                put_uvarint(&mut labels, v - prev_sym);
                prev_sym = v;
                compact_postings(pb)?;
                put_uvarint(&mut labels, pb.bytes.len() as u64);
            }
        }
        self.write(&labels)?;
        self.end_section();
        for (_, pb) in pairs {
            self.write(&pb.bytes)?;
        }
        self.end_section();

        let mut footer = Vec::with_capacity(FOOTER_LEN);
        for (off, len, crc) in &self.sections {
            footer.extend_from_slice(&off.to_le_bytes());
            footer.extend_from_slice(&len.to_le_bytes());
            footer.extend_from_slice(&crc.to_le_bytes());
        }
        let fcrc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&fcrc.to_le_bytes());
        footer.extend_from_slice(INDEX_MAGIC);
        self.out
            .write_all(&footer)
            .and_then(|_| self.out.flush())
            .and_then(|_| self.out.get_ref().sync_all())
            .map_err(|e| Error::io(&self.path, e))
    }
}

pub struct BlockWriter {
    blocks_dir: PathBuf,
    tmp_dir: PathBuf,
    ulid: String,
    min_time: i64,
    max_time: i64,
    level: u32,
    sources: Vec<String>,
    chunks: BufWriter<File>,
    chunks_path: PathBuf,
    offset: u64,
    index: IndexWriter,
    /// Sorted, unique; a symbol's id is its position.
    symbols: Vec<Arc<str>>,
    /// Built on the first `add_series` by labels; writers fed symbol ids never need it.
    symbol_ids: Option<HashMap<Arc<str>, u32>>,
    /// Symbol ids of the previous series, to enforce ascending label order.
    last: Vec<u32>,
    ids: Vec<u32>,
    chunk_refs: Vec<ChunkRef>,
    stats: BlockStats,
    /// Hash of a chunk's timestamps -> (offset, payload length) of the first chunk with them, so
    /// later series of the same scrape target refer to it instead of repeating them.
    shared_ts: HashMap<u128, (u64, u64)>,
    /// Set once the directory is published or removed, so Drop leaves it alone.
    done: bool,
}

fn internal(msg: String) -> Error {
    Error::Storage(tocsin_storage::Error::Internal(msg))
}

impl BlockWriter {
    /// Starts a block in `<blocks_dir>/<ULID>.tmp`. `symbols` must hold every label name and value
    /// of the series to come (more is allowed: they are only stored); it is sorted and deduplicated
    /// here, and the index's symbols section is written at once, so that the rest of the index can
    /// be written as series arrive.
    pub fn new<S: AsRef<str>>(
        blocks_dir: &Path,
        min_time: i64,
        max_time: i64,
        level: u32,
        sources: Vec<String>,
        symbols: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        let mut syms: Vec<Arc<str>> = symbols.into_iter().map(|s| Arc::from(s.as_ref())).collect();
        if !syms.windows(2).all(|w| w[0] < w[1]) {
            syms.sort_unstable();
            syms.dedup();
        }
        Self::with_sorted_symbols(blocks_dir, min_time, max_time, level, sources, syms)
    }

    /// Like `new` with symbols already sorted and unique (checked); `add_series_ids` takes ids into
    /// this list.
    pub fn with_sorted_symbols(
        blocks_dir: &Path,
        min_time: i64,
        max_time: i64,
        level: u32,
        sources: Vec<String>,
        symbols: Vec<Arc<str>>,
    ) -> Result<Self> {
        if max_time <= min_time {
            return Err(Error::InvalidOption(format!(
                "block time range [{min_time}, {max_time}) is empty"
            )));
        }
        if !symbols.windows(2).all(|w| w[0] < w[1]) {
            return Err(Error::InvalidOption(
                "block symbols are not sorted and unique".into(),
            ));
        }
        if u32::try_from(symbols.len()).is_err() {
            return Err(Error::InvalidOption("more than 2^32 symbols".into()));
        }
        let ulid = super::new_ulid();
        let tmp_dir = blocks_dir.join(format!("{ulid}{TMP_SUFFIX}"));
        std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
        // From here on, Drop removes the directory if anything fails.
        let chunks_path = tmp_dir.join(CHUNKS_FILE);
        let opened = File::create(&chunks_path)
            .map_err(|e| Error::io(&chunks_path, e))
            .and_then(|f| Ok((f, IndexWriter::create(tmp_dir.join(INDEX_FILE))?)));
        let (f, index) = match opened {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp_dir);
                return Err(e);
            }
        };
        let sources = if sources.is_empty() {
            vec![ulid.clone()]
        } else {
            sources
        };
        let mut w = Self {
            blocks_dir: blocks_dir.to_path_buf(),
            tmp_dir,
            ulid,
            min_time,
            max_time,
            level,
            sources,
            chunks: BufWriter::with_capacity(1 << 20, f),
            chunks_path,
            offset: 0,
            index,
            symbols,
            symbol_ids: None,
            last: Vec::new(),
            ids: Vec::new(),
            chunk_refs: Vec::new(),
            stats: BlockStats::default(),
            shared_ts: HashMap::new(),
            done: false,
        };
        let mut head = CHUNKS_MAGIC.to_vec();
        head.push(FORMAT_VERSION);
        put_bytes(&mut head, &chunks::pco_header().map_err(internal)?);
        w.chunks
            .write_all(&head)
            .map_err(|e| Error::io(&w.chunks_path, e))?;
        w.offset = head.len() as u64;
        let syms = std::mem::take(&mut w.symbols);
        let r = w.index.write_symbols(&syms);
        w.symbols = syms;
        r?;
        Ok(w)
    }

    /// Series must come in ascending label order; samples sorted by time, unique, all in
    /// [min_time, max_time). A series without samples is skipped.
    pub fn add_series(&mut self, labels: &Labels, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        if self.symbol_ids.is_none() {
            self.symbol_ids = Some(
                self.symbols
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.clone(), i as u32))
                    .collect(),
            );
        }
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        if let Some(map) = &self.symbol_ids {
            for l in labels.iter() {
                for s in [l.name.as_str(), l.value.as_str()] {
                    match map.get(s) {
                        Some(&id) => ids.push(id),
                        None => {
                            return Err(Error::InvalidOption(format!(
                                "label {s:?} of {labels} is not among the block's symbols"
                            )))
                        }
                    }
                }
            }
        }
        let r = self.add_series_ids(&ids, samples);
        self.ids = ids;
        r
    }

    /// Adds a series given as symbol ids (name, value, name, value, ... sorted by name) into the
    /// writer's sorted symbols; otherwise as `add_series`.
    pub fn add_series_ids(&mut self, pairs: &[u32], samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
            return Err(Error::InvalidOption("series without labels".into()));
        }
        if pairs.iter().any(|&i| i as usize >= self.symbols.len()) {
            return Err(Error::InvalidOption(format!(
                "symbol id out of range in series of {} labels",
                pairs.len() / 2
            )));
        }
        // Ids order like the strings, so comparing id sequences compares label sets.
        if self.stats.num_series > 0 && self.last.as_slice() >= pairs {
            return Err(Error::InvalidOption(format!(
                "series {} added after {} (must be ascending)",
                self.display(pairs),
                self.display(&self.last)
            )));
        }
        if samples.windows(2).any(|w| w[1].t <= w[0].t) {
            return Err(Error::InvalidOption(format!(
                "samples of {} not sorted or not unique",
                self.display(pairs)
            )));
        }
        let (lo, hi) = (samples[0].t, samples[samples.len() - 1].t);
        if lo < self.min_time || hi >= self.max_time {
            return Err(Error::InvalidOption(format!(
                "samples of {} span [{lo}, {hi}], outside block range [{}, {})",
                self.display(pairs),
                self.min_time,
                self.max_time
            )));
        }
        let first_offset = self.offset;
        let mut refs = std::mem::take(&mut self.chunk_refs);
        refs.clear();
        let r = self.write_chunks(samples, &mut refs).and_then(|_| {
            self.index
                .add_series(pairs, first_offset, &refs, self.min_time)
        });
        self.chunk_refs = refs;
        r?;
        self.last.clear();
        self.last.extend_from_slice(pairs);
        self.stats.num_series += 1;
        self.stats.num_samples += samples.len() as u64;
        Ok(())
    }

    fn display(&self, pairs: &[u32]) -> String {
        let sym = |i: u32| self.symbols.get(i as usize).map_or("?", |s| &**s);
        let body: Vec<String> = pairs
            .chunks_exact(2)
            .map(|p| format!("{}={:?}", sym(p[0]), sym(p[1])))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    fn write_chunks(&mut self, samples: &[Sample], refs: &mut Vec<ChunkRef>) -> Result<()> {
        let mut start = 0;
        for n in chunks::chunk_sizes(samples.len()) {
            let part = &samples[start..start + n];
            start += n;
            let key = ts_key(part);
            let shared = self
                .shared_ts
                .get(&key)
                .map(|&(off, len)| (self.offset - off, len));
            let payload = chunks::encode(part, shared).map_err(internal)?;
            if shared.is_none()
                && chunks::shareable_timestamps(&payload)
                && self.shared_ts.len() < MAX_SHARED_TS
            {
                self.shared_ts
                    .insert(key, (self.offset, payload.len() as u64));
            }
            let len =
                u32::try_from(payload.len()).map_err(|_| internal("chunk too large".into()))?;
            let crc = crc32c::crc32c(&payload);
            crate::fault::check(&self.chunks_path)
                .and_then(|_| self.chunks.write_all(&payload))
                .and_then(|_| self.chunks.write_all(&crc.to_le_bytes()))
                .map_err(|e| Error::io(&self.chunks_path, e))?;
            self.offset += payload.len() as u64 + 4;
            refs.push(ChunkRef {
                mint: part[0].t,
                maxt: part[n - 1].t,
                n: n as u32,
                len,
            });
            self.stats.num_chunks += 1;
        }
        Ok(())
    }

    /// Finishes the index, writes meta.json and empty tombstones; atomically publishes the block.
    /// Returns None (and leaves nothing behind) if no samples were added.
    pub fn finish(mut self) -> Result<Option<BlockMeta>> {
        if self.stats.num_series == 0 {
            self.done = true;
            std::fs::remove_dir_all(&self.tmp_dir).map_err(|e| Error::io(&self.tmp_dir, e))?;
            return Ok(None);
        }
        self.chunks
            .flush()
            .map_err(|e| Error::io(&self.chunks_path, e))?;
        self.chunks
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io(&self.chunks_path, e))?;
        self.shared_ts = HashMap::new();
        self.index.finish()?;

        write_synced(
            &self.tmp_dir.join(TOMBSTONES_FILE),
            &super::tombstones::encode(&Default::default()),
        )?;

        let mut sources = std::mem::take(&mut self.sources);
        sources.sort();
        sources.dedup();
        let meta = BlockMeta {
            ulid: self.ulid.clone(),
            min_time: self.min_time,
            max_time: self.max_time,
            stats: self.stats.clone(),
            compaction: CompactionMeta {
                level: self.level,
                sources,
            },
            version: BLOCK_VERSION,
        };
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| internal(format!("meta.json: {e}")))?;
        write_synced(&self.tmp_dir.join(META_FILE), &json)?;
        fsync_dir(&self.tmp_dir)?;

        let final_dir = self.blocks_dir.join(&self.ulid);
        std::fs::rename(&self.tmp_dir, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        self.done = true;
        if let Err(e) = fsync_dir(&self.blocks_dir) {
            // Not known to be durable, so not published: the caller keeps the data it came from.
            let _ = std::fs::remove_dir_all(&final_dir);
            return Err(e);
        }
        Ok(Some(meta))
    }
}

/// Turns a postings list into its final encoding: kept as the delta-varint list, or replaced by a
/// run-optimized roaring bitmap when that is smaller (never for lists of <= 64 ids).
fn compact_postings(pb: &mut PostingsBuf) -> Result<()> {
    if pb.n <= 64 {
        return Ok(());
    }
    let mut d = super::enc::Dec::at(&pb.bytes, 1);
    let mut bm = roaring::RoaringBitmap::new();
    let mut id = 0u32;
    for _ in 0..pb.n {
        let delta = d.u32_val().map_err(internal)?;
        id = id.wrapping_add(delta);
        bm.try_push(id)
            .map_err(|_| internal(format!("postings not ascending at series {id}")))?;
    }
    bm.optimize();
    if bm.serialized_size() + 1 < pb.bytes.len() {
        let mut out = Vec::with_capacity(bm.serialized_size() + 1);
        out.push(POSTINGS_ROARING);
        bm.serialize_into(&mut out)
            .map_err(|e| internal(format!("postings: {e}")))?;
        pb.bytes = out;
    }
    Ok(())
}

/// Bounds the writer's memory for timestamp sharing (one entry per scrape target and chunk range).
const MAX_SHARED_TS: usize = 1 << 20;

/// 128-bit hash of a chunk's timestamps; equal hashes are taken as equal timestamps (a collision
/// is astronomically unlikely and would be caught on read by the index's first/last timestamps).
fn ts_key(samples: &[Sample]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for s in samples {
        h.update(&s.t.to_le_bytes());
    }
    h.digest128()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    crate::fault::check(path)
        .and_then(|_| f.write_all(bytes))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // An abandoned write (error or early return) must not leave a half-written directory.
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp_dir);
        }
    }
}
