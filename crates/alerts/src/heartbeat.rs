//! Inbound heartbeats, the dead-man's switch for external jobs: a job pings
//! `POST /api/v1/heartbeat/<name>` when it runs; each heartbeat has a last-seen time (exported as a
//! metric rules can use) and, when configured with a `timeout`, raises a `HeartbeatMissing` alert
//! once it is late and resolves it at the next ping. A ping may carry its own timeout, labels and
//! annotations (`ping_with`, what an Alerta heartbeat sends): that makes a heartbeat alert without
//! being configured; a configured heartbeat's settings take precedence over a ping's. The outbound
//! direction (pinging an external monitor while a watchdog alert fires) is the `heartbeat`
//! receiver in `notify/heartbeat.rs`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::Deserialize;
use tocsin_model::{Alert, Labels};

use crate::error::{Error, Result};

/// One entry of the `heartbeats:` section of tocsin.yml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    pub name: String,
    /// How long after the last ping the heartbeat counts as late, e.g. `26h` for a nightly job.
    pub timeout: String,
    /// Labels of the `HeartbeatMissing` alert (besides `alertname` and `heartbeat`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Last ping (ms); 0 = never seen since it was configured.
    last_ms: i64,
    pings: u64,
    timeout_ms: Option<i64>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// Since when the missing alert fires (ms), 0 when not late.
    late_since: i64,
    /// Configured heartbeats never-seen are measured from when they were configured.
    configured_at: i64,
    /// What the last `ping_with` said; used where the configuration says nothing.
    pinged: Option<PingDetails>,
    /// The missing alert last sent firing, to resolve under its own labels.
    fired: Option<Alert>,
}

/// What a ping may say about its heartbeat besides "now": an Alerta heartbeat's `timeout` and
/// the labels and annotations its `HeartbeatMissing` alert should carry.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PingDetails {
    pub timeout_ms: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl Entry {
    /// A heartbeat first known at `since_ms`, never pinged, without a timeout.
    fn new(since_ms: i64) -> Entry {
        Entry {
            last_ms: 0,
            pings: 0,
            timeout_ms: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            late_since: 0,
            configured_at: since_ms,
            pinged: None,
            fired: None,
        }
    }

    /// The configured timeout, else the last detailed ping's.
    fn timeout(&self) -> Option<i64> {
        self.timeout_ms
            .or_else(|| self.pinged.as_ref().and_then(|p| p.timeout_ms))
    }

    /// Labels and annotations of the missing alert: the configuration's when configured (an
    /// operator's settings are not overridden by whoever can ping), else the last detailed
    /// ping's.
    fn labels_and_annotations(&self) -> (&BTreeMap<String, String>, &BTreeMap<String, String>) {
        match (&self.pinged, self.timeout_ms) {
            (Some(p), None) => (&p.labels, &p.annotations),
            _ => (&self.labels, &self.annotations),
        }
    }
}

/// What `/metrics` and the TSDB writer read about one heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatStatus {
    pub name: String,
    pub last_ms: i64,
    pub pings: u64,
    /// The timeout in force: the configured one, else the last detailed ping's.
    pub timeout_ms: Option<i64>,
    pub late: bool,
    /// The timeout came from a ping (`ping_with`), not from the configuration.
    pub timeout_from_ping: bool,
    /// Labels and annotations its missing alert carries.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct Heartbeats {
    entries: Mutex<BTreeMap<String, Entry>>,
}

