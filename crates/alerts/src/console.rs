//! The alert console's list: every alert the manager knows (plus those resolved recently, from
//! the history once `gc` dropped them from memory) filtered by matchers, free text and console
//! state, grouped as the route tree groups them or by one label, sorted by severity then age,
//! counted per state and per group, and cut to one page, all on the server so a console with
//! tens of thousands of alerts receives only what it shows. Also the silence changes the console
//! is told about live (`upsert_silence`, `expire_silence` publish events).

use std::collections::HashMap;

use tocsin_model::{Alert, Labels, Matcher};

use crate::error::Result;
use crate::events::{AlertEvent, EventKind};
use crate::manager::AlertManager;
use crate::matchers::matches_all;
use crate::silence::Silence;

/// Most resolved alerts read back from the history for one list.
pub const MAX_HISTORY_RESOLVED: usize = 10_000;

/// An alert's state as the console shows it: one per alert, the first that applies in this
/// order: resolved, shelved, silenced, inhibited, acknowledged, firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsoleState {
    Firing,
    Acknowledged,
    Shelved,
    Silenced,
    Inhibited,
    Resolved,
}

impl ConsoleState {
    pub const ALL: [ConsoleState; 6] = [
        ConsoleState::Firing,
        ConsoleState::Acknowledged,
        ConsoleState::Shelved,
        ConsoleState::Silenced,
        ConsoleState::Inhibited,
        ConsoleState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleState::Firing => "firing",
            ConsoleState::Acknowledged => "acknowledged",
            ConsoleState::Shelved => "shelved",
            ConsoleState::Silenced => "silenced",
            ConsoleState::Inhibited => "inhibited",
            ConsoleState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<ConsoleState> {
        ConsoleState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts per console state, indexed as `ConsoleState::ALL`.
pub type StateCounts = [usize; 6];

/// The `severity` label, ranked: critical before error before warning before info before none
/// (absent or any other value). Common synonyms rank with their level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
    None,
}

impl Severity {
    pub fn of(labels: &Labels) -> Severity {
        const LEVELS: [(Severity, &[&str]); 4] = [
            (
                Severity::Critical,
                &["critical", "crit", "fatal", "page", "emergency", "alert"],
            ),
            (Severity::Error, &["error", "err", "major", "high"]),
            (Severity::Warning, &["warning", "warn", "minor", "medium"]),
            (Severity::Info, &["info", "informational", "notice", "low"]),
        ];
        let Some(v) = labels.get("severity") else {
            return Severity::None;
        };
        // Compared in place: this runs for every alert of every list.
        LEVELS
            .iter()
            .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(v)))
            .map_or(Severity::None, |(s, _)| *s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::None => "none",
        }
    }
}

/// How rows are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// As the route tree groups them: one row per (alert, aggregation group) it belongs to.
    Route,
    /// By the value of one label ("" when the alert lacks it).
    Label(String),
}

/// Where the console learns which alerts are acknowledged or shelved (the manager's `marks`;
/// tests give their own).
pub trait MarkSource {
    /// `Shelved` or `Acknowledged` when either applies to the alert now, else `None`.
    fn mark(&self, fingerprint: u64, now_ms: i64) -> Option<ConsoleState>;
}

/// No acknowledgements nor shelves.
pub struct NoMarks;

/// The marks in force at one instant, read once per list.
struct MarkSnapshot(HashMap<u64, ConsoleState>);

impl MarkSource for MarkSnapshot {
    fn mark(&self, fingerprint: u64, _: i64) -> Option<ConsoleState> {
        self.0.get(&fingerprint).copied()
    }
}

