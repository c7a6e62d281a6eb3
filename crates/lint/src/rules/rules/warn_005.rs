//! rules/WARN/005: `rate()`, `irate()` and `increase()` are applied to counters, not gauges.

use promql_parser::parser::Expr;

use crate::queries::metadata::Metadata;
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/005",
    product: Product::Rules,
    class: Class::Warn,
    title: "`rate()`, `irate()` and `increase()` are applied only to counters",
    description: "These functions assume a counter: every decrease is read as a reset and the \
        value before it is added back, so on a gauge (memory in bytes, a temperature, `up`, \
        queue length) each dip becomes a jump and the result is meaningless. Use `deriv()` or \
        `delta()` for the change of a gauge, or `avg_over_time()`/`max_over_time()` for its \
        level. A metric counts as a gauge when its declared type says so (live metadata) or its \
        name does: `up`, `*_bytes`, `*_temperature*`, `*_celsius`, `*_ratio`, `*_info`, \
        `*_timestamp_seconds` and the like, never `*_total`, `*_count`, `*_sum` or `*_bucket`.",
};

/// Whether `name` is a gauge by the exporter's declared type, else by naming convention.
pub fn is_gauge(meta: &Metadata, name: &str) -> bool {
    if let Some(t) = meta.metric_type(name) {
        return t == "gauge";
    }
    let counter_like = ["_total", "_count", "_sum", "_bucket", "_created"]
        .iter()
        .any(|s| name.ends_with(s));
    if counter_like {
        return false;
    }
    name == "up"
        || name == "scrape_samples_scraped"
        || [
            "_bytes",
            "_celsius",
            "_ratio",
            "_info",
            "_timestamp_seconds",
            "_percent",
        ]
        .iter()
        .any(|s| name.ends_with(s))
        || name.contains("_temperature")
        || name.starts_with("temperature")
}

/// (function, gauge name) of every counter function applied to a gauge selector in `e`.
pub fn rates_of_gauges(meta: &Metadata, e: &Expr, out: &mut Vec<(&'static str, String)>) {
    match e {
        Expr::Call(c) => {
            if matches!(c.func.name, "rate" | "irate" | "increase") {
                if let Some(Expr::MatrixSelector(m)) = c.args.args.first().map(|a| a.as_ref()) {
                    if let Some(name) = m.vs.name.as_ref().filter(|n| is_gauge(meta, n)) {
                        out.push((c.func.name, name.clone()));
                    }
                }
            }
            c.args
                .args
                .iter()
                .for_each(|a| rates_of_gauges(meta, a, out));
        }
        Expr::Binary(b) => {
            rates_of_gauges(meta, &b.lhs, out);
            rates_of_gauges(meta, &b.rhs, out);
        }
        Expr::Paren(p) => rates_of_gauges(meta, &p.expr, out),
        Expr::Unary(u) => rates_of_gauges(meta, &u.expr, out),
        Expr::Subquery(s) => rates_of_gauges(meta, &s.expr, out),
        Expr::Aggregate(a) => rates_of_gauges(meta, &a.expr, out),
        _ => {}
    }
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let meta = ctx.metadata();
        for r in &ctx.rule_files().rules {
            let res = Resource::at(r.describe(), &r.file, r.line());
            let Ok(expr) = &r.expr else {
                report.skipped(res, "the expression does not parse (config/ERR/001)");
                continue;
            };
            let found = expr.with(|e| {
                let mut v = Vec::new();
                rates_of_gauges(meta, e, &mut v);
                v
            });
            match found {
                Ok(v) if v.is_empty() => report.ok(res),
                Ok(v) => {
                    let list: Vec<String> = v
                        .iter()
                        .map(|(f, n)| format!("{f}() of gauge {n}"))
                        .collect();
                    report.failed(
                        res,
                        format!("{}: use deriv() or delta() for a gauge", list.join(", ")),
                    );
                }
                Err(e) => report.skipped(res, e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(meta: &Metadata, q: &str) -> Vec<(&'static str, String)> {
        let e = promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let mut v = Vec::new();
        rates_of_gauges(meta, &e, &mut v);
        v
    }

    #[test]
    fn by_name_then_by_declared_type() {
        let off = Metadata::offline();
        assert_eq!(
            found(&off, "rate(node_memory_MemAvailable_bytes[5m])").len(),
            1
        );
        assert_eq!(found(&off, "sum(irate(up[5m]))").len(), 1);
        assert_eq!(
            found(&off, "increase(cpu_temperature_celsius[1h]) > 3").len(),
            1
        );
        assert!(found(&off, "rate(node_network_receive_bytes_total[5m])").is_empty());
        assert!(found(&off, "rate(http_request_duration_seconds_bucket[5m])").is_empty());
        assert!(
            found(&off, "rate(queue_depth[5m])").is_empty(),
            "unknown names pass"
        );
        assert!(found(&off, "deriv(process_resident_memory_bytes[5m])").is_empty());
        // Declared types win over names.
        let meta = Metadata::from_types([
            ("queue_depth".to_string(), "gauge".to_string()),
            ("odd_bytes".to_string(), "counter".to_string()),
        ]);
        assert_eq!(found(&meta, "rate(queue_depth[5m])").len(), 1);
        assert!(found(&meta, "rate(odd_bytes[5m])").is_empty());
    }
}
