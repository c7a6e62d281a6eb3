//! Immutable on-disk blocks: a directory `<blocks_dir>/<ULID>/` holding `meta.json`, `index`,
//! `chunks` and `tombstones`, written atomically by `BlockWriter`, served read-only by `Block`,
//! and merged by `compact`. This module owns the block metadata, ULIDs, the shared byte-level
//! helpers and the filesystem discipline (temporary dirs, fsync, rename); `docs/format.md`
//! describes every file byte by byte.

mod chunks;
mod compact;
mod reader;
mod tombstones;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use compact::compact;
pub use reader::{Block, IndexSummary};
pub use writer::BlockWriter;

/// Version of the block format written into `meta.json`.
pub const BLOCK_VERSION: u32 = 1;

pub const META_FILE: &str = "meta.json";
pub const INDEX_FILE: &str = "index";
pub const CHUNKS_FILE: &str = "chunks";
pub const TOMBSTONES_FILE: &str = "tombstones";
/// Suffix of a block directory still being written; such directories are never blocks.
pub const TMP_SUFFIX: &str = ".tmp";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub num_series: u64,
    pub num_samples: u64,
    pub num_chunks: u64,
    /// Tombstones at the time the block was written (always 0 for a fresh block: compaction applies
    /// them). Tombstones added later live in the `tombstones` file; see `Block::num_tombstones`.
    pub num_tombstones: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionMeta {
    pub level: u32,
    /// ULIDs of the level-1 blocks whose data this block holds (its own ULID for a fresh block).
    pub sources: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    pub ulid: String,
    pub min_time: i64,
    /// Exclusive.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: CompactionMeta,
    pub version: u32,
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ULID: 48-bit millisecond timestamp and 80 random bits in Crockford base32, so block
/// directories sort by creation time.
pub fn new_ulid() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        & ((1 << 48) - 1);
    let rnd: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
    let v: u128 = ((ms as u128) << 80) | rnd;
    (0..26)
        .map(|i| CROCKFORD[((v >> (125 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// Whether a directory name is a (published) block ULID.
pub fn is_block_dir_name(name: &str) -> bool {
    name.len() == 26
        && name
            .bytes()
            .all(|b| CROCKFORD.contains(&b.to_ascii_uppercase()))
}

/// Removes leftovers of interrupted block writes and compactions (`*.tmp` directories); they are
/// never blocks. Returns how many were removed.
pub fn cleanup_tmp(blocks_dir: &Path) -> Result<usize> {
    let rd = match std::fs::read_dir(blocks_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(blocks_dir, e)),
    };
    let mut n = 0;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(blocks_dir, e))?;
        let name = ent.file_name();
        if name.to_string_lossy().ends_with(TMP_SUFFIX) {
            let p = ent.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| Error::io(&p, e))?;
            n += 1;
        }
    }
    if n > 0 {
        fsync_dir(blocks_dir)?;
    }
    Ok(n)
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `path` via `path.tmp`, fsync and rename, so readers see the old or the new
/// file, never a torn one.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = crate::fault::check(&tmp)
        .and_then(|_| f.write_all(bytes))
        .and_then(|_| f.sync_all())
    {
        // The old file stays in force; the partial new one would only take space.
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(parent) = path.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Little byte-level encoders shared by the block files.
pub(crate) mod enc {
    pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
        put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
        put_uvarint(buf, b.len() as u64);
        buf.extend_from_slice(b);
    }

    pub fn uvarint_len(mut v: u64) -> usize {
        let mut n = 1;
        while v >= 0x80 {
            v >>= 7;
            n += 1;
        }
        n
    }

    /// A cursor over a byte slice; every read is bounds-checked and reports what it was reading,
    /// so corrupt files turn into errors rather than panics.
    pub struct Dec<'a> {
        pub b: &'a [u8],
        pub pos: usize,
    }

    pub type DecResult<T> = std::result::Result<T, String>;

    impl<'a> Dec<'a> {
        pub fn new(b: &'a [u8]) -> Self {
            Self { b, pos: 0 }
        }
        pub fn at(b: &'a [u8], pos: usize) -> Self {
            Self { b, pos }
        }
        pub fn remaining(&self) -> usize {
            self.b.len().saturating_sub(self.pos)
        }
        pub fn uvarint(&mut self) -> DecResult<u64> {
            let mut v: u64 = 0;
            let mut shift = 0;
            loop {
                let Some(&byte) = self.b.get(self.pos) else {
                    return Err(format!("truncated varint at offset {}", self.pos));
                };
                self.pos += 1;
                if shift >= 64 || (shift == 63 && byte > 1) {
                    return Err(format!("varint overflow at offset {}", self.pos));
                }
                v |= ((byte & 0x7f) as u64) << shift;
                if byte < 0x80 {
                    return Ok(v);
                }
                shift += 7;
            }
        }
        pub fn varint(&mut self) -> DecResult<i64> {
            let u = self.uvarint()?;
            Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
        }
        pub fn u32_val(&mut self) -> DecResult<u32> {
            let v = self.uvarint()?;
            u32::try_from(v).map_err(|_| format!("value {v} out of range at offset {}", self.pos))
        }
        pub fn bytes(&mut self, n: usize) -> DecResult<&'a [u8]> {
            let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
            let Some(end) = end else {
                return Err(format!(
                    "truncated: need {n} bytes at offset {}, have {}",
                    self.pos,
                    self.remaining()
                ));
            };
            let s = &self.b[self.pos..end];
            self.pos = end;
            Ok(s)
        }
        pub fn len_bytes(&mut self) -> DecResult<&'a [u8]> {
            let n = self.uvarint()?;
            self.bytes(usize::try_from(n).map_err(|_| "length overflow".to_string())?)
        }
        pub fn u8(&mut self) -> DecResult<u8> {
            Ok(self.bytes(1)?[0])
        }
        pub fn u32_le(&mut self) -> DecResult<u32> {
            let b = self.bytes(4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        pub fn u64_le(&mut self) -> DecResult<u64> {
            let b = self.bytes(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(u64::from_le_bytes(a))
        }
    }
}
