//! A scrape target: its labels after relabelling, its URL, and the health the targets API shows.
//! Label population follows Prometheus: discovered labels, then job defaults (`job`, `__scheme__`,
//! `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__`, `__param_*`), then
//! `relabel_configs`, then `instance` from `__address__`, then every `__`-prefixed label is removed.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tocsin_model::{Labels, LabelsBuilder};

use super::config::ResolvedScrape;
use crate::relabel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the last scrape left behind, for `/api/v1/targets`.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub health: Health,
    pub last_error: String,
    /// Unix ms of the last scrape's start; 0 before the first.
    pub last_scrape_ms: i64,
    pub last_duration_secs: f64,
    pub last_samples: u64,
}

impl Default for TargetStatus {
    fn default() -> Self {
        Self {
            health: Health::Unknown,
            last_error: String::new(),
            last_scrape_ms: 0,
            last_duration_secs: 0.0,
            last_samples: 0,
        }
    }
}

#[derive(Debug)]
pub struct Target {
    /// Final labels, attached to every scraped series.
    pub labels: Labels,
    /// Labels as discovered, before relabelling (with the job defaults), for the API.
    pub discovered: BTreeMap<String, String>,
    pub url: String,
    pub interval_ms: i64,
    pub timeout_ms: i64,
    pub status: Mutex<TargetStatus>,
}

impl Target {
    /// Identity across discovery updates and reloads: same labels and URL, same target.
    pub fn key(&self) -> u64 {
        let mut h = self.labels.hash();
        for b in self.url.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        h ^ (self.interval_ms as u64).rotate_left(17) ^ (self.timeout_ms as u64).rotate_left(41)
    }
}

/// The outcome of populating one discovered target.
pub enum Populated {
    Target(Target),
    /// Dropped by relabelling; the discovered labels are kept for `droppedTargets`.
    Dropped(BTreeMap<String, String>),
    /// Unusable (no address, bad interval label, invalid label); logged and listed as dropped.
    Invalid(BTreeMap<String, String>, String),
}

/// Builds a target from one discovered label set (group labels already merged in).
pub fn populate(cfg: &ResolvedScrape, mut discovered: BTreeMap<String, String>) -> Populated {
    let c = &cfg.cfg;
    let mut defaults: Vec<(String, String)> = vec![
        ("job".into(), c.job_name.clone()),
        ("__scrape_interval__".into(), fmt_duration(cfg.interval_ms)),
        ("__scrape_timeout__".into(), fmt_duration(cfg.timeout_ms)),
        ("__metrics_path__".into(), c.metrics_path.clone()),
        ("__scheme__".into(), c.scheme.clone()),
    ];
    for (k, v) in &c.params {
        if let Some(first) = v.first() {
            defaults.push((format!("__param_{k}"), first.clone()));
        }
    }
    for (k, v) in defaults {
        discovered.entry(k).or_insert(v);
    }
    let mut lb = LabelsBuilder::new();
    for (k, v) in &discovered {
        lb.set(k, v);
    }
    if !relabel::process(&mut lb, &c.relabel_configs) {
        return Populated::Dropped(discovered);
    }
    let l = lb.build();
    let Some(addr) = l.get("__address__").filter(|a| !a.is_empty()) else {
        return Populated::Invalid(discovered, "no __address__ label".into());
    };
    let addr = addr.to_string();
    if addr.contains('/') {
        return Populated::Invalid(
            discovered,
            format!("__address__ {addr:?} must be host:port, without a scheme or path"),
        );
    }
    let interval_ms = match l.get("__scrape_interval__") {
        Some(s) => match tocsin_model::duration::parse_duration_ms(s) {
            Ok(v) if v > 0 => v,
            _ => {
                return Populated::Invalid(discovered, format!("invalid __scrape_interval__ {s:?}"))
            }
        },
        None => cfg.interval_ms,
    };
    let timeout_ms = match l.get("__scrape_timeout__") {
        Some(s) => match tocsin_model::duration::parse_duration_ms(s) {
            Ok(v) if v > 0 => v,
            _ => {
                return Populated::Invalid(discovered, format!("invalid __scrape_timeout__ {s:?}"))
            }
        },
        None => cfg.timeout_ms,
    };
    if timeout_ms > interval_ms {
        return Populated::Invalid(
            discovered,
            format!("scrape timeout {timeout_ms}ms is greater than the interval {interval_ms}ms"),
        );
    }
    let scheme = l.get("__scheme__").unwrap_or("http").to_string();
    let path = l.get("__metrics_path__").unwrap_or("/metrics").to_string();
    let mut url = match reqwest::Url::parse(&format!("{scheme}://{addr}{path}")) {
        Ok(u) => u,
        Err(e) => {
            return Populated::Invalid(discovered, format!("invalid target URL: {e}"));
        }
    };
    {
        // Params from the config, each overridden by a `__param_<name>` label when present.
        let mut q: Vec<(String, String)> = Vec::new();
        for (k, vs) in &c.params {
            match l.get(&format!("__param_{k}")) {
                Some(v) => q.push((k.clone(), v.to_string())),
                None => q.extend(vs.iter().map(|v| (k.clone(), v.clone()))),
            }
        }
        for lab in l.iter() {
            if let Some(k) = lab.name.strip_prefix("__param_") {
                if !c.params.contains_key(k) {
                    q.push((k.to_string(), lab.value.clone()));
                }
            }
        }
        if !q.is_empty() {
            url.query_pairs_mut().extend_pairs(q);
        }
    }
    let mut out = LabelsBuilder::new();
    for lab in l.iter() {
        if !lab.name.starts_with("__") && !lab.value.is_empty() {
            out.set(&lab.name, &lab.value);
        }
    }
    if l.get("instance").is_none() {
        out.set("instance", &addr);
    }
    let labels = out.build();
    if let Err(e) = labels.validate() {
        return Populated::Invalid(discovered, e.to_string());
    }
    Populated::Target(Target {
        labels,
        discovered,
        url: url.to_string(),
        interval_ms,
        timeout_ms,
        status: Mutex::new(TargetStatus::default()),
    })
}

/// Formats like Prometheus's model.Duration (`15s`, `1m30s`, `2h`).
pub fn fmt_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let units = [
        ("y", 365 * 24 * 3_600_000i64),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = ms;
    let mut s = String::new();
    for (u, n) in units {
        if rest >= n {
            s.push_str(&format!("{}{}", rest / n, u));
            rest %= n;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_like_prometheus() {
        assert_eq!(fmt_duration(15_000), "15s");
        assert_eq!(fmt_duration(90_000), "1m30s");
        assert_eq!(fmt_duration(7_200_000), "2h");
        assert_eq!(fmt_duration(1500), "1s500ms");
    }
}
