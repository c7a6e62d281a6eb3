//! Evaluation of one rule group at one instant: recording rules append their results (and
//! staleness markers for series that went away); alerting rules move alerts through pending,
//! firing and resolved with `for` and `keep_firing_for`, and write `ALERTS` and
//! `ALERTS_FOR_STATE`. Time is passed in, so tests drive it without sleeping.

use std::collections::{BTreeMap, HashMap};

use tocsin_model::{Labels, LabelsBuilder, STALE_NAN};
use tocsin_promql::{Engine, Value};
use tocsin_storage::{Appendable, Queryable};

use crate::file::{AlertingRule, Rule, RuleGroup};
use crate::template::{Env as TemplateEnv, GroupTemplates};

/// How long a resolved alert is kept (and re-sent) after it resolved, as Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Pending,
    Firing,
    Inactive,
}

impl AlertState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Inactive => "inactive",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub value: f64,
    /// When the condition first held (ms).
    pub active_at: i64,
    /// When it started firing (ms), 0 if never.
    pub fired_at: i64,
    /// When it resolved (ms), 0 while active.
    pub resolved_at: i64,
    /// Since when the condition has been false while `keep_firing_for` holds it (ms), 0 if not.
    pub keep_firing_since: i64,
}

/// What one evaluation of a group produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Firing and recently resolved alerts, for the alert manager.
    pub alerts: Vec<Alert>,
    /// Per rule (in order): an error message if its query or write failed.
    pub errors: Vec<Option<String>>,
    /// Per rule (in order): how long it took, in seconds.
    pub rule_seconds: Vec<f64>,
    pub samples_written: u64,
}

/// A group's rules with their state between evaluations.
pub struct GroupEval {
    pub group: RuleGroup,
    /// Per rule: series the rule wrote at the previous evaluation (recording rules and ALERTS).
    pub(crate) prev_series: Vec<Vec<Labels>>,
    /// Per alerting rule: active and recently resolved alerts by label hash.
    pub(crate) alerts: Vec<HashMap<u64, Alert>>,
    /// External labels and URL for alert templates, and the rules' parsed templates.
    templates: GroupTemplates,
}

impl GroupEval {
    pub fn new(group: RuleGroup) -> Self {
        let n = group.rules.len();
        GroupEval {
            group,
            prev_series: vec![Vec::new(); n],
            alerts: vec![HashMap::new(); n],
            templates: GroupTemplates::default(),
        }
    }

    /// A group whose alert templates see these external labels and URL.
    pub fn with_context(group: RuleGroup, external_labels: Labels, external_url: String) -> Self {
        let mut g = GroupEval::new(group);
        g.set_context(external_labels, external_url);
        g
    }

    /// Sets the external labels and URL alert templates see.
    pub fn set_context(&mut self, external_labels: Labels, external_url: String) {
        self.templates = GroupTemplates::new(external_labels, external_url);
    }

    /// The alerts of rule `i` (pending, firing, recently resolved).
    pub fn alerts_of(&self, i: usize) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self
            .alerts
            .get(i)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// Evaluates every rule at `ts` (ms) and writes what the rules produce.
    pub fn eval(
        &mut self,
        engine: &Engine,
        q: &dyn Queryable,
        out: &dyn Appendable,
        ts: i64,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let eval_ts = ts - self.group.query_offset.unwrap_or(0);
        for i in 0..self.group.rules.len() {
            let started = std::time::Instant::now();
            let rule = self.group.rules[i].clone();
            let res = match &rule {
                Rule::Recording {
                    record,
                    expr,
                    labels,
                    ..
                } => self.eval_recording(i, engine, q, out, record, expr, labels, eval_ts, ts),
                Rule::Alerting(a) => {
                    self.eval_alerting(i, engine, q, out, a, eval_ts, ts, &mut outcome.alerts)
                }
            };
            match res {
                Ok(n) => {
                    outcome.samples_written += n;
                    outcome.errors.push(None);
                }
                Err(e) => outcome.errors.push(Some(e)),
            }
            outcome.rule_seconds.push(started.elapsed().as_secs_f64());
        }
        outcome
    }

