//! rules/WARN/003: counters are compared only through `rate`/`increase`.

use promql_parser::parser::Expr;

use crate::queries::metadata::Metadata;
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/003",
    product: Product::Rules,
    class: Class::Warn,
    title: "Counters (`*_total`, or declared counters) are compared only through `rate()` or `increase()`",
    description: "A counter only grows (and resets to zero on restart), so comparing its raw value \
        with a threshold (`errors_total > 5`) fires once the process has been up long enough and \
        clears at every restart. Uptime counters are exempt. Compare its rate or increase over a window instead \
        (`increase(errors_total[10m]) > 5`).",
};

/// Counter selectors compared raw somewhere in `e`.
pub fn raw_counter_comparisons(meta: &Metadata, e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Binary(b) => {
            if b.op.is_comparison_operator() {
                for side in [&b.lhs, &b.rhs] {
                    if let Some(name) = bare_counter(meta, side) {
                        out.push(name);
                    }
                }
            }
            raw_counter_comparisons(meta, &b.lhs, out);
            raw_counter_comparisons(meta, &b.rhs, out);
        }
        Expr::Paren(p) => raw_counter_comparisons(meta, &p.expr, out),
        Expr::Unary(u) => raw_counter_comparisons(meta, &u.expr, out),
        Expr::Subquery(s) => raw_counter_comparisons(meta, &s.expr, out),
        Expr::Aggregate(a) => raw_counter_comparisons(meta, &a.expr, out),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .for_each(|a| raw_counter_comparisons(meta, a, out)),
        _ => {}
    }
}

/// The name of a counter selector that reaches the comparison unchanged (through parentheses
/// and sum/min/max, which keep a counter a counter).
fn bare_counter(meta: &Metadata, e: &Expr) -> Option<String> {
    match e {
        Expr::Paren(p) => bare_counter(meta, &p.expr),
        Expr::Aggregate(a) if matches!(a.op.to_string().as_str(), "sum" | "max" | "min") => {
            bare_counter(meta, &a.expr)
        }
        // An uptime counter compared with a threshold ("up for 10 minutes") is the one
        // legitimate raw comparison of a counter.
        Expr::VectorSelector(v) => v
            .name
            .as_ref()
            .filter(|n| {
                let counter = match meta.metric_type(n) {
                    Some(t) => t == "counter",
                    None => n.ends_with("_total"),
                };
                counter && !n.contains("uptime")
            })
            .cloned(),
        _ => None,
    }
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        for r in &ctx.rule_files().rules {
            let res = Resource::at(r.describe(), &r.file, r.line());
            let Ok(expr) = &r.expr else {
                report.skipped(res, "the expression does not parse (config/ERR/001)");
                continue;
            };
            let found = expr.with(|e| {
                let mut v = Vec::new();
                raw_counter_comparisons(ctx.metadata(), e, &mut v);
                v
            });
            match found {
                Ok(v) if v.is_empty() => report.ok(res),
                Ok(v) => report.failed(
                    res,
                    format!(
                        "counter {} compared without rate() or increase()",
                        v.join(", ")
                    ),
                ),
                Err(e) => report.skipped(res, e.to_string()),
            }
        }
    }
}
