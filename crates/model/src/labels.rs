//! Label sets: sorted by name, unique names, cheap to clone (one `Arc`) and to compare.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

pub const METRIC_NAME: &str = "__name__";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A sorted set of labels with unique names. Empty values are never stored: an empty value means
/// the label is absent, as in Prometheus.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    pub fn empty() -> Self {
        Self(Arc::from(Vec::new()))
    }

    /// Builds from pairs in any order; drops empty values; errors on duplicate names.
    pub fn try_from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Result<Self> {
        let mut v: Vec<Label> = pairs
            .iter()
            .filter(|(_, val)| !val.as_ref().is_empty())
            .map(|(n, val)| Label::new(n.as_ref(), val.as_ref()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        for w in v.windows(2) {
            if w[0].name == w[1].name {
                return Err(Error::DuplicateLabel(w[0].name.clone()));
            }
        }
        Ok(Self(Arc::from(v)))
    }

    /// Builds from pairs; a later duplicate name replaces an earlier one. For literals in code and tests.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Self {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n.as_ref(), v.as_ref());
        }
        b.build()
    }

    /// Takes labels already sorted by name with unique names and no empty values.
    pub fn from_sorted_unchecked(v: Vec<Label>) -> Self {
        Self(Arc::from(v))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// A stable 64-bit fingerprint; equal to `hash_label_pairs` over the same pairs in sorted order.
    pub fn hash(&self) -> u64 {
        hash_label_pairs(self.0.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// Checks names for Prometheus's legacy charset (and the metric name's own charset).
    pub fn validate(&self) -> Result<()> {
        for l in self.0.iter() {
            validate_label_name(&l.name)?;
        }
        Ok(())
    }

    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.to_vec(),
        }
    }
}

/// Hashes label pairs that are already sorted by name, the same way `Labels::hash` does, without
/// building a `Labels`. The ingest hot path uses this to find an existing series without allocating.
pub fn hash_label_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    // Hand-rolled because this runs once per ingested sample: a word-at-a-time multiply-rotate
    // over the strings (no copying, no per-call setup), with a full avalanche at the end so every
    // output bit, including the low ones that pick a stripe, depends on every input bit. Equality
    // is always confirmed on the labels themselves, so this only has to spread keys well.
    const K: u64 = 0x517c_c1b7_2722_0a95;
    #[inline(always)]
    fn mix(h: u64, w: u64) -> u64 {
        (h.rotate_left(5) ^ w).wrapping_mul(K)
    }
    #[inline(always)]
    fn bytes(mut h: u64, b: &[u8]) -> u64 {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = mix(h, u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length separates strings that differ only by trailing zero bytes or by where one
        // string ends and the next begins.
        mix(mix(h, u64::from_le_bytes(w)), b.len() as u64)
    }
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for (n, v) in pairs {
        if v.is_empty() {
            continue;
        }
        h = bytes(h, n.as_bytes());
        h = bytes(h, v.as_bytes());
    }
    // fmix64 finaliser.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Validates a label name: `[a-zA-Z_][a-zA-Z0-9_]*`, non-empty.
pub fn validate_label_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidLabelName {
            name: name.to_string(),
            reason,
        })
    };
    let b = name.as_bytes();
    if b.is_empty() {
        return bad("label name is empty");
    }
    if !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return bad("label name must start with a letter or underscore");
    }
    if !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
        return bad("label name may only contain letters, digits and underscores");
    }
    Ok(())
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders as Prometheus does: label by label, name then value; a prefix sorts first.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            match a.name.cmp(&b.name).then_with(|| a.value.cmp(&b.value)) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl fmt::Display for Labels {
    /// `{__name__="m", a="b"}` with Go-style quoting of values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Mutable staging for a label set; `build` sorts and drops empty values.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        if let Some(l) = self.labels.iter_mut().find(|l| l.name == name) {
            l.value = value.to_string();
        } else {
            self.labels.push(Label::new(name, value));
        }
        self
    }
    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }
    /// The value of `name`; an empty value counts as absent, as it does once built.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name && !l.value.is_empty())
            .map(|l| l.value.as_str())
    }
    /// The labels with non-empty values, in insertion order (names of a `Labels` it was made
    /// from come first, sorted). Relabelling walks a snapshot of this while it edits.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.labels.iter().filter(|l| !l.value.is_empty())
    }
    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) -> &mut Self {
        self.labels.retain(|l| keep(l));
        self
    }
    pub fn build(&self) -> Labels {
        let mut v: Vec<Label> = self
            .labels
            .iter()
            .filter(|l| !l.value.is_empty())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(Arc::from(v))
    }
}

impl From<&Labels> for LabelsBuilder {
    fn from(l: &Labels) -> Self {
        l.builder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_hash_matches_pairs() {
        let l = Labels::from_pairs(&[("b", "2"), ("__name__", "up"), ("a", "1"), ("e", "")]);
        assert_eq!(l.to_string(), r#"{__name__="up", a="1", b="2"}"#);
        let h =
            hash_label_pairs([("__name__", "up"), ("a", "1"), ("b", "2"), ("e", "")].into_iter());
        assert_eq!(l.hash(), h);
        assert_eq!(l.get("a"), Some("1"));
        // Boundaries between strings matter.
        let x = hash_label_pairs([("ab", "c")].into_iter());
        let y = hash_label_pairs([("a", "bc")].into_iter());
        assert_ne!(x, y);
        let z = hash_label_pairs([("a", "b\0")].into_iter());
        assert_ne!(hash_label_pairs([("a", "b")].into_iter()), z);
        assert_eq!(l.get("e"), None);
    }

    #[test]
    fn builder_get_iter_retain() {
        let base = Labels::from_pairs(&[("b", "2"), ("a", "1")]);
        let mut b = LabelsBuilder::from(&base);
        b.set("c", "3").set("a", "").set("d", "4");
        assert_eq!(b.get("a"), None);
        assert_eq!(b.get("c"), Some("3"));
        let names: Vec<&str> = b.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "d"]);
        b.retain(|l| l.name != "d");
        assert_eq!(b.build().to_string(), r#"{b="2", c="3"}"#);
    }

    #[test]
    fn duplicates_rejected() {
        assert!(Labels::try_from_pairs(&[("a", "1"), ("a", "2")]).is_err());
    }

    #[test]
    fn label_name_validation() {
        assert!(validate_label_name("").is_err());
        assert!(validate_label_name("1a").is_err());
        assert!(validate_label_name("a-b").is_err());
        assert!(validate_label_name("_a1").is_ok());
    }

    #[test]
    fn ordering_prefix_first() {
        let a = Labels::from_pairs(&[("a", "1")]);
        let b = Labels::from_pairs(&[("a", "1"), ("b", "1")]);
        assert!(a < b);
    }
}
