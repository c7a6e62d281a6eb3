//! The `lint:` section of tocsin.yml: how often the server runs lint, which rules, and the limits
//! the live rules compare against. `tocsin lint --config` reads the same section, so a run by
//! hand and the server's own run judge alike.

use serde::{Deserialize, Deserializer};

/// A duration written as Prometheus writes them (`90s`, `6h`, `1d`), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub i64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        tocsin_model::duration::parse_duration_ms(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LintConfig {
    /// How often the server runs lint and refreshes `tocsin_lint_failed`.
    pub interval: Dur,
    /// Rule ids or globs to run (all when empty), and to leave out.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// How far back a selector must have matched a series, and the window series lifetimes
    /// are measured in.
    pub lookback: Dur,
    /// An alert firing more often than this per day is flapping.
    pub flapping_per_day: u64,
    /// An alert that never fired in this window (capped by the data held) is reported.
    pub never_fired_window: Dur,
    /// A target down this long is reported.
    pub target_down_for: Dur,
    /// A scrape taking more than this share of its timeout is reported.
    pub scrape_duration_ratio: f64,
    /// The data directory's file system predicted to fill within this is reported.
    pub disk_fill_within: Dur,
    /// Cardinality limits: series of one metric name, values of one label name.
    pub max_series_per_metric: u64,
    pub max_values_per_label: u64,
    /// New series per hour (churn).
    pub max_series_created_per_hour: u64,
    /// Live questions asked at once.
    pub concurrency: usize,
}

impl Default for LintConfig {
    fn default() -> Self {
        const H: i64 = 3_600_000;
        LintConfig {
            interval: Dur(10 * 60_000),
            include: Vec::new(),
            exclude: Vec::new(),
            lookback: Dur(6 * H),
            flapping_per_day: 20,
            never_fired_window: Dur(30 * 24 * H),
            target_down_for: Dur(24 * H),
            scrape_duration_ratio: 0.8,
            disk_fill_within: Dur(72 * H),
            max_series_per_metric: 100_000,
            max_values_per_label: 50_000,
            max_series_created_per_hour: 500_000,
            concurrency: 8,
        }
    }
}

impl LintConfig {
    /// Every problem with the values, as `field: message`.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        let positive = [
            ("interval", self.interval.0),
            ("lookback", self.lookback.0),
            ("never_fired_window", self.never_fired_window.0),
            ("target_down_for", self.target_down_for.0),
            ("disk_fill_within", self.disk_fill_within.0),
        ];
        for (name, v) in positive {
            if v <= 0 {
                e.push(format!("{name}: must be positive"));
            }
        }
        if self.interval.0 > 0 && self.interval.0 < 60_000 {
            e.push("interval: must be at least 1m (lint asks the server many questions)".into());
        }
        if !(self.scrape_duration_ratio > 0.0 && self.scrape_duration_ratio <= 1.0) {
            e.push("scrape_duration_ratio: must be in (0, 1]".into());
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            e.push("concurrency: must be between 1 and 64".into());
        }
        for (name, pats) in [("include", &self.include), ("exclude", &self.exclude)] {
            for p in pats.iter() {
                if !crate::registry::ALL
                    .iter()
                    .any(|r| crate::select::glob(p, r.meta().id))
                {
                    e.push(format!("{name}: {p:?} matches no lint rule"));
                }
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let c: LintConfig =
            serde_norway::from_str("interval: 5m\nlookback: 2h\nflapping_per_day: 3\n")
                .unwrap_or_default();
        assert_eq!(c.interval, Dur(300_000));
        assert_eq!(c.flapping_per_day, 3);
        assert!(c.validate().is_empty());
        let bad = LintConfig {
            interval: Dur(1000),
            include: vec!["nope/*".into()],
            ..LintConfig::default()
        };
        let v = bad.validate();
        assert!(v.iter().any(|e| e.starts_with("interval:")), "{v:?}");
        assert!(
            v.iter()
                .any(|e| e.contains("\"nope/*\" matches no lint rule")),
            "{v:?}"
        );
        assert!(serde_norway::from_str::<LintConfig>("intervall: 5m").is_err());
    }
}
