//! rules/ERR/002: joins match on labels both sides can carry.

use promql_parser::parser::{Expr, LabelModifier};

use crate::promql_labels::{is_scalar, output_labels};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/ERR/002",
    product: Product::Rules,
    class: Class::Err,
    title: "Vector matches `on(...)` use labels both sides can carry",
    description: "A binary operation matching `on(label)` pairs series whose `label` values are \
        equal. When one side's aggregation dropped the label (`sum by (job)` then `on(instance)`), \
        that side has it empty on every series and the other side has real values: nothing ever \
        pairs, the result is always empty, and an alert built on it can never fire while \
        evaluating without error. Keep the label in that side's `by (...)`, or match on labels \
        both sides keep.",
};

/// `on` labels one side of a vector match cannot carry while the other can, as
/// (label, side, expression of that side), anywhere in `e`.
pub fn broken_joins(e: &Expr, out: &mut Vec<(String, &'static str, String)>) {
    match e {
        Expr::Binary(b) => {
            let on = b.modifier.as_ref().and_then(|m| match &m.matching {
                Some(LabelModifier::Include(l)) => Some(&l.labels),
                _ => None,
            });
            if let Some(on) = on.filter(|_| !is_scalar(&b.lhs) && !is_scalar(&b.rhs)) {
                let (l, r) = (output_labels(&b.lhs), output_labels(&b.rhs));
                for name in on {
                    match (l.may_have(name), r.may_have(name)) {
                        (false, true) => out.push((name.clone(), "left", b.lhs.to_string())),
                        (true, false) => out.push((name.clone(), "right", b.rhs.to_string())),
                        _ => {}
                    }
                }
            }
            broken_joins(&b.lhs, out);
            broken_joins(&b.rhs, out);
        }
        Expr::Paren(p) => broken_joins(&p.expr, out),
        Expr::Unary(u) => broken_joins(&u.expr, out),
        Expr::Subquery(s) => broken_joins(&s.expr, out),
        Expr::Aggregate(a) => broken_joins(&a.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| broken_joins(a, out)),
        _ => {}
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
                broken_joins(e, &mut v);
                v
            });
            match found {
                Ok(v) if v.is_empty() => report.ok(res),
                Ok(v) => {
                    let list: Vec<String> = v
                        .iter()
                        .map(|(l, side, e)| {
                            format!("on({l}): the {side} side `{e}` cannot carry {l}")
                        })
                        .collect();
                    report.failed(res, format!("the match never pairs: {}", list.join("; ")));
                }
                Err(e) => report.skipped(res, e.to_string()),
            }
        }
    }
}
