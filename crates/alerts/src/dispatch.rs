//! Aggregation groups and their timers. Every stored alert is routed; for each route it reaches
//! it joins the group of that route and its group labels. A new group flushes `group_wait` after
//! it was created (at once if its first alert started longer ago than that, as long as the group
//! never flushed), then every `group_interval`; an alert joining a group that already flushed waits
//! for the next tick. A flush hands the group's alerts to the pipeline; after a successful one the
//! resolved alerts that did not change meanwhile leave the group, and an empty group is dropped.
//!
//! This is plain state driven by the caller's clock: `take_due(now)` says which groups flush, the
//! caller runs the pipeline, then `finish` reports the outcome.

use std::collections::BTreeMap;
use std::sync::Arc;

use tocsin_model::{Alert, Labels};

use crate::matchers::cmp_alert_labels;
use crate::route::RouteTree;

/// One aggregation group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Index of the route in the tree the dispatcher was built with.
    pub route: usize,
    pub labels: Labels,
    /// Alertmanager's group key, `{route key}:{group labels}`.
    pub key: String,
    pub alerts: BTreeMap<u64, Alert>,
    /// When the group flushes next (ms).
    pub next_flush: i64,
    pub has_flushed: bool,
    /// A flush is running; the group is not taken again until it finishes.
    pub in_flight: bool,
}

/// What one flush of one group hands to the pipeline.
#[derive(Debug, Clone)]
pub struct FlushJob {
    /// The dispatcher the group belongs to; a reload makes a new one, and outcomes of flushes
    /// started before it are ignored.
    pub generation: u64,
    pub route: usize,
    pub group_labels: Labels,
    pub group_key: String,
    /// The flush time: every decision of this flush (resolved or not, muted or not, repeat
    /// interval) is taken at this instant.
    pub now_ms: i64,
    /// The alerts in notification order. Firing ones carry no `ends_at`, so that a receiver never
    /// sees an end in the future, as Alertmanager does.
    pub alerts: Vec<Alert>,
    /// The group's resolved alerts as they were stored when the flush began.
    pub resolved: Vec<Alert>,
}

pub struct Dispatcher {
    routes: Arc<RouteTree>,
    generation: u64,
    groups: BTreeMap<(usize, Labels), Group>,
}

impl Dispatcher {
    pub fn new(routes: Arc<RouteTree>, generation: u64) -> Dispatcher {
        Dispatcher {
            routes,
            generation,
            groups: BTreeMap::new(),
        }
    }

    pub fn routes(&self) -> &Arc<RouteTree> {
        &self.routes
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Routes `alert` (as stored after merging) into its groups, creating them as needed.
    pub fn insert(&mut self, alert: &Alert, now_ms: i64) {
        let routes = Arc::clone(&self.routes);
        for route in routes.matches(&alert.labels) {
            let labels = route.group_labels(&alert.labels);
            let group = self
                .groups
                .entry((route.index, labels.clone()))
                .or_insert_with(|| Group {
                    route: route.index,
                    key: route.group_key(&labels),
                    labels,
                    alerts: BTreeMap::new(),
                    next_flush: now_ms.saturating_add(route.group_wait_ms),
                    has_flushed: false,
                    in_flight: false,
                });
            group.alerts.insert(alert.fingerprint(), alert.clone());
            // An alert that has been firing longer than group_wait gains nothing by waiting.
            if !group.has_flushed && alert.starts_at.saturating_add(route.group_wait_ms) < now_ms {
                group.next_flush = group.next_flush.min(now_ms);
            }
        }
    }

    /// The groups due at `now_ms`, marked in flight and rescheduled one `group_interval` on.
    pub fn take_due(&mut self, now_ms: i64) -> Vec<FlushJob> {
        let mut jobs = Vec::new();
        let mut empty = Vec::new();
        for (id, g) in self.groups.iter_mut() {
            if g.in_flight || g.next_flush > now_ms {
                continue;
            }
            let interval = self
                .routes
                .get(g.route)
                .map_or(crate::config::DEFAULT_GROUP_INTERVAL_MS, |r| {
                    r.group_interval_ms
                });
            g.next_flush = now_ms.saturating_add(interval.max(1));
            g.has_flushed = true;
            if g.alerts.is_empty() {
                empty.push(id.clone());
                continue;
            }
            g.in_flight = true;
            let mut alerts: Vec<&Alert> = g.alerts.values().collect();
            alerts.sort_by(|a, b| cmp_alert_labels(&a.labels, &b.labels));
            let mut sent = Vec::with_capacity(alerts.len());
            let mut resolved = Vec::new();
            for a in alerts {
                if a.resolved_at(now_ms) {
                    resolved.push(a.clone());
                    sent.push(a.clone());
                } else {
                    let mut a = a.clone();
                    a.ends_at = 0;
                    sent.push(a);
                }
            }
            jobs.push(FlushJob {
                generation: self.generation,
                route: g.route,
                group_labels: g.labels.clone(),
                group_key: g.key.clone(),
                now_ms,
                alerts: sent,
                resolved,
            });
        }
        for id in empty {
            self.groups.remove(&id);
        }
        jobs
    }

    /// Records how a flush ended. After a success, resolved alerts that were not updated during
    /// the flush are done with; an alert that fired again meanwhile stays.
    pub fn finish(&mut self, job: &FlushJob, ok: bool) {
        if job.generation != self.generation {
            return;
        }
        let id = (job.route, job.group_labels.clone());
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        g.in_flight = false;
        if ok {
            for r in &job.resolved {
                let fp = r.fingerprint();
                if g.alerts.get(&fp) == Some(r) {
                    g.alerts.remove(&fp);
                }
            }
        }
        if g.alerts.is_empty() {
            self.groups.remove(&id);
        }
    }

    /// Makes every group due at `now_ms` (a replica taking over sending owes what the previous
    /// sender did not send).
    pub fn all_due(&mut self, now_ms: i64) {
        for g in self.groups.values_mut() {
            g.next_flush = g.next_flush.min(now_ms);
        }
    }

    /// The earliest time a group not already flushing is due.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .filter(|g| !g.in_flight)
            .map(|g| g.next_flush)
            .min()
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every alert held by some group (an alert in several groups comes several times).
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.groups.values().flat_map(|g| g.alerts.values())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::AmConfig;

    fn tree(yaml: &str) -> Arc<RouteTree> {
        let cfg = AmConfig::parse(yaml, "t.yml").unwrap();
        Arc::new(RouteTree::from_config(&cfg).unwrap())
    }

    fn alert(name: &str, starts_at: i64, ends_at: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(&[("alertname", name), ("job", "j")]),
            annotations: Default::default(),
            starts_at,
            ends_at,
            generator_url: String::new(),
            updated_at: starts_at,
            timeout: false,
        }
    }

