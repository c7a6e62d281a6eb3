//! `BlockWriter`: streams series into a new block directory `<ULID>.tmp` (chunks are written as
//! series arrive; labels and chunk refs stay in memory), then writes the index, `meta.json` and
//! empty tombstones, fsyncs everything and publishes the block by renaming it to `<ULID>`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tocsin_model::{Labels, Sample};

use super::chunks;
use super::enc::{put_bytes, put_uvarint, put_varint};
use super::{fsync_dir, BlockMeta, BlockStats, CompactionMeta, BLOCK_VERSION, CHUNKS_FILE, INDEX_FILE, META_FILE, TMP_SUFFIX, TOMBSTONES_FILE};
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

pub(super) struct ChunkRef {
    pub mint: i64,
    pub maxt: i64,
    pub n: u32,
    /// Payload length; the frame adds a 4-byte crc32c.
    pub len: u32,
}

struct SeriesEntry {
    labels: Labels,
    first_offset: u64,
    chunks: Vec<ChunkRef>,
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
    series: Vec<SeriesEntry>,
    stats: BlockStats,
    /// Set once the directory is published or removed, so Drop leaves it alone.
    done: bool,
}

fn internal(msg: String) -> Error {
    Error::Storage(tocsin_storage::Error::Internal(msg))
}

impl BlockWriter {
    pub fn new(blocks_dir: &Path, min_time: i64, max_time: i64, level: u32, sources: Vec<String>) -> Result<Self> {
        if max_time <= min_time {
            return Err(Error::InvalidOption(format!("block time range [{min_time}, {max_time}) is empty")));
        }
        let ulid = super::new_ulid();
        let tmp_dir = blocks_dir.join(format!("{ulid}{TMP_SUFFIX}"));
        std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
        let chunks_path = tmp_dir.join(CHUNKS_FILE);
        let f = File::create(&chunks_path).map_err(|e| Error::io(&chunks_path, e))?;
        let mut chunks = BufWriter::with_capacity(1 << 20, f);
        let mut head = CHUNKS_MAGIC.to_vec();
        head.push(FORMAT_VERSION);
        put_bytes(&mut head, &chunks::pco_header().map_err(internal)?);
        chunks.write_all(&head).map_err(|e| Error::io(&chunks_path, e))?;
        let sources = if sources.is_empty() { vec![ulid.clone()] } else { sources };
        Ok(Self {
            blocks_dir: blocks_dir.to_path_buf(),
            tmp_dir,
            ulid,
            min_time,
            max_time,
            level,
            sources,
            chunks,
            chunks_path,
            offset: head.len() as u64,
            series: Vec::new(),
            stats: BlockStats::default(),
            done: false,
        })
    }

    /// Series must come in ascending label order; samples sorted by time, unique, all in
    /// [min_time, max_time). A series without samples is skipped.
    pub fn add_series(&mut self, labels: &Labels, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        if labels.is_empty() {
            return Err(Error::InvalidOption("series without labels".into()));
        }
        if let Some(last) = self.series.last() {
            if last.labels >= *labels {
                return Err(Error::InvalidOption(format!("series {labels} added after {} (must be ascending)", last.labels)));
            }
        }
        if samples.windows(2).any(|w| w[1].t <= w[0].t) {
            return Err(Error::InvalidOption(format!("samples of {labels} not sorted or not unique")));
        }
        let (lo, hi) = (samples[0].t, samples[samples.len() - 1].t);
        if lo < self.min_time || hi >= self.max_time {
            return Err(Error::InvalidOption(format!(
                "samples of {labels} span [{lo}, {hi}], outside block range [{}, {})",
                self.min_time, self.max_time
            )));
        }
        let mut entry = SeriesEntry { labels: labels.clone(), first_offset: self.offset, chunks: Vec::new() };
        let mut start = 0;
        for n in chunks::chunk_sizes(samples.len()) {
            let part = &samples[start..start + n];
            start += n;
            let payload = chunks::encode(part).map_err(internal)?;
            let len = u32::try_from(payload.len()).map_err(|_| internal("chunk too large".into()))?;
            let crc = crc32c::crc32c(&payload);
            self.chunks
                .write_all(&payload)
                .and_then(|_| self.chunks.write_all(&crc.to_le_bytes()))
                .map_err(|e| Error::io(&self.chunks_path, e))?;
            self.offset += payload.len() as u64 + 4;
            entry.chunks.push(ChunkRef { mint: part[0].t, maxt: part[n - 1].t, n: n as u32, len });
            self.stats.num_chunks += 1;
        }
        self.stats.num_series += 1;
        self.stats.num_samples += samples.len() as u64;
        self.series.push(entry);
        Ok(())
    }

