//! The notification pipeline one group flush goes through, in Alertmanager's order: inhibition,
//! the route's active and mute time intervals, silences; then, for every integration of the
//! receiver at once, deduplication against the notification log, delivery with retries, and
//! logging what was sent. A flush succeeds when every integration either had nothing new to say or
//! delivered it; only then does the group forget the resolved alerts it just reported.
//!
//! Acknowledged alerts (`marks.rs`) are not news: unless the route says `notify_acked: true`, a
//! group is repeated every `repeat_interval` only while it holds a firing alert nobody has
//! acknowledged, and an acknowledged alert joining a group does not make it notify. When a group
//! is sent it carries all its alerts, acknowledged ones included, so receivers that track a
//! group's state (a webhook's `status`, an incident keyed by group) never see it as resolved
//! while something in it still fires. Every delivery's outcome is recorded per alert for the
//! alert's timeline.
//!
//! Integrations that ask for every flush (`Notifier::every_flush`, the outbound heartbeat) skip
//! the deduplication and the log: they are handed what the group holds at each flush, even when
//! that is nothing, because for them the flush itself is the news.

use std::sync::Arc;
use std::time::Duration;

use tocsin_model::{Alert, Clock};

use crate::dispatch::FlushJob;
use crate::inhibit::Inhibitor;
use crate::marks::Marks;
use crate::nflog::{Entry, NotificationLog};
use crate::notify::{deliver, Notifier, NotifyCx, NotifyMetrics};
use crate::route::Route;
use crate::silence::Silences;
use crate::timeinterval::TimeIntervals;
use crate::timeline::{record_notifications, NotificationRecord};

/// What the stages consult.
pub(crate) struct Stages<'a> {
    pub inhibitor: &'a Inhibitor,
    pub silences: &'a Silences,
    pub intervals: &'a TimeIntervals,
    pub nflog: &'a NotificationLog,
    pub marks: &'a Marks,
    pub metrics: &'a NotifyMetrics,
    pub notifiers: &'a [Arc<dyn Notifier>],
    pub clock: &'a dyn Clock,
    pub external_url: &'a str,
    /// Set on a replica: the notification log is the shared one, and only the sender sends.
    pub ha: Option<&'a crate::ha::Ha>,
}

/// Whether the route is muted at `now_ms` by its time intervals: outside every one of its
/// `active_time_intervals` (when it has some), or inside one of its `mute_time_intervals`.
pub(crate) fn route_time_muted(route: &Route, intervals: &TimeIntervals, now_ms: i64) -> bool {
    let inactive = !route.active_time_intervals.is_empty()
        && intervals
            .containing(&route.active_time_intervals, now_ms)
            .is_empty();
    inactive
        || !intervals
            .containing(&route.mute_time_intervals, now_ms)
            .is_empty()
}

/// Runs one flush through the pipeline; true when the group's state may advance.
pub(crate) async fn run(st: &Stages<'_>, route: &Route, job: &FlushJob) -> bool {
    let now = job.now_ms;
    // A muted flush is a successful one: Alertmanager drops the alerts from the pipeline and
    // the group carries on, forgetting resolved alerts no one was told about.
    let alerts: Vec<Alert> = if route_time_muted(route, st.intervals, now) {
        tracing::debug!(group = %job.group_key, "route muted by time intervals");
        Vec::new()
    } else {
        job.alerts
            .iter()
            .filter(|a| st.inhibitor.mutes(&a.labels, now).is_none())
            .filter(|a| st.silences.mutes(&a.labels, now).is_empty())
            .cloned()
            .collect()
    };
    if alerts.is_empty() && !st.notifiers.iter().any(|n| n.every_flush()) {
        return true;
    }
    let cx = NotifyCx {
        receiver: route.receiver.clone(),
        group_key: job.group_key.clone(),
        group_labels: job.group_labels.clone(),
        now_ms: now,
        external_url: st.external_url.to_string(),
        group_interval_ms: route.group_interval_ms,
        notification_id: String::new(),
    };
    let mut per_kind: std::collections::HashMap<&'static str, usize> = Default::default();
    let mut runs = Vec::with_capacity(st.notifiers.len());
    for n in st.notifiers {
        // Keys are numbered over every integration of the receiver, so that they stay the same
        // whichever of them run in this flush.
        let idx = per_kind.entry(n.integration()).or_insert(0);
        let key = format!("{}/{}/{}", route.receiver, n.integration(), *idx);
        *idx += 1;
        if alerts.is_empty() && !n.every_flush() {
            continue;
        }
        runs.push(integration(st, route, job, &cx, &alerts, n.as_ref(), key));
    }
    let results = futures_util::future::join_all(runs).await;
    results.into_iter().all(|ok| ok)
}

