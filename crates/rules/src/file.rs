//! Rule files in Prometheus's format (`groups:` of recording and alerting rules): parsed with
//! unknown fields refused, then validated as a whole so every problem is reported at once with
//! its file and line, as `promtool check rules` does.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use tocsin_model::duration::parse_duration_ms;
use tocsin_model::labels::validate_label_name;

use crate::{Error, Result};

/// A loaded and validated rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFile {
    pub path: String,
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    /// Evaluation interval in ms; None = the global evaluation interval.
    pub interval: Option<i64>,
    /// Most series an alerting rule may produce (0 = no limit), as Prometheus's `limit`.
    pub limit: u64,
    /// How far back the group evaluates (ms).
    pub query_offset: Option<i64>,
    /// Labels added to every rule of the group.
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Recording {
        record: String,
        expr: String,
        labels: BTreeMap<String, String>,
        line: usize,
    },
    Alerting(AlertingRule),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertingRule {
    pub alert: String,
    pub expr: String,
    /// ms
    pub for_: i64,
    /// ms
    pub keep_firing_for: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub line: usize,
}

impl Rule {
    pub fn expr(&self) -> &str {
        match self {
            Rule::Recording { expr, .. } => expr,
            Rule::Alerting(a) => &a.expr,
        }
    }
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording { record, .. } => record,
            Rule::Alerting(a) => &a.alert,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<serde_norway::Value>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    annotations: BTreeMap<String, serde_norway::Value>,
}

/// Reads and validates a rule file.
pub fn load_file(path: &Path) -> Result<RuleFile> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        file: name.clone(),
        source,
    })?;
    parse_rule_file(&text, &name)
}

/// YAML scalars as Prometheus reads them into strings (`expr: 1`, `severity: 2`).
fn scalar_text(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Lines (1-based) of each rule in file order: the list items directly under a `rules:` key.
fn rule_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    // Indent of the current `rules:` key and of its items once the first is seen.
    let mut rules_indent: Option<usize> = None;
    let mut item_indent: Option<usize> = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = l.len() - t.len();
        if let Some(ri) = rules_indent {
            if indent <= ri && !(t.starts_with("- ") && indent == ri && item_indent.is_none()) {
                rules_indent = None;
                item_indent = None;
            } else if t.starts_with("- ") || t == "-" {
                match item_indent {
                    None => {
                        item_indent = Some(indent);
                        out.push(i + 1);
                    }
                    Some(ii) if ii == indent => out.push(i + 1),
                    _ => {}
                }
            }
        }
        if t.trim_start_matches("- ").starts_with("rules:") {
            rules_indent = Some(indent);
            item_indent = None;
        }
    }
    out
}

fn group_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.trim_start()
                .trim_start_matches("- ")
                .trim_start()
                .starts_with("name:")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The line given for a message that already names its place (`file:line:col: ...`).
const PLACED: usize = usize::MAX;

