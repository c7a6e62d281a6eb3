//! rules/WARN/004: `absent()` alerts wait at least two scrape intervals.

use promql_parser::parser::Expr;

use crate::rules::rules::warn_001::ms;
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/004",
    product: Product::Rules,
    class: Class::Warn,
    title: "Alerts on `absent()` have a `for` of at least two scrape intervals",
    description: "One failed or late scrape makes a series absent until the next one, so an \
        `absent()` alert with a shorter `for` fires on every hiccup of a single scrape. Set `for` \
        to at least twice `global.scrape_interval` (or the job's interval if it is longer).",
};

/// Whether `e` calls `absent` or `absent_over_time` anywhere.
pub fn uses_absent(e: &Expr) -> bool {
    match e {
        Expr::Call(c) => {
            matches!(c.func.name, "absent" | "absent_over_time")
                || c.args.args.iter().any(|a| uses_absent(a))
        }
        Expr::Binary(b) => uses_absent(&b.lhs) || uses_absent(&b.rhs),
        Expr::Paren(p) => uses_absent(&p.expr),
        Expr::Unary(u) => uses_absent(&u.expr),
        Expr::Subquery(s) => uses_absent(&s.expr),
        Expr::Aggregate(a) => uses_absent(&a.expr),
        _ => false,
    }
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let min = 2 * ctx.inputs.scrape_interval_ms;
        for (r, a) in ctx.rule_files().alerting() {
            let Ok(expr) = &r.expr else { continue };
            let res = Resource::at(r.describe(), &r.file, r.line());
            match expr.with(uses_absent) {
                Ok(false) => {}
                Ok(true) if a.for_ < min => report.failed(
                    res,
                    format!(
                        "absent() alert with for {} under two scrape intervals ({})",
                        ms(a.for_),
                        ms(min)
                    ),
                ),
                Ok(true) => report.ok(res),
                Err(e) => report.skipped(res, e.to_string()),
            }
        }
    }
}
