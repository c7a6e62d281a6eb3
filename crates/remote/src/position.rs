//! Where a remote stands in the WAL: the tracker of what the receiver acknowledged (shards finish
//! out of order, so the saved position is the end of the longest prefix of WAL records whose
//! samples are all settled), and the position file that survives restarts, kill -9 included.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use tocsin_tsdb::wal::WalPosition;

/// Records read but not yet settled, oldest first.
#[derive(Debug)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Id of `open[0]`.
    base: u64,
    /// (end of the record, samples of it not yet settled).
    open: VecDeque<(WalPosition, usize)>,
    settled: WalPosition,
}

impl Tracker {
    pub fn new(start: WalPosition) -> Self {
        Self {
            inner: Mutex::new(Inner {
                base: 0,
                open: VecDeque::new(),
                settled: start,
            }),
        }
    }

    /// Registers a record ending at `end` whose `n` samples were queued; returns its ticket.
    pub fn push(&self, end: WalPosition, n: usize) -> u64 {
        let mut g = self.inner.lock();
        let id = g.base + g.open.len() as u64;
        g.open.push_back((end, n));
        g.advance();
        id
    }

    /// Marks `n` samples of ticket `id` settled (sent, or dropped for good).
    pub fn settle(&self, id: u64, n: usize) {
        let mut g = self.inner.lock();
        if id < g.base {
            return;
        }
        let i = (id - g.base) as usize;
        if let Some(e) = g.open.get_mut(i) {
            e.1 = e.1.saturating_sub(n);
        }
        g.advance();
    }

    /// Settles a batch: tickets of consecutive equal ids are counted together.
    pub fn settle_all(&self, tickets: impl IntoIterator<Item = u64>) {
        let mut run: Option<(u64, usize)> = None;
        for t in tickets {
            match &mut run {
                Some((id, n)) if *id == t => *n += 1,
                _ => {
                    if let Some((id, n)) = run.take() {
                        self.settle(id, n);
                    }
                    run = Some((t, 1));
                }
            }
        }
        if let Some((id, n)) = run {
            self.settle(id, n);
        }
    }

    /// Forgets everything open and starts over at `start` (a queue starting up).
    pub fn reset(&self, start: WalPosition) {
        let mut g = self.inner.lock();
        g.base += g.open.len() as u64;
        g.open.clear();
        g.settled = start;
    }

    pub fn settled(&self) -> WalPosition {
        self.inner.lock().settled
    }

    /// Records not yet settled.
    pub fn open_records(&self) -> usize {
        self.inner.lock().open.len()
    }
}

impl Inner {
    fn advance(&mut self) {
        while let Some(&(end, 0)) = self.open.front() {
            self.settled = end;
            self.open.pop_front();
            self.base += 1;
        }
    }
}

/// `<data>/remote/<hash of the queue name>/`.
pub fn queue_dir(remote_root: &Path, queue_name: &str) -> PathBuf {
    remote_root.join(format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(queue_name.as_bytes())
    ))
}

/// Reads a saved position; `Ok(None)` when there is none.
pub fn load(dir: &Path) -> std::io::Result<Option<WalPosition>> {
    let p = dir.join("position");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut it = text.split_whitespace();
    let parsed = (|| {
        let segment = it.next()?.parse().ok()?;
        let offset = it.next()?.parse().ok()?;
        Some(WalPosition { segment, offset })
    })();
    match parsed {
        Some(p) => Ok(Some(p)),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not \"<segment> <offset>\": {text:?}", p.display()),
        )),
    }
}

/// Saves atomically: temporary file, fsync, rename, directory fsync; a crash leaves the old or
/// the new position, never a torn one.
pub fn save(dir: &Path, pos: WalPosition, queue_name: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("position.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{} {}", pos.segment, pos.offset)?;
    // The queue's name, for whoever looks into the directory.
    writeln!(f, "# {queue_name}")?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join("position"))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn at(o: u64) -> WalPosition {
        WalPosition {
            segment: 3,
            offset: o,
        }
    }

    #[test]
    fn the_settled_position_is_the_end_of_the_longest_settled_prefix() {
        let t = Tracker::new(at(8));
        let a = t.push(at(100), 2);
        let b = t.push(at(200), 1);
        let _ = t.push(at(250), 0);
        assert_eq!(t.settled(), at(8));
        // The later record finishes first: nothing moves.
        t.settle(b, 1);
        assert_eq!(t.settled(), at(8));
        t.settle_all([a]);
        assert_eq!(t.settled(), at(8));
        t.settle_all([a]);
        // Both settled, and the empty record after them too.
        assert_eq!(t.settled(), at(250));
        assert_eq!(t.open_records(), 0);
        // An empty record with nothing open settles at once.
        t.push(at(300), 0);
        assert_eq!(t.settled(), at(300));
    }

    #[test]
    fn position_files_round_trip_and_garbage_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let q = queue_dir(d.path(), "vm");
        assert_eq!(load(&q).unwrap(), None);
        save(&q, at(42), "vm").unwrap();
        assert_eq!(load(&q).unwrap(), Some(at(42)));
        std::fs::write(q.join("position"), "x").unwrap();
        assert!(load(&q).is_err());
    }
}
