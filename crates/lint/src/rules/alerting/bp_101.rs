//! alerting/BP/101: every alert has fired at some point in the data the server holds (live).

use std::collections::BTreeSet;

use crate::rules::{answer, dur, need_live_server};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

/// Less data than this says nothing about whether an alert ever fires.
const MIN_SPAN_MS: i64 = 24 * 3_600_000;

static META: RuleMeta = RuleMeta {
    id: "alerting/BP/101",
    product: Product::Alerting,
    class: Class::Bp,
    title: "Every alert has fired at least once in the window the server holds",
    description: "An alert that never fired in weeks is either guarding something that never \
        breaks or cannot fire at all (a wrong threshold, unit or label, a join that never \
        pairs). Prove it can: write a rule unit test that makes it fire (`tocsin test rules`), \
        or fire it once on purpose in a drill. The window is `lint.never_fired_window` (30d by \
        default), shortened to the data the server holds; with less than a day of data the rule \
        is skipped.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_live_server(ctx, report) else {
            return;
        };
        let (Some(fired), Some(lowest)) = (
            answer(&server.fired, "ALERTS", report),
            answer(
                &server.lowest_ms,
                "prometheus_tsdb_lowest_timestamp",
                report,
            ),
        ) else {
            return;
        };
        let now = ctx.inputs.live.as_ref().map_or(0, |l| l.now_ms);
        // 0 is what an empty database reports: no data, not data since 1970.
        let span = lowest
            .first()
            .filter(|s| s.value > 0.0)
            .map_or(0, |s| now - s.value as i64)
            .min(ctx.inputs.settings.never_fired_window.0);
        if span < MIN_SPAN_MS {
            report.skipped(
                Resource::new("alerts"),
                format!(
                    "the server holds {} of data, less than a day",
                    dur(span.max(0))
                ),
            );
            return;
        }
        let fired: BTreeSet<&str> = fired
            .iter()
            .filter_map(|s| s.labels.get("alertname").map(String::as_str))
            .collect();
        for (r, a) in ctx.rule_files().alerting() {
            let res = Resource::at(r.describe(), &r.file, r.line());
            if fired.contains(a.alert.as_str()) {
                report.ok(res);
            } else {
                report.failed(res, format!("never fired in the last {}", dur(span)));
            }
        }
    }
}