    fn with_labels(&self, base: &Labels, extra: &BTreeMap<String, String>) -> Labels {
        let mut b = base.builder();
        for (k, v) in self.group.labels.iter().chain(extra.iter()) {
            if v.is_empty() {
                b.del(k);
            } else {
                b.set(k, v);
            }
        }
        b.build()
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_recording(
        &mut self,
        i: usize,
        engine: &Engine,
        q: &dyn Queryable,
        out: &dyn Appendable,
        record: &str,
        expr: &str,
        labels: &BTreeMap<String, String>,
        eval_ts: i64,
        ts: i64,
    ) -> Result<u64, String> {
        let res = engine
            .instant(q, expr, eval_ts)
            .map_err(|e| e.to_string())?;
        let samples: Vec<(Labels, f64)> = match res.value {
            Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
            Value::Scalar { v, .. } => vec![(Labels::empty(), v)],
            other => {
                return Err(format!(
                    "rule result is a {}, not a vector or scalar",
                    other.type_name()
                ))
            }
        };
        let mut series = Vec::with_capacity(samples.len());
        for (l, v) in samples {
            let mut b = self.with_labels(&l, labels).builder();
            b.set("__name__", record);
            series.push((b.build(), v));
        }
        let mut seen = std::collections::HashSet::new();
        for (l, _) in &series {
            if !seen.insert(l.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
        }
        let written = write(out, &series, &self.prev_series[i], ts)?;
        self.prev_series[i] = series.into_iter().map(|(l, _)| l).collect();
        Ok(written)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_alerting(
        &mut self,
        i: usize,
        engine: &Engine,
        q: &dyn Queryable,
        out: &dyn Appendable,
        rule: &AlertingRule,
        eval_ts: i64,
        ts: i64,
        sink: &mut Vec<Alert>,
    ) -> Result<u64, String> {
        let res = engine
            .instant(q, &rule.expr, eval_ts)
            .map_err(|e| e.to_string())?;
        let samples: Vec<(Labels, f64)> = match res.value {
            Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
            other => {
                return Err(format!(
                    "alerting rule result is a {}, not a vector",
                    other.type_name()
                ))
            }
        };
        // As Prometheus, labels and annotations are templates expanded per sample (labels
        // first, they make the alert's identity); their queries run at the group's time.
        let tmpl = self.templates.rule(i, &self.group.labels, rule);
        let query = |expr: &str| template_query(engine, q, expr, ts);
        let env = TemplateEnv::new(
            &self.templates.external_labels,
            &self.templates.external_url,
            ts,
            &query,
        );
        let mut current: HashMap<u64, (Labels, f64, BTreeMap<String, String>)> =
            HashMap::with_capacity(samples.len());
        for (l, v) in samples {
            let dot = if tmpl.is_plain() {
                tocsin_template::Value::Nil
            } else {
                env.dot(&l, v)
            };
            let mut b = l.builder();
            b.del("__name__");
            for (name, value) in tmpl.expand_labels(&env, &dot) {
                if value.is_empty() {
                    b.del(&name);
                } else {
                    b.set(&name, &value);
                }
            }
            b.set("alertname", &rule.alert);
            let labels = b.build();
            let annotations = tmpl.expand_annotations(&env, &dot);
            if current
                .insert(labels.hash(), (labels, v, annotations))
                .is_some()
            {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
        }
        let alerts = &mut self.alerts[i];
        for (h, (labels, v, annotations)) in &current {
            match alerts.get_mut(h) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = *v;
                    a.annotations = annotations.clone();
                    a.keep_firing_since = 0;
                }
                _ => {
                    alerts.insert(
                        *h,
                        Alert {
                            labels: labels.clone(),
                            annotations: annotations.clone(),
                            state: AlertState::Pending,
                            value: *v,
                            active_at: ts,
                            fired_at: 0,
                            resolved_at: 0,
                            keep_firing_since: 0,
                        },
                    );
                }
            }
        }
        alerts.retain(|h, a| {
            if current.contains_key(h) {
                return true;
            }
            match a.state {
                AlertState::Pending => false,
                AlertState::Firing => {
                    if rule.keep_firing_for > 0 {
                        if a.keep_firing_since == 0 {
                            a.keep_firing_since = ts;
                        }
                        if ts - a.keep_firing_since < rule.keep_firing_for {
                            return true;
                        }
                    }
                    a.state = AlertState::Inactive;
                    a.resolved_at = ts;
                    true
                }
                // Kept while `resolved_at + 15m >= ts`, that moment included, as Prometheus:
                // the re-send due at exactly 15 minutes still goes out.
                AlertState::Inactive => ts - a.resolved_at <= RESOLVED_RETENTION_MS,
            }
        });
        for a in alerts.values_mut() {
            if a.state == AlertState::Pending && ts - a.active_at >= rule.for_ {
                a.state = AlertState::Firing;
                a.fired_at = ts;
            }
        }
        let active = alerts
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .count();
        if self.group.limit > 0 && active as u64 > self.group.limit {
            alerts.clear();
            return Err(format!(
                "exceeded limit of {} with {active} alerts",
                self.group.limit
            ));
        }
        let mut series = Vec::new();
        for a in alerts.values() {
            if a.state == AlertState::Inactive {
                sink.push(a.clone());
                continue;
            }
            let mut b = LabelsBuilder::from(&a.labels);
            b.set("__name__", "ALERTS");
            b.set("alertstate", a.state.as_str());
            series.push((b.build(), 1.0));
            let mut b = LabelsBuilder::from(&a.labels);
            b.set("__name__", "ALERTS_FOR_STATE");
            series.push((b.build(), a.active_at as f64 / 1000.0));
            if a.state == AlertState::Firing {
                sink.push(a.clone());
            }
        }
        let written = write(out, &series, &self.prev_series[i], ts)?;
        self.prev_series[i] = series.into_iter().map(|(l, _)| l).collect();
        Ok(written)
    }
}

/// The `query` template function: an instant query whose vector or scalar becomes samples,
/// as Prometheus's rule query function.
fn template_query(
    engine: &Engine,
    q: &dyn Queryable,
    expr: &str,
    ts: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    let res = engine.instant(q, expr, ts).map_err(|e| e.to_string())?;
    match res.value {
        Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
        Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
        _ => Err("rule result is not a vector or scalar".into()),
    }
}

/// Appends `series` at `ts`, and a staleness marker for each series written last time and not
/// now, so queries see it end at once rather than after the lookback.
fn write(
    out: &dyn Appendable,
    series: &[(Labels, f64)],
    prev: &[Labels],
    ts: i64,
) -> Result<u64, String> {
    let mut app = out.appender();
    let now: std::collections::HashSet<&Labels> = series.iter().map(|(l, _)| l).collect();
    let opts = Default::default();
    for (l, v) in series {
        if let Err(e) = app.append(l, ts, *v, &opts) {
            app.rollback();
            return Err(e.to_string());
        }
    }
    for l in prev.iter().filter(|l| !now.contains(l)) {
        // A marker may be refused if the series was already written at this time; that is fine.
        let _ = app.append(l, ts, STALE_NAN, &opts);
    }
    app.commit().map_err(|e| e.to_string())?;
    Ok(series.len() as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::parse_rule_file;
    use tocsin_storage::MemoryStore;

    const MIN: i64 = 60_000;

    fn set_up(store: &MemoryStore, t: i64, v: f64) {
        let mut a = store.appender();
        let l = Labels::from_pairs(&[("__name__", "up"), ("instance", "x"), ("job", "node")]);
        a.append(&l, t, v, &Default::default()).unwrap();
        a.commit().unwrap();
    }

    fn group(text: &str) -> GroupEval {
        GroupEval::new(parse_rule_file(text, "t.yml").unwrap().groups.remove(0))
    }

    fn series_at(store: &MemoryStore, name: &str) -> Vec<(Labels, Vec<f64>)> {
        store
            .snapshot()
            .into_iter()
            .filter(|(l, _)| l.metric_name() == Some(name))
            .map(|(l, s)| (l, s.into_iter().map(|x| x.v).collect()))
            .collect()
    }

    #[test]
    fn alert_goes_pending_firing_resolved_with_for() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = group(
            "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n        for: 2m\n        labels:\n          severity: page\n",
        );
        let mut states = Vec::new();
        for k in 0..8 {
            let t = k * MIN;
            set_up(&store, t, if (1..5).contains(&k) { 0.0 } else { 1.0 });
            let out = g.eval(&engine, &store, &store, t);
            assert!(out.errors.iter().all(Option::is_none), "{:?}", out.errors);
            states.push(g.alerts_of(0).first().map(|a| a.state));
        }
        use AlertState::*;
        assert_eq!(
            states,
            vec![
                None,
                Some(Pending),
                Some(Pending),
                Some(Firing),
                Some(Firing),
                Some(Inactive),
                Some(Inactive),
                Some(Inactive)
            ]
        );
        let a = g.alerts_of(0)[0].clone();
        assert_eq!(a.labels.get("severity"), Some("page"));
        assert_eq!(a.labels.get("alertname"), Some("Down"));
        assert_eq!(
            (a.active_at, a.fired_at, a.resolved_at),
            (MIN, 3 * MIN, 5 * MIN)
        );
        let alerts = series_at(&store, "ALERTS");
        assert_eq!(alerts.len(), 2, "pending and firing series: {alerts:?}");
        let for_state = series_at(&store, "ALERTS_FOR_STATE");
        assert_eq!(for_state[0].1[0], 60.0);
        // The series end with a staleness marker when the alert resolves.
        assert!(alerts
            .iter()
            .all(|(_, v)| tocsin_model::is_stale_nan(*v.last().unwrap())));
    }

    #[test]
    fn keep_firing_for_holds_a_resolved_condition() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = group(
            "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n        keep_firing_for: 3m\n",
        );
        let mut states = Vec::new();
        for k in 0..7 {
            let t = k * MIN;
            set_up(&store, t, if k < 2 { 0.0 } else { 1.0 });
            g.eval(&engine, &store, &store, t);
            states.push(g.alerts_of(0)[0].state);
        }
        use AlertState::*;
        assert_eq!(
            states,
            vec![Firing, Firing, Firing, Firing, Firing, Inactive, Inactive]
        );
    }

    #[test]
    fn recording_rule_writes_and_marks_stale() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = group(
            "groups:\n  - name: g\n    labels:\n      team: infra\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up{job=\"node\"})\n",
        );
        set_up(&store, 0, 1.0);
        let out = g.eval(&engine, &store, &store, 0);
        assert_eq!(out.samples_written, 1);
        // 10 minutes later `up` is past the lookback: the recorded series gets a staleness marker.
        g.eval(&engine, &store, &store, 10 * MIN);
        let rec = series_at(&store, "job:up:sum");
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].0.get("team"), Some("infra"));
        assert_eq!(rec[0].1[0], 1.0);
        assert!(tocsin_model::is_stale_nan(rec[0].1[1]));
    }

    fn alert_rule(extra: &str) -> String {
        format!(
            "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up < 1\n{extra}"
        )
    }

    #[test]
    fn annotations_are_expanded_per_alert_and_follow_the_value() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = GroupEval::with_context(
            parse_rule_file(
                &alert_rule(concat!(
                    "        annotations:\n",
                    "          summary: \"{{ $labels.instance }} is at {{ $value | humanizePercentage }}\"\n",
                    "          where: \"{{ $externalLabels.cluster }} {{ $externalURL }} {{ $labels.__name__ }}\"\n",
                    "          plain: no actions here\n",
                )),
                "t.yml",
            )
            .unwrap()
            .groups
            .remove(0),
            Labels::from_pairs(&[("cluster", "eu1")]),
            "http://prom:9090".into(),
        );
        set_up(&store, 0, 0.5);
        g.eval(&engine, &store, &store, 0);
        let a = g.alerts_of(0)[0].clone();
        assert_eq!(a.annotations["summary"], "x is at 50%");
        assert_eq!(a.annotations["where"], "eu1 http://prom:9090 up");
        assert_eq!(a.annotations["plain"], "no actions here");
        // The next evaluation re-expands with the new value, as Prometheus.
        set_up(&store, MIN, 0.25);
        g.eval(&engine, &store, &store, MIN);
        let a = g.alerts_of(0)[0].clone();
        assert_eq!(a.annotations["summary"], "x is at 25%");
        assert_eq!(a.active_at, 0);
    }

    #[test]
    fn label_templates_make_the_alert_identity() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = group(&alert_rule(concat!(
            "        labels:\n",
            "          severity: \"{{ if gt $value 0.8 }}critical{{ else }}warning{{ end }}\"\n",
            "          instance: \"{{ $labels.instance | toUpper }}\"\n",
            "          gone: \"{{ $labels.nosuch }}\"\n",
        )));
        set_up(&store, 0, 0.5);
        g.eval(&engine, &store, &store, 0);
        let a = g.alerts_of(0)[0].clone();
        assert_eq!(a.labels.get("severity"), Some("warning"));
        assert_eq!(a.labels.get("instance"), Some("X"));
        assert_eq!(
            a.labels.get("gone"),
            None,
            "an empty expansion drops the label"
        );
        // A new value changes the labels: a new alert fires and the old one resolves.
        set_up(&store, MIN, 0.9);
        g.eval(&engine, &store, &store, MIN);
        let alerts = g.alerts_of(0);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        let (critical, warning) = (&alerts[0], &alerts[1]);
        assert_eq!(critical.labels.get("severity"), Some("critical"));
        assert_eq!(
            (critical.state, critical.active_at),
            (AlertState::Firing, MIN)
        );
        assert_eq!(warning.labels.get("severity"), Some("warning"));
        assert_eq!(
            (warning.state, warning.resolved_at),
            (AlertState::Inactive, MIN)
        );
    }

    #[test]
    fn expansion_errors_become_the_value() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = group(&alert_rule(concat!(
            "        annotations:\n",
            "          bad: \"{{ $labels.instance | humanize }}\"\n",
        )));
        set_up(&store, 0, 0.0);
        let out = g.eval(&engine, &store, &store, 0);
        assert!(out.errors.iter().all(Option::is_none), "{:?}", out.errors);
        let a = g.alerts_of(0)[0].clone();
        assert_eq!(
            a.annotations["bad"],
            "<error expanding template: error executing template __alert_Down: template: __alert_Down:1:134: executing \"__alert_Down\" at <humanize>: error calling humanize: strconv.ParseFloat: parsing \"x\": invalid syntax>"
        );
    }

    #[test]
    fn query_runs_inside_annotations() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = group(&alert_rule(concat!(
            "        annotations:\n",
            "          total: \"{{ query \\\"sum(up)\\\" | first | value }}\"\n",
            "          who: \"{{ range query \\\"up\\\" }}{{ .Labels.instance }}={{ .Value }}{{ end }}\"\n",
            "          scalar: \"{{ with query \\\"scalar(up) * 4\\\" }}{{ (first .).Value }}{{ end }}\"\n",
            "          failing: \"{{ query \\\"sum(\\\" }}\"\n",
        )));
        set_up(&store, 0, 0.5);
        g.eval(&engine, &store, &store, 0);
        let a = g.alerts_of(0)[0].clone();
        assert_eq!(a.annotations["total"], "0.5");
        assert_eq!(a.annotations["who"], "x=0.5");
        assert_eq!(a.annotations["scalar"], "2");
        assert!(
            a.annotations["failing"].starts_with("<error expanding template: error executing template __alert_Down: template: __alert_Down:1:115: executing \"__alert_Down\" at <query \"sum(\">: error calling query: "),
            "{}",
            a.annotations["failing"]
        );
    }

    #[test]
    fn group_eval_stays_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<GroupEval>();
    }

    #[test]
    fn limit_fails_the_rule() {
        let store = MemoryStore::new();
        let engine = Engine::default();
        let mut g = group(
            "groups:\n  - name: g\n    limit: 1\n    rules:\n      - alert: Many\n        expr: vector(1) or label_replace(vector(1), \"x\", \"y\", \"\", \"\")\n",
        );
        let out = g.eval(&engine, &store, &store, 0);
        assert!(
            out.errors[0]
                .as_deref()
                .unwrap_or("")
                .contains("exceeded limit"),
            "{:?}",
            out.errors
        );
    }
}
