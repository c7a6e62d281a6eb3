//! Merging sorted series sets from several sources (head and blocks, several blocks) into one, with
//! samples of the same series combined and duplicate timestamps kept once.

use std::collections::VecDeque;

use tocsin_model::Sample;

use crate::{Result, SampleIter, Series, SeriesSet};

/// Samples from a vector.
pub struct VecSamples {
    v: std::vec::IntoIter<Sample>,
}

impl VecSamples {
    pub fn new(v: Vec<Sample>) -> Self {
        Self { v: v.into_iter() }
    }
}

impl SampleIter for VecSamples {
    fn next(&mut self) -> Option<Sample> {
        self.v.next()
    }
}

/// Merges several iterators of one series by timestamp; on equal timestamps the earliest iterator in
/// the list wins (callers list newer sources first).
pub struct MergedSamples {
    its: Vec<Box<dyn SampleIter>>,
    heads: Vec<Option<Sample>>,
}

impl MergedSamples {
    pub fn new(mut its: Vec<Box<dyn SampleIter>>) -> Self {
        let heads = its.iter_mut().map(|i| i.next()).collect();
        Self { its, heads }
    }
}

impl SampleIter for MergedSamples {
    fn next(&mut self) -> Option<Sample> {
        let mut best: Option<(usize, i64)> = None;
        for (i, h) in self.heads.iter().enumerate() {
            if let Some(s) = h {
                if best.is_none_or(|(_, t)| s.t < t) {
                    best = Some((i, s.t));
                }
            }
        }
        let (bi, bt) = best?;
        let out = self.heads[bi];
        for i in 0..self.its.len() {
            if self.heads[i].is_some_and(|s| s.t == bt) {
                self.heads[i] = self.its[i].next();
            }
        }
        out
    }
}

/// Merges series sets each sorted by labels into one sorted set.
pub fn merge_series_sets(mut sets: Vec<SeriesSet>) -> SeriesSet {
    if sets.len() == 1 {
        return sets.pop().unwrap_or_else(|| Box::new(std::iter::empty()));
    }
    Box::new(MergeSets {
        sets,
        heads: VecDeque::new(),
        init: false,
    })
}

struct MergeSets {
    sets: Vec<SeriesSet>,
    heads: VecDeque<Option<Series>>,
    init: bool,
}

impl Iterator for MergeSets {
    type Item = Result<Series>;
    fn next(&mut self) -> Option<Self::Item> {
        if !self.init {
            self.init = true;
            for s in self.sets.iter_mut() {
                match s.next() {
                    Some(Ok(x)) => self.heads.push_back(Some(x)),
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.heads.push_back(None),
                }
            }
        }
        let min = self
            .heads
            .iter()
            .flatten()
            .map(|s| &s.labels)
            .min()?
            .clone();
        let mut its: Vec<Box<dyn SampleIter>> = Vec::new();
        for i in 0..self.sets.len() {
            if self.heads[i].as_ref().is_some_and(|s| s.labels == min) {
                if let Some(s) = self.heads[i].take() {
                    its.push(s.samples);
                }
                match self.sets[i].next() {
                    Some(Ok(x)) => self.heads[i] = Some(x),
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.heads[i] = None,
                }
            }
        }
        let samples: Box<dyn SampleIter> = if its.len() == 1 {
            its.pop()?
        } else {
            Box::new(MergedSamples::new(its))
        };
        Some(Ok(Series {
            labels: min,
            samples,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_model::Labels;

    fn series(l: &str, ts: &[i64]) -> Series {
        Series {
            labels: Labels::from_pairs(&[("a", l)]),
            samples: Box::new(VecSamples::new(
                ts.iter().map(|t| Sample::new(*t, *t as f64)).collect(),
            )),
        }
    }

    #[test]
    fn merges_sets_and_samples() {
        let a: SeriesSet =
            Box::new(vec![Ok(series("1", &[1, 3])), Ok(series("3", &[1]))].into_iter());
        let b: SeriesSet =
            Box::new(vec![Ok(series("1", &[2, 3, 4])), Ok(series("2", &[5]))].into_iter());
        let out: Vec<_> = merge_series_sets(vec![a, b])
            .map(|s| s.unwrap().collect_samples())
            .collect();
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].1.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(out[1].0.get("a"), Some("2"));
        assert_eq!(out[2].0.get("a"), Some("3"));
    }
}
