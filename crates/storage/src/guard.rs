//! Ingest limits applied in front of a store, so that every write path (remote write, line
//! protocol, JSON push, Graphite, scrapes, rules) refuses the same samples with the same message:
//! samples too far ahead of the server's clock (one sample in the year 2300 would otherwise move
//! the head's newest time so far that every normal write after it is "too old"), samples older
//! than time retention keeps (they would be acknowledged, then deleted by the next maintenance),
//! and series with too many labels or with label names or values too long.
//!
//! Retention counts back from the newest data, which in normal operation is the clock; the guard
//! uses the clock, so a sample is refused once it is older than `now - retention_time`.
//!
//! Refusals are per-sample rejections (`Error::is_sample_rejection`): the rest of a batch goes on,
//! and each path counts and reports them as it does out-of-order samples.

use tocsin_model::{Label, Labels};

use crate::{AppendOptions, Appender, CommitStats, Error, Result, SeriesRef};

/// The limits; `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Most a sample's timestamp may be ahead of the clock, in milliseconds.
    pub max_future_ms: i64,
    /// Time retention (`storage.retention_time`), in milliseconds: older samples are refused.
    pub retention_ms: i64,
    /// Most labels per series, `__name__` included.
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_length: usize,
    /// Longest label value, in bytes.
    pub max_label_value_length: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_future_ms: 10 * 60_000,
            retention_ms: 0,
            max_labels_per_series: 64,
            max_label_name_length: 256,
            max_label_value_length: 16 * 1024,
        }
    }
}

impl IngestLimits {
    /// Checks one series' labels; the error names the series and the limit.
    pub fn check_labels<'a>(
        &self,
        pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<()> {
        let n = pairs.len();
        if self.max_labels_per_series > 0 && n > self.max_labels_per_series {
            return Err(Error::LimitExceeded(format!(
                "series {} has {n} labels, more than limits.max_labels_per_series ({})",
                describe(pairs),
                self.max_labels_per_series
            )));
        }
        for (name, value) in pairs.clone() {
            if self.max_label_name_length > 0 && name.len() > self.max_label_name_length {
                return Err(Error::LimitExceeded(format!(
                    "series {}: label name {:?} is {} bytes long, more than \
                     limits.max_label_name_length ({})",
                    describe(pairs),
                    shorten(name),
                    name.len(),
                    self.max_label_name_length
                )));
            }
            if self.max_label_value_length > 0 && value.len() > self.max_label_value_length {
                return Err(Error::LimitExceeded(format!(
                    "series {}: value of label {:?} is {} bytes long, more than \
                     limits.max_label_value_length ({})",
                    describe(pairs),
                    shorten(name),
                    value.len(),
                    self.max_label_value_length
                )));
            }
        }
        Ok(())
    }

    /// Checks a timestamp against `now_ms`; the error names the series (built only on refusal).
    pub fn check_time(&self, t: i64, now_ms: i64, series: impl FnOnce() -> String) -> Result<()> {
        if self.max_future_ms > 0 && t > now_ms.saturating_add(self.max_future_ms) {
            return Err(Error::TooFarInFuture {
                series: series(),
                t,
                when: tocsin_model::time::format_rfc3339_millis(t),
                max_future: format_duration(self.max_future_ms),
            });
        }
        if let Some(oldest) = self.oldest_accepted(now_ms) {
            if t < oldest {
                return Err(Error::OlderThanRetention {
                    series: series(),
                    t,
                    when: tocsin_model::time::format_rfc3339_millis(t),
                    retention: format_duration(self.retention_ms),
                    oldest,
                    oldest_when: tocsin_model::time::format_rfc3339_millis(oldest),
                });
            }
        }
        Ok(())
    }

    /// The oldest timestamp accepted at `now_ms`, if time retention is set.
    pub fn oldest_accepted(&self, now_ms: i64) -> Option<i64> {
        (self.retention_ms > 0).then(|| now_ms.saturating_sub(self.retention_ms))
    }
}

