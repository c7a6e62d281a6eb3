//! rules/BP/001: recording rule names follow `level:metric:operations`.

use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/BP/001",
    product: Product::Rules,
    class: Class::Bp,
    title: "Recording rule names have the form `level:metric:operations`",
    description: "Prometheus's naming convention for recorded series is `level:metric:operations` \
        (e.g. `job:http_requests:rate5m`): the aggregation level, the source metric and the \
        operations applied. It tells a recorded series from a scraped one at a glance and keeps \
        names unique across teams.",
};

/// Whether `name` has three or more non-empty colon-separated parts.
pub fn well_formed(name: &str) -> bool {
    let parts: Vec<&str> = name.split(':').collect();
    parts.len() >= 3 && parts.iter().all(|p| !p.is_empty())
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        for r in &ctx.rule_files().rules {
            let tocsin_rules::Rule::Recording { record, .. } = &r.rule else {
                continue;
            };
            let res = Resource::at(r.describe(), &r.file, r.line());
            if well_formed(record) {
                report.ok(res);
            } else {
                report.failed(
                    res,
                    format!("{record:?} is not of the form level:metric:operations"),
                );
            }
        }
    }
}