    /// Writes index, meta.json, empty tombstones; atomically publishes the block. Returns None (and
    /// leaves nothing behind) if no samples were added.
    pub fn finish(mut self) -> Result<Option<BlockMeta>> {
        if self.series.is_empty() {
            self.done = true;
            std::fs::remove_dir_all(&self.tmp_dir).map_err(|e| Error::io(&self.tmp_dir, e))?;
            return Ok(None);
        }
        self.chunks.flush().map_err(|e| Error::io(&self.chunks_path, e))?;
        self.chunks.get_ref().sync_all().map_err(|e| Error::io(&self.chunks_path, e))?;

        let index = self.build_index()?;
        let index_path = self.tmp_dir.join(INDEX_FILE);
        write_synced(&index_path, &index)?;
        write_synced(&self.tmp_dir.join(TOMBSTONES_FILE), &super::tombstones::encode(&Default::default()))?;

        let mut sources = std::mem::take(&mut self.sources);
        sources.sort();
        sources.dedup();
        let meta = BlockMeta {
            ulid: self.ulid.clone(),
            min_time: self.min_time,
            max_time: self.max_time,
            stats: self.stats.clone(),
            compaction: CompactionMeta { level: self.level, sources },
            version: BLOCK_VERSION,
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| internal(format!("meta.json: {e}")))?;
        write_synced(&self.tmp_dir.join(META_FILE), &json)?;
        fsync_dir(&self.tmp_dir)?;

        let final_dir = self.blocks_dir.join(&self.ulid);
        std::fs::rename(&self.tmp_dir, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        self.done = true;
        fsync_dir(&self.blocks_dir)?;
        Ok(Some(meta))
    }

    fn build_index(&self) -> Result<Vec<u8>> {
        // Symbols: every label name and value, sorted, so ids order like the strings.
        let mut syms: Vec<&str> = self.series.iter().flat_map(|s| s.labels.iter().flat_map(|l| [l.name.as_str(), l.value.as_str()])).collect();
        syms.sort_unstable();
        syms.dedup();
        let sym_id: HashMap<&str, u64> = syms.iter().enumerate().map(|(i, s)| (*s, i as u64)).collect();
        let sid = |s: &str| sym_id.get(s).copied().ok_or_else(|| internal(format!("symbol {s:?} missing")));

        let mut symbols = Vec::new();
        put_uvarint(&mut symbols, syms.len() as u64);
        for s in &syms {
            put_bytes(&mut symbols, s.as_bytes());
        }

        let mut series = Vec::new();
        let mut offsets = Vec::with_capacity(self.series.len() * 4);
        let mut postings: HashMap<(&str, &str), Vec<u32>> = HashMap::new();
        for (id, s) in self.series.iter().enumerate() {
            let off = u32::try_from(series.len()).map_err(|_| internal("series section exceeds 4 GiB".into()))?;
            offsets.extend_from_slice(&off.to_le_bytes());
            put_uvarint(&mut series, s.labels.len() as u64);
            for l in s.labels.iter() {
                put_uvarint(&mut series, sid(&l.name)?);
                put_uvarint(&mut series, sid(&l.value)?);
                postings.entry((l.name.as_str(), l.value.as_str())).or_default().push(id as u32);
            }
            put_uvarint(&mut series, s.chunks.len() as u64);
            put_uvarint(&mut series, s.first_offset);
            let mut prev = self.min_time;
            for c in &s.chunks {
                put_varint(&mut series, c.mint.wrapping_sub(prev));
                put_uvarint(&mut series, c.maxt.wrapping_sub(c.mint) as u64);
                put_uvarint(&mut series, c.n as u64);
                put_uvarint(&mut series, c.len as u64);
                prev = c.maxt;
            }
        }

        let mut pairs: Vec<((&str, &str), Vec<u32>)> = postings.into_iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut labels = Vec::new();
        let mut post = Vec::new();
        let names: Vec<&str> = {
            let mut n: Vec<&str> = pairs.iter().map(|p| p.0 .0).collect();
            n.dedup();
            n
        };
        put_uvarint(&mut labels, names.len() as u64);
        let mut i = 0;
        for name in names {
            let start = i;
            while i < pairs.len() && pairs[i].0 .0 == name {
                i += 1;
            }
            put_uvarint(&mut labels, sid(name)?);
            put_uvarint(&mut labels, (i - start) as u64);
            let mut prev_sym = 0;
            for ((_, value), ids) in &pairs[start..i] {
                let v = sid(value)?;
                put_uvarint(&mut labels, v - prev_sym);
                prev_sym = v;
                let before = post.len();
                encode_postings(&mut post, ids)?;
                put_uvarint(&mut labels, (post.len() - before) as u64);
            }
        }

        let mut out = INDEX_MAGIC.to_vec();
        out.push(FORMAT_VERSION);
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        for sec in [&symbols, &series, &offsets, &labels, &post] {
            footer.extend_from_slice(&(out.len() as u64).to_le_bytes());
            footer.extend_from_slice(&(sec.len() as u64).to_le_bytes());
            footer.extend_from_slice(&crc32c::crc32c(sec).to_le_bytes());
            out.extend_from_slice(sec);
        }
        let fcrc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&fcrc.to_le_bytes());
        footer.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&footer);
        Ok(out)
    }
}

/// Postings as a delta-varint list or a run-optimized roaring bitmap, whichever is smaller: short
/// lists (most label pairs) would pay roaring's fixed header many times over.
fn encode_postings(out: &mut Vec<u8>, ids: &[u32]) -> Result<()> {
    let mut list = vec![POSTINGS_LIST];
    let mut prev = 0u32;
    for (i, &id) in ids.iter().enumerate() {
        put_uvarint(&mut list, if i == 0 { id } else { id - prev } as u64);
        prev = id;
    }
    if ids.len() > 64 {
        let mut bm: roaring::RoaringBitmap = ids.iter().copied().collect();
        bm.optimize();
        if bm.serialized_size() + 1 < list.len() {
            out.push(POSTINGS_ROARING);
            return bm.serialize_into(out).map_err(|e| internal(format!("postings: {e}")));
        }
    }
    out.extend_from_slice(&list);
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(path, e))
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // An abandoned write (error or early return) must not leave a half-written directory.
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp_dir);
        }
    }
}