/// Heartbeat names end up in URLs and label values; keep them to a safe, readable set.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 200
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(Error::BadData(format!(
            "heartbeat name {name:?}: use 1 to 200 letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(())
}

impl Heartbeats {
    pub fn new() -> Heartbeats {
        Heartbeats::default()
    }

    /// Applies the configured heartbeats (load and reload). Heartbeats no longer configured keep
    /// their last-seen time but stop alerting.
    pub fn configure(&self, cfgs: &[HeartbeatConfig], now_ms: i64) -> Result<()> {
        let mut parsed = Vec::with_capacity(cfgs.len());
        let mut seen = std::collections::HashSet::new();
        for (i, c) in cfgs.iter().enumerate() {
            validate_name(&c.name).map_err(|e| Error::Config(format!("heartbeats[{i}]: {e}")))?;
            if !seen.insert(c.name.as_str()) {
                return Err(Error::Config(format!(
                    "heartbeats[{i}]: heartbeat {:?} is configured twice",
                    c.name
                )));
            }
            let t = tocsin_model::duration::parse_duration_ms(&c.timeout)
                .map_err(|e| Error::Config(format!("heartbeats[{i}].timeout: {e}")))?;
            if t <= 0 {
                return Err(Error::Config(format!(
                    "heartbeats[{i}].timeout: must be positive"
                )));
            }
            parsed.push((c, t));
        }
        let mut m = self.entries.lock();
        for e in m.values_mut() {
            e.timeout_ms = None;
            e.labels.clear();
            e.annotations.clear();
        }
        for (c, t) in parsed {
            let e = m
                .entry(c.name.clone())
                .or_insert_with(|| Entry::new(now_ms));
            e.timeout_ms = Some(t);
            e.labels = c.labels.clone();
            e.annotations = c.annotations.clone();
        }
        Ok(())
    }

    /// Records a ping.
    pub fn ping(&self, name: &str, now_ms: i64) -> Result<()> {
        validate_name(name)?;
        let mut m = self.entries.lock();
        let e = m
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(now_ms));
        e.last_ms = e.last_ms.max(now_ms);
        e.pings += 1;
        Ok(())
    }

    /// Records a ping that also sets the heartbeat's timeout, labels and annotations (used
    /// unless the heartbeat is configured). A ping without a timeout keeps no earlier one: the
    /// sender said it wants none.
    pub fn ping_with(&self, name: &str, now_ms: i64, details: PingDetails) -> Result<()> {
        validate_name(name)?;
        if details.timeout_ms.is_some_and(|t| t <= 0) {
            return Err(Error::BadData(format!(
                "heartbeat {name:?}: timeout must be positive"
            )));
        }
        let mut m = self.entries.lock();
        let e = m
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(now_ms));
        e.last_ms = e.last_ms.max(now_ms);
        e.pings += 1;
        e.pinged = Some(details);
        Ok(())
    }

    /// Sets a ping's timeout and labels known from before a restart (annotations are not kept
    /// across restarts), unless the heartbeat was pinged with details since the start.
    pub fn restore_ping(&self, name: &str, timeout_ms: i64, labels: BTreeMap<String, String>) {
        if validate_name(name).is_err() || timeout_ms <= 0 {
            return;
        }
        let mut m = self.entries.lock();
        let e = m.entry(name.to_string()).or_insert_with(|| Entry::new(0));
        if e.pinged.is_none() {
            e.pinged = Some(PingDetails {
                timeout_ms: Some(timeout_ms),
                labels,
                annotations: BTreeMap::new(),
            });
        }
    }

    /// Sets a last-seen time known from before a restart (read back from the TSDB), so a restart
    /// neither forgets a late heartbeat nor makes a healthy one look late.
    pub fn restore(&self, name: &str, last_ms: i64) {
        if validate_name(name).is_err() {
            return;
        }
        let mut m = self.entries.lock();
        let e = m
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(last_ms));
        e.last_ms = e.last_ms.max(last_ms);
    }

    /// The alerts to hand to the alert manager at `now`: a firing `HeartbeatMissing` for each
    /// late heartbeat (its end `valid_for_ms` ahead, so it resolves by itself if this check stops
    /// running) and a resolved one for each heartbeat that was late and has pinged since.
    pub fn check(&self, now_ms: i64, valid_for_ms: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut m = self.entries.lock();
        for (name, e) in m.iter_mut() {
            let late = e.timeout().is_some_and(|timeout| {
                let since = if e.last_ms > 0 {
                    e.last_ms
                } else {
                    e.configured_at
                };
                if now_ms - since > timeout && e.late_since == 0 {
                    e.late_since = since + timeout;
                }
                now_ms - since > timeout
            });
            if late {
                let a = missing_alert(name, e, now_ms + valid_for_ms);
                // A ping may have changed the labels while the heartbeat stayed late: the alert
                // fired under the old ones is resolved, not left to run out.
                if let Some(old) = e.fired.take().filter(|o| o.labels != a.labels) {
                    out.push(resolved(old, now_ms));
                }
                e.fired = Some(a.clone());
                out.push(a);
            } else if e.late_since != 0 {
                // Resolved under the labels it fired with.
                let a = match e.fired.take() {
                    Some(old) => resolved(old, now_ms),
                    None => missing_alert(name, e, now_ms),
                };
                out.push(a);
                e.late_since = 0;
            }
        }
        out
    }

    pub fn status(&self) -> Vec<HeartbeatStatus> {
        self.entries
            .lock()
            .iter()
            .map(|(n, e)| {
                let (labels, annotations) = e.labels_and_annotations();
                HeartbeatStatus {
                    name: n.clone(),
                    last_ms: e.last_ms,
                    pings: e.pings,
                    timeout_ms: e.timeout(),
                    timeout_from_ping: e.timeout_ms.is_none()
                        && e.pinged.as_ref().is_some_and(|p| p.timeout_ms.is_some()),
                    late: e.late_since != 0,
                    labels: labels.clone(),
                    annotations: annotations.clone(),
                }
            })
            .collect()
    }
}

