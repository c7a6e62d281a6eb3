//! The read path with remotes: a `Queryable` that answers from the local storage and from every
//! `remote_read` source, merged series by series and sample by sample (equal timestamps are
//! kept once, the local sample winning), so a replica that was down fills its gaps from its
//! peer. It applies Prometheus's rules for which remote is asked: `read_recent: false` asks only
//! for time older than the local storage's oldest sample, `required_matchers` must all appear
//! as equality matchers of the selector, and with `filter_external_labels` the external labels
//! become equality matchers of the remote query and are stripped from its answers.
//!
//! A remote's failure is a warning of the querier (see `Querier::warnings`), never an error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tocsin_model::{Labels, MatchOp, Matcher, Sample};
use tocsin_storage::{
    merge_series_sets, Querier, Queryable, Result, SelectHints, Series, SeriesSet, VecSamples,
};

use super::proto::{LabelMatcher, MatcherType, Query, ReadHints};
use super::{RawSeries, ReadError, Remote};

/// What the fan-out needs of a remote; [`Remote`] is the real one, tests use fakes.
pub trait ReadSource: Send + Sync {
    fn name(&self) -> &str;
    fn read_recent(&self) -> bool;
    fn required_matchers(&self) -> &[(String, String)];
    fn filter_external_labels(&self) -> bool;
    /// Runs one query; called from a blocking thread.
    fn read(&self, q: Query) -> std::result::Result<Vec<RawSeries>, ReadError>;
}

impl ReadSource for Arc<Remote> {
    fn name(&self) -> &str {
        &self.name
    }
    fn read_recent(&self) -> bool {
        self.read_recent
    }
    fn required_matchers(&self) -> &[(String, String)] {
        &self.required_matchers
    }
    fn filter_external_labels(&self) -> bool {
        self.filter_external_labels
    }
    fn read(&self, q: Query) -> std::result::Result<Vec<RawSeries>, ReadError> {
        self.read_blocking(q)
    }
}

/// The remotes of one configuration and the external labels they filter by; swapped whole on
/// reload.
#[derive(Default)]
pub struct RemoteSet {
    pub sources: Vec<Arc<dyn ReadSource>>,
    /// `global.external_labels`, sorted by name.
    pub external_labels: Vec<(String, String)>,
    /// Labels removed from every remote answer (and never asked for): a replica's
    /// `ha.replica_label`, so that a peer replica's series meet this one's own.
    pub strip: Vec<String>,
}

/// The local storage plus the configured remotes.
pub struct ReadFanout {
    local: Arc<dyn Queryable>,
    /// The timestamp of the oldest local sample (`i64::MAX` when there is none), for
    /// `read_recent: false`.
    local_start: Arc<dyn Fn() -> i64 + Send + Sync>,
    set: parking_lot::RwLock<Arc<RemoteSet>>,
}

impl ReadFanout {
    pub fn new(local: Arc<dyn Queryable>, local_start: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        Self {
            local,
            local_start,
            set: parking_lot::RwLock::new(Arc::new(RemoteSet::default())),
        }
    }

    /// Replaces the remotes; queries already running keep the set they started with.
    pub fn apply(&self, set: RemoteSet) {
        *self.set.write() = Arc::new(set);
    }

    /// Names of the configured remotes.
    pub fn names(&self) -> Vec<String> {
        self.set
            .read()
            .sources
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }
}

struct Ranged {
    src: Arc<dyn ReadSource>,
    mint: i64,
    maxt: i64,
}

impl Queryable for ReadFanout {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        let local = self.local.querier(mint, maxt)?;
        let set = self.set.read().clone();
        if set.sources.is_empty() {
            return Ok(local);
        }
        let start = (self.local_start)();
        let mut remotes = Vec::new();
        for s in &set.sources {
            let hi = if s.read_recent() {
                maxt
            } else if mint > start {
                // The local storage holds all of this range.
                continue;
            } else {
                maxt.min(start)
            };
            remotes.push(Ranged {
                src: s.clone(),
                mint,
                maxt: hi,
            });
        }
        Ok(Box::new(FanoutQuerier {
            local,
            remotes,
            external: set.external_labels.clone(),
            strip: set.strip.clone(),
            warnings: parking_lot::Mutex::new(Vec::new()),
        }))
    }
}

