//! rules/WARN/001: `for` is zero or at least the group's evaluation interval.

use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/001",
    product: Product::Rules,
    class: Class::Warn,
    title: "An alert's `for` is zero or at least its group's evaluation interval",
    description: "A rule is evaluated once per group interval, so a `for` shorter than the interval \
        behaves as if it were one whole interval: the alert waits longer than written. Set `for` to \
        at least the interval (or 0), or shorten the group's `interval`.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        for (r, a) in ctx.rule_files().alerting() {
            let interval = r
                .group_interval_ms
                .unwrap_or(ctx.inputs.evaluation_interval_ms);
            let res = Resource::at(r.describe(), &r.file, r.line());
            if a.for_ > 0 && a.for_ < interval {
                report.failed(
                    res,
                    format!(
                        "for {} is shorter than the evaluation interval {} of group {:?}",
                        ms(a.for_),
                        ms(interval),
                        r.group
                    ),
                );
            } else {
                report.ok(res);
            }
        }
    }
}

/// A duration in ms as Prometheus writes it (`1m30s`, `500ms`).
pub fn ms(v: i64) -> String {
    if v % 1000 != 0 {
        return format!("{v}ms");
    }
    let mut s = v / 1000;
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}