fn resolved(mut a: Alert, now_ms: i64) -> Alert {
    a.ends_at = now_ms.max(a.starts_at);
    a
}

fn missing_alert(name: &str, e: &Entry, ends_at: i64) -> Alert {
    let (labels, annotations) = e.labels_and_annotations();
    let mut b = Labels::empty().builder();
    for (k, v) in labels {
        b.set(k, v);
    }
    b.set("alertname", "HeartbeatMissing");
    b.set("heartbeat", name);
    let mut annotations = annotations.clone();
    annotations.entry("summary".into()).or_insert_with(|| {
        if e.last_ms > 0 {
            format!(
                "heartbeat {name} last seen at {}",
                tocsin_model::time::format_rfc3339_ms(e.last_ms)
            )
        } else {
            format!("heartbeat {name} has not been seen")
        }
    });
    Alert {
        labels: b.build(),
        annotations,
        starts_at: e.late_since,
        ends_at,
        generator_url: String::new(),
        updated_at: 0,
        timeout: false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(name: &str, timeout: &str) -> HeartbeatConfig {
        HeartbeatConfig {
            name: name.into(),
            timeout: timeout.into(),
            labels: [("severity".to_string(), "page".to_string())].into(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn late_heartbeat_fires_and_resolves_at_the_next_ping() {
        let h = Heartbeats::new();
        h.configure(&[cfg("backup", "10m")], 0).unwrap();
        h.ping("backup", 1_000).unwrap();
        assert!(h.check(5 * 60_000, 60_000).is_empty());
        let a = h.check(12 * 60_000, 60_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].labels.get("alertname"), Some("HeartbeatMissing"));
        assert_eq!(a[0].labels.get("heartbeat"), Some("backup"));
        assert_eq!(a[0].labels.get("severity"), Some("page"));
        assert_eq!(a[0].starts_at, 601_000);
        assert_eq!(a[0].ends_at, 13 * 60_000);
        assert!(h.status()[0].late);
        h.ping("backup", 13 * 60_000).unwrap();
        let a = h.check(13 * 60_000 + 1, 60_000);
        assert_eq!(a.len(), 1);
        assert!(a[0].resolved_at(13 * 60_000 + 1));
        assert!(h.check(14 * 60_000, 60_000).is_empty());
    }

    #[test]
    fn never_seen_heartbeat_is_late_after_timeout_from_configuration() {
        let h = Heartbeats::new();
        h.configure(&[cfg("job", "1m")], 1_000_000).unwrap();
        assert!(h.check(1_050_000, 1).is_empty());
        assert_eq!(h.check(1_061_000, 1).len(), 1);
    }

    #[test]
    fn restored_last_seen_counts_after_a_restart() {
        let h = Heartbeats::new();
        h.configure(&[cfg("job", "1m")], 10_000_000).unwrap();
        h.restore("job", 9_900_000);
        assert_eq!(
            h.check(10_000_000, 1).len(),
            1,
            "late since before the restart"
        );
    }

    #[test]
    fn a_ping_with_a_timeout_makes_an_unconfigured_heartbeat_alert() {
        let h = Heartbeats::new();
        let details = PingDetails {
            timeout_ms: Some(60_000),
            labels: [("severity".to_string(), "major".to_string())].into(),
            annotations: [("tags".to_string(), "dc1".to_string())].into(),
        };
        h.ping_with("cron.host1", 1_000, details.clone()).unwrap();
        assert!(h.check(30_000, 1).is_empty());
        let a = h.check(62_000, 1);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].labels.get("severity"), Some("major"));
        assert_eq!(a[0].labels.get("heartbeat"), Some("cron.host1"));
        assert_eq!(
            a[0].annotations.get("tags").map(String::as_str),
            Some("dc1")
        );
        assert_eq!(h.status()[0].timeout_ms, Some(60_000));
        // The next ping resolves it; a reload of the configuration does not forget the timeout.
        h.ping_with("cron.host1", 63_000, details).unwrap();
        assert!(h.check(63_001, 1)[0].resolved_at(63_001));
        h.configure(&[], 63_002).unwrap();
        assert_eq!(h.status()[0].timeout_ms, Some(60_000));
        assert_eq!(h.check(200_000, 1).len(), 1);
        assert!(h
            .ping_with(
                "x",
                0,
                PingDetails {
                    timeout_ms: Some(0),
                    ..Default::default()
                }
            )
            .is_err());
    }

    #[test]
    fn a_restored_ping_timeout_alerts_after_a_restart() {
        let h = Heartbeats::new();
        h.restore("cron", 1_000);
        h.restore_ping(
            "cron",
            60_000,
            [("severity".to_string(), "critical".to_string())].into(),
        );
        let a = h.check(62_000, 1);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].labels.get("severity"), Some("critical"));
        assert!(h.status()[0].timeout_from_ping);
        // A ping since the start wins over what is restored.
        let h = Heartbeats::new();
        h.ping_with("cron", 1_000, PingDetails::default()).unwrap();
        h.restore_ping("cron", 60_000, BTreeMap::new());
        assert!(h.check(62_000, 1).is_empty());
    }

    #[test]
    fn a_ping_changing_the_labels_resolves_the_alert_fired_under_the_old_ones() {
        let h = Heartbeats::new();
        let with = |sev: &str, t: i64| PingDetails {
            timeout_ms: Some(t),
            labels: [("severity".to_string(), sev.to_string())].into(),
            annotations: BTreeMap::new(),
        };
        h.ping_with("job", 0, with("critical", 1_000)).unwrap();
        let fired = h.check(2_000, 60_000);
        assert_eq!(fired[0].labels.get("severity"), Some("critical"));
        // Pinged again, with other labels: the critical one resolves.
        h.ping_with("job", 2_500, with("major", 60_000)).unwrap();
        let a = h.check(3_000, 60_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].labels.get("severity"), Some("critical"));
        assert!(a[0].resolved_at(3_000));
        // Late again under the new labels, then a ping with yet other labels while late.
        let a = h.check(70_000, 60_000);
        assert_eq!(a[0].labels.get("severity"), Some("major"));
        h.restore_ping("job", 1, BTreeMap::new());
        h.configure(&[cfg("job", "1ms")], 70_000).unwrap();
        let a = h.check(80_000, 60_000);
        assert_eq!(a.len(), 2, "{a:?}");
        assert!(a[0].resolved_at(80_000) && a[0].labels.get("severity") == Some("major"));
        assert_eq!(a[1].labels.get("severity"), Some("page"));
    }

    #[test]
    fn configured_settings_win_over_a_pings() {
        let h = Heartbeats::new();
        h.configure(&[cfg("job", "10m")], 0).unwrap();
        h.ping_with(
            "job",
            1_000,
            PingDetails {
                timeout_ms: Some(1_000),
                labels: [("severity".to_string(), "minor".to_string())].into(),
                annotations: BTreeMap::new(),
            },
        )
        .unwrap();
        assert!(h.check(5_000, 1).is_empty(), "the configured 10m applies");
        let a = h.check(11 * 60_000, 1);
        assert_eq!(a[0].labels.get("severity"), Some("page"));
    }

    #[test]
    fn bad_names_and_config_are_refused() {
        let h = Heartbeats::new();
        assert!(h.ping("a/b", 0).is_err());
        assert!(h.ping("", 0).is_err());
        assert!(h.ping("nightly-backup.db_1", 0).is_ok());
        let e = h.configure(&[cfg("x", "soon")], 0).unwrap_err().to_string();
        assert!(e.contains("heartbeats[0].timeout"), "{e}");
        let e = h
            .configure(&[cfg("x", "1m"), cfg("x", "2m")], 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
