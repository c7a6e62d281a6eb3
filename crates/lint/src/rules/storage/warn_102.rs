//! storage/WARN/102: no metric or label has runaway cardinality (live).

use crate::rules::{answer, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "storage/WARN/102",
    product: Product::Storage,
    class: Class::Warn,
    title: "No metric has more series, and no label more values, than the configured limits",
    description: "A metric with hundreds of thousands of series, or a label with as many values, \
        is almost always an identifier that should not be a label (request ids, user ids, full \
        URLs, timestamps). It costs memory and makes every query on the metric slow. Drop or \
        aggregate the label with `metric_relabel_configs`, or fix the exporter. The limits are \
        `lint.max_series_per_metric` and `lint.max_values_per_label`; the largest entries of \
        `/api/v1/status/tsdb` are checked.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let Some(st) = answer(&server.tsdb, "tsdb status", report) else {
            return;
        };
        let cfg = &ctx.inputs.settings;
        for (name, n) in &st.series_by_metric {
            let res = Resource::new(format!("metric {name}"));
            if *n > cfg.max_series_per_metric {
                report.failed(
                    res,
                    format!(
                        "{n} series, more than the limit of {}",
                        cfg.max_series_per_metric
                    ),
                );
            } else {
                report.ok(res);
            }
        }
        for (name, n) in &st.values_by_label {
            let res = Resource::new(format!("label {name}"));
            if *n > cfg.max_values_per_label {
                report.failed(
                    res,
                    format!(
                        "{n} values, more than the limit of {}",
                        cfg.max_values_per_label
                    ),
                );
            } else {
                report.ok(res);
            }
        }
    }
}