struct FanoutQuerier {
    local: Box<dyn Querier>,
    remotes: Vec<Ranged>,
    external: Vec<(String, String)>,
    strip: Vec<String>,
    warnings: parking_lot::Mutex<Vec<String>>,
}

/// Whether `ms` carries every required (name, value) as an equality matcher.
pub fn required_present(required: &[(String, String)], ms: &[Matcher]) -> bool {
    required.iter().all(|(n, v)| {
        ms.iter()
            .any(|m| m.op == MatchOp::Equal && &m.name == n && &m.value == v)
    })
}

/// The matchers sent to a remote, and the names of the external labels added to them (which
/// are stripped from the answer). An external label already constrained by the selector is
/// neither added nor stripped, as in Prometheus.
pub fn remote_matchers(
    ms: &[Matcher],
    external: &[(String, String)],
    filter: bool,
) -> (Vec<LabelMatcher>, Vec<String>) {
    let mut out: Vec<LabelMatcher> = ms.iter().map(to_proto).collect();
    let mut added = Vec::new();
    if filter {
        for (n, v) in external {
            if !ms.iter().any(|m| &m.name == n) {
                out.push(LabelMatcher {
                    r#type: MatcherType::Eq as i32,
                    name: n.clone(),
                    value: v.clone(),
                });
                added.push(n.clone());
            }
        }
    }
    (out, added)
}

