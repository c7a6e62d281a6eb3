//! alerting/WARN/001: alerts set `severity` when routes match on it.

use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/WARN/001",
    product: Product::Alerting,
    class: Class::Warn,
    title: "Alerting rules set `severity` when the routing tree matches on it",
    description: "Some route of the built-in alert manager matches on `severity`, but this alerting \
        rule sets no `severity` label (nor does its group): unless its expression happens to return \
        one, the alert skips every severity route and lands on the default receiver. Add \
        `labels: {severity: ...}` to the rule.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn needs_loaded_config(&self) -> bool {
        true
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let rf = ctx.rule_files();
        let depends = ctx
            .routing()
            .and_then(|r| r.tree.as_ref().ok())
            .is_some_and(|t| {
                t.iter()
                    .any(|route| route.matchers.iter().any(|m| m.name == "severity"))
            });
        for (r, _) in rf.alerting() {
            let res = Resource::at(r.describe(), &r.file, r.line());
            if !depends {
                report.skipped(res, "no route matches on severity");
            } else if r.static_labels().contains_key("severity") {
                report.ok(res);
            } else {
                report.failed(res, "no severity label, and routes match on severity");
            }
        }
    }
}
