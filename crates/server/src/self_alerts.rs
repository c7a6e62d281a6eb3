//! Alerts tocsin raises about itself (`TocsinStateDbCorrupt`, `TocsinStorageCorruption`, ...):
//! each is a condition checked on a timer; while it holds, the alert is sent through the same
//! sink as rule alerts (the built-in alert manager and any configured external Alertmanagers),
//! re-sent every interval with an end a few intervals ahead, as Prometheus re-sends firing
//! alerts; when it stops holding, one resolved copy is sent.
//!
//! Conditions are closures (or any [`Condition`]), so a component adds its own without this
//! module knowing its types.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tocsin_model::{Alert, Clock, Labels};
use tocsin_rules::AlertSink;

/// Something wrong with the server itself. `check` returns a description of the current damage
/// while the condition holds.
pub trait Condition: Send + Sync {
    fn check(&self) -> Option<String>;
}

impl<F: Fn() -> Option<String> + Send + Sync> Condition for F {
    fn check(&self) -> Option<String> {
        self()
    }
}

/// One built-in alert.
pub struct SelfAlert {
    pub name: &'static str,
    pub summary: String,
    pub condition: Box<dyn Condition>,
}

/// Sends are this many intervals ahead, so an alert missing one send does not resolve.
const ENDS_AFTER_INTERVALS: i64 = 4;

pub struct SelfAlerts {
    alerts: Vec<SelfAlert>,
    /// Alert name -> when it started firing.
    firing: BTreeMap<&'static str, i64>,
    sink: Arc<dyn AlertSink>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    generator_url: String,
    /// Asks for a check now, e.g. when storage finishes opening and its damage becomes known.
    kick: Arc<tokio::sync::Notify>,
}

impl SelfAlerts {
    pub fn new(
        sink: Arc<dyn AlertSink>,
        clock: Arc<dyn Clock>,
        interval: Duration,
        external_url: &str,
    ) -> Self {
        Self {
            alerts: Vec::new(),
            firing: BTreeMap::new(),
            sink,
            clock,
            interval,
            generator_url: format!("{external_url}/metrics"),
            kick: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A handle whose `notify_one` makes the loop check at once.
    pub fn kicker(&self) -> Arc<tokio::sync::Notify> {
        self.kick.clone()
    }

    pub fn add(
        &mut self,
        name: &'static str,
        summary: impl Into<String>,
        condition: impl Condition + 'static,
    ) {
        self.alerts.push(SelfAlert {
            name,
            summary: summary.into(),
            condition: Box::new(condition),
        });
    }

    /// Checks every condition once and returns what to send: the firing alerts, and a resolved
    /// copy of each that stopped holding since the last check.
    pub fn evaluate(&mut self) -> Vec<Alert> {
        let now = self.clock.now_ms();
        let ends = now + ENDS_AFTER_INTERVALS * self.interval.as_millis() as i64;
        let mut out = Vec::new();
        for a in &self.alerts {
            let labels = Labels::from_pairs(&[("alertname", a.name), ("severity", "critical")]);
            match a.condition.check() {
                Some(description) => {
                    let starts_at = *self.firing.entry(a.name).or_insert_with(|| {
                        tracing::error!(alert = a.name, %description, "built-in alert firing");
                        now
                    });
                    out.push(self.alert(labels, &a.summary, description, starts_at, ends));
                }
                None => {
                    if let Some(starts_at) = self.firing.remove(a.name) {
                        tracing::info!(alert = a.name, "built-in alert resolved");
                        out.push(self.alert(labels, &a.summary, String::new(), starts_at, now));
                    }
                }
            }
        }
        out
    }

    fn alert(
        &self,
        labels: Labels,
        summary: &str,
        description: String,
        starts_at: i64,
        ends_at: i64,
    ) -> Alert {
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_string(), summary.to_string());
        if !description.is_empty() {
            annotations.insert("description".to_string(), description);
        }
        Alert {
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url: self.generator_url.clone(),
            updated_at: 0,
            timeout: false,
        }
    }

    /// Evaluates every interval (and when kicked) until aborted; the first check runs at once.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.interval);
        let kick = self.kick.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = kick.notified() => {}
            }
            let alerts = self.evaluate();
            if !alerts.is_empty() {
                self.sink.send(alerts);
            }
        }
    }
}

/// How often the built-in alerts' conditions are checked (and firing ones re-sent).
pub const INTERVAL: Duration = Duration::from_secs(15);