impl MarkSource for NoMarks {
    fn mark(&self, _: u64, _: i64) -> Option<ConsoleState> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct ConsoleQuery {
    pub matchers: Vec<Matcher>,
    /// Case-insensitive substring of a label value or an annotation value; empty matches all.
    pub text: String,
    /// Empty lets every state through.
    pub states: Vec<ConsoleState>,
    pub group_by: Option<GroupBy>,
    /// Only rows of the group with this key (after grouping).
    pub group: Option<String>,
    /// Resolved alerts are listed when they ended at most this long ago; 0 lists none.
    pub resolved_within_ms: i64,
    pub offset: usize,
    pub limit: usize,
    /// Most groups listed in the totals (the largest first after severity).
    pub group_limit: usize,
}

impl Default for ConsoleQuery {
    fn default() -> Self {
        Self {
            matchers: Vec::new(),
            text: String::new(),
            states: Vec::new(),
            group_by: None,
            group: None,
            resolved_within_ms: 15 * 60_000,
            offset: 0,
            limit: 100,
            group_limit: 100,
        }
    }
}

/// One row of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleRow {
    pub alert: Alert,
    pub fingerprint: u64,
    pub state: ConsoleState,
    pub severity: Severity,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
    pub receivers: Vec<String>,
    /// The key of the group this row is listed under, when grouped.
    pub group: Option<String>,
    /// Resolved and known only from the history: labels and times, no annotations.
    pub from_history: bool,
    /// The acknowledgement in force (filled in by `console`, which reads the manager's marks).
    pub ack: Option<crate::marks::Ack>,
    pub shelve: Option<crate::marks::Shelve>,
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTotal {
    pub key: String,
    pub labels: Labels,
    /// The route's receiver (route grouping only).
    pub receiver: Option<String>,
    pub count: usize,
    pub states: StateCounts,
    /// Its most severe row.
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsolePage {
    /// Rows that pass every filter (before paging).
    pub total: usize,
    /// Per state, over the alerts that pass matchers and text (not the state filter), so a
    /// console can show what each state chip would list.
    pub states: StateCounts,
    /// Per group, over the rows that pass every filter but `group`, at most `group_limit`.
    pub groups: Vec<GroupTotal>,
    /// How many groups there are in all.
    pub groups_total: usize,
    pub rows: Vec<ConsoleRow>,
}

/// An alert that passed matchers and text, with what its state was decided from.
struct Entry {
    alert: Alert,
    /// `alert` is a copy without annotations (see `light`): read the stored one for the page.
    light: bool,
    fp: u64,
    state: ConsoleState,
    severity: Severity,
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
    from_history: bool,
}

/// Case-insensitive substring test; `needle` is already lower case.
pub fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(needle)
}

/// What the list needs of a stored alert: labels (shared, not copied) and times.
fn light(a: &Alert) -> Alert {
    Alert {
        labels: a.labels.clone(),
        annotations: Default::default(),
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        generator_url: String::new(),
        updated_at: a.updated_at,
        timeout: a.timeout,
    }
}

fn text_matches(a: &Alert, needle: &str) -> bool {
    needle.is_empty()
        || a.labels.iter().any(|l| contains_ci(&l.value, needle))
        || a.annotations.values().any(|v| contains_ci(v, needle))
}

impl AlertManager {
    /// The console's list, with the acknowledgements and shelves in force now.
    pub fn console(&self, q: &ConsoleQuery) -> Result<ConsolePage> {
        let now = self.clock.now_ms();
        let (acks, shelves) = self.marks().all(now);
        let mut m: HashMap<u64, ConsoleState> = acks
            .into_iter()
            .map(|(fp, _)| (fp, ConsoleState::Acknowledged))
            .collect();
        // A shelf shows over an acknowledgement.
        m.extend(
            shelves
                .into_iter()
                .map(|(fp, _)| (fp, ConsoleState::Shelved)),
        );
        let mut page = self.console_with(q, &MarkSnapshot(m))?;
        for r in &mut page.rows {
            r.ack = self.marks().ack_of(r.fingerprint, now);
            r.shelve = self.marks().shelve_of(r.fingerprint, now);
        }
        Ok(page)
    }

