//! Administrative operations behind the admin API: snapshots (a consistent copy of the blocks, and
//! optionally the head written as one more block, under `snapshots/<name>/blocks/`, a layout a
//! server can open as its data directory; the block files
//! hard-linked so a snapshot costs no space until the originals are compacted away) and cleaning
//! tombstones at once instead of at the next maintenance pass.

use std::fs;
use std::path::Path;

use super::{blocks_dir, sync_dir, Db};
use crate::block::BlockWriter;
use crate::error::{Error, Result};

/// Directory under the data directory that holds snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";

impl Db {
    /// Rewrites every block that has tombstones, so deleted data leaves the disk now.
    pub fn clean_tombstones(&self) -> Result<()> {
        let _g = self.inner.maintenance.lock();
        for b in self.blocks() {
            if b.has_tombstones() {
                let m = b.meta().clone();
                self.compact_group(&[b], m.min_time, m.max_time)?;
            }
        }
        Ok(())
    }

    /// Takes a snapshot into `<data>/snapshots/<name>/blocks/` and returns the name: every block
    /// hard-linked, plus (unless `skip_head`) the head's samples written as a block. Maintenance is
    /// held off meanwhile, so no block is compacted or deleted under the copy.
    pub fn snapshot(&self, skip_head: bool) -> Result<String> {
        let _g = self.inner.maintenance.lock();
        let name = snapshot_name();
        let root = self.inner.dir.join(SNAPSHOTS_DIR);
        let dest = root.join(&name);
        let tmp = root.join(format!("{name}.tmp"));
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let res = self.fill_snapshot(&tmp, skip_head).and_then(|()| {
            fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
            sync_dir(&root);
            Ok(())
        });
        if let Err(e) = res {
            // A half-made snapshot must not look like a usable one.
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        tracing::info!(snapshot = %dest.display(), skip_head, "snapshot taken");
        Ok(name)
    }

    fn fill_snapshot(&self, root: &Path, skip_head: bool) -> Result<()> {
        let dir = blocks_dir(root);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for b in self.blocks() {
            let name = b
                .dir()
                .file_name()
                .map(|n| n.to_owned())
                .unwrap_or_default();
            link_tree(b.dir(), &dir.join(name))?;
        }
        if !skip_head {
            self.write_head_into(&dir)?;
        }
        sync_dir(&dir);
        sync_dir(root);
        Ok(())
    }

    /// Writes every sample of the head as one block in `dir` (nothing if the head is empty).
    fn write_head_into(&self, dir: &Path) -> Result<()> {
        let h = &self.inner.head;
        let (mint, maxt) = (h.min_time(), h.max_time());
        if mint == i64::MAX || maxt == i64::MIN {
            return Ok(());
        }
        let end = maxt.saturating_add(1);
        let mut range = h.series_in_range(mint, end);
        let symbols = std::mem::take(&mut range.symbols);
        let mut w = BlockWriter::with_sorted_symbols(dir, mint, end, 1, Vec::new(), symbols)?;
        let mut ids = Vec::new();
        let mut samples = Vec::new();
        for i in 0..range.len() {
            let Some(slot) = range.get(i, &mut ids) else {
                break;
            };
            h.samples_into(slot, mint, end, &mut samples);
            if !samples.is_empty() {
                w.add_series_ids(&ids, &samples)?;
            }
        }
        w.finish()?;
        Ok(())
    }
}

/// `<UTC time>-<16 hex digits>`, as Prometheus names snapshots: sortable, and unique even when two
/// are taken in the same second.
fn snapshot_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, mo, d) = tocsin_model::time::civil_from_days(now.div_euclid(86_400));
    let s = now.rem_euclid(86_400);
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z-{:016x}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        rand::random::<u64>()
    )
}

/// Recreates `src`'s directory tree at `dst` with every file hard-linked.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    for entry in fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ft = entry.file_type().map_err(|e| Error::io(&from, e))?;
        if ft.is_dir() {
            link_tree(&from, &to)?;
        } else {
            fs::hard_link(&from, &to).map_err(|e| Error::io(&to, e))?;
        }
    }
    sync_dir(dst);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::db::DbOptions;
    use tocsin_model::{Labels, MatchOp, Matcher};
    use tocsin_storage::{AppendOptions, Appendable, Queryable, SelectHints};

    fn append(db: &Db, name: &str, ts: &[i64]) {
        let mut a = db.appender();
        let l = Labels::from_pairs(&[("__name__", name)]);
        for &t in ts {
            a.append(&l, t, t as f64, &AppendOptions::default())
                .unwrap();
        }
        a.commit().unwrap();
    }

    fn count_samples(db: &Db) -> usize {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        let all = [Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()];
        q.select(&SelectHints::default(), &all)
            .unwrap()
            .map(|s| s.unwrap().collect_samples().1.len())
            .sum()
    }

    #[test]
    fn snapshot_holds_blocks_and_head_and_skip_head_leaves_the_head_out() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
        let range = db.options().block_range_ms;
        append(&db, "old", &[0, 1000]);
        db.persist_head_range(0, range).unwrap();
        append(&db, "new", &[range + 5, range + 6, range + 7]);
        let name = db.snapshot(false).unwrap();
        assert!(name.len() == 33 && name.contains("Z-"), "{name}");
        // The snapshot opens as a data directory of its own.
        let snap = tmp.path().join(SNAPSHOTS_DIR).join(&name);
        assert_eq!(count_samples(&Db::open_read_only(&snap).unwrap()), 5);

        let name = db.snapshot(true).unwrap();
        let snap = tmp.path().join(SNAPSHOTS_DIR).join(&name);
        assert_eq!(count_samples(&Db::open_read_only(&snap).unwrap()), 2);
        assert_eq!(count_samples(&db), 5, "the live data is untouched");
    }

    #[test]
    fn clean_tombstones_rewrites_blocks_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
        let range = db.options().block_range_ms;
        append(&db, "a", &[0, 1000, 2000]);
        db.persist_head_range(0, range).unwrap();
        db.delete(0, 1000, &[Matcher::equal("__name__", "a")])
            .unwrap();
        assert!(db.blocks().iter().any(|b| b.has_tombstones()));
        db.clean_tombstones().unwrap();
        assert!(db.blocks().iter().all(|b| !b.has_tombstones()));
        assert_eq!(count_samples(&db), 1);
    }
}
