//! scrape/WARN/102: scrapes finish well within their timeout (live).

use crate::rules::{answer, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "scrape/WARN/102",
    product: Product::Scrape,
    class: Class::Warn,
    title: "Every scrape takes less than `lint.scrape_duration_ratio` of its timeout",
    description: "A scrape that takes nearly its whole `scrape_timeout` fails as soon as the \
        target is a little slower, and the target then looks down (`up == 0`) while it is only \
        slow. Raise `scrape_timeout` (up to the interval), make the exporter cheaper (fewer \
        series, cached collection), or split the target. The share is \
        `lint.scrape_duration_ratio` (0.8 by default) of the last scrape.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let Some(targets) = answer(&server.targets, "targets", report) else {
            return;
        };
        let ratio = ctx.inputs.settings.scrape_duration_ratio;
        for t in targets {
            let g = |k: &str| t.labels.get(k).cloned().unwrap_or_default();
            let res = Resource::new(format!("target {} of job {}", g("instance"), t.pool));
            let timeout_s = t.timeout_ms as f64 / 1000.0;
            if timeout_s > 0.0 && t.last_duration_s >= ratio * timeout_s {
                report.failed(
                    res,
                    format!(
                        "the last scrape took {:.3}s of its {timeout_s}s timeout",
                        t.last_duration_s
                    ),
                );
            } else {
                report.ok(res);
            }
        }
    }
}
