//! estate/WARN/101: no endpoint is scraped by two jobs (live).

use std::collections::{BTreeMap, BTreeSet};

use crate::rules::{answer, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "estate/WARN/101",
    product: Product::Estate,
    class: Class::Warn,
    title: "No endpoint is scraped by more than one job",
    description: "When two scrape jobs discover the same endpoint (a file_sd list and a cloud \
        discovery that overlap, a static target left behind after a migration), every series of \
        that endpoint is stored twice with different `job` labels: sums and counts double, \
        `count by (instance)` sees two of everything, and alerts fire twice with different labels, \
        so they are not deduplicated. Drop the endpoint from one job's discovery, or with a \
        `relabel_configs` `drop` rule. Endpoints are compared by their `instance` label.",
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
        let mut jobs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for t in targets {
            if let Some(i) = t.labels.get("instance") {
                jobs.entry(i.as_str()).or_default().insert(t.pool.as_str());
            }
        }
        for (instance, pools) in jobs {
            let res = Resource::new(format!("endpoint {instance}"));
            if pools.len() > 1 {
                let list: Vec<&str> = pools.into_iter().collect();
                report.failed(res, format!("scraped by the jobs {}", list.join(", ")));
            } else {
                report.ok(res);
            }
        }
    }
}
