//! rules/WARN/002: no rule is written twice.

use std::collections::BTreeMap;

use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

/// Name, whitespace-normalised expression, static labels.
type Key = (String, String, BTreeMap<String, String>);

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/002",
    product: Product::Rules,
    class: Class::Warn,
    title: "No rule is defined twice",
    description: "Two rules with the same name, expression and labels (in any group or file) \
        produce the same series twice (recording rules write conflicting samples) or the same alert \
        twice. Delete one copy; rules that differ only in labels are not duplicates.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let rf = ctx.rule_files();
        // Keyed on what makes two rules produce the same output, whitespace in the expression aside.
        let mut first: BTreeMap<Key, (String, usize)> = BTreeMap::new();
        for r in &rf.rules {
            let expr: String = r
                .rule
                .expr()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let key = (r.rule.name().to_string(), expr, r.static_labels());
            let res = Resource::at(r.describe(), &r.file, r.line());
            match first.get(&key) {
                Some((f, l)) => {
                    report.failed(res, format!("the same rule is already defined at {f}:{l}"))
                }
                None => {
                    first.insert(key, (r.file.clone(), r.line()));
                    report.ok(res);
                }
            }
        }
    }
}
