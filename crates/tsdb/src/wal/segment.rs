//! Segment files: the per-file header, record framing (type, length, CRC32C), the buffered
//! append-only writer, the validating reader, and parsing of the WAL directory's entry names.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// "TWAL" followed by the format version and three reserved zero bytes.
pub(crate) const SEGMENT_MAGIC: [u8; 4] = *b"TWAL";
pub(crate) const FORMAT_VERSION: u8 = 1;
pub(crate) const SEGMENT_HEADER_LEN: u64 = 8;
/// type (1) + payload length (4) + CRC32C (4).
pub(crate) const RECORD_HEADER_LEN: usize = 9;
/// Writers split batches far below this; anything larger is garbage in a length field.
pub(crate) const MAX_RECORD_PAYLOAD: u32 = 1 << 30;
/// Buffered bytes that trigger a write(2) even without an explicit flush, bounding memory.
const WRITE_BUFFER_FLUSH: usize = 1 << 20;

const CHECKPOINT_PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

pub(crate) fn checkpoint_name(n: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{n:08}")
}

pub(crate) fn checkpoint_tmp_name(n: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{n:08}{TMP_SUFFIX}")
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What a WAL (or checkpoint) directory holds, each list sorted ascending.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub segments: Vec<u64>,
    pub checkpoints: Vec<u64>,
    /// Leftovers of checkpoints that crashed before their rename.
    pub temps: Vec<PathBuf>,
}

/// Lists `dir`; a missing directory is an empty WAL. Unknown names are ignored so operators can
/// leave notes or backups beside the WAL without breaking start-up.
pub(crate) fn list_dir(dir: &Path) -> Result<Listing> {
    let mut l = Listing::default();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(l),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = parse_number(name) {
            l.segments.push(n);
        } else if let Some(rest) = name.strip_prefix(CHECKPOINT_PREFIX) {
            if let Some(n) = parse_number(rest) {
                l.checkpoints.push(n);
            } else if rest.ends_with(TMP_SUFFIX) {
                l.temps.push(ent.path());
            }
        }
    }
    l.segments.sort_unstable();
    l.checkpoints.sort_unstable();
    Ok(l)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

pub(crate) fn file_size(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| Error::io(path, e))
}

/// Total size of the segment files in a checkpoint directory.
pub(crate) fn dir_segments_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for n in list_dir(dir)?.segments {
        total += file_size(&dir.join(segment_name(n)))?;
    }
    Ok(total)
}

pub(crate) fn record_crc(typ: u8, len: u32, payload: &[u8]) -> u32 {
    let mut head = [0u8; 5];
    head[0] = typ;
    head[1..].copy_from_slice(&len.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), payload)
}

/// Appends to one segment file through an in-memory buffer; bytes reach the OS on `flush`.
pub(crate) struct SegmentWriter {
    file: File,
    path: PathBuf,
    /// Bytes of the file known to be written; the next write(2) goes exactly here.
    written: u64,
    buf: Vec<u8>,
}

