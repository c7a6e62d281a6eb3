//! alerting/ERR/102: no heartbeat is overdue (live).

use crate::rules::{answer, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/ERR/102",
    product: Product::Alerting,
    class: Class::Err,
    title: "Every heartbeat has pinged within its timeout",
    description: "A heartbeat (a cron job, a backup, a batch pipeline pinging the alert manager) \
        that is overdue means the job stopped running or cannot reach Tocsin. The built-in alert \
        manager raises `HeartbeatMissing` for it; unsilenced ones are reported here. Check the \
        job and its network path, or remove the heartbeat if the job is gone.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let Some(missing) = answer(&server.heartbeats_missing, "heartbeats", report) else {
            return;
        };
        for (labels, summary) in missing {
            let name = labels.get("heartbeat").cloned().unwrap_or_default();
            report.failed(Resource::new(format!("heartbeat {name}")), summary.clone());
        }
        if missing.is_empty() {
            report.ok(Resource::new("heartbeats"));
        }
    }
}