    const CFG: &str = "route:\n  receiver: r\n  group_by: [job]\n  group_wait: 30s\n  group_interval: 5m\nreceivers:\n- name: r\n";

    #[test]
    fn group_wait_then_group_interval() {
        let mut d = Dispatcher::new(tree(CFG), 1);
        d.insert(&alert("A", 1_000, 0), 1_000);
        assert_eq!(d.next_deadline(), Some(31_000));
        assert!(d.take_due(30_999).is_empty());
        let jobs = d.take_due(31_000);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].group_key, "{}:{job=\"j\"}");
        assert_eq!(d.next_deadline(), None, "in flight");
        d.finish(&jobs[0], true);
        assert_eq!(d.next_deadline(), Some(331_000));
        // A new alert after the first flush waits for the next tick.
        d.insert(&alert("B", 100_000, 0), 100_000);
        assert_eq!(d.next_deadline(), Some(331_000));
        let jobs = d.take_due(331_000);
        assert_eq!(jobs[0].alerts.len(), 2);
    }

    #[test]
    fn an_old_alert_flushes_a_new_group_at_once() {
        let mut d = Dispatcher::new(tree(CFG), 1);
        d.insert(&alert("A", 0, 0), 60_000);
        assert_eq!(d.next_deadline(), Some(60_000));
    }

    #[test]
    fn resolved_alerts_leave_after_a_successful_flush_unless_updated() {
        let mut d = Dispatcher::new(tree(CFG), 1);
        d.insert(&alert("A", 0, 10_000), 0);
        d.insert(&alert("B", 0, 0), 0);
        let jobs = d.take_due(30_000);
        assert_eq!(jobs[0].resolved.len(), 1);
        assert_eq!(jobs[0].alerts.iter().filter(|a| a.ends_at == 0).count(), 1);
        d.finish(&jobs[0], false);
        assert_eq!(d.alerts().count(), 2, "kept after a failure");
        let jobs = d.take_due(330_000);
        // A fired again during the flush: it stays.
        d.insert(&alert("A", 0, 0), 331_000);
        d.finish(&jobs[0], true);
        assert_eq!(d.alerts().count(), 2);
        let jobs = d.take_due(630_000);
        assert!(jobs[0].resolved.is_empty());
        d.finish(&jobs[0], true);
        // Everything resolved and flushed: the group goes.
        d.insert(&alert("A", 0, 700_000), 700_000);
        d.insert(&alert("B", 0, 700_000), 700_000);
        let jobs = d.take_due(930_000);
        d.finish(&jobs[0], true);
        assert!(d.is_empty());
    }

    #[test]
    fn stale_outcomes_are_ignored() {
        let mut d = Dispatcher::new(tree(CFG), 1);
        d.insert(&alert("A", 0, 10), 0);
        let mut jobs = d.take_due(30_000);
        jobs[0].generation = 0;
        d.finish(&jobs[0], true);
        assert_eq!(d.alerts().count(), 1);
    }
}
