//! actions/SEC/001: every automatic action policy is guarded in volume and per target.

use tocsin_actions::config::Mode;

use crate::{Class, Context, LintRule, Product, Report, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "actions/SEC/001",
    product: Product::Actions,
    class: Class::Sec,
    title: "Every automatic action policy has a volume guard and a cooldown",
    description:
        "A policy in `mode: auto` acts on every alert routed to it without a human. Without \
        a volume guard (`rate`, `max_targets`, `max_fraction` or `max_concurrent`) an alert storm, \
        or a rule that suddenly matches the whole fleet, runs it on everything at once; without a \
        `cooldown` it repeats on the same target each time the alert fires again. Add both under \
        `guards:`, or use `mode: approve` or `dry_run`.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn needs_loaded_config(&self) -> bool {
        true
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let policies = &ctx.inputs.actions.policies;
        for p in policies {
            let res = format!("policy {}", p.name);
            if p.mode != Mode::Auto {
                report.ok(res);
                continue;
            }
            let mut missing = Vec::new();
            if !p.guards.limits_volume() {
                missing.push("a volume guard (rate, max_targets, max_fraction or max_concurrent)");
            }
            if p.guards.cooldown.is_none() {
                missing.push("a cooldown");
            }
            if missing.is_empty() {
                report.ok(res);
            } else {
                report.failed(res, format!("mode auto without {}", missing.join(" or ")));
            }
        }
    }
}
