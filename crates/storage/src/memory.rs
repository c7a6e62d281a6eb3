//! A simple in-memory store implementing the storage contract; for tests of the stages above storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tocsin_model::{Labels, Matcher, Sample};

use crate::{
    AppendOptions, Appendable, Appender, CommitStats, Error, Querier, Queryable, Result,
    SelectHints, Series, SeriesRef, SeriesSet, VecSamples,
};

#[derive(Default, Clone)]
pub struct MemoryStore {
    inner: Arc<RwLock<BTreeMap<Labels, Vec<Sample>>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every series with its samples, sorted by labels (for tests and fixtures).
    pub fn snapshot(&self) -> Vec<(Labels, Vec<Sample>)> {
        self.inner
            .read()
            .iter()
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect()
    }
}

struct MemAppender<'a> {
    store: &'a MemoryStore,
    pending: Vec<(Labels, Sample)>,
}

impl Appender for MemAppender<'_> {
    fn append(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
        _opts: &AppendOptions,
    ) -> Result<SeriesRef> {
        let g = self.store.inner.read();
        if let Some(last) = g.get(labels).and_then(|s| s.last()) {
            if t < last.t {
                return Err(Error::OutOfOrder {
                    series: labels.to_string(),
                    t,
                    newest: last.t,
                });
            }
        }
        self.pending.push((labels.clone(), Sample::new(t, v)));
        Ok(labels.hash())
    }
    fn commit(self: Box<Self>) -> Result<CommitStats> {
        let mut g = self.store.inner.write();
        let mut st = CommitStats::default();
        for (l, s) in self.pending {
            let e = g.entry(l).or_insert_with(|| {
                st.series_created += 1;
                Vec::new()
            });
            match e.last() {
                Some(last) if last.t == s.t => {
                    if let Some(x) = e.last_mut() {
                        *x = s;
                    }
                }
                Some(last) if last.t > s.t => continue,
                _ => e.push(s),
            }
            st.samples += 1;
        }
        Ok(st)
    }
    fn rollback(self: Box<Self>) {}
}

impl Appendable for MemoryStore {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender {
            store: self,
            pending: Vec::new(),
        })
    }
}

struct MemQuerier {
    store: MemoryStore,
    mint: i64,
    maxt: i64,
}

fn matches(l: &Labels, ms: &[Matcher]) -> bool {
    ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or("")))
}

impl Querier for MemQuerier {
    fn select(&self, _hints: &SelectHints, matchers: &[Matcher]) -> Result<SeriesSet> {
        let g = self.store.inner.read();
        let out: Vec<Result<Series>> = g
            .iter()
            .filter(|(l, _)| matches(l, matchers))
            .filter_map(|(l, s)| {
                let v: Vec<Sample> = s
                    .iter()
                    .filter(|x| x.t >= self.mint && x.t <= self.maxt)
                    .copied()
                    .collect();
                (!v.is_empty()).then(|| {
                    Ok(Series {
                        labels: l.clone(),
                        samples: Box::new(VecSamples::new(v)),
                    })
                })
            })
            .collect();
        Ok(Box::new(out.into_iter()))
    }
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let g = self.store.inner.read();
        let mut names: Vec<String> = g
            .keys()
            .filter(|l| matches(l, matchers))
            .flat_map(|l| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let g = self.store.inner.read();
        let mut vals: Vec<String> = g
            .keys()
            .filter(|l| matches(l, matchers))
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        vals.sort();
        vals.dedup();
        Ok(vals)
    }
}

impl Queryable for MemoryStore {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        Ok(Box::new(MemQuerier {
            store: self.clone(),
            mint,
            maxt,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_commit_select() {
        let s = MemoryStore::new();
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let mut a = s.appender();
        a.append(&l, 1, 1.0, &AppendOptions::default()).unwrap();
        a.append(&l, 2, 2.0, &AppendOptions::default()).unwrap();
        a.commit().unwrap();
        let q = s.querier(0, 10).unwrap();
        let got: Vec<_> = q
            .select(&SelectHints::default(), &[Matcher::equal("job", "a")])
            .unwrap()
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(q.label_values("job", &[]).unwrap(), vec!["a"]);
    }
}
