//! The storage contract between the flow's stages: `Appendable`/`Appender` for writers,
//! `Queryable`/`Querier` and sample iterators for readers, merging of series sets from several
//! sources, and an in-memory store for tests.

pub mod error;
pub mod guard;
pub mod memory;
pub mod merge;

use tocsin_model::{Labels, Matcher, Sample};

pub use error::{Error, Result};
pub use guard::{Guarded, IngestLimits};
pub use memory::MemoryStore;
pub use merge::{merge_series_sets, MergedSamples, VecSamples};

/// Opaque per-store reference to a series, returned by `append` so callers can skip the label lookup
/// next time (the store verifies it).
pub type SeriesRef = u64;

/// Extra data that travels with a sample. Grows without the `Appender` trait changing.
#[derive(Debug, Clone, Default)]
pub struct AppendOptions {
    /// Exemplars attached to the sample (label set, value, timestamp).
    pub exemplars: Vec<(Labels, f64, Option<i64>)>,
}

/// What a commit did. Samples rejected at commit (a concurrent writer got there first with a newer
/// sample) are counted here and never silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub samples: u64,
    pub series_created: u64,
    pub rejected_out_of_order: u64,
    pub rejected_too_old: u64,
    pub rejected_duplicate: u64,
    /// The first rejection, as a message naming the series and timestamp.
    pub first_rejection: Option<String>,
}

impl CommitStats {
    pub fn rejected(&self) -> u64 {
        self.rejected_out_of_order + self.rejected_too_old + self.rejected_duplicate
    }
}

/// A batch of appends made visible atomically by `commit`.
pub trait Appender: Send {
    /// Appends one sample. Per-sample rejections (out of order, too old) return an error of kind
    /// `BadData` and leave the batch usable.
    fn append(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
        opts: &AppendOptions,
    ) -> Result<SeriesRef>;

    /// Appends with labels given as borrowed pairs sorted by name; lets hot paths avoid allocating a
    /// `Labels` for series that already exist. The default builds a `Labels`.
    fn append_pairs(&mut self, pairs: &[(&str, &str)], t: i64, v: f64) -> Result<SeriesRef> {
        let labels = Labels::try_from_pairs(pairs).map_err(Error::Model)?;
        self.append(&labels, t, v, &AppendOptions::default())
    }

    /// Appends to a series by a reference an earlier `append` returned. `Ok(false)`: the
    /// reference is unknown or no longer valid, and the caller must append by labels. Stores
    /// without references keep the default.
    fn append_ref(&mut self, _r: SeriesRef, _t: i64, _v: f64) -> Result<bool> {
        Ok(false)
    }

    /// Makes the batch durable (written to the WAL where there is one) and visible.
    fn commit(self: Box<Self>) -> Result<CommitStats>;

    /// Discards the batch.
    fn rollback(self: Box<Self>);
}

pub trait Appendable: Send + Sync {
    fn appender(&self) -> Box<dyn Appender + '_>;
}

/// What a select is for, so stores can skip work.
#[derive(Debug, Clone, Default)]
pub struct SelectHints {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub func: Option<String>,
    pub range: i64,
}

/// Iterates a series' samples in timestamp order.
pub trait SampleIter: Send {
    fn next(&mut self) -> Option<Sample>;
    /// Advances to the first sample with timestamp >= t and returns it.
    fn seek(&mut self, t: i64) -> Option<Sample> {
        loop {
            let s = self.next()?;
            if s.t >= t {
                return Some(s);
            }
        }
    }
}

pub struct Series {
    pub labels: Labels,
    pub samples: Box<dyn SampleIter>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Series({})", self.labels)
    }
}

impl Series {
    pub fn collect_samples(mut self) -> (Labels, Vec<Sample>) {
        let mut v = Vec::new();
        while let Some(s) = self.samples.next() {
            v.push(s);
        }
        (self.labels, v)
    }
}

/// Series sorted by labels, each at most once.
pub type SeriesSet = Box<dyn Iterator<Item = Result<Series>> + Send>;

/// A read view over [mint, maxt] (milliseconds, both inclusive).
pub trait Querier: Send + Sync {
    /// Series matching every matcher, sorted by labels, with samples in [mint, maxt].
    fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<SeriesSet>;
    /// Sorted label names of series matching the matchers (all series when empty).
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>>;
    /// Sorted values of `name` over series matching the matchers.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>>;
    /// Problems met so far that did not fail the read but made its result incomplete (e.g. a
    /// damaged block set aside), to pass on as the response's warnings. Call after consuming the
    /// series sets: damage is found while reading.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

pub trait Queryable: Send + Sync {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>>;
}

/// Deletion of samples by series matchers and time range (tombstones in stores that have them).
pub trait Deletable: Send + Sync {
    /// Deletes samples of series matching every matcher within [mint, maxt]; returns how many
    /// series (per block or head) were affected.
    fn delete(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<u64>;
}
