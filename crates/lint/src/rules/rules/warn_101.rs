//! rules/WARN/101: every selector of a rule matched series recently (live).

use crate::promql_selectors::selectors;
use crate::rules::{dur, need_live_rules};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/101",
    product: Product::Rules,
    class: Class::Warn,
    title: "Every selector of a rule matched series in the lookback window",
    description: "A selector that matched no series for hours is usually a typo in a metric or \
        label name, a label that relabelling renamed, or an exporter that was never deployed. The \
        rule evaluates without error and returns nothing, so an alert on it never fires and a \
        recording rule records nothing. Compare the selector with what the server holds \
        (`/api/v1/series`, the console's metric explorer) and fix the name, or remove the rule. \
        Selectors inside `absent()` are not checked: missing series are their point. The window is \
        `lint.lookback` (6h by default).",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(live) = need_live_rules(ctx, report) else {
            return;
        };
        let lookback = dur(ctx.inputs.settings.lookback.0);
        for r in &ctx.rule_files().rules {
            let res = Resource::at(r.describe(), &r.file, r.line());
            let Some(uses) = r.expr.as_ref().ok().and_then(|e| e.with(selectors).ok()) else {
                report.skipped(res, "the expression does not parse (config/ERR/001)");
                continue;
            };
            let mut empty = Vec::new();
            let mut errors = Vec::new();
            for u in uses.iter().filter(|u| !u.in_absent) {
                match live.exists.get(&u.selector) {
                    Some(Ok(true)) => {}
                    Some(Ok(false)) if !empty.contains(&u.selector) => {
                        empty.push(u.selector.clone());
                    }
                    Some(Ok(false)) => {}
                    Some(Err(e)) => errors.push(format!("{}: {e}", u.selector)),
                    None => {}
                }
            }
            if !empty.is_empty() {
                let list: Vec<String> = empty.iter().map(|s| format!("`{s}`")).collect();
                report.failed(
                    res,
                    format!(
                        "{} matched no series in the last {lookback}",
                        list.join(", ")
                    ),
                );
            } else if !errors.is_empty() {
                report.skipped(res, errors.join("; "));
            } else {
                report.ok(res);
            }
        }
    }
}
