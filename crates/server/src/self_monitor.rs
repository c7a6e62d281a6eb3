//! Self-monitoring out of the box: the `self_monitoring:` section, the loop that writes the
//! server's own metrics into its own storage (job="tocsin_self", no scrape job and no credentials
//! needed), and the embedded rule group (`self_rules.yml`) that alerts on them.
//!
//! Writing in-process rather than scraping `/metrics` keeps it working when the API requires
//! credentials or the listener is saturated, which is exactly when it is needed.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde::Deserialize;
use tocsin_collect::expfmt::{Entry, Format, Parser};
use tocsin_collect::scrape::config::Duration as CfgDuration;
use tocsin_model::{Clock, Labels};
use tocsin_rules::LoadedGroup;
use tocsin_storage::{AppendOptions, Appendable};

/// The embedded rule file; its runbook links start with [`DEFAULT_RUNBOOK_BASE`].
pub const RULES: &str = include_str!("self_rules.yml");
/// Name the embedded group's file has in `/api/v1/rules` and alert links.
pub const RULES_FILE: &str = "<builtin>/self_monitoring.yml";
pub const DEFAULT_RUNBOOK_BASE: &str = "https://github.com/tocsin/tocsin/blob/main/README.md";
/// The `job` label of the self-written series.
pub const JOB: &str = "tocsin_self";

/// `self_monitoring:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfMonitorConfig {
    /// Off: neither the series nor the rule group.
    pub enabled: bool,
    /// How often the metrics are written and the group evaluated.
    pub interval: CfgDuration,
    /// Replaces the base of the rules' `runbook_url` annotations (e.g. an internal wiki).
    pub runbook_base: String,
}

impl Default for SelfMonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: CfgDuration(15_000),
            runbook_base: DEFAULT_RUNBOOK_BASE.into(),
        }
    }
}

impl SelfMonitorConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.0 <= 0 {
            return Err("self_monitoring.interval: must be greater than zero".into());
        }
        if self.runbook_base.contains(char::is_whitespace) {
            return Err("self_monitoring.runbook_base: must not contain spaces".into());
        }
        Ok(())
    }

    /// The embedded group as the rule manager takes it; empty when disabled.
    pub fn groups(&self) -> Result<Vec<LoadedGroup>, String> {
        if !self.enabled {
            return Ok(Vec::new());
        }
        let text = RULES.replace(
            DEFAULT_RUNBOOK_BASE,
            self.runbook_base.trim_end_matches('/'),
        );
        let file = tocsin_rules::parse_rule_file(&text, RULES_FILE)
            .map_err(|e| format!("embedded self-monitoring rules: {e}"))?;
        Ok(file
            .groups
            .into_iter()
            .map(|group| LoadedGroup {
                file: RULES_FILE.into(),
                interval_ms: self.interval.0,
                group,
            })
            .collect())
    }
}

/// Free and total bytes of the file system holding `dir`.
pub fn filesystem_bytes(dir: &std::path::Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(dir).ok()?;
    let unit = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Some((
        st.f_bavail.saturating_mul(unit),
        st.f_blocks.saturating_mul(unit),
    ))
}

/// Writes the registry's samples to `store` every interval (read from `settings`, so a reload
/// that changes it applies at the next tick), labelled `job="tocsin_self"` and `instance`.
pub fn spawn_writer(
    registry: Arc<Registry>,
    store: Arc<dyn Appendable>,
    clock: Arc<dyn Clock>,
    instance: String,
    settings: Arc<parking_lot::RwLock<SelfMonitorConfig>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut parser = Parser::new();
        loop {
            let (enabled, every) = {
                let s = settings.read();
                (s.enabled, Duration::from_millis(s.interval.0.max(1) as u64))
            };
            if enabled {
                if let Err(e) = write_once(
                    &registry,
                    store.as_ref(),
                    clock.now_ms(),
                    &instance,
                    &mut parser,
                ) {
                    tracing::warn!(error = %e, "writing self-monitoring metrics failed");
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// One pass: the registry rendered, parsed back and appended in one commit. Returns how many
/// samples were stored.
pub fn write_once(
    registry: &Registry,
    store: &dyn Appendable,
    now_ms: i64,
    instance: &str,
    parser: &mut Parser,
) -> Result<usize, String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .map_err(|e| format!("encoding metrics: {e}"))?;
    let mut samples: Vec<(Labels, f64)> = Vec::new();
    parser
        .parse(text.as_bytes(), Format::OpenMetrics, |e| {
            if let Entry::Sample(s) = e {
                let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(s.labels.len() + 3);
                pairs.push(("__name__", s.name));
                pairs.extend(
                    s.labels
                        .iter()
                        .filter(|(k, _)| *k != "job" && *k != "instance"),
                );
                pairs.push(("job", JOB));
                pairs.push(("instance", instance));
                if let Ok(l) = Labels::try_from_pairs(&{
                    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    pairs
                }) {
                    samples.push((l, s.value));
                }
            }
        })
        .map_err(|e| format!("parsing our own metrics: {e}"))?;
    let mut app = store.appender();
    let opts = AppendOptions::default();
    let mut n = 0;
    for (l, v) in &samples {
        // One bad series (a label too long for the limits) must not cost the others.
        if app.append(l, now_ms, *v, &opts).is_ok() {
            n += 1;
        }
    }
    app.commit().map_err(|e| format!("committing: {e}"))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn embedded_rules_load_and_take_the_runbook_base() {
        let c = SelfMonitorConfig {
            runbook_base: "https://wiki.example/tocsin/".into(),
            ..Default::default()
        };
        let g = c.groups().unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].interval_ms, 15_000);
        let names: Vec<&str> = g[0].group.rules.iter().map(|r| r.name()).collect();
        for want in [
            "TocsinDiskWillFillIn72Hours",
            "TocsinWalCorruptionRepaired",
            "TocsinRuleGroupSlow",
            "TocsinNotificationsFailing",
            "TocsinTargetDown",
            "TocsinFileSdNoTargets",
            "TocsinConfigReloadFailed",
            "Watchdog",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(!c
            .groups()
            .map(|g| format!("{g:?}"))
            .unwrap()
            .contains("github.com"));
        assert!(format!("{g:?}").contains("https://wiki.example/tocsin#watchdog"));
        let off = SelfMonitorConfig {
            enabled: false,
            ..Default::default()
        };
        assert!(off.groups().unwrap().is_empty());
    }

    #[test]
    fn every_rule_has_a_runbook_section_in_the_readme() {
        let readme = include_str!("../../../README.md").to_lowercase();
        let g = SelfMonitorConfig::default().groups().unwrap();
        for r in &g[0].group.rules {
            let anchor = r.name().to_lowercase();
            assert!(
                readme.contains(&format!("#### {anchor}")),
                "README has no `#### {}` section for the runbook link",
                r.name()
            );
        }
    }

    #[test]
    fn filesystem_bytes_of_a_real_directory() {
        let (avail, size) = filesystem_bytes(std::path::Path::new(".")).unwrap();
        assert!(size > 0 && avail <= size);
    }
}
