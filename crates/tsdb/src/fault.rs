//! Injected write failures for unit tests. A test arms a path prefix (its own temp directory, so
//! tests running in parallel never see each other's faults) and the next writes under it fail the
//! way a full disk fails them: ENOSPC, positional writes after part of the bytes reached the file.
//! Every write path of the database goes through these hooks (block files, head chunk spill, WAL
//! and checkpoint segments), so each can be shown to fail without side effects and to recover.
//! Outside `cfg(test)` the hooks are empty inline functions.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub(crate) fn enospc() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::ENOSPC)
}

/// Fails with ENOSPC if a test armed a fault for `path`.
#[inline(always)]
pub(crate) fn check(path: &Path) -> std::io::Result<()> {
    match injected(path, 0) {
        Some(_) => Err(enospc()),
        None => Ok(()),
    }
}

/// `write_all_at`, except that an armed fault writes the first half of `buf` and then fails, as a
/// disk filling up in the middle of a write does.
#[inline(always)]
pub(crate) fn write_all_at(file: &File, path: &Path, buf: &[u8], off: u64) -> std::io::Result<()> {
    if let Some(n) = injected(path, buf.len()) {
        file.write_all_at(&buf[..n], off)?;
        return Err(enospc());
    }
    file.write_all_at(buf, off)
}

#[cfg(not(test))]
#[inline(always)]
fn injected(_path: &Path, _len: usize) -> Option<usize> {
    None
}

#[cfg(test)]
use imp::injected;
#[cfg(test)]
pub(crate) use imp::{clear, fail_writes};

#[cfg(test)]
mod imp {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    struct Rule {
        prefix: PathBuf,
        remaining: u32,
    }

    static RULES: Mutex<Vec<Rule>> = Mutex::new(Vec::new());

    /// A prefix of the path's bytes, so `<dir>/wal/checkpoint` matches every checkpoint directory.
    fn bytes_prefix(path: &Path, prefix: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str()
            .as_bytes()
            .starts_with(prefix.as_os_str().as_bytes())
    }

    /// The next `times` writes to files whose path starts with `prefix` fail (`u32::MAX`: until
    /// `clear`).
    pub(crate) fn fail_writes(prefix: &Path, times: u32) {
        let mut r = RULES.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|x| x.prefix != prefix);
        r.push(Rule {
            prefix: prefix.to_path_buf(),
            remaining: times,
        });
    }

    /// Disarms every fault under `prefix`.
    pub(crate) fn clear(prefix: &Path) {
        let mut r = RULES.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|x| !bytes_prefix(&x.prefix, prefix));
    }

    /// How many bytes of a `len`-byte write reach the file before it fails, if it is to fail.
    pub(super) fn injected(path: &Path, len: usize) -> Option<usize> {
        let mut r = RULES.lock().unwrap_or_else(|e| e.into_inner());
        let rule = r
            .iter_mut()
            .find(|x| x.remaining > 0 && bytes_prefix(path, &x.prefix))?;
        if rule.remaining != u32::MAX {
            rule.remaining -= 1;
        }
        Some(len / 2)
    }
}
