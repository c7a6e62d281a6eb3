//! `Block`: a read-only, memory-mapped view of one block directory. Opening validates the files
//! (magics, versions, section bounds, checksums) and decodes the small tables (symbols, label
//! value lists) into memory; series records, postings and chunks are read from the maps on demand.
//! Owns the block's side of matcher evaluation (`IndexReader`), select, label queries and deletes.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use parking_lot::RwLock;
use pco::wrapped::FileDecompressor;
use roaring::RoaringBitmap;
use tocsin_model::{Label, Labels, Matcher, Sample};
use tocsin_storage::{Series, SeriesSet, VecSamples};

use super::chunks;
use super::enc::{Dec, DecResult};
use super::tombstones::{self, Tombstones};
use super::writer::*;
use super::{BlockMeta, BLOCK_VERSION, CHUNKS_FILE, INDEX_FILE, META_FILE, TOMBSTONES_FILE};
use crate::error::{Error, Result};
use crate::index::{postings_for_matchers, IndexReader};

struct ValueEntry {
    sym: u32,
    post_off: usize,
    post_len: usize,
}

struct NameEntry {
    sym: u32,
    values: Vec<ValueEntry>,
}

/// Where one chunk of a series lives and what it covers.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkLoc {
    pub mint: i64,
    pub maxt: i64,
    pub n: u32,
    pub offset: usize,
    pub len: usize,
}

struct Inner {
    dir: PathBuf,
    meta: BlockMeta,
    index_path: PathBuf,
    chunks_path: PathBuf,
    tomb_path: PathBuf,
    index: Mmap,
    chunks: Mmap,
    fd: FileDecompressor,
    /// (start, len) of each symbol's bytes in the index map; validated UTF-8 at open.
    syms: Vec<(usize, usize)>,
    /// Sorted by name.
    names: Vec<NameEntry>,
    series_sec: (usize, usize),
    offsets_sec: usize,
    postings_sec: (usize, usize),
    num_series: u32,
    /// Replaced whole on delete so selects in flight keep a consistent snapshot.
    tombstones: RwLock<Arc<Tombstones>>,
}

/// A read-only block, `Send + Sync`, meant to be shared as `Arc<Block>`.
pub struct Block {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({})", self.inner.dir.display())
    }
}

fn map_file(path: &Path) -> Result<Mmap> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: block files are never modified after the block is published (tombstones, the only
    // mutable part, are read into memory and replaced by rename), so the mapping stays valid.
    unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))
}