fn to_proto(m: &Matcher) -> LabelMatcher {
    let t = match m.op {
        MatchOp::Equal => MatcherType::Eq,
        MatchOp::NotEqual => MatcherType::Neq,
        MatchOp::Regex => MatcherType::Re,
        MatchOp::NotRegex => MatcherType::Nre,
    };
    LabelMatcher {
        r#type: t as i32,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// A remote's answer as sorted series: `strip` labels removed, samples outside [mint, maxt]
/// dropped, series that became equal merged, duplicate timestamps kept once.
pub fn to_series(
    raw: Vec<RawSeries>,
    strip: &[String],
    mint: i64,
    maxt: i64,
) -> std::result::Result<BTreeMap<Labels, Vec<Sample>>, String> {
    let mut out: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for s in raw {
        let pairs: Vec<(&str, &str)> = s
            .labels
            .iter()
            .filter(|(n, _)| !strip.contains(n))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut sorted = pairs.clone();
        sorted.sort_unstable();
        let labels =
            Labels::try_from_pairs(&sorted).map_err(|e| format!("series {pairs:?}: {e}"))?;
        out.entry(labels)
            .or_default()
            .extend(s.samples.into_iter().filter(|x| x.t >= mint && x.t <= maxt));
    }
    for v in out.values_mut() {
        v.sort_by_key(|x| x.t);
        v.dedup_by_key(|x| x.t);
    }
    Ok(out)
}

impl FanoutQuerier {
    fn warn(&self, e: String) {
        tracing::warn!(error = %e, "remote read failed");
        let mut w = self.warnings.lock();
        if !w.contains(&e) {
            w.push(e);
        }
    }

    /// The remotes that apply to `ms`.
    fn applicable<'a>(&'a self, ms: &'a [Matcher]) -> impl Iterator<Item = &'a Ranged> + 'a {
        self.remotes
            .iter()
            .filter(move |r| required_present(r.src.required_matchers(), ms))
    }

    fn read(
        &self,
        r: &Ranged,
        hints: &SelectHints,
        ms: &[Matcher],
        labels_only: bool,
    ) -> Option<BTreeMap<Labels, Vec<Sample>>> {
        let (matchers, mut added) =
            remote_matchers(ms, &self.external, r.src.filter_external_labels());
        added.extend(
            self.strip
                .iter()
                .filter(|n| !added.contains(n))
                .cloned()
                .collect::<Vec<_>>(),
        );
        // "series" tells a Prometheus remote to skip samples. Our own callers also pass it
        // where they read samples (federation), so it is only sent when only labels are needed.
        let func = if labels_only {
            "series".to_string()
        } else {
            hints
                .func
                .clone()
                .filter(|f| f != "series")
                .unwrap_or_default()
        };
        let q = Query {
            start_timestamp_ms: r.mint,
            end_timestamp_ms: r.maxt,
            matchers,
            hints: Some(ReadHints {
                step_ms: hints.step,
                func,
                start_ms: if hints.start == 0 && hints.end == 0 {
                    r.mint
                } else {
                    hints.start.max(r.mint)
                },
                end_ms: if hints.start == 0 && hints.end == 0 {
                    r.maxt
                } else {
                    hints.end.min(r.maxt)
                },
                grouping: Vec::new(),
                by: false,
                range_ms: hints.range,
            }),
        };
        match r.src.read(q) {
            Ok(raw) => match to_series(raw, &added, r.mint, r.maxt) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.warn(format!("remote_read {:?}: bad answer: {e}", r.src.name()));
                    None
                }
            },
            Err(e) => {
                self.warn(e.to_string());
                None
            }
        }
    }

    /// Reads every remote that applies to `ms`, at once when there are several (each read waits
    /// on the network, so a slow remote does not add its latency to the others'). Failed reads
    /// are left out (they became warnings). `hints` of `None`: each remote's own range.
    fn read_all(
        &self,
        hints: Option<&SelectHints>,
        ms: &[Matcher],
        labels_only: bool,
    ) -> Vec<BTreeMap<Labels, Vec<Sample>>> {
        let one = |r: &Ranged| {
            let own;
            let h = match hints {
                Some(h) => h,
                None => {
                    own = SelectHints {
                        start: r.mint,
                        end: r.maxt,
                        ..SelectHints::default()
                    };
                    &own
                }
            };
            self.read(r, h, ms, labels_only)
        };
        let rs: Vec<&Ranged> = self.applicable(ms).collect();
        if rs.len() <= 1 {
            return rs.into_iter().filter_map(one).collect();
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = rs.into_iter().map(|r| s.spawn(move || one(r))).collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        })
    }

    /// Label sets of the remotes' series matching `ms` (all series when empty).
    fn remote_labels(&self, ms: &[Matcher]) -> Vec<Labels> {
        let all;
        let ms = if ms.is_empty() {
            all = [
                Matcher::new(MatchOp::Regex, tocsin_model::METRIC_NAME, ".+")
                    .unwrap_or_else(|_| Matcher::equal(tocsin_model::METRIC_NAME, "")),
            ];
            &all[..]
        } else {
            ms
        };
        self.read_all(None, ms, true)
            .into_iter()
            .flat_map(BTreeMap::into_keys)
            .collect()
    }
}

impl Querier for FanoutQuerier {
    fn select(&self, hints: &SelectHints, ms: &[Matcher]) -> Result<SeriesSet> {
        let mut sets = vec![self.local.select(hints, ms)?];
        for s in self.read_all(Some(hints), ms, false) {
            let set: SeriesSet = Box::new(s.into_iter().map(|(labels, v)| {
                Ok(Series {
                    labels,
                    samples: Box::new(VecSamples::new(v)),
                })
            }));
            sets.push(set);
        }
        Ok(merge_series_sets(sets))
    }

    fn label_names(&self, ms: &[Matcher]) -> Result<Vec<String>> {
        let mut names: BTreeSet<String> = self.local.label_names(ms)?.into_iter().collect();
        for l in self.remote_labels(ms) {
            names.extend(l.iter().map(|x| x.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(&self, name: &str, ms: &[Matcher]) -> Result<Vec<String>> {
        let mut values: BTreeSet<String> = self.local.label_values(name, ms)?.into_iter().collect();
        for l in self.remote_labels(ms) {
            if let Some(v) = l.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = self.local.warnings();
        w.extend(self.warnings.lock().iter().cloned());
        w
    }
}
