//! The alert manager's read views: each alert with its state (what silences or inhibits it),
//! the alerts and aggregation groups the APIs list, and the alert history, as the Alertmanager
//! API shapes them.

use super::*;

impl AlertManager {
    pub(super) fn status(
        &self,
        rt: &Runtime,
        labels: &Labels,
        processed: bool,
        now: i64,
    ) -> AlertStatus {
        let silenced_by = self.silences.mutes(labels, now);
        let inhibited_by: Vec<String> = rt
            .inhibitor
            .mutes(labels, now)
            .map(|fp| format!("{fp:016x}"))
            .into_iter()
            .collect();
        let state = if !silenced_by.is_empty() || !inhibited_by.is_empty() {
            AlertState::Suppressed
        } else if processed {
            AlertState::Active
        } else {
            AlertState::Unprocessed
        };
        AlertStatus {
            state,
            silenced_by,
            inhibited_by,
        }
    }

    /// What mutes an alert with these labels now: silences (by id) and inhibiting alerts (by
    /// fingerprint); both empty when nothing does. For decisions taken after a flush (an
    /// action's delay), which must see a silence made meanwhile.
    pub fn muted_by(&self, labels: &Labels) -> AlertStatus {
        let now = self.clock.now_ms();
        let rt = self.runtime.read().clone();
        self.status(&rt, labels, true, now)
    }

    pub(super) fn view(&self, rt: &Runtime, a: Alert, processed: bool, now: i64) -> AlertView {
        let status = self.status(rt, &a.labels, processed, now);
        let receivers = rt.routes.receivers_for(&a.labels);
        AlertView {
            alert: a,
            status,
            receivers,
        }
    }

    /// The alert history: every firing with its start and, once resolved, its end.
    pub fn history(
        &self,
        q: &crate::store::HistoryQuery,
    ) -> Result<Vec<crate::store::HistoryEntry>> {
        // Replicas show the shared history (gaps of this one's downtime included); this
        // replica's own record answers when the database does not.
        if let Some(ha) = self.ha() {
            match ha.history_query(q) {
                Ok(rows) => return Ok(rows),
                Err(e) => {
                    tracing::warn!(error = %e, "shared alert history unreadable; answering with this replica's")
                }
            }
        }
        self.store.history_query(q)
    }

    /// `GET /api/v2/alerts`: alerts not resolved, filtered, by fingerprint.
    pub fn alerts(&self, filter: &AlertFilter) -> Vec<AlertView> {
        let now = self.clock.now_ms();
        let rt = self.runtime.read().clone();
        let grouped: HashSet<u64> = self
            .dispatcher
            .lock()
            .alerts()
            .map(Alert::fingerprint)
            .collect();
        let mut out = Vec::new();
        for (fp, a) in self.known_alerts() {
            if a.resolved_at(now) {
                continue;
            }
            let v = self.view(&rt, a, grouped.contains(&fp), now);
            if let Some(re) = &filter.receiver {
                if !v.receivers.iter().any(|r| re.is_match(r)) {
                    continue;
                }
            }
            if filter.admits(&v.alert.labels, &v.status) {
                out.push(v);
            }
        }
        out
    }

    /// Every alert the manager still holds that matches `matchers`, resolved ones included
    /// until they are collected, ordered by labels: what the Alerta-compatible API lists (it
    /// shows closed and expired alerts, as Alerta does).
    pub fn recent_alerts(&self, matchers: &[Matcher]) -> Vec<Alert> {
        self.known_alerts()
            .into_values()
            .filter(|a| matches_all(matchers, &a.labels))
            .collect()
    }

    /// `GET /api/v2/alerts/groups`: the aggregation groups with their alerts that pass the
    /// filter (the receiver filter applies to the group's receiver); groups left empty are
    /// omitted. Sorted by group labels, then receiver.
    pub fn groups(&self, filter: &AlertFilter) -> Vec<GroupView> {
        let now = self.clock.now_ms();
        let rt = self.runtime.read().clone();
        let groups: Vec<(String, Labels, String, Vec<Alert>)> = {
            let d = self.dispatcher.lock();
            d.groups()
                .filter_map(|g| {
                    let route = d.routes().get(g.route)?;
                    Some((
                        route.receiver.clone(),
                        g.labels.clone(),
                        g.key.clone(),
                        g.alerts.values().cloned().collect(),
                    ))
                })
                .collect()
        };
        let mut out = Vec::new();
        for (receiver, labels, group_key, alerts) in groups {
            if let Some(re) = &filter.receiver {
                if !re.is_match(&receiver) {
                    continue;
                }
            }
            let mut views: Vec<AlertView> = alerts
                .into_iter()
                .filter(|a| !a.resolved_at(now))
                .map(|a| self.view(&rt, a, true, now))
                .filter(|v| filter.admits(&v.alert.labels, &v.status))
                .collect();
            if views.is_empty() {
                continue;
            }
            views.sort_by(|a, b| cmp_alert_labels(&a.alert.labels, &b.alert.labels));
            out.push(GroupView {
                labels,
                receiver,
                group_key,
                alerts: views,
            });
        }
        out.sort_by(|a, b| {
            if a.labels == b.labels {
                a.receiver.cmp(&b.receiver)
            } else if labels_before(&a.labels, &b.labels) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        out
    }
}