impl Block {
    /// Opens and validates a block directory; corruption yields `Error::Corrupt` naming the file.
    pub fn open(dir: &Path) -> Result<Block> {
        let meta_path = dir.join(META_FILE);
        let raw = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let meta: BlockMeta =
            serde_json::from_slice(&raw).map_err(|e| Error::corrupt(&meta_path, e.to_string()))?;
        if meta.version != BLOCK_VERSION {
            return Err(Error::corrupt(
                &meta_path,
                format!("unsupported block version {}", meta.version),
            ));
        }
        let num_series = u32::try_from(meta.stats.num_series)
            .map_err(|_| Error::corrupt(&meta_path, "too many series"))?;

        let index_path = dir.join(INDEX_FILE);
        let index = map_file(&index_path)?;
        let ix = parse_index(&index, num_series).map_err(|r| Error::corrupt(&index_path, r))?;

        let chunks_path = dir.join(CHUNKS_FILE);
        let chunks = map_file(&chunks_path)?;
        let fd = parse_chunks_header(&chunks).map_err(|r| Error::corrupt(&chunks_path, r))?;

        let tomb_path = dir.join(TOMBSTONES_FILE);
        let ts = match std::fs::read(&tomb_path) {
            Ok(b) => {
                tombstones::decode(&b, num_series).map_err(|r| Error::corrupt(&tomb_path, r))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tombstones::new(),
            Err(e) => return Err(Error::io(&tomb_path, e)),
        };

        Ok(Block {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                meta,
                index_path,
                chunks_path,
                tomb_path,
                index,
                chunks,
                fd,
                syms: ix.syms,
                names: ix.names,
                series_sec: ix.series_sec,
                offsets_sec: ix.offsets_sec,
                postings_sec: ix.postings_sec,
                num_series,
                tombstones: RwLock::new(Arc::new(ts)),
            }),
        })
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.inner.meta
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The block's symbols (every label name and value), sorted.
    pub fn symbols(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.inner.syms.len() as u32).map(|i| self.inner.sym(i))
    }

    /// Bytes of all files of the block on disk.
    pub fn size_bytes(&self) -> u64 {
        [META_FILE, INDEX_FILE, CHUNKS_FILE, TOMBSTONES_FILE]
            .iter()
            .map(|f| {
                std::fs::metadata(self.inner.dir.join(f))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Series sorted by labels with samples in [mint, maxt] (inclusive), tombstoned ranges removed;
    /// series with no samples left are omitted. Series are decoded one at a time as iterated.
    pub fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<SeriesSet> {
        let ids =
            if mint > maxt || maxt < self.inner.meta.min_time || mint >= self.inner.meta.max_time {
                RoaringBitmap::new()
            } else {
                postings_for_matchers(self, ms)
            };
        let tombs = self.inner.tombstones.read().clone();
        let it = SeriesIter {
            inner: self.inner.clone(),
            ids: ids.into_iter(),
            mint,
            maxt,
            tombs,
            failed: false,
        };
        Ok(Box::new(it.map(|r| {
            r.map(|(labels, samples)| Series {
                labels,
                samples: Box::new(VecSamples::new(samples)),
            })
            .map_err(Into::into)
        })))
    }

    /// Iterates (labels, samples) of every series within [mint, maxt] with tombstones applied.
    pub(super) fn series_samples(
        &self,
        mint: i64,
        maxt: i64,
    ) -> impl Iterator<Item = Result<(Labels, Vec<Sample>)>> + Send {
        let tombs = self.inner.tombstones.read().clone();
        SeriesIter {
            inner: self.inner.clone(),
            ids: self.all_postings().into_iter(),
            mint,
            maxt,
            tombs,
            failed: false,
        }
    }

    /// Sorted label names of series matching the matchers (all when empty).
    pub fn label_names(&self, ms: &[Matcher]) -> Result<Vec<String>> {
        if ms.is_empty() {
            return Ok(self
                .inner
                .names
                .iter()
                .map(|n| self.inner.sym(n.sym).to_string())
                .collect());
        }
        let ids = postings_for_matchers(self, ms);
        let mut out = BTreeSet::new();
        for id in ids {
            let mut d = self.inner.series_dec(id)?;
            let n = d.uvarint().map_err(|r| self.inner.corrupt_index(r))?;
            for _ in 0..n {
                let name = d
                    .u32_val()
                    .and_then(|x| d.u32_val().map(|_| x))
                    .map_err(|r| self.inner.corrupt_index(r))?;
                if !out.contains(self.inner.sym(name)) {
                    out.insert(self.inner.sym(name).to_string());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Sorted values of `name` over series matching the matchers (all when empty).
    pub fn label_values(&self, name: &str, ms: &[Matcher]) -> Result<Vec<String>> {
        if ms.is_empty() {
            return Ok(IndexReader::label_values(self, name));
        }
        let Some(ne) = self.inner.name_entry(name) else {
            return Ok(Vec::new());
        };
        let ids = postings_for_matchers(self, ms);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Few series: read their labels; many: test each value's postings against them.
        if ids.len() < ne.values.len() as u64 {
            let mut out = BTreeSet::new();
            for id in ids {
                let (labels, _) = self.inner.series(id)?;
                if let Some(v) = labels.get(name) {
                    out.insert(v.to_string());
                }
            }
            return Ok(out.into_iter().collect());
        }
        let mut out = Vec::new();
        for v in &ne.values {
            if !self.inner.decode_postings(v)?.is_disjoint(&ids) {
                out.push(self.inner.sym(v.sym).to_string());
            }
        }
        Ok(out)
    }

    /// Adds tombstones for matching series over [mint, maxt] and rewrites the tombstones file
    /// atomically. Returns how many series had data in that range.
    pub fn delete(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<u64> {
        if mint > maxt {
            return Ok(0);
        }
        let ids = postings_for_matchers(self, ms);
        // Holding the write lock across the file write serializes concurrent deletes.
        let mut guard = self.inner.tombstones.write();
        let mut ts: Tombstones = (**guard).clone();
        let mut affected = 0;
        for id in ids {
            let (_, chunks) = self.inner.series(id)?;
            if !chunks.iter().any(|c| c.mint <= maxt && c.maxt >= mint) {
                continue;
            }
            affected += 1;
            tombstones::add_interval(ts.entry(id).or_default(), mint, maxt);
        }
        if affected > 0 {
            super::write_file_atomic(&self.inner.tomb_path, &tombstones::encode(&ts))?;
            *guard = Arc::new(ts);
        }
        Ok(affected)
    }

    pub fn has_tombstones(&self) -> bool {
        !self.inner.tombstones.read().is_empty()
    }

    /// Number of deleted intervals currently recorded.
    pub fn num_tombstones(&self) -> u64 {
        tombstones::count(&self.inner.tombstones.read())
    }

    /// Every series' labels and sample count, from the index alone (tombstones not applied).
    pub fn series_stats(&self) -> Result<Vec<(Labels, u64)>> {
        (0..self.inner.num_series)
            .map(|id| {
                let (l, c) = self.inner.series(id)?;
                Ok((l, c.iter().map(|c| c.n as u64).sum()))
            })
            .collect()
    }
}

/// What a block's index says it holds, from every series record (no chunk decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSummary {
    /// First and last sample timestamps over all chunks (inclusive); None without chunks.
    pub time_range: Option<(i64, i64)>,
    pub samples: u64,
    pub chunks: u64,
}

impl Block {
    /// Reads every series record and checks each chunk's place against the chunks file: cheap
    /// enough for start-up, and catches a truncated chunks file or an index pointing past it.
    pub fn index_summary(&self) -> Result<IndexSummary> {
        let inner = &self.inner;
        let mut out = IndexSummary::default();
        for id in 0..inner.num_series {
            let (labels, chunks) = inner.series(id)?;
            for c in &chunks {
                if c.n == 0 || c.maxt < c.mint {
                    return Err(inner.corrupt_index(format!(
                        "series {labels}: chunk at offset {} has {} samples over [{}, {}]",
                        c.offset, c.n, c.mint, c.maxt
                    )));
                }
                let end = c.offset.checked_add(c.len).and_then(|e| e.checked_add(4));
                if end.is_none_or(|e| e > inner.chunks.len()) {
                    return Err(Error::corrupt(
                        &inner.chunks_path,
                        format!(
                            "chunk at offset {} of series {labels} ends beyond the file ({} bytes)",
                            c.offset,
                            inner.chunks.len()
                        ),
                    ));
                }
                out.time_range = Some(match out.time_range {
                    Some((a, b)) => (a.min(c.mint), b.max(c.maxt)),
                    None => (c.mint, c.maxt),
                });
                out.samples += u64::from(c.n);
                out.chunks += 1;
            }
        }
        Ok(out)
    }

    /// Decodes every chunk (checksums included), calling `bad` for each damaged one; returns how
    /// many chunks were read. Stops early after `max_bad` damaged chunks.
    pub fn verify_chunks(&self, max_bad: usize, bad: &mut dyn FnMut(Error)) -> Result<u64> {
        let inner = &self.inner;
        let mut n = 0;
        let mut nbad = 0;
        for id in 0..inner.num_series {
            let (labels, chunks) = inner.series(id)?;
            for c in &chunks {
                n += 1;
                if let Err(e) = inner.read_chunk(c, &labels) {
                    bad(e);
                    nbad += 1;
                    if nbad >= max_bad {
                        return Ok(n);
                    }
                }
            }
        }
        Ok(n)
    }
}

impl IndexReader for Block {
    fn label_values(&self, name: &str) -> Vec<String> {
        match self.inner.name_entry(name) {
            Some(ne) => ne
                .values
                .iter()
                .map(|v| self.inner.sym(v.sym).to_string())
                .collect(),
            None => Vec::new(),
        }
    }

    fn label_values_with_prefix(&self, name: &str, prefix: &str) -> Vec<String> {
        let Some(ne) = self.inner.name_entry(name) else {
            return Vec::new();
        };
        let start = ne
            .values
            .partition_point(|v| self.inner.sym(v.sym) < prefix);
        ne.values[start..]
            .iter()
            .map(|v| self.inner.sym(v.sym))
            .take_while(|s| s.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    fn postings(&self, name: &str, value: &str) -> RoaringBitmap {
        let Some(ne) = self.inner.name_entry(name) else {
            return RoaringBitmap::new();
        };
        let Ok(i) = ne
            .values
            .binary_search_by(|v| self.inner.sym(v.sym).cmp(value))
        else {
            return RoaringBitmap::new();
        };
        match self.inner.decode_postings(&ne.values[i]) {
            Ok(p) => p,
            Err(e) => {
                // The trait cannot fail; the section checksum passed at open, so this is unexpected.
                tracing::error!(error = %e, "unreadable postings");
                RoaringBitmap::new()
            }
        }
    }

    fn all_postings(&self) -> RoaringBitmap {
        let mut b = RoaringBitmap::new();
        b.insert_range(0..self.inner.num_series);
        b
    }
}

impl Inner {
    fn sym(&self, id: u32) -> &str {
        match self.syms.get(id as usize) {
            Some(&(s, l)) => std::str::from_utf8(&self.index[s..s + l]).unwrap_or(""),
            None => "",
        }
    }

    fn corrupt_index(&self, reason: impl Into<String>) -> Error {
        Error::corrupt(&self.index_path, reason)
    }

    fn name_entry(&self, name: &str) -> Option<&NameEntry> {
        self.names
            .binary_search_by(|n| self.sym(n.sym).cmp(name))
            .ok()
            .map(|i| &self.names[i])
    }

    fn decode_postings(&self, v: &ValueEntry) -> Result<RoaringBitmap> {
        let b = &self.index
            [self.postings_sec.0 + v.post_off..self.postings_sec.0 + v.post_off + v.post_len];
        decode_postings(b, self.num_series)
            .map_err(|r| self.corrupt_index(format!("postings: {r}")))
    }

    fn series_dec(&self, id: u32) -> Result<Dec<'_>> {
        if id >= self.num_series {
            return Err(self.corrupt_index(format!("series id {id} out of range")));
        }
        let o = self.offsets_sec + id as usize * 4;
        let off = u32::from_le_bytes([
            self.index[o],
            self.index[o + 1],
            self.index[o + 2],
            self.index[o + 3],
        ]) as usize;
        let (s, l) = self.series_sec;
        if off >= l {
            return Err(self.corrupt_index(format!("series {id} offset {off} out of range")));
        }
        Ok(Dec::at(&self.index[..s + l], s + off))
    }

    /// Labels and chunk locations of series `id`.
    fn series(&self, id: u32) -> Result<(Labels, Vec<ChunkLoc>)> {
        let mut d = self.series_dec(id)?;
        self.parse_series(&mut d)
            .map_err(|r| self.corrupt_index(format!("series {id}: {r}")))
    }

    fn parse_series(&self, d: &mut Dec<'_>) -> DecResult<(Labels, Vec<ChunkLoc>)> {
        let nl = d.uvarint()?;
        let mut labels = Vec::with_capacity(nl.min(64) as usize);
        let nsyms = self.syms.len() as u32;
        for _ in 0..nl {
            let (n, v) = (d.u32_val()?, d.u32_val()?);
            if n >= nsyms || v >= nsyms {
                return Err("symbol id out of range".into());
            }
            labels.push(Label::new(self.sym(n), self.sym(v)));
        }
        let nc = d.uvarint()?;
        let mut offset = usize::try_from(d.uvarint()?).map_err(|_| "chunk offset overflow")?;
        let mut chunks = Vec::with_capacity(nc.min(1024) as usize);
        let mut prev = self.meta.min_time;
        for _ in 0..nc {
            let mint = prev.wrapping_add(d.varint()?);
            let maxt = mint.wrapping_add(d.uvarint()? as i64);
            let n = d.u32_val()?;
            let len = d.uvarint()? as usize;
            chunks.push(ChunkLoc {
                mint,
                maxt,
                n,
                offset,
                len,
            });
            offset = offset.saturating_add(len).saturating_add(4);
            prev = maxt;
        }
        Ok((Labels::from_sorted_unchecked(labels), chunks))
    }

    /// The checksum-verified payload of the chunk frame at `offset`.
    fn frame(&self, offset: usize, len: usize) -> DecResult<&[u8]> {
        let end = offset
            .checked_add(len)
            .and_then(|e| e.checked_add(4))
            .filter(|&e| e <= self.chunks.len());
        let Some(end) = end else {
            return Err("beyond end of file".into());
        };
        let payload = &self.chunks[offset..offset + len];
        let crc = &self.chunks[end - 4..end];
        if crc32c::crc32c(payload) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("checksum mismatch".into());
        }
        Ok(payload)
    }

    fn read_chunk(&self, c: &ChunkLoc, labels: &Labels) -> Result<Vec<Sample>> {
        let corrupt = |r: String| {
            Error::corrupt(
                &self.chunks_path,
                format!("chunk at offset {} of series {labels}: {r}", c.offset),
            )
        };
        let payload = self.frame(c.offset, c.len).map_err(corrupt)?;
        let mut shared = |dist: u64, len: u64| -> DecResult<Vec<i64>> {
            let start = (c.offset as u64)
                .checked_sub(dist)
                .ok_or("shared timestamps before start of file")? as usize;
            let origin = self.frame(start, len as usize)?;
            chunks::decode_timestamps(&self.fd, origin, c.mint, c.n as usize)
        };
        let s = chunks::decode(&self.fd, payload, c.mint, c.n as usize, &mut shared)
            .map_err(corrupt)?;
        if s.last().map(|s| s.t) != Some(c.maxt) {
            return Err(corrupt(
                "decoded time range disagrees with the index".into(),
            ));
        }
        Ok(s)
    }
}

struct SeriesIter {
    inner: Arc<Inner>,
    ids: roaring::bitmap::IntoIter,
    mint: i64,
    maxt: i64,
    tombs: Arc<Tombstones>,
    failed: bool,
}

impl SeriesIter {
    fn load(&self, id: u32) -> Result<Option<(Labels, Vec<Sample>)>> {
        let (labels, chunks) = self.inner.series(id)?;
        let dels = self.tombs.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let mut out = Vec::new();
        for c in chunks
            .iter()
            .filter(|c| c.mint <= self.maxt && c.maxt >= self.mint)
        {
            // A chunk wholly inside one deleted interval need not be decoded.
            if dels.iter().any(|&(a, b)| a <= c.mint && b >= c.maxt) {
                continue;
            }
            let s = self.inner.read_chunk(c, &labels)?;
            out.extend(s.into_iter().filter(|s| {
                s.t >= self.mint && s.t <= self.maxt && !tombstones::is_deleted(dels, s.t)
            }));
        }
        Ok((!out.is_empty()).then_some((labels, out)))
    }
}

impl Iterator for SeriesIter {
    type Item = Result<(Labels, Vec<Sample>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while let Some(id) = self.ids.next() {
            match self.load(id) {
                Ok(Some(x)) => return Some(Ok(x)),
                Ok(None) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

fn decode_postings(b: &[u8], num_series: u32) -> DecResult<RoaringBitmap> {
    let (&tag, rest) = b.split_first().ok_or("empty postings")?;
    let bm = match tag {
        POSTINGS_LIST => {
            let mut d = Dec::new(rest);
            let mut bm = RoaringBitmap::new();
            let mut id: u32 = 0;
            let mut first = true;
            while d.remaining() > 0 {
                let delta = d.u32_val()?;
                id = if first {
                    delta
                } else {
                    id.checked_add(delta)
                        .filter(|_| delta > 0)
                        .ok_or("bad postings delta")?
                };
                first = false;
                bm.try_push(id)
                    .map_err(|_| "postings not ascending".to_string())?;
            }
            bm
        }
        POSTINGS_ROARING => {
            RoaringBitmap::deserialize_from(rest).map_err(|e| format!("roaring: {e}"))?
        }
        t => return Err(format!("unknown postings encoding {t}")),
    };
    if bm.max().is_some_and(|m| m >= num_series) {
        return Err("series id out of range".into());
    }
    Ok(bm)
}

struct ParsedIndex {
    syms: Vec<(usize, usize)>,
    names: Vec<NameEntry>,
    series_sec: (usize, usize),
    offsets_sec: usize,
    postings_sec: (usize, usize),
}

fn parse_index(b: &[u8], num_series: u32) -> DecResult<ParsedIndex> {
    if b.len() < 5 + FOOTER_LEN || &b[..4] != INDEX_MAGIC || &b[b.len() - 4..] != INDEX_MAGIC {
        return Err("bad magic or file too short".into());
    }
    if b[4] != FORMAT_VERSION {
        return Err(format!("unsupported index version {}", b[4]));
    }
    let footer = &b[b.len() - FOOTER_LEN..b.len() - 4];
    let (fbody, fcrc) = footer.split_at(footer.len() - 4);
    if crc32c::crc32c(fbody) != u32::from_le_bytes([fcrc[0], fcrc[1], fcrc[2], fcrc[3]]) {
        return Err("footer checksum mismatch".into());
    }
    let mut fd = Dec::new(fbody);
    let mut secs = [(0usize, 0usize); NUM_SECTIONS];
    let names = ["symbols", "series", "series offsets", "labels", "postings"];
    for (i, sec) in secs.iter_mut().enumerate() {
        let off = fd.u64_le()? as usize;
        let len = fd.u64_le()? as usize;
        let crc = fd.u32_le()?;
        let end = off
            .checked_add(len)
            .filter(|&e| off >= 5 && e <= b.len() - FOOTER_LEN)
            .ok_or_else(|| format!("{} section out of bounds", names[i]))?;
        if crc32c::crc32c(&b[off..end]) != crc {
            return Err(format!("{} section checksum mismatch", names[i]));
        }
        *sec = (off, len);
    }

    let (so, sl) = secs[SEC_SYMBOLS];
    let mut d = Dec::at(&b[..so + sl], so);
    let n = d.uvarint()?;
    let mut syms = Vec::with_capacity(n.min(1 << 24) as usize);
    for _ in 0..n {
        let s = d.len_bytes()?;
        std::str::from_utf8(s).map_err(|_| "symbol is not UTF-8".to_string())?;
        syms.push((d.pos - s.len(), s.len()));
    }
    let nsyms = syms.len() as u64;

    let (po, pl) = secs[SEC_POSTINGS];
    let (lo, ll) = secs[SEC_LABELS];
    let mut d = Dec::at(&b[..lo + ll], lo);
    let nn = d.uvarint()?;
    let mut names = Vec::with_capacity(nn.min(1 << 20) as usize);
    let mut post_off = 0usize;
    for _ in 0..nn {
        let sym = d.uvarint()?;
        let nv = d.uvarint()?;
        let mut values = Vec::with_capacity(nv.min(1 << 20) as usize);
        let mut vs = 0u64;
        for _ in 0..nv {
            vs = vs.checked_add(d.uvarint()?).ok_or("symbol overflow")?;
            let post_len = d.uvarint()? as usize;
            if vs >= nsyms || post_off.checked_add(post_len).is_none_or(|e| e > pl) {
                return Err("labels section references out of range".into());
            }
            values.push(ValueEntry {
                sym: vs as u32,
                post_off,
                post_len,
            });
            post_off += post_len;
        }
        if sym >= nsyms {
            return Err("label name symbol out of range".into());
        }
        names.push(NameEntry {
            sym: sym as u32,
            values,
        });
    }

    let (oo, ol) = secs[SEC_SERIES_OFFSETS];
    if ol != num_series as usize * 4 {
        return Err(format!(
            "series offsets section has {} bytes, meta.json says {num_series} series",
            ol
        ));
    }
    Ok(ParsedIndex {
        syms,
        names,
        series_sec: secs[SEC_SERIES],
        offsets_sec: oo,
        postings_sec: (po, pl),
    })
}

fn parse_chunks_header(b: &[u8]) -> DecResult<FileDecompressor> {
    if b.len() < 5 || &b[..4] != CHUNKS_MAGIC {
        return Err("bad magic or file too short".into());
    }
    if b[4] != FORMAT_VERSION {
        return Err(format!("unsupported chunks version {}", b[4]));
    }
    let mut d = Dec::at(b, 5);
    let h = d.len_bytes()?;
    let (fd, _) = FileDecompressor::new(h).map_err(|e| format!("pco header: {e}"))?;
    Ok(fd)
}
