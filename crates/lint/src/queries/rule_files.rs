//! Reads the rule files with the rule manager's own parser and parses every expression once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tocsin_promql::Parsed;
use tocsin_rules::Rule;

/// One rule with where it comes from and its parsed expression.
pub struct LoadedRule {
    pub file: String,
    pub group: String,
    /// The group's own interval in ms; None: the global evaluation interval.
    pub group_interval_ms: Option<i64>,
    pub group_labels: BTreeMap<String, String>,
    pub rule: Rule,
    /// The parse error's message when the expression does not parse.
    pub expr: Result<Parsed, String>,
}

impl LoadedRule {
    pub fn line(&self) -> usize {
        match &self.rule {
            Rule::Recording { line, .. } => *line,
            Rule::Alerting(a) => a.line,
        }
    }

    /// The labels every alert of the rule carries whatever the expression returns: the
    /// group's, then the rule's, then `alertname`.
    pub fn static_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.group_labels.clone();
        if let Rule::Alerting(a) = &self.rule {
            l.extend(a.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            l.insert("alertname".into(), a.alert.clone());
        } else if let Rule::Recording { labels, .. } = &self.rule {
            l.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        l
    }

    /// `alert NAME` or `record NAME`, for report resources.
    pub fn describe(&self) -> String {
        match &self.rule {
            Rule::Recording { record, .. } => format!("record {record}"),
            Rule::Alerting(a) => format!("alert {}", a.alert),
        }
    }
}

/// A rule file that did not load, with the loader's messages.
pub struct FileError {
    pub file: String,
    pub messages: Vec<String>,
}

#[derive(Default)]
pub struct RuleFiles {
    /// Every file that was read, in order.
    pub files: Vec<String>,
    pub rules: Vec<LoadedRule>,
    pub errors: Vec<FileError>,
}

impl RuleFiles {
    pub fn load(paths: &[PathBuf]) -> RuleFiles {
        let mut out = RuleFiles::default();
        for p in paths {
            let file = p.display().to_string();
            out.files.push(file.clone());
            let f = match tocsin_rules::load_file(p) {
                Ok(f) => f,
                Err(e) => {
                    out.errors.push(FileError {
                        file,
                        messages: e.messages(),
                    });
                    continue;
                }
            };
            for g in f.groups {
                for rule in g.rules {
                    let expr = tocsin_promql::parse(rule.expr()).map_err(|e| e.to_string());
                    out.rules.push(LoadedRule {
                        file: file.clone(),
                        group: g.name.clone(),
                        group_interval_ms: g.interval,
                        group_labels: g.labels.clone(),
                        rule,
                        expr,
                    });
                }
            }
        }
        out
    }

    pub fn alerting(&self) -> impl Iterator<Item = (&LoadedRule, &tocsin_rules::AlertingRule)> {
        self.rules.iter().filter_map(|r| match &r.rule {
            Rule::Alerting(a) => Some((r, a)),
            Rule::Recording { .. } => None,
        })
    }
}
