//! What the live data says about the rules' selectors, asked once per distinct question and in
//! parallel: whether each selector matched anything in the lookback, which `on(...)` labels its
//! series lack, how long the series of an alert's selectors live, and which targets feed a
//! rate's window.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::MatchOp;
use tocsin_rules::Rule;

use crate::live::{Live, LiveError, SeriesLabels};
use crate::promql_selectors::{joins, selectors, with_matcher};
use crate::queries::par::par_map;
use crate::queries::rule_files::RuleFiles;
use crate::settings::LintConfig;

/// Series shown as examples of what lacks a label.
pub const SAMPLE: usize = 3;

/// One side of a join for one `on` label.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSide {
    /// Some series of the selector carry the label.
    pub some_have: bool,
    /// Up to [`SAMPLE`] series that lack it.
    pub lacking: Vec<SeriesLabels>,
}

/// How long the series of one selector lived in the lookback.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifetimes {
    pub series: u64,
    /// Seconds between the first and last sample of the longest-lived series.
    pub longest_s: f64,
    /// The subquery step the lifetimes were measured with (their precision).
    pub step_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Question {
    Exists(String),
    Join(String, String),
    Lifetimes(String, i64),
    Feeders(String),
}

enum Answer {
    Exists(bool),
    Join(JoinSide),
    Lifetimes(Lifetimes),
    Feeders(Vec<(String, String)>),
}

#[derive(Default)]
pub struct LiveRules {
    /// Selector → it matched at least one series in the lookback.
    pub exists: BTreeMap<String, Result<bool, LiveError>>,
    /// (selector, label) → what its series carry.
    pub joins: BTreeMap<(String, String), Result<JoinSide, LiveError>>,
    /// (selector, `for` in ms) → lifetimes of its series.
    pub lifetimes: BTreeMap<(String, i64), Result<Lifetimes, LiveError>>,
    /// Selector → (job, instance) of its current series.
    pub feeders: BTreeMap<String, Result<Vec<(String, String)>, LiveError>>,
    /// Live questions asked.
    pub asked: usize,
}

/// The subquery step for measuring lifetimes against a `for`: fine enough to tell them apart.
pub fn lifetime_step_ms(for_ms: i64) -> i64 {
    (for_ms / 10).clamp(15_000, 300_000)
}

impl LiveRules {
    pub fn load(files: &RuleFiles, live: &Live, cfg: &LintConfig) -> LiveRules {
        let mut qs = BTreeSet::new();
        for r in &files.rules {
            let Ok(expr) = &r.expr else { continue };
            let for_ms = match &r.rule {
                Rule::Alerting(a) => a.for_,
                Rule::Recording { .. } => 0,
            };
            let found = expr.with(|e| (selectors(e), joins(e))).ok();
            let Some((uses, js)) = found else { continue };
            for u in uses {
                qs.insert(Question::Exists(u.selector.clone()));
                if u.window.is_some() {
                    qs.insert(Question::Feeders(u.selector.clone()));
                }
                if for_ms > 0 && !u.in_absent {
                    qs.insert(Question::Lifetimes(u.selector, for_ms));
                }
            }
            for j in js {
                for side in j.sides {
                    for l in &j.on {
                        qs.insert(Question::Join(side.clone(), l.clone()));
                    }
                }
            }
        }
        let qs: Vec<Question> = qs.into_iter().collect();
        let answers = par_map(&qs, cfg.concurrency, |q| ask(q, live, cfg));
        let mut out = LiveRules {
            asked: qs.len(),
            ..LiveRules::default()
        };
        for (q, a) in qs.into_iter().zip(answers) {
            match q {
                Question::Exists(s) => {
                    out.exists
                        .insert(s, a.map(|a| matches!(a, Answer::Exists(true))));
                }
                Question::Join(s, l) => {
                    let v = a.and_then(|a| match a {
                        Answer::Join(j) => Ok(j),
                        _ => Err(LiveError("internal: mismatched answer".into())),
                    });
                    out.joins.insert((s, l), v);
                }
                Question::Lifetimes(s, f) => {
                    let v = a.and_then(|a| match a {
                        Answer::Lifetimes(l) => Ok(l),
                        _ => Err(LiveError("internal: mismatched answer".into())),
                    });
                    out.lifetimes.insert((s, f), v);
                }
                Question::Feeders(s) => {
                    let v = a.and_then(|a| match a {
                        Answer::Feeders(f) => Ok(f),
                        _ => Err(LiveError("internal: mismatched answer".into())),
                    });
                    out.feeders.insert(s, v);
                }
            }
        }
        out
    }
}

fn ask(q: &Question, live: &Live, cfg: &LintConfig) -> Result<Answer, LiveError> {
    let lookback = cfg.lookback.0;
    match q {
        Question::Exists(s) => Ok(Answer::Exists(!live.series(s, lookback, 1)?.is_empty())),
        Question::Join(s, l) => {
            let bad = || LiveError(format!("cannot add a matcher on {l} to {s}"));
            let without = with_matcher(s, l, MatchOp::Equal, "").ok_or_else(bad)?;
            let with = with_matcher(s, l, MatchOp::NotEqual, "").ok_or_else(bad)?;
            Ok(Answer::Join(JoinSide {
                some_have: !live.series(&with, lookback, 1)?.is_empty(),
                lacking: live.series(&without, lookback, SAMPLE)?,
            }))
        }
        Question::Lifetimes(s, for_ms) => {
            let step = lifetime_step_ms(*for_ms);
            let life = format!(
                "max_over_time(timestamp({s})[{w}ms:{step}ms]) - min_over_time(timestamp({s})[{w}ms:{step}ms])",
                w = lookback
            );
            let longest = live.query(&format!("max({life})"))?;
            let count = live.query(&format!("count({life})"))?;
            Ok(Answer::Lifetimes(Lifetimes {
                series: count.first().map_or(0, |c| c.value as u64),
                longest_s: longest.first().map_or(0.0, |c| c.value),
                step_ms: step,
            }))
        }
        Question::Feeders(s) => {
            let v = live.query(&format!("group by (job, instance) ({s})"))?;
            Ok(Answer::Feeders(
                v.into_iter()
                    .map(|x| {
                        let g = |k: &str| x.labels.get(k).cloned().unwrap_or_default();
                        (g("job"), g("instance"))
                    })
                    .collect(),
            ))
        }
    }
}