/// Dedup, deliver and log for one integration; `key` is `<receiver>/<integration>/<index>`.
async fn integration(
    st: &Stages<'_>,
    route: &Route,
    job: &FlushJob,
    cx: &NotifyCx,
    alerts: &[Alert],
    n: &dyn Notifier,
    key: String,
) -> bool {
    let now = job.now_ms;
    // Without send_resolved the receiver never hears of resolved alerts; when nothing fires any
    // more there is nothing to send, but the log still records that the group is over.
    let to_send: Vec<Alert> = if n.send_resolved() {
        alerts.to_vec()
    } else {
        alerts
            .iter()
            .filter(|a| !a.resolved_at(now))
            .cloned()
            .collect()
    };
    if n.every_flush() {
        if st.ha.is_some_and(|ha| !ha.may_send()) {
            // Only the sender pings: a heartbeat from every replica would hide the sender's
            // death from whoever watches for the pings.
            return true;
        }
        // Not logged either: the log exists for the dedup decision this integration skips, and
        // an entry no one reads would cost a durable write at every flush.
        return send(st, route, job, cx, &to_send, n, &key).await;
    }
    let mut firing: Vec<u64> = Vec::new();
    let mut resolved: Vec<u64> = Vec::new();
    for a in alerts {
        if a.resolved_at(now) {
            resolved.push(a.fingerprint());
        } else {
            firing.push(a.fingerprint());
        }
    }
    firing.sort_unstable();
    firing.dedup();
    resolved.sort_unstable();
    resolved.dedup();
    let acked = if route.notify_acked {
        Vec::new()
    } else {
        st.marks.acked_among(&firing, now)
    };
    let entry = match st.ha {
        None => st.nflog.get(&key, &job.group_key),
        Some(ha) => match ha.nflog_get(&key, &job.group_key) {
            Ok(e) => e,
            // Sending on our own (`fallback: notify`) dedups against what we sent ourselves.
            Err(_) if ha.sending_alone() => st.nflog.get(&key, &job.group_key),
            Err(e) => {
                // Undecidable: keep the group's state until the shared log can be read.
                tracing::debug!(integration = %key, error = %e, "shared notification log unreadable");
                return false;
            }
        },
    };
    if !needs_update(
        entry.as_ref(),
        &Sets {
            firing: &firing,
            resolved: &resolved,
            acked: &acked,
        },
        n.send_resolved(),
        route.repeat_interval_ms,
        now,
    ) {
        return true;
    }
    if st.ha.is_some_and(|ha| !ha.may_send()) {
        // The sender owes this; until its log says it was sent, the group keeps what it holds
        // (resolved alerts included), so taking over finds it still due.
        return false;
    }
    let mut cx = cx.clone();
    cx.notification_id = notification_id(
        &key,
        &job.group_key,
        &firing,
        &resolved,
        entry.as_ref().map_or(0, |e| e.sent_at),
    );
    if !to_send.is_empty() && !send(st, route, job, &cx, &to_send, n, &key).await {
        return false;
    }
    let entry = Entry {
        firing,
        resolved,
        sent_at: st.clock.now_ms(),
    };
    // Alertmanager keeps an entry for twice the repeat interval: long enough for the next repeat
    // decision, short enough that an abandoned group is forgotten.
    let retention = route.repeat_interval_ms.saturating_mul(2);
    if let Some(ha) = st.ha {
        let expires_at = entry.sent_at.saturating_add(retention);
        if let Err(e) = ha.nflog_log(&key, &job.group_key, &entry, expires_at) {
            // A taker-over will send it again, with the same notification id.
            tracing::warn!(integration = %key, group = %job.group_key, error = %e, "shared notification log");
            return false;
        }
    }
    if let Err(e) = st.nflog.log(&key, &job.group_key, entry, retention) {
        tracing::warn!(integration = %key, group = %job.group_key, error = %e, "notification log");
        return false;
    }
    true
}

