//! rules/WARN/102: rate windows cover at least two scrapes of the targets feeding them (live).

use std::collections::BTreeMap;

use crate::promql_selectors::selectors;
use crate::rules::{answer, dur, need_live_rules, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/WARN/102",
    product: Product::Rules,
    class: Class::Warn,
    title: "`rate()`-like windows span at least twice the scrape interval of the targets they read",
    description: "`rate`, `irate`, `increase`, `delta`, `idelta` and `deriv` need two samples in \
        their window. A window shorter than twice the actual scrape interval of the targets \
        behind the series often holds one sample or none, so the result has gaps or is empty and \
        an alert on it flaps or never fires. Make the window at least twice (better four times) \
        the largest scrape interval of those targets, or scrape them more often. The interval is \
        the one the server uses for each target feeding the selector now.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(live) = need_live_rules(ctx, report) else {
            return;
        };
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let Some(targets) = answer(&server.targets, "targets", report) else {
            return;
        };
        let interval: BTreeMap<(String, String), i64> = targets
            .iter()
            .map(|t| {
                let g = |k: &str| t.labels.get(k).cloned().unwrap_or_default();
                ((g("job"), g("instance")), t.interval_ms)
            })
            .collect();
        for r in &ctx.rule_files().rules {
            let Some(uses) = r.expr.as_ref().ok().and_then(|e| e.with(selectors).ok()) else {
                continue;
            };
            let mut checked = false;
            let mut short = Vec::new();
            for u in &uses {
                let Some((func, window)) = &u.window else {
                    continue;
                };
                let Some(Ok(feeders)) = live.feeders.get(&u.selector) else {
                    continue;
                };
                let Some(max) = feeders.iter().filter_map(|f| interval.get(f)).max() else {
                    continue;
                };
                checked = true;
                if *window < 2 * max {
                    short.push(format!(
                        "{func}(`{}`[{}]) reads targets scraped every {}: the window needs at least {}",
                        u.selector,
                        dur(*window),
                        dur(*max),
                        dur(2 * max)
                    ));
                }
            }
            let res = Resource::at(r.describe(), &r.file, r.line());
            if !short.is_empty() {
                report.failed(res, short.join("; "));
            } else if checked {
                report.ok(res);
            }
        }
    }
}