/// `600000` as `10m`, in the largest unit that divides it, as durations are written in configs.
fn format_duration(ms: i64) -> String {
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % len == 0 {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

/// A series for a message, with long values cut so one huge label cannot flood a log.
fn describe<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (n, v)) in pairs.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if i >= 16 {
            out.push_str("...");
            break;
        }
        out.push_str(&shorten(n));
        out.push_str("=\"");
        out.push_str(&shorten(v));
        out.push('"');
    }
    out.push('}');
    out
}

fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn label_pairs(l: &Labels) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
    l.iter()
        .map(|Label { name, value }| (name.as_str(), value.as_str()))
}

/// An appender that applies [`IngestLimits`] before handing samples to `inner`. `now_ms` is the
/// clock when the batch began: batches are short-lived, and reading the clock once keeps the
/// per-sample cost to one comparison.
pub struct Guarded<'a> {
    inner: Box<dyn Appender + 'a>,
    limits: IngestLimits,
    max_t: i64,
    min_t: i64,
    now_ms: i64,
}

impl<'a> Guarded<'a> {
    pub fn new(inner: Box<dyn Appender + 'a>, limits: IngestLimits, now_ms: i64) -> Self {
        let max_t = if limits.max_future_ms > 0 {
            now_ms.saturating_add(limits.max_future_ms)
        } else {
            i64::MAX
        };
        let min_t = limits.oldest_accepted(now_ms).unwrap_or(i64::MIN);
        Self {
            inner,
            limits,
            max_t,
            min_t,
            now_ms,
        }
    }
}

