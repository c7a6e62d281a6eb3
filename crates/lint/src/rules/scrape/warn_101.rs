//! scrape/WARN/101: no target has been down for `lint.target_down_for` (live).

use crate::rules::{answer, dur, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "scrape/WARN/101",
    product: Product::Scrape,
    class: Class::Warn,
    title: "No target has been down for a whole day",
    description: "A target down for a day is either broken and unnoticed, or gone and still \
        listed: then its `up == 0` alert is silenced or ignored and every alert on its metrics is \
        blind. Fix the target, or remove it from discovery. The window is \
        `lint.target_down_for` (24h by default); targets that appeared within it are not \
        reported.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let Some(down) = answer(&server.targets_down, "up", report) else {
            return;
        };
        let window = dur(ctx.inputs.settings.target_down_for.0);
        for s in down {
            let g = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            report.failed(
                Resource::new(format!("target {} of job {}", g("instance"), g("job"))),
                format!("down (up == 0) for the whole last {window}"),
            );
        }
        if down.is_empty() {
            report.ok(Resource::new("targets"));
        }
    }
}