/// Starts tocsin's own alerts: `TocsinStateDbCorrupt` when start-up set a damaged state.db aside,
/// `TocsinStorageCorruption` from the database's corruption counters. Returns the task and the
/// handle that asks for a check at once (when storage has opened).
pub fn spawn_builtin(
    sink: Arc<dyn AlertSink>,
    clock: Arc<dyn Clock>,
    external_url: &str,
    state_set_aside: Option<(std::path::PathBuf, String)>,
    db: Arc<std::sync::OnceLock<tocsin_tsdb::Db>>,
    ha: Option<Arc<tocsin_alerts::ha::Ha>>,
) -> (tokio::task::JoinHandle<()>, Arc<tokio::sync::Notify>) {
    let mut s = SelfAlerts::new(sink, clock, INTERVAL, external_url);
    if let Some((moved, error)) = state_set_aside {
        s.add(
            "TocsinStateDbCorrupt",
            "The alert manager's state.db was damaged and set aside; alert state was lost",
            crate::state_open::condition(moved, error),
        );
    }
    s.add(
        "TocsinStorageCorruption",
        "Tocsin found damaged storage (WAL or blocks); some data may be lost",
        move || storage_corruption(&db),
    );
    if let Some(ha) = ha {
        s.add(
            "TocsinHADatabaseUnreachable",
            "This replica cannot reach the PostgreSQL database that replicas share alert state in",
            move || ha_unreachable(&ha),
        );
    }
    let kick = s.kicker();
    (tokio::spawn(s.run()), kick)
}

/// The `TocsinHADatabaseUnreachable` condition: no answer from PostgreSQL for longer than the
/// takeover time (also at start-up).
fn ha_unreachable(ha: &tocsin_alerts::ha::Ha) -> Option<String> {
    let ms = ha.unreachable_for_ms();
    (ms > ha.config().takeover_timeout_ms).then(|| {
        let notify = match ha.config().fallback {
            tocsin_alerts::ha::Fallback::None => {
                "no notifications are sent by this replica until it is back (ha.fallback: none)"
            }
            tocsin_alerts::ha::Fallback::Notify => {
                "this replica notifies on its own meanwhile (ha.fallback: notify)"
            }
        };
        format!(
            "replica {} has had no answer from PostgreSQL for {} s; silences, acknowledgements \
             and notes made here are queued ({} now) and {notify}",
            ha.replica(),
            ms / 1000,
            ha.queued_ops()
        )
    })
}

/// The `TocsinStorageCorruption` condition: damage found in blocks or the WAL since the start
/// (a torn tail after a crash is normal and not counted).
fn storage_corruption(db: &std::sync::OnceLock<tocsin_tsdb::Db>) -> Option<String> {
    let m = db.get()?.metrics();
    let found: Vec<String> = m
        .corruptions()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    (!found.is_empty()).then(|| {
        format!(
            "storage damage found since the server started: {} (damaged blocks were moved to \
             quarantine/; see tocsin_tsdb_corruptions_total and the server log for what was lost)",
            found.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct NullSink;
    impl AlertSink for NullSink {
        fn send(&self, _: Vec<Alert>) {}
    }

    #[test]
    fn fires_while_the_condition_holds_then_resolves_once() {
        let clock = tocsin_model::ManualClock::new(1_000_000);
        let holds = Arc::new(AtomicBool::new(true));
        let mut s = SelfAlerts::new(
            Arc::new(NullSink),
            Arc::new(clock.clone()),
            Duration::from_secs(15),
            "http://x",
        );
        let h = holds.clone();
        s.add("TocsinTest", "test summary", move || {
            h.load(Ordering::SeqCst).then(|| "it broke".to_string())
        });
        let a = s.evaluate();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].labels.get("alertname"), Some("TocsinTest"));
        assert_eq!(a[0].labels.get("severity"), Some("critical"));
        assert_eq!(a[0].annotations["description"], "it broke");
        assert_eq!(a[0].annotations["summary"], "test summary");
        assert_eq!((a[0].starts_at, a[0].ends_at), (1_000_000, 1_060_000));
        clock.set(1_015_000);
        let a = s.evaluate();
        assert_eq!(
            (a[0].starts_at, a[0].ends_at),
            (1_000_000, 1_075_000),
            "re-sent, same start"
        );
        holds.store(false, Ordering::SeqCst);
        clock.set(1_030_000);
        let a = s.evaluate();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].ends_at, 1_030_000, "resolved now");
        assert!(s.evaluate().is_empty(), "resolved copy sent once");
    }
}