impl SegmentWriter {
    /// Creates a new segment (failing if it exists: segments are never reopened for writing) and
    /// makes its directory entry durable.
    pub(crate) fn create(path: PathBuf) -> Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        if let Some(parent) = path.parent() {
            // Removed again on failure: a retried rotation would otherwise find it and fail on
            // `create_new` for good.
            if let Err(e) = sync_dir(parent) {
                drop(file);
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(&SEGMENT_MAGIC);
        buf.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
        Ok(Self {
            file,
            path,
            written: 0,
            buf,
        })
    }

    /// Logical size: written plus buffered bytes.
    pub(crate) fn size(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// True once the segment holds at least one record.
    pub(crate) fn has_records(&self) -> bool {
        self.size() > SEGMENT_HEADER_LEN
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Frames and buffers one record.
    pub(crate) fn append(&mut self, typ: u8, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD_PAYLOAD)
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "WAL record of {} bytes is too large",
                    payload.len()
                ))
            })?;
        self.buf.reserve(RECORD_HEADER_LEN + payload.len());
        self.buf.push(typ);
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf
            .extend_from_slice(&record_crc(typ, len, payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
        if self.buf.len() >= WRITE_BUFFER_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Positional writes, so a failed partial write can be cut off and retried from the same
        // offset instead of leaving garbage that replay would treat as the end of the log.
        if let Err(e) = crate::fault::write_all_at(&self.file, &self.path, &self.buf, self.written)
        {
            let _ = self.file.set_len(self.written);
            return Err(Error::io(&self.path, e));
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Receives each checksummed record (type, payload); an `Err` reason marks it undecodable.
pub(crate) type RecordSink<'a> = dyn FnMut(u8, &[u8]) -> std::result::Result<(), String> + 'a;

/// How reading one segment ended.
#[derive(Debug)]
pub(crate) struct SegmentRead {
    /// File size when reading started.
    pub size: u64,
    /// Offset just past the last complete, valid record (or the header); everything before it is good.
    pub good: u64,
    /// Why reading stopped before `size`, if it did.
    pub damage: Option<String>,
}

/// Reads a segment, handing each checksummed record to `on_record`, which may reject it (an
/// undecodable payload) with a reason. Reading stops at the first problem; only I/O errors other
/// than the file being shorter than announced are returned as `Err`.
pub(crate) fn read_segment(path: &Path, on_record: &mut RecordSink<'_>) -> Result<SegmentRead> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut out = SegmentRead {
        size,
        good: 0,
        damage: None,
    };
    if size == 0 {
        // Created but never flushed before a crash: an empty segment, not damage.
        return Ok(out);
    }
    // `take` so a live writer appending behind a read-only reader cannot move the goalposts.
    let mut r = BufReader::with_capacity(1 << 20, file.take(size));
    let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
    if size < SEGMENT_HEADER_LEN {
        out.damage = Some(format!(
            "torn segment header ({size} of {SEGMENT_HEADER_LEN} bytes)"
        ));
        return Ok(out);
    }
    if let Some(d) = read_exact(&mut r, &mut head, path)? {
        out.damage = Some(d);
        return Ok(out);
    }
    if head[..4] != SEGMENT_MAGIC || head[4] != FORMAT_VERSION || head[5..] != [0, 0, 0] {
        out.damage = Some(format!("bad segment header {head:02x?}"));
        return Ok(out);
    }
    out.good = SEGMENT_HEADER_LEN;
    let mut payload = Vec::new();
    let mut rh = [0u8; RECORD_HEADER_LEN];
    while out.good < size {
        let at = out.good;
        let left = size - at;
        if left < RECORD_HEADER_LEN as u64 {
            out.damage = Some(format!(
                "torn record header ({left} of {RECORD_HEADER_LEN} bytes)"
            ));
            return Ok(out);
        }
        if let Some(d) = read_exact(&mut r, &mut rh, path)? {
            out.damage = Some(d);
            return Ok(out);
        }
        let typ = rh[0];
        let len = u32::from_le_bytes([rh[1], rh[2], rh[3], rh[4]]);
        let crc = u32::from_le_bytes([rh[5], rh[6], rh[7], rh[8]]);
        let body_left = left - RECORD_HEADER_LEN as u64;
        if len > MAX_RECORD_PAYLOAD {
            out.damage = Some(format!(
                "record length {len} exceeds the maximum {MAX_RECORD_PAYLOAD}"
            ));
            return Ok(out);
        }
        if u64::from(len) > body_left {
            out.damage = Some(format!(
                "torn record: length {len} but only {body_left} bytes follow"
            ));
            return Ok(out);
        }
        payload.resize(len as usize, 0);
        if let Some(d) = read_exact(&mut r, &mut payload, path)? {
            out.damage = Some(d);
            return Ok(out);
        }
        let want = record_crc(typ, len, &payload);
        if want != crc {
            out.damage = Some(format!("checksum mismatch in record of type {typ}, length {len} (stored {crc:#010x}, computed {want:#010x})"));
            return Ok(out);
        }
        if let Err(reason) = on_record(typ, &payload) {
            out.damage = Some(format!(
                "undecodable record of type {typ}, length {len}: {reason}"
            ));
            return Ok(out);
        }
        out.good = at + RECORD_HEADER_LEN as u64 + u64::from(len);
    }
    Ok(out)
}

/// `read_exact` that reports a file shorter than its metadata said (truncated under a read-only
/// reader) as damage rather than an error.
fn read_exact(r: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<Option<String>> {
    match r.read_exact(buf) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
            Ok(Some("file shrank while being read".to_string()))
        }
        Err(e) => Err(Error::io(path, e)),
    }
}
