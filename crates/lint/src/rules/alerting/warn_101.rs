//! alerting/WARN/101: no alert flaps (live).

use std::collections::BTreeSet;

use crate::rules::{answer, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/WARN/101",
    product: Product::Alerting,
    class: Class::Warn,
    title: "No alert starts firing more often than `lint.flapping_per_day` times a day",
    description: "An alert that starts firing again and again (counted over all its label sets, \
        from the `ALERTS` series of the last day at one-minute resolution) trains people to \
        ignore it. Give it a `for` (or `keep_firing_for`) long enough to ride out the noise, \
        alert on a smoothed expression (`avg_over_time`, a longer `rate` window), or raise the \
        threshold. The limit is `lint.flapping_per_day` (20 by default).",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let Some(firings) = answer(&server.firings_per_day, "ALERTS", report) else {
            return;
        };
        let limit = ctx.inputs.settings.flapping_per_day as f64;
        let mut seen = BTreeSet::new();
        for s in firings {
            let name = s.labels.get("alertname").cloned().unwrap_or_default();
            seen.insert(name.clone());
            let res = Resource::new(format!("alert {name}"));
            if s.value > limit {
                report.failed(
                    res,
                    format!(
                        "started firing {} times in the last day (limit {limit})",
                        s.value
                    ),
                );
            } else {
                report.ok(res);
            }
        }
        for (r, a) in ctx.rule_files().alerting() {
            if seen.insert(a.alert.clone()) {
                report.ok(Resource::at(r.describe(), &r.file, r.line()));
            }
        }
    }
}