/// Parses and validates rule-file text; `file` names it in messages.
pub fn parse_rule_file(text: &str, file: &str) -> Result<RuleFile> {
    // Every field serde refuses is reported (with line, column and a "did you mean"), not only
    // the first.
    let mut doc = tocsin_confdiag::Doc::parse(text, file).map_err(|d| Error::Invalid(d.lines()))?;
    let mut derrs = Vec::new();
    let raw: Option<RawFile> = doc.take("", &mut derrs);
    let raw = match raw {
        Some(r) if derrs.is_empty() => r,
        _ => {
            return Err(Error::Invalid(
                tocsin_confdiag::Diagnostics(derrs).sorted().lines(),
            ))
        }
    };
    let positions = doc.index();
    let rlines = rule_lines(text);
    let glines = group_lines(text);
    let mut errs: Vec<String> = Vec::new();
    let mut groups = Vec::with_capacity(raw.groups.len());
    let mut seen_groups: HashSet<String> = HashSet::new();
    let mut rule_index = 0usize;
    for (gi, g) in raw.groups.into_iter().enumerate() {
        let gline = glines.get(gi).copied().unwrap_or(0);
        // `PLACED` messages already start with their place.
        let mut err = |line: usize, msg: String| {
            errs.push(if line == PLACED {
                msg
            } else {
                format!("{file}:{line}: {msg}")
            })
        };
        if g.name.is_empty() {
            err(gline, "group name must not be empty".into());
        } else if !seen_groups.insert(g.name.clone()) {
            err(gline, format!("{:?}: repeated in the same file", g.name));
        }
        let dur = |what: &str,
                   v: &Option<String>,
                   line: usize,
                   err: &mut dyn FnMut(usize, String)|
         -> Option<i64> {
            let s = v.as_ref()?;
            match parse_duration_ms(s) {
                Ok(ms) => Some(ms),
                Err(e) => {
                    err(
                        line,
                        format!("group {:?}: invalid {what} {s:?}: {e}", g.name),
                    );
                    None
                }
            }
        };
        let interval = dur("interval", &g.interval, gline, &mut err);
        if interval == Some(0) {
            err(
                gline,
                format!("group {:?}: interval must be positive", g.name),
            );
        }
        let query_offset = dur("query_offset", &g.query_offset, gline, &mut err);
        let mut glabels = BTreeMap::new();
        for (k, v) in &g.labels {
            if validate_label_name(k).is_err() {
                err(
                    gline,
                    format!("group {:?}: invalid label name {k:?}", g.name),
                );
            }
            glabels.insert(k.clone(), scalar_text(v).unwrap_or_default());
        }
        let mut rules = Vec::with_capacity(g.rules.len());
        for (ri, r) in g.rules.into_iter().enumerate() {
            let line = rlines.get(rule_index).copied().unwrap_or(gline);
            rule_index += 1;
            let expr = match r.expr.as_ref().and_then(scalar_text) {
                Some(e) if !e.trim().is_empty() => e,
                _ => {
                    err(line, "field 'expr' must be set in rule".into());
                    String::new()
                }
            };
            if !expr.is_empty() {
                if let Err(e) = tocsin_promql::parse(&expr) {
                    // As promtool: the place of the `expr:` value, then which group and rule.
                    let pos = positions.value(&format!("groups[{gi}].rules[{ri}].expr"));
                    let name = r.alert.as_deref().or(r.record.as_deref()).unwrap_or("");
                    let place = match pos {
                        Some(p) => format!("{file}:{}:{}", p.line, p.col),
                        None => format!("{file}:{line}"),
                    };
                    err(
                        PLACED,
                        format!(
                        "{place}: group {:?}, rule {}, {name:?}: could not parse expression: {e}",
                        g.name,
                        ri + 1
                    ),
                    );
                }
            }
            let mut labels = BTreeMap::new();
            for (k, v) in &r.labels {
                if validate_label_name(k).is_err() || k == "__name__" {
                    err(line, format!("invalid label name: {k}"));
                }
                labels.insert(k.clone(), scalar_text(v).unwrap_or_default());
            }
            let mut annotations = BTreeMap::new();
            for (k, v) in &r.annotations {
                if validate_label_name(k).is_err() {
                    err(line, format!("invalid annotation name: {k}"));
                }
                annotations.insert(k.clone(), scalar_text(v).unwrap_or_default());
            }
            match (r.record, r.alert) {
                (Some(_), Some(_)) => {
                    err(line, "only one of 'record' and 'alert' must be set".into())
                }
                (None, None) => err(line, "one of 'record' or 'alert' must be set".into()),
                (Some(record), None) => {
                    if !is_metric_name(&record) {
                        err(line, format!("invalid recording rule name: {record}"));
                    }
                    if r.for_.is_some() {
                        err(line, "invalid field 'for' in recording rule".into());
                    }
                    if r.keep_firing_for.is_some() {
                        err(
                            line,
                            "invalid field 'keep_firing_for' in recording rule".into(),
                        );
                    }
                    if !annotations.is_empty() {
                        err(line, "invalid field 'annotations' in recording rule".into());
                    }
                    rules.push(Rule::Recording {
                        record,
                        expr,
                        labels,
                        line,
                    });
                }
                (None, Some(alert)) => {
                    if alert.is_empty() {
                        err(line, "alert name must not be empty".into());
                    }
                    let mut d = |what: &str, v: &Option<String>| -> i64 {
                        match v.as_deref().map(parse_duration_ms) {
                            None => 0,
                            Some(Ok(ms)) => ms,
                            Some(Err(e)) => {
                                errs_push(
                                    &mut err,
                                    line,
                                    format!("invalid '{what}' in alerting rule {alert:?}: {e}"),
                                );
                                0
                            }
                        }
                    };
                    let for_ = d("for", &r.for_);
                    let keep_firing_for = d("keep_firing_for", &r.keep_firing_for);
                    // Templates are parsed as Prometheus expands them, so errors point at the
                    // same line and name.
                    let tname = crate::template::alert_template_name(&alert);
                    for (what, m) in [("label", &labels), ("annotation", &annotations)] {
                        for (k, v) in m {
                            if let Err(e) = crate::template::check(&tname, v) {
                                err(line, format!("{what} {k:?}: {e}"));
                            }
                        }
                    }
                    rules.push(Rule::Alerting(AlertingRule {
                        alert,
                        expr,
                        for_,
                        keep_firing_for,
                        labels,
                        annotations,
                        line,
                    }));
                }
            }
        }
        groups.push(RuleGroup {
            name: g.name,
            interval,
            limit: g.limit.unwrap_or(0),
            query_offset,
            labels: glabels,
            rules,
        });
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    Ok(RuleFile {
        path: file.to_string(),
        groups,
    })
}

fn errs_push(err: &mut dyn FnMut(usize, String), line: usize, msg: String) {
    err(line, msg);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: example
    interval: 30s
    limit: 10
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
        labels:
          team: web
      - alert: HighLatency
        expr: job:request_latency_seconds:mean5m{job="api"} > 0.5
        for: 10m
        keep_firing_for: 5m
        labels:
          severity: page
        annotations:
          summary: "High latency on {{ $labels.job }}"
  - name: numbers
    rules:
      - record: one
        expr: 1
"#;

    #[test]
    fn good_file_loads() {
        let f = parse_rule_file(GOOD, "good.yml").unwrap();
        assert_eq!(f.groups.len(), 2);
        let g = &f.groups[0];
        assert_eq!(g.interval, Some(30_000));
        assert_eq!(g.limit, 10);
        assert_eq!(g.rules.len(), 2);
        let Rule::Alerting(a) = &g.rules[1] else {
            panic!("not an alert")
        };
        assert_eq!(a.for_, 600_000);
        assert_eq!(a.keep_firing_for, 300_000);
        assert_eq!(a.labels["severity"], "page");
        assert_eq!(a.line, 11);
        assert_eq!(f.groups[1].rules[0].expr(), "1");
    }

    #[test]
    fn expression_errors_name_place_group_and_rule() {
        let text = "groups:\n  - name: first\n    rules:\n      - record: a:b\n        expr: up\n  - name: second\n    rules:\n      - record: ok:rule\n        expr: up\n      - alert: Multi\n        expr: |\n          sum(up\n";
        let e = parse_rule_file(text, "r.yml").unwrap_err().messages();
        // A block scalar is placed where the expression text starts.
        assert_eq!(
            e,
            vec!["r.yml:12:11: group \"second\", rule 2, \"Multi\": could not parse expression: 1:7: parse error: unclosed left parenthesis"]
        );
        // Fields serde refuses: all of them, placed, with the name meant.
        let text = "groups:\n  - name: g\n    rules:\n      - record: a:b\n        exp: up\n      - alert: A\n        expr: up\n        labls: {}\n";
        let e = parse_rule_file(text, "r.yml").unwrap_err().messages();
        assert_eq!(
            e,
            vec![
                "r.yml:5:9: groups[0].rules[0].exp: unknown field `exp`, did you mean `expr`?",
                "r.yml:8:9: groups[0].rules[1].labls: unknown field `labls`, did you mean `labels`?",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let bad = r#"
groups:
  - name: g
    rules:
      - record: "bad name"
        expr: sum(
      - alert: A
        record: b
        expr: up
      - alert: B
        expr: up == 0
        for: soon
  - name: g
    rules: []
"#;
        let e = parse_rule_file(bad, "bad.yml").unwrap_err().messages();
        let text = e.join("\n");
        assert!(
            text.contains(
                "bad.yml:6:15: group \"g\", rule 1, \"bad name\": could not parse expression"
            ),
            "{text}"
        );
        assert!(
            text.contains("bad.yml:5: invalid recording rule name: bad name"),
            "{text}"
        );
        assert!(
            text.contains("bad.yml:7: only one of 'record' and 'alert' must be set"),
            "{text}"
        );
        assert!(text.contains("bad.yml:10: invalid 'for'"), "{text}");
        assert!(
            text.contains("bad.yml:13: \"g\": repeated in the same file"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_a_line() {
        let bad = "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n        extra: 1\n";
        let e = parse_rule_file(bad, "x.yml").unwrap_err().to_string();
        assert!(e.starts_with("x.yml:"), "{e}");
        assert!(e.contains("extra"), "{e}");
    }

    #[test]
    fn alert_templates_are_parse_checked() {
        let bad = concat!(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n",
            "        labels:\n          severity: \"{{ if }}\"\n",
            "        annotations:\n          summary: \"{{ $labels.x | nosuch }}\"\n",
            "          fine: \"{{ $value | humanize }} {{ query \\\"up\\\" | first | value }}\"\n",
        );
        let e = parse_rule_file(bad, "x.yml").unwrap_err().messages();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            e[0],
            "x.yml:4: label \"severity\": template: __alert_A:1: missing value for if"
        );
        assert_eq!(
            e[1],
            "x.yml:4: annotation \"summary\": template: __alert_A:1: function \"nosuch\" not defined"
        );
    }

    #[test]
    fn recording_rules_refuse_alert_fields() {
        let bad = "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n        for: 5m\n";
        let e = parse_rule_file(bad, "x.yml").unwrap_err().to_string();
        assert!(
            e.contains("x.yml:4: invalid field 'for' in recording rule"),
            "{e}"
        );
    }
}