/// The same on every replica for the same news: the integration, the group, what fires and
/// what resolved, and when the group was last sent (so a repeat is a new notification). A
/// receiver that sees one twice (a sender killed between delivering and logging it, then
/// taken over) can tell.
fn notification_id(key: &str, group: &str, firing: &[u64], resolved: &[u64], prev: i64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0]);
    h.update(group.as_bytes());
    h.update([0]);
    for f in firing {
        h.update(f.to_be_bytes());
    }
    h.update([1]);
    for r in resolved {
        h.update(r.to_be_bytes());
    }
    h.update(prev.to_be_bytes());
    let d = h.finalize();
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Delivers `alerts` with retries within one group interval; false (logged) when it failed.
async fn send(
    st: &Stages<'_>,
    route: &Route,
    job: &FlushJob,
    cx: &NotifyCx,
    alerts: &[Alert],
    n: &dyn Notifier,
    key: &str,
) -> bool {
    let budget = Duration::from_millis(route.group_interval_ms.max(1) as u64);
    let res = deliver(n, cx, alerts, st.metrics, budget).await;
    let at_ms = st.clock.now_ms();
    // Integrations that hear every flush (the outbound heartbeat) would add a row per alert at
    // every group interval without telling anyone anything about the alert.
    let recorded = if n.every_flush() { &[][..] } else { alerts };
    let recs: Vec<NotificationRecord> = recorded
        .iter()
        .map(|a| NotificationRecord {
            fingerprint: a.fingerprint(),
            receiver: route.receiver.clone(),
            integration: key.to_string(),
            group_key: job.group_key.clone(),
            firing: !a.resolved_at(job.now_ms),
            error: res.as_ref().err().map(|e| e.message.clone()),
            at_ms,
        })
        .collect();
    // Losing these loses a line of the timeline, not a notification.
    if let Err(e) = record_notifications(st.marks.db(), &recs) {
        tracing::warn!(integration = %key, error = %e, "notification outcome not recorded");
    }
    match res {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                receiver = %route.receiver,
                integration = %key,
                group = %job.group_key,
                error = %e,
                "notification failed"
            );
            false
        }
    }
}

/// Both slices sorted.
fn is_subset(sub: &[u64], sup: &[u64]) -> bool {
    sub.iter().all(|x| sup.binary_search(x).is_ok())
}

/// A flush's alerts as the dedup decision sees them, each sorted.
pub(crate) struct Sets<'a> {
    pub firing: &'a [u64],
    pub resolved: &'a [u64],
    /// Those of `firing` acknowledged (empty when the route notifies acknowledged alerts).
    pub acked: &'a [u64],
}

