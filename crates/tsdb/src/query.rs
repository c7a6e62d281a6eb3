//! The database's read side behind the storage seam: head and blocks merged per select. A block
//! found damaged while being read is set aside (see `Db::set_aside`) and the query goes on without
//! it, with a warning naming the range it lacks, instead of failing whole.

use std::sync::Arc;

use parking_lot::Mutex;
use tocsin_model::Matcher;
use tocsin_storage::{merge_series_sets, Querier, Queryable, SelectHints, SeriesSet};

use crate::block::Block;
use crate::db::Db;
use crate::quarantine::CorruptionKind;

struct DbQuerier {
    db: Db,
    blocks: Vec<Arc<Block>>,
    mint: i64,
    maxt: i64,
    warnings: Arc<Mutex<Vec<String>>>,
}

/// Whether a read error means the block's files are damaged (rather than, say, a transient I/O
/// failure that a retry may not see).
fn is_damage(e: &tocsin_storage::Error) -> bool {
    matches!(e, tocsin_storage::Error::Corrupt { .. })
}

fn kind_of(e: &tocsin_storage::Error) -> CorruptionKind {
    match e {
        tocsin_storage::Error::Corrupt { path, .. } => CorruptionKind::of_block_file(path),
        _ => CorruptionKind::BlockChunk,
    }
}

fn warn(warnings: &Mutex<Vec<String>>, msg: String) {
    let mut w = warnings.lock();
    if !w.contains(&msg) {
        w.push(msg);
    }
}

impl DbQuerier {
    /// Sets the block aside after `e` and records the warning.
    fn damaged(&self, b: &Arc<Block>, e: &tocsin_storage::Error) {
        let sa = self.db.set_aside(b, kind_of(e), &e.to_string());
        warn(&self.warnings, sa.warning());
    }

    /// Runs `f` over every block, setting aside those found damaged.
    fn per_block<T>(
        &self,
        mut f: impl FnMut(&Block) -> crate::Result<T>,
    ) -> tocsin_storage::Result<Vec<T>> {
        let mut out = Vec::new();
        for b in &self.blocks {
            match f(b.as_ref()).map_err(tocsin_storage::Error::from) {
                Ok(x) => out.push(x),
                Err(e) if is_damage(&e) => self.damaged(b, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// A block's series set that stops at damage instead of failing the query.
struct Guarded {
    set: SeriesSet,
    db: Db,
    block: Arc<Block>,
    warnings: Arc<Mutex<Vec<String>>>,
    done: bool,
}

impl Iterator for Guarded {
    type Item = tocsin_storage::Result<tocsin_storage::Series>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.set.next() {
            Some(Err(e)) if is_damage(&e) => {
                self.done = true;
                let sa = self.db.set_aside(&self.block, kind_of(&e), &e.to_string());
                warn(&self.warnings, sa.warning());
                None
            }
            other => other,
        }
    }
}

impl Querier for DbQuerier {
    fn select(&self, _hints: &SelectHints, ms: &[Matcher]) -> tocsin_storage::Result<SeriesSet> {
        let mut sets: Vec<SeriesSet> = Vec::new();
        let head = self.db.head().select(self.mint, self.maxt, ms);
        sets.push(Box::new(head.into_iter().map(Ok)));
        for b in self.blocks.iter().rev() {
            match b
                .select(self.mint, self.maxt, ms)
                .map_err(tocsin_storage::Error::from)
            {
                Ok(set) => sets.push(Box::new(Guarded {
                    set,
                    db: self.db.clone(),
                    block: b.clone(),
                    warnings: self.warnings.clone(),
                    done: false,
                })),
                Err(e) if is_damage(&e) => self.damaged(b, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(merge_series_sets(sets))
    }

    fn label_names(&self, ms: &[Matcher]) -> tocsin_storage::Result<Vec<String>> {
        let mut out = self.db.head().label_names(ms);
        for v in self.per_block(|b| b.label_names(ms))? {
            out.extend(v);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn label_values(&self, name: &str, ms: &[Matcher]) -> tocsin_storage::Result<Vec<String>> {
        let mut out = self.db.head().label_values(name, ms);
        for v in self.per_block(|b| b.label_values(name, ms))? {
            out.extend(v);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }
}

impl Queryable for Db {
    fn querier(&self, mint: i64, maxt: i64) -> tocsin_storage::Result<Box<dyn Querier>> {
        let blocks = self
            .blocks()
            .into_iter()
            .filter(|b| b.meta().max_time > mint && b.meta().min_time <= maxt)
            .collect();
        let warnings = self
            .set_aside_blocks()
            .iter()
            .filter(|s| s.overlaps(mint, maxt))
            .map(|s| s.warning())
            .collect();
        Ok(Box::new(DbQuerier {
            db: self.clone(),
            blocks,
            mint,
            maxt,
            warnings: Arc::new(Mutex::new(warnings)),
        }))
    }
}
