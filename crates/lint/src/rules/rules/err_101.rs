//! rules/ERR/101: the labels of an `on(...)` match exist on both sides in the live data.

use crate::live::SeriesLabels;
use crate::promql_selectors::joins;
use crate::rules::need_live_rules;
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/ERR/101",
    product: Product::Rules,
    class: Class::Err,
    title: "The labels of every `on(...)` match are carried by the live series of both sides",
    description: "`a and on(instance_id) b` pairs series whose `instance_id` values are equal. \
        When one side's series lack the label (relabelling dropped or renamed it, or the exporter \
        never had it), they cannot pair: an alert built on the match stays silent for them, and \
        when no series of a side carries the label it can never fire at all, while evaluating \
        without error. The examples show series that lack the label; restore it in the scrape \
        job's relabelling, or match on a label both sides carry.",
};

fn show(s: &SeriesLabels) -> String {
    let name = s.get("__name__").cloned().unwrap_or_default();
    let rest: Vec<String> = s
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(live) = need_live_rules(ctx, report) else {
            return;
        };
        for r in &ctx.rule_files().rules {
            let Some(js) = r.expr.as_ref().ok().and_then(|e| e.with(joins).ok()) else {
                continue;
            };
            if js.is_empty() {
                continue;
            }
            let res = Resource::at(r.describe(), &r.file, r.line());
            let mut problems = Vec::new();
            let mut errors = Vec::new();
            for j in &js {
                for (side, sel) in ["left", "right"].iter().zip(&j.sides) {
                    for l in &j.on {
                        match live.joins.get(&(sel.clone(), l.clone())) {
                            Some(Ok(s)) if !s.lacking.is_empty() => {
                                let eg: Vec<String> = s.lacking.iter().map(show).collect();
                                let what = if s.some_have {
                                    "some series of"
                                } else {
                                    "no series of"
                                };
                                let verb = if s.some_have { "lack" } else { "carries" };
                                problems.push(format!(
                                    "on({l}): {what} the {side} side `{sel}` {verb} {l}{}, e.g. {}",
                                    if s.some_have {
                                        ""
                                    } else {
                                        ": the match can never pair"
                                    },
                                    eg.join("; ")
                                ));
                            }
                            Some(Ok(_)) | None => {}
                            Some(Err(e)) => errors.push(format!("{sel}: {e}")),
                        }
                    }
                }
            }
            if !problems.is_empty() {
                report.failed(res, problems.join("; "));
            } else if !errors.is_empty() {
                report.skipped(res, errors.join("; "));
            } else {
                report.ok(res);
            }
        }
    }
}
