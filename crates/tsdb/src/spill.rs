//! Spill files for closed head chunks (`<data>/chunks_head/`). A closed chunk is written here and
//! dropped from memory, so the head's memory follows the number of active series rather than the
//! hours of data it holds. These files are not a durability mechanism: the WAL is, and on start-up
//! the spill directory is emptied and the head rebuilt from the WAL.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};

const FILE_SIZE: u64 = 128 << 20;

struct SpillFile {
    id: u32,
    file: Arc<File>,
    size: u64,
    max_t: i64,
}

pub struct ChunkSpill {
    dir: PathBuf,
    files: Mutex<Vec<SpillFile>>,
    failures: AtomicU64,
    /// Spilled chunks that could not be read back; shared with the head's iterators.
    read_failures: Arc<AtomicU64>,
}

/// Where a spilled chunk lives.
#[derive(Debug, Clone, Copy)]
pub struct SpillRef {
    pub file: u32,
    pub off: u64,
    pub len: u32,
}

impl ChunkSpill {
    /// Empties and opens the spill directory.
    pub fn open(dir: &Path) -> Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
            read_failures: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Writes one closed chunk. All or nothing: on an error nothing of it is left in the file and
    /// the caller keeps the chunk in memory.
    pub fn write(&self, bytes: &[u8], max_t: i64) -> Result<SpillRef> {
        let res = self.write_locked(bytes, max_t);
        if res.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    fn write_locked(&self, bytes: &[u8], max_t: i64) -> Result<SpillRef> {
        let mut files = self.files.lock();
        let need_new = files
            .last()
            .is_none_or(|f| f.size + bytes.len() as u64 > FILE_SIZE);
        if need_new {
            let id = files.last().map_or(0, |f| f.id + 1);
            let path = self.dir.join(format!("{id:08}"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            files.push(SpillFile {
                id,
                file: Arc::new(file),
                size: 0,
                max_t: i64::MIN,
            });
        }
        let Some(f) = files.last_mut() else {
            return Err(Error::InvalidOption("no spill file".into()));
        };
        let off = f.size;
        // Positional, at the offset the reference records: a failed write cannot move where the
        // next chunk goes. What part of this one reached the file is cut off again so the space
        // is not lost to garbage (a failed cut-off is harmless: the next write overwrites it).
        if let Err(e) = crate::fault::write_all_at(&f.file, &self.dir, bytes, off) {
            let _ = f.file.set_len(off);
            return Err(Error::io(self.dir.join(format!("{:08}", f.id)), e));
        }
        f.size += bytes.len() as u64;
        f.max_t = f.max_t.max(max_t);
        Ok(SpillRef {
            file: f.id,
            off,
            len: bytes.len() as u32,
        })
    }

    /// The open file holding a chunk. Readers keep the `Arc`, so a file removed by `truncate` stays
    /// readable to queries already running.
    pub fn file(&self, id: u32) -> Option<Arc<File>> {
        self.files
            .lock()
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.file.clone())
    }

    pub fn read(file: &File, r: SpillRef) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; r.len as usize];
        file.read_exact_at(&mut buf, r.off)?;
        Ok(buf)
    }

    /// Removes files whose every chunk ends before `mint` (the head no longer references them).
    pub fn truncate(&self, mint: i64) {
        let mut files = self.files.lock();
        let n = files.len();
        let mut i = 0;
        files.retain(|f| {
            i += 1;
            let keep = i == n || f.max_t >= mint;
            if !keep {
                let _ = fs::remove_file(self.dir.join(format!("{:08}", f.id)));
            }
            keep
        });
    }

    /// Chunks that could not be written (kept in memory by the head instead).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Spilled chunks that could not be read back (a block cut that meets one fails).
    pub fn read_failures(&self) -> u64 {
        self.read_failures.load(Ordering::SeqCst)
    }

    /// The counter readers bump when a chunk cannot be read back.
    pub(crate) fn read_failure_counter(&self) -> Arc<AtomicU64> {
        self.read_failures.clone()
    }

    pub fn size_bytes(&self) -> u64 {
        self.files.lock().iter().map(|f| f.size).sum()
    }
}
