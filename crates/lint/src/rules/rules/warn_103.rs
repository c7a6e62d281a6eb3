//! rules/WARN/103: rule groups evaluate within their interval (live).

use crate::rules::{answer, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/103",
    product: Product::Rules,
    class: Class::Warn,
    title: "Every rule group evaluates in less than its interval",
    description: "A group whose evaluation takes longer than its interval misses evaluations: \
        recording rules get gaps and alerts react late or not at all. Split the group (groups \
        run in parallel, rules within a group in order), make the expensive expressions cheaper \
        with recording rules, or lengthen the interval.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let Some(groups) = answer(&server.groups, "rule groups", report) else {
            return;
        };
        for g in groups {
            let res = Resource::new(format!("group {}", g.name)).with_file(&g.file);
            if g.interval_s > 0.0 && g.evaluation_s > g.interval_s {
                report.failed(
                    res,
                    format!(
                        "the last evaluation took {:.3}s, longer than the {}s interval",
                        g.evaluation_s, g.interval_s
                    ),
                );
            } else {
                report.ok(res);
            }
        }
    }
}