impl Appender for Guarded<'_> {
    fn append(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
        opts: &AppendOptions,
    ) -> Result<SeriesRef> {
        if t > self.max_t || t < self.min_t {
            self.limits
                .check_time(t, self.now_ms, || labels.to_string())?;
        }
        self.limits.check_labels(label_pairs(labels))?;
        self.inner.append(labels, t, v, opts)
    }

    fn append_pairs(&mut self, pairs: &[(&str, &str)], t: i64, v: f64) -> Result<SeriesRef> {
        if t > self.max_t || t < self.min_t {
            self.limits
                .check_time(t, self.now_ms, || describe(pairs.iter().copied()))?;
        }
        self.limits.check_labels(pairs.iter().copied())?;
        self.inner.append_pairs(pairs, t, v)
    }

    fn append_ref(&mut self, r: SeriesRef, t: i64, v: f64) -> Result<bool> {
        // The series behind a reference passed the label checks when it was appended by labels.
        if t > self.max_t || t < self.min_t {
            // Falling back to an append by labels gives the refusal a series name.
            return Ok(false);
        }
        self.inner.append_ref(r, t, v)
    }

    fn commit(self: Box<Self>) -> Result<CommitStats> {
        self.inner.commit()
    }

    fn rollback(self: Box<Self>) {
        self.inner.rollback()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{Appendable, MemoryStore};

    const NOW: i64 = 1_800_000_000_000;

    fn guarded(store: &MemoryStore, limits: IngestLimits) -> Guarded<'_> {
        Guarded::new(store.appender(), limits, NOW)
    }

    #[test]
    fn sample_in_year_2300_is_refused_naming_series_and_time() {
        let store = MemoryStore::new();
        let mut app = guarded(&store, IngestLimits::default());
        let t2300 = 10_413_792_000_000;
        let err = app
            .append_pairs(&[("__name__", "up"), ("job", "x")], t2300, 1.0)
            .unwrap_err();
        assert!(err.is_sample_rejection());
        let msg = err.to_string();
        assert!(
            msg.contains("up") && msg.contains("2300-01-01") && msg.contains("10m"),
            "{msg}"
        );
        // A sample within the bound goes through, and the batch is still usable.
        app.append_pairs(&[("__name__", "up"), ("job", "x")], NOW + 60_000, 1.0)
            .unwrap();
        Box::new(app).commit().unwrap();
    }

    #[test]
    fn sample_older_than_retention_was_acknowledged_then_deleted() {
        let store = MemoryStore::new();
        let limits = IngestLimits {
            retention_ms: 15 * 86_400_000,
            ..IngestLimits::default()
        };
        let mut app = guarded(&store, limits);
        let oldest = NOW - 15 * 86_400_000;
        let err = app
            .append_pairs(&[("__name__", "up"), ("job", "x")], oldest - 1, 1.0)
            .unwrap_err();
        assert!(err.is_sample_rejection());
        let msg = err.to_string();
        assert!(
            msg.contains("{__name__=\"up\", job=\"x\"}")
                && msg.contains(&format!("at {}", oldest - 1))
                && msg.contains("retention_time (15d)")
                && msg.contains(&format!("oldest timestamp accepted now is {oldest}")),
            "{msg}"
        );
        let l = Labels::from_pairs(&[("__name__", "up")]);
        let r = app.append(&l, NOW, 1.0, &AppendOptions::default()).unwrap();
        assert!(!app.append_ref(r, oldest - 1, 1.0).unwrap());
        let err = app
            .append(&l, oldest - 1, 1.0, &AppendOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::OlderThanRetention { .. }), "{err}");
        // The oldest accepted timestamp itself goes through, and the batch goes on.
        app.append_pairs(&[("__name__", "up"), ("job", "x")], oldest, 1.0)
            .unwrap();
        Box::new(app).commit().unwrap();
    }

    #[test]
    fn append_ref_past_the_bound_falls_back_to_labels() {
        let store = MemoryStore::new();
        let mut app = guarded(&store, IngestLimits::default());
        let l = Labels::from_pairs(&[("__name__", "up")]);
        let r = app.append(&l, NOW, 1.0, &AppendOptions::default()).unwrap();
        assert!(!app.append_ref(r, NOW + 3_600_000, 1.0).unwrap());
        let err = app
            .append(&l, NOW + 3_600_000, 1.0, &AppendOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::TooFarInFuture { .. }), "{err}");
    }

    #[test]
    fn label_limits_name_the_series_and_the_setting() {
        let store = MemoryStore::new();
        let limits = IngestLimits {
            max_labels_per_series: 3,
            max_label_name_length: 8,
            max_label_value_length: 10,
            ..IngestLimits::default()
        };
        let mut app = guarded(&store, limits);
        let e = app
            .append_pairs(
                &[("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "3")],
                NOW,
                1.0,
            )
            .unwrap_err();
        assert!(e.is_sample_rejection());
        assert!(e.to_string().contains("max_labels_per_series (3)"), "{e}");
        let e = app
            .append_pairs(&[("__name__", "m"), ("verylongname", "1")], NOW, 1.0)
            .unwrap_err();
        assert!(e.to_string().contains("max_label_name_length (8)"), "{e}");
        let long = "x".repeat(11);
        let e = app
            .append_pairs(&[("__name__", "m"), ("a", &long)], NOW, 1.0)
            .unwrap_err();
        assert!(
            e.to_string().contains("max_label_value_length (10)")
                && e.to_string().contains("\"a\""),
            "{e}"
        );
        app.append_pairs(&[("__name__", "m"), ("a", "ok")], NOW, 1.0)
            .unwrap();
    }

    #[test]
    fn zero_turns_limits_off() {
        let store = MemoryStore::new();
        let limits = IngestLimits {
            max_future_ms: 0,
            retention_ms: 0,
            max_labels_per_series: 0,
            max_label_name_length: 0,
            max_label_value_length: 0,
        };
        let mut app = guarded(&store, limits);
        let big = "v".repeat(100_000);
        app.append_pairs(&[("__name__", "m"), ("a", &big)], i64::MAX - 1, 1.0)
            .unwrap();
    }
}