    /// The console's list, with acknowledgements and shelves from `marks`.
    pub fn console_with(&self, q: &ConsoleQuery, marks: &dyn MarkSource) -> Result<ConsolePage> {
        let now = self.clock.now_ms();
        let rt = self.runtime.read().clone();
        let resolved_since = (q.resolved_within_ms > 0).then(|| now - q.resolved_within_ms);
        let listed = |a: &Alert| match resolved_since {
            _ if !a.resolved_at(now) => true,
            Some(since) => a.ends_at >= since,
            None => false,
        };
        let admitted = |a: &Alert| listed(a) && matches_all(&q.matchers, &a.labels);
        let needle = q.text.to_lowercase();

        // Only what sorting, grouping and state need is copied out of the store (labels are
        // shared, annotations are not copied): the page's rows are read back in full at the end.
        let mut alerts: HashMap<u64, (Alert, bool)> = self
            .store
            .scan(|fp, a| (admitted(a) && text_matches(a, &needle)).then(|| (fp, (light(a), true))))
            .into_iter()
            .collect();
        // Resolved alerts the store dropped but a group still holds until their resolve is sent.
        let held: Vec<Alert> = {
            let d = self.dispatcher.lock();
            d.alerts()
                .filter(|a| a.resolved_at(now) && admitted(a) && text_matches(a, &needle))
                .cloned()
                .collect()
        };
        for a in held {
            let fp = a.fingerprint();
            if !alerts.contains_key(&fp) && self.store.get(fp).is_none() {
                alerts.insert(fp, (a, false));
            }
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(alerts.len());
        for (fp, (alert, light)) in alerts {
            let (state, silenced_by, inhibited_by) = if alert.resolved_at(now) {
                (ConsoleState::Resolved, Vec::new(), Vec::new())
            } else {
                let silenced_by = self.silences.mutes(&alert.labels, now);
                let inhibited_by: Vec<String> = rt
                    .inhibitor
                    .mutes(&alert.labels, now)
                    .map(|f| format!("{f:016x}"))
                    .into_iter()
                    .collect();
                let mark = marks.mark(fp, now);
                let state = if mark == Some(ConsoleState::Shelved) {
                    ConsoleState::Shelved
                } else if !silenced_by.is_empty() {
                    ConsoleState::Silenced
                } else if !inhibited_by.is_empty() {
                    ConsoleState::Inhibited
                } else if mark == Some(ConsoleState::Acknowledged) {
                    ConsoleState::Acknowledged
                } else {
                    ConsoleState::Firing
                };
                (state, silenced_by, inhibited_by)
            };
            entries.push(Entry {
                severity: Severity::of(&alert.labels),
                alert,
                light,
                fp,
                state,
                silenced_by,
                inhibited_by,
                from_history: false,
            });
        }
        if let Some(since) = resolved_since {
            let known: std::collections::HashSet<u64> = entries.iter().map(|e| e.fp).collect();
            for h in self.store.resolved_since(since, MAX_HISTORY_RESOLVED)? {
                if known.contains(&h.fingerprint) || self.store.get(h.fingerprint).is_some() {
                    continue;
                }
                if !matches_all(&q.matchers, &h.labels) {
                    continue;
                }
                let alert = Alert {
                    labels: h.labels,
                    annotations: Default::default(),
                    starts_at: h.starts_at,
                    ends_at: h.ends_at,
                    generator_url: String::new(),
                    updated_at: h.ends_at,
                    timeout: false,
                };
                if !text_matches(&alert, &needle) {
                    continue;
                }
                entries.push(Entry {
                    severity: Severity::of(&alert.labels),
                    alert,
                    light: false,
                    fp: h.fingerprint,
                    state: ConsoleState::Resolved,
                    silenced_by: Vec::new(),
                    inhibited_by: Vec::new(),
                    from_history: true,
                });
            }
        }

        let mut page = ConsolePage::default();
        for e in &entries {
            page.states[e.state.index()] += 1;
        }
        if !q.states.is_empty() {
            entries.retain(|e| q.states.contains(&e.state));
        }

        // Rows: (entry, group index into `groups`).
        let mut groups: Vec<GroupTotal> = Vec::new();
        let mut rows: Vec<(usize, Option<usize>)> = Vec::with_capacity(entries.len());
        match &q.group_by {
            None => rows.extend((0..entries.len()).map(|i| (i, None))),
            Some(by) => {
                let mut index: HashMap<String, usize> = HashMap::new();
                for (i, e) in entries.iter().enumerate() {
                    let mut add = |key: String, labels: Labels, receiver: Option<String>| {
                        let g = *index.entry(key.clone()).or_insert_with(|| {
                            groups.push(GroupTotal {
                                key,
                                labels,
                                receiver,
                                count: 0,
                                states: [0; 6],
                                severity: Severity::None,
                            });
                            groups.len() - 1
                        });
                        let t = &mut groups[g];
                        t.count += 1;
                        t.states[e.state.index()] += 1;
                        t.severity = t.severity.min(e.severity);
                        rows.push((i, Some(g)));
                    };
                    match by {
                        GroupBy::Label(name) => {
                            let v = e.alert.labels.get(name).unwrap_or("");
                            add(v.to_string(), Labels::from_pairs(&[(name, v)]), None);
                        }
                        GroupBy::Route => {
                            for route in rt.routes.matches(&e.alert.labels) {
                                let labels = route.group_labels(&e.alert.labels);
                                add(
                                    route.group_key(&labels),
                                    labels,
                                    Some(route.receiver.clone()),
                                );
                            }
                        }
                    }
                }
            }
        }
        // Groups: most severe first, then the largest, then by key.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|&a, &b| {
            let (ga, gb) = (&groups[a], &groups[b]);
            ga.severity
                .cmp(&gb.severity)
                .then(gb.count.cmp(&ga.count))
                .then_with(|| ga.key.cmp(&gb.key))
        });
        let mut rank = vec![0usize; groups.len()];
        for (r, &g) in order.iter().enumerate() {
            rank[g] = r;
        }
        if let Some(key) = &q.group {
            rows.retain(|(_, g)| g.is_some_and(|g| &groups[g].key == key));
        }
        rows.sort_unstable_by(|&(a, ga), &(b, gb)| {
            let (ea, eb) = (&entries[a], &entries[b]);
            ga.map(|g| rank[g])
                .cmp(&gb.map(|g| rank[g]))
                .then(ea.severity.cmp(&eb.severity))
                // Newest first.
                .then(eb.alert.starts_at.cmp(&ea.alert.starts_at))
                .then(ea.fp.cmp(&eb.fp))
        });
        page.total = rows.len();
        page.rows = rows
            .iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|&(i, g)| {
                let e = &entries[i];
                let alert = if e.light {
                    // Gone since the scan (collected): the copy is all there is.
                    self.store.get(e.fp).unwrap_or_else(|| e.alert.clone())
                } else {
                    e.alert.clone()
                };
                ConsoleRow {
                    receivers: rt.routes.receivers_for(&e.alert.labels),
                    alert,
                    fingerprint: e.fp,
                    state: e.state,
                    severity: e.severity,
                    silenced_by: e.silenced_by.clone(),
                    inhibited_by: e.inhibited_by.clone(),
                    group: g.map(|g| groups[g].key.clone()),
                    from_history: e.from_history,
                    ack: None,
                    shelve: None,
                }
            })
            .collect();
        page.groups_total = groups.len();
        let mut slots: Vec<Option<GroupTotal>> = groups.into_iter().map(Some).collect();
        page.groups = order
            .into_iter()
            .take(q.group_limit)
            .filter_map(|g| slots[g].take())
            .collect();
        Ok(page)
    }

    /// Creates or changes a silence, telling the console which alerts it now mutes (and, for
    /// a changed silence, which it no longer does).
    pub fn upsert_silence(&self, s: Silence) -> Result<String> {
        let old = (!s.id.is_empty())
            .then(|| self.silences.get(&s.id))
            .flatten()
            .map(|(o, _)| o.matchers);
        let new = s.matchers.clone();
        let id = self.silences.upsert(s)?;
        self.publish_matching(|l| {
            if matches_all(&new, l) {
                Some(EventKind::Silenced)
            } else if old.as_ref().is_some_and(|m| matches_all(m, l)) {
                Some(EventKind::Unsilenced)
            } else {
                None
            }
        });
        Ok(id)
    }

    /// Expires a silence, telling the console which alerts it muted.
    pub fn expire_silence(&self, id: &str) -> Result<()> {
        let matchers = self.silences.get(id).map(|(s, _)| s.matchers);
        self.silences.expire(id)?;
        if let Some(m) = matchers {
            self.publish_matching(|l| matches_all(&m, l).then_some(EventKind::Unsilenced));
        }
        Ok(())
    }

    /// Tells live consoles that `fp` changed (`kind`).
    pub(crate) fn tell(&self, fp: u64, kind: EventKind) {
        let at_ms = self.clock.now_ms();
        self.store.events().publish([AlertEvent {
            fingerprint: fp,
            kind,
            at_ms,
        }]);
    }

    fn publish_matching(&self, kind: impl Fn(&Labels) -> Option<EventKind>) {
        let bus = self.store.events();
        if bus.subscribers() == 0 {
            return;
        }
        let at_ms = self.clock.now_ms();
        let events: Vec<AlertEvent> = self
            .store
            .snapshot()
            .iter()
            .filter(|a| !a.resolved_at(at_ms))
            .filter_map(|a| {
                kind(&a.labels).map(|kind| AlertEvent {
                    fingerprint: a.fingerprint(),
                    kind,
                    at_ms,
                })
            })
            .collect();
        bus.publish(events);
    }
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
