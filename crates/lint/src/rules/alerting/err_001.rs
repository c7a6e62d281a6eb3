//! alerting/ERR/001: every alert reaches a receiver that sends somewhere.

use tocsin_model::Labels;

use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/ERR/001",
    product: Product::Alerting,
    class: Class::Err,
    title: "Every alert reaches a receiver that sends somewhere",
    description: "The routing tree, evaluated by the alert manager's own code on the labels an \
        alerting rule always sets (group labels, rule labels, `alertname`), leads only to receivers \
        without any notifier or action: when the alert fires nobody hears of it. Route it to a \
        receiver with a notifier, or give that receiver one. Labels the expression returns are not \
        known offline, so a route matching on them is not taken here.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn needs_loaded_config(&self) -> bool {
        true
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let rf = ctx.rule_files();
        let Some(routing) = ctx.routing() else {
            for (r, _) in rf.alerting() {
                report.skipped(
                    Resource::at(r.describe(), &r.file, r.line()),
                    "no built-in alert manager configured (alerts go to an external Alertmanager)",
                );
            }
            return;
        };
        let tree = match &routing.tree {
            Ok(t) => t,
            Err(e) => {
                report.failed(
                    "route tree",
                    format!("the routing tree does not build: {e}"),
                );
                return;
            }
        };
        for (r, _) in rf.alerting() {
            let res = Resource::at(r.describe(), &r.file, r.line());
            let pairs: Vec<(String, String)> = r.static_labels().into_iter().collect();
            let receivers = tree.receivers_for(&Labels::from_pairs(&pairs));
            if receivers.iter().any(|n| routing.receiver_sends(n)) {
                report.ok(res);
            } else {
                report.failed(
                    res,
                    format!(
                        "routed only to receiver(s) {} with no notifier or action",
                        receivers.join(", ")
                    ),
                );
            }
        }
    }
}