/// Alertmanager's dedup decision: notify when something fires that the last notification did
/// not report, when everything it reported as firing has resolved, when (with send_resolved)
/// something resolved that it did not report as resolved, or when the repeat interval has passed
/// since it was sent. Acknowledged firing alerts count neither as new nor towards a repeat.
pub(crate) fn needs_update(
    entry: Option<&Entry>,
    sets: &Sets<'_>,
    send_resolved: bool,
    repeat_ms: i64,
    now_ms: i64,
) -> bool {
    let (firing, resolved) = (sets.firing, sets.resolved);
    let unacked: Vec<u64> = if sets.acked.is_empty() {
        firing.to_vec()
    } else {
        firing
            .iter()
            .copied()
            .filter(|fp| sets.acked.binary_search(fp).is_err())
            .collect()
    };
    let Some(e) = entry else {
        // Never notified (or the record expired): only firing alerts nobody has acknowledged
        // are worth a first notification.
        return !unacked.is_empty();
    };
    if !is_subset(&unacked, &e.firing) {
        return true;
    }
    if firing.is_empty() {
        // Alerts that fired and resolved between two notifications were never reported, so
        // there is nothing to take back.
        return !e.firing.is_empty();
    }
    if send_resolved && !is_subset(resolved, &e.resolved) {
        return true;
    }
    !unacked.is_empty() && e.sent_at < now_ms.saturating_sub(repeat_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(firing: &[u64], resolved: &[u64], sent_at: i64) -> Entry {
        Entry {
            firing: firing.to_vec(),
            resolved: resolved.to_vec(),
            sent_at,
        }
    }

    /// `needs_update` with nothing acknowledged.
    fn nu(
        entry: Option<&Entry>,
        firing: &[u64],
        resolved: &[u64],
        send_resolved: bool,
        repeat: i64,
        now: i64,
    ) -> bool {
        nu_acked(entry, firing, resolved, &[], send_resolved, repeat, now)
    }

    fn nu_acked(
        entry: Option<&Entry>,
        firing: &[u64],
        resolved: &[u64],
        acked: &[u64],
        send_resolved: bool,
        repeat: i64,
        now: i64,
    ) -> bool {
        let sets = Sets {
            firing,
            resolved,
            acked,
        };
        needs_update(entry, &sets, send_resolved, repeat, now)
    }

    #[test]
    fn notification_ids_are_the_same_for_the_same_news_only() {
        let id = |k: &str, f: &[u64], r: &[u64], prev: i64| notification_id(k, "g", f, r, prev);
        assert_eq!(
            id("a/webhook/0", &[1, 2], &[], 0),
            id("a/webhook/0", &[1, 2], &[], 0)
        );
        assert_ne!(
            id("a/webhook/0", &[1, 2], &[], 0),
            id("a/webhook/0", &[1], &[2], 0)
        );
        assert_ne!(
            id("a/webhook/0", &[1], &[], 0),
            id("a/webhook/1", &[1], &[], 0)
        );
        // A repeat after the last send is new news.
        assert_ne!(
            id("a/webhook/0", &[1], &[], 0),
            id("a/webhook/0", &[1], &[], 5)
        );
        assert_eq!(id("a/webhook/0", &[1], &[], 0).len(), 32);
    }

    #[test]
    fn dedup_decisions() {
        let h = 3_600_000;
        // First notification only when something fires.
        assert!(nu(None, &[1], &[], true, h, 0));
        assert!(!nu(None, &[], &[1], true, h, 0));
        // A new firing alert.
        assert!(nu(Some(&e(&[1], &[], 0)), &[1, 2], &[], false, h, 10));
        // Fewer firing, nothing newly resolved reported without send_resolved.
        assert!(!nu(Some(&e(&[1, 2], &[], 0)), &[1], &[2], false, h, 10));
        assert!(nu(Some(&e(&[1, 2], &[], 0)), &[1], &[2], true, h, 10));
        assert!(!nu(Some(&e(&[1, 2], &[2], 0)), &[1], &[2], true, h, 10));
        // All resolved: notify whatever send_resolved says, once.
        assert!(nu(Some(&e(&[1], &[], 0)), &[], &[1], false, h, 10));
        assert!(!nu(Some(&e(&[], &[1], 0)), &[], &[1], true, h, 10));
        // Repeat strictly after the interval.
        assert!(!nu(Some(&e(&[1], &[], 0)), &[1], &[], true, h, h));
        assert!(nu(Some(&e(&[1], &[], 0)), &[1], &[], true, h, h + 1));
    }

    #[test]
    fn acknowledged_alerts_are_not_repeated_but_new_ones_and_resolves_notify() {
        let h = 1_000;
        let sent = e(&[1, 2], &[], 0);
        // Every firing alert acknowledged: no repeat, however late.
        assert!(!nu_acked(
            Some(&sent),
            &[1, 2],
            &[],
            &[1, 2],
            true,
            h,
            10 * h
        ));
        // One of them not acknowledged: the group repeats (with both).
        assert!(nu_acked(Some(&sent), &[1, 2], &[], &[1], true, h, 10 * h));
        // A new alert in an acknowledged group notifies.
        assert!(nu_acked(Some(&sent), &[1, 2, 3], &[], &[1, 2], true, h, 10));
        // An acknowledged alert new to the group is no news.
        assert!(!nu_acked(
            Some(&e(&[1], &[], 0)),
            &[1, 2],
            &[],
            &[1, 2],
            true,
            h,
            10
        ));
        // A resolve still notifies while the rest is acknowledged.
        assert!(nu_acked(Some(&sent), &[1], &[2], &[1], true, h, 10));
        // Everything resolved.
        assert!(nu_acked(Some(&sent), &[], &[1, 2], &[], false, h, 10));
        // The record expired (gc): acknowledged alerts alone do not start over.
        assert!(!nu_acked(None, &[1, 2], &[], &[1, 2], true, h, 10 * h));
        assert!(nu_acked(None, &[1, 2], &[], &[1], true, h, 10 * h));
    }
}
