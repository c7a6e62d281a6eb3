//! rules/ERR/001: templates reference only labels the expression can return.

use crate::promql_labels::output_labels;
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/ERR/001",
    product: Product::Rules,
    class: Class::Err,
    title: "Alert templates reference only labels the expression returns",
    description: "`$labels.NAME` (or `.Labels.NAME`) in an annotation or label of an alerting rule \
        expands to the empty string when the expression's result cannot carry NAME: an aggregation \
        kept other labels (`sum by (job)` drops `instance`), or a one-to-one match `on(...)` kept \
        only the listed ones. Add the label to the `by (...)`/`on (...)` list, use `group_left`, or \
        stop referencing it.",
};

/// The label names `text` references as `$labels.NAME` or `.Labels.NAME`.
pub fn label_refs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for prefix in ["$labels.", ".Labels."] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            if name.chars().next().is_some_and(|c| !c.is_ascii_digit()) {
                out.push(name);
            }
        }
    }
    out
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        for (r, a) in ctx.rule_files().alerting() {
            let res = Resource::at(r.describe(), &r.file, r.line());
            let Ok(expr) = &r.expr else {
                report.skipped(res, "the expression does not parse (config/ERR/001)");
                continue;
            };
            let out = match expr.with(output_labels) {
                Ok(o) => o,
                Err(e) => {
                    report.skipped(res, e.to_string());
                    continue;
                }
            };
            let mut missing = Vec::new();
            for (field, text) in a.annotations.iter().chain(a.labels.iter()) {
                for name in label_refs(text) {
                    if !out.may_have(name)
                        && !missing.iter().any(|(n, _): &(String, String)| n == name)
                    {
                        missing.push((name.to_string(), field.clone()));
                    }
                }
            }
            if missing.is_empty() {
                report.ok(res);
            } else {
                let list: Vec<String> = missing
                    .iter()
                    .map(|(n, f)| format!("$labels.{n} (in {f})"))
                    .collect();
                report.failed(
                    res,
                    format!(
                        "{} always empty: the expression's result cannot carry the label",
                        list.join(", ")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn refs() {
        assert_eq!(
            super::label_refs("{{ $labels.instance }} on {{ .Labels.job }} {{ $labels.9 }} $value"),
            vec!["instance", "job"]
        );
    }
}
