//! rules/ERR/002: joins match on labels both sides can carry.

use std::collections::BTreeSet;

use promql_parser::parser::{BinaryExpr, Expr, LabelModifier, VectorMatchCardinality};

use crate::promql_labels::{is_scalar, output_labels, LabelSet};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/ERR/002",
    product: Product::Rules,
    class: Class::Err,
    title: "Vector matches (`on`, `ignoring`, `group_left`/`group_right`) use labels the sides can carry",
    description: "A binary operation matching `on(label)` pairs series whose `label` values are \
        equal. When one side's aggregation dropped the label (`sum by (job)` then `on(instance)`), \
        that side has it empty on every series and the other side has real values: nothing ever \
        pairs, the result is always empty, and an alert built on it can never fire while \
        evaluating without error. The same holds without `on` (series then pair on all their \
        labels but the `ignoring(...)` ones) when one side keeps a label the other dropped, and a \
        `group_left(label)` copying a label the other side cannot carry always copies an empty \
        value. Keep the label in that side's `by (...)`, or match on labels both sides keep.",
};

/// Why a vector match in `e` never pairs (or copies a label the other side cannot carry),
/// one message per problem, anywhere in `e`.
pub fn broken_joins(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Binary(b) => {
            if !is_scalar(&b.lhs) && !is_scalar(&b.rhs) {
                check_match(b, out);
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

fn check_match(b: &BinaryExpr, out: &mut Vec<String>) {
    let (l, r) = (output_labels(&b.lhs), output_labels(&b.rhs));
    let side = |s: &str| {
        if s == "left" {
            b.lhs.to_string()
        } else {
            b.rhs.to_string()
        }
    };
    let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
    match matching {
        Some(LabelModifier::Include(on)) => {
            for name in &on.labels {
                let lacking = match (l.may_have(name), r.may_have(name)) {
                    (false, true) => "left",
                    (true, false) => "right",
                    _ => continue,
                };
                out.push(format!(
                    "on({name}): the {lacking} side `{}` cannot carry {name}",
                    side(lacking)
                ));
            }
        }
        // `or` keeps both sides whatever pairs; only the other operators need a pair.
        _ if b.op.to_string() == "or" => {}
        // Without `on`, series pair on every label but the ignored ones: when both sides'
        // labels are known, one that only one side can carry keeps every pair apart.
        ignoring => {
            let ignored: BTreeSet<String> = match ignoring {
                Some(LabelModifier::Exclude(l)) => l.labels.iter().cloned().collect(),
                _ => BTreeSet::new(),
            };
            if let (LabelSet::Only(ls), LabelSet::Only(rs)) = (&l, &r) {
                let clause = match ignoring {
                    Some(LabelModifier::Exclude(l)) => format!("ignoring({})", l.labels.join(", ")),
                    _ => "matching on all labels".to_string(),
                };
                for (name, lacking) in ls
                    .difference(rs)
                    .map(|n| (n, "right"))
                    .chain(rs.difference(ls).map(|n| (n, "left")))
                    .filter(|(n, _)| !ignored.contains(*n))
                {
                    out.push(format!(
                        "{clause}: the {lacking} side `{}` cannot carry {name}, which the other side has",
                        side(lacking)
                    ));
                }
            }
        }
    }
    // group_left(x) copies x from the right ("one") side, group_right(x) from the left.
    let (copied, from, from_labels) = match b.modifier.as_ref().map(|m| &m.card) {
        Some(VectorMatchCardinality::ManyToOne(inc)) => (&inc.labels, "right", &r),
        Some(VectorMatchCardinality::OneToMany(inc)) => (&inc.labels, "left", &l),
        _ => return,
    };
    let op = if from == "right" {
        "group_left"
    } else {
        "group_right"
    };
    for name in copied.iter().filter(|n| !from_labels.may_have(n)) {
        out.push(format!(
            "{op}({name}): the {from} side `{}` cannot carry {name}, so the copied label is always empty",
            side(from)
        ));
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
                Ok(v) => report.failed(res, format!("broken vector match: {}", v.join("; "))),
                Err(e) => report.skipped(res, e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    fn problems(q: &str) -> Vec<String> {
        let e = promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let mut v = Vec::new();
        super::broken_joins(&e, &mut v);
        v
    }

    #[test]
    fn on_ignoring_and_group_modifiers() {
        assert_eq!(
            problems("(cpu > 0.95) and on(instance) sum by (job) (up)").len(),
            1
        );
        assert!(problems("(cpu > 0.95) and on(instance) up").is_empty());
        let v = problems("sum by (job, instance) (a) / ignoring(mode) sum by (job) (b)");
        assert!(
            v[0].contains("ignoring(mode): the right side") && v[0].contains("instance"),
            "{v:?}"
        );
        assert!(problems("sum by (job, mode) (a) / ignoring(mode) sum by (job) (b)").is_empty());
        let v = problems("sum by (job) (a) / sum by (instance) (b)");
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(problems("sum by (job) (a) or sum by (instance) (b)").is_empty());
        assert!(
            problems("a / ignoring(x) sum by (job) (b)").is_empty(),
            "selector labels unknown"
        );
        let v = problems("a * on(job) group_left(version) sum by (job) (info)");
        assert!(
            v[0].contains("group_left(version): the right side"),
            "{v:?}"
        );
        assert!(problems("a * on(job) group_left(version) build_info").is_empty());
        let v = problems("sum by (job) (info) * on(job) group_right(version) a");
        assert!(
            v[0].contains("group_right(version): the left side"),
            "{v:?}"
        );
    }
}
