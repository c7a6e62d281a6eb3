//! Compaction: merging blocks (possibly overlapping in time) into one new block, applying their
//! tombstones. Series are streamed in label order from every input at once, so only one series per
//! input is in memory at a time. Also used to rewrite a single block to drop deleted data.

use std::cmp::Reverse;
use std::path::Path;
use std::sync::Arc;

use tocsin_model::{Labels, Sample};

use super::{Block, BlockMeta, BlockWriter};
use crate::error::{Error, Result};

/// Merges the blocks into one new block covering [min_time, max_time) with level = max(level)+1
/// and sources = union of theirs. Duplicate timestamps are kept once, the later block in `inputs`
/// winning. Returns None (leaving nothing behind) if no sample is left.
pub fn compact(
    blocks_dir: &Path,
    inputs: &[Arc<Block>],
    min_time: i64,
    max_time: i64,
) -> Result<Option<BlockMeta>> {
    if max_time <= min_time {
        return Err(Error::InvalidOption(format!(
            "compaction range [{min_time}, {max_time}) is empty"
        )));
    }
    let level = inputs
        .iter()
        .map(|b| b.meta().compaction.level)
        .max()
        .unwrap_or(0)
        + 1;
    let mut sources: Vec<String> = inputs
        .iter()
        .flat_map(|b| b.meta().compaction.sources.iter().cloned())
        .collect();
    sources.sort();
    sources.dedup();
    // The union of the inputs' symbols: a superset of what the merged series use (tombstones may
    // drop series), which the format allows, and known before the first series is written.
    let mut symbols: Vec<&str> = inputs.iter().flat_map(|b| b.symbols()).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let mut w = BlockWriter::new(blocks_dir, min_time, max_time, level, sources, symbols)?;

    let mut iters: Vec<_> = inputs
        .iter()
        .map(|b| b.series_samples(min_time, max_time - 1))
        .collect();
    let mut heads: Vec<Option<(Labels, Vec<Sample>)>> = Vec::with_capacity(iters.len());
    for it in iters.iter_mut() {
        heads.push(it.next().transpose()?);
    }
    // Each round takes the smallest label set among the inputs' current series.
    while let Some(min) = heads.iter().flatten().map(|(l, _)| l).min().cloned() {
        let mut parts: Vec<(usize, Vec<Sample>)> = Vec::new();
        for (i, h) in heads.iter_mut().enumerate() {
            if h.as_ref().is_some_and(|(l, _)| *l == min) {
                if let Some((_, s)) = h.take() {
                    parts.push((i, s));
                }
                *h = iters[i].next().transpose()?;
            }
        }
        let merged = merge(parts);
        w.add_series(&min, &merged)?;
    }
    w.finish()
}

/// Merges per-input sample runs of one series; on equal timestamps the later input wins.
fn merge(mut parts: Vec<(usize, Vec<Sample>)>) -> Vec<Sample> {
    if parts.len() == 1 {
        return parts.pop().map(|p| p.1).unwrap_or_default();
    }
    let mut all: Vec<(usize, Sample)> = parts
        .into_iter()
        .flat_map(|(i, v)| v.into_iter().map(move |s| (i, s)))
        .collect();
    all.sort_by_key(|(i, s)| (s.t, Reverse(*i)));
    all.dedup_by_key(|(_, s)| s.t);
    all.into_iter().map(|(_, s)| s).collect()
}
