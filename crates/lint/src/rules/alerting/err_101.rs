//! alerting/ERR/101: notifications are delivered (live).

use crate::rules::{answer, need_self_monitoring};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/ERR/101",
    product: Product::Alerting,
    class: Class::Err,
    title: "No notification delivery failed in the last hour",
    description: "A receiver whose deliveries fail (a rotated webhook token, a mail server that \
        refuses, a full Slack quota) means alerts fire and nobody hears them. The built-in alert \
        manager counts failures per integration (`alertmanager_notifications_failed_total`) and \
        sends to external Alertmanagers are counted per Alertmanager \
        (`tocsin_notifications_errors_total`); both are read from the server's self-monitoring \
        data. Look at the server log for the error, fix the receiver, and send a test alert.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_self_monitoring(ctx, report) else {
            return;
        };
        let mut any = false;
        let mut bad = false;
        if let Some(v) = answer(&server.notify_failed, "notifications", report) {
            any = true;
            bad |= !v.is_empty();
            for s in v {
                let i = s.labels.get("integration").cloned().unwrap_or_default();
                report.failed(
                    Resource::new(format!("integration {i}")),
                    format!("{} notifications failed in the last hour", s.value.round()),
                );
            }
        }
        if let Some(v) = answer(&server.am_send_failed, "alertmanager sends", report) {
            any = true;
            bad |= !v.is_empty();
            for s in v {
                let am = s.labels.get("alertmanager").cloned().unwrap_or_default();
                report.failed(
                    Resource::new(format!("alertmanager {am}")),
                    format!(
                        "{} alerts failed to reach it in the last hour",
                        s.value.round()
                    ),
                );
            }
        }
        if any && !bad {
            report.ok(Resource::new("notifications"));
        }
    }
}
