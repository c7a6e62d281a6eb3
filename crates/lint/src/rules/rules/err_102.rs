//! rules/ERR/102: the series an alert looks at live longer than its `for` (live).

use crate::promql_selectors::selectors;
use crate::rules::{dur, need_live_rules};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "rules/ERR/102",
    product: Product::Rules,
    class: Class::Err,
    title: "The series an alert looks at live longer than its `for`",
    description: "An alert fires only after its expression has returned the same series for the \
        whole `for` duration. On churny fleets (VMs, pods, jobs that live minutes) a series can \
        vanish before that: when even the longest-lived series of a selector lived shorter than \
        `for`, the alert can never fire, yet it loads and evaluates without error. Shorten `for`, \
        or aggregate the short-lived series away (`max by (service) (...)`) so the alert follows \
        something that outlives it. Lifetimes are measured over `lint.lookback` (6h by default) \
        with a subquery step of a tenth of `for`; expressions with `or` fail only when every \
        selector's series are short-lived.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(live) = need_live_rules(ctx, report) else {
            return;
        };
        let lookback = dur(ctx.inputs.settings.lookback.0);
        for (r, a) in ctx.rule_files().alerting() {
            if a.for_ <= 0 {
                continue;
            }
            let res = Resource::at(r.describe(), &r.file, r.line());
            let Some((uses, has_or)) = r.expr.as_ref().ok().and_then(|e| {
                e.with(|e| (selectors(e), e.to_string().contains(" or ")))
                    .ok()
            }) else {
                report.skipped(res, "the expression does not parse (config/ERR/001)");
                continue;
            };
            let mut short = Vec::new();
            let mut measured = 0;
            let mut errors = Vec::new();
            for u in uses.iter().filter(|u| !u.in_absent) {
                match live.lifetimes.get(&(u.selector.clone(), a.for_)) {
                    Some(Ok(l)) if l.series > 0 => {
                        measured += 1;
                        if (l.longest_s * 1000.0) as i64 + l.step_ms < a.for_ {
                            short.push(format!(
                                "the {} series of `{}` in the last {lookback} lived at most {}",
                                l.series,
                                u.selector,
                                dur((l.longest_s * 1000.0) as i64)
                            ));
                        }
                    }
                    Some(Ok(_)) | None => {}
                    Some(Err(e)) => errors.push(format!("{}: {e}", u.selector)),
                }
            }
            let never = !short.is_empty() && (!has_or || short.len() == measured);
            if never {
                short.dedup();
                report.failed(
                    res,
                    format!(
                        "{}, under `for: {}`: the alert can never fire",
                        short.join("; "),
                        dur(a.for_)
                    ),
                );
            } else if !errors.is_empty() {
                report.skipped(res, errors.join("; "));
            } else if measured == 0 {
                report.skipped(res, format!("no series in the last {lookback} to measure"));
            } else {
                report.ok(res);
            }
        }
    }
}
