//! storage/WARN/103: series churn stays under the configured limit (live).

use crate::rules::{answer, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "storage/WARN/103",
    product: Product::Storage,
    class: Class::Warn,
    title: "New series per hour stay under `lint.max_series_created_per_hour`",
    description: "Every new series costs index memory until it ages out of the head, whether it \
        lives a day or a minute. A fleet of short-lived VMs or pods, or a label carrying a pod \
        hash or a build id, creates series faster than they expire. Aggregate the churning label \
        away with recording rules and `metric_relabel_configs`, or raise the limit if the churn \
        is the fleet's real size. The counts are the server's own, per wall-clock hour over the \
        last day (a Tocsin addition to `/api/v1/status/tsdb`).",
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
        if !st.has_created {
            report.skipped(
                Resource::new("series churn"),
                "the server does not report series created per hour (not a Tocsin)",
            );
            return;
        }
        let limit = ctx.inputs.settings.max_series_created_per_hour;
        let peak = st.created_per_hour.iter().copied().max().unwrap_or(0);
        let res = Resource::new("series churn");
        if peak > limit {
            report.failed(
                res,
                format!("{peak} series were created in one hour of the last day, more than the limit of {limit}"),
            );
        } else {
            report.ok(res);
        }
    }
}
