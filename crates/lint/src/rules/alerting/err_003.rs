//! alerting/ERR/003: both sides of every inhibit rule can match some alert.

use crate::matcher_logic::{never_matches, show};
use crate::queries::positions::{resource, Positions};
use crate::{Class, Context, LintRule, Product, Report, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/ERR/003",
    product: Product::Alerting,
    class: Class::Err,
    title: "Both sides of every inhibit rule can match some alert",
    description: "An inhibit rule mutes alerts matching its target matchers while an alert \
        matching its source matchers fires. When either side's matchers contradict each other \
        (`severity=\"critical\"` and `severity=\"warning\"` on the same side, a regular \
        expression that matches nothing), no alert ever matches that side and the rule never \
        mutes anything: the noise it was written to suppress reaches the receivers. Fix the \
        matchers (several values of one label are written as one regex, `severity=~\"critical|warning\"`).",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn needs_loaded_config(&self) -> bool {
        true
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(routing) = ctx.routing() else {
            report.skipped(
                "inhibit rules",
                "no built-in alert manager configured (alerts go to an external Alertmanager)",
            );
            return;
        };
        let pos = Positions::new(ctx.config_files());
        for (i, rule) in routing.config.inhibit_rules.iter().enumerate() {
            let path = format!("inhibit_rules[{i}]");
            let res = resource(path.clone(), pos.alertmanager(&path));
            let mut dead = Vec::new();
            for (side, ms) in [("source", rule.source()), ("target", rule.target())] {
                match ms {
                    Ok(ms) => {
                        if let Some(why) = never_matches(&ms) {
                            dead.push(format!(
                                "its {side} matchers {} never match: {why}",
                                show(&ms)
                            ));
                        }
                    }
                    Err(e) => dead.push(format!("its {side} matchers do not parse: {e}")),
                }
            }
            if dead.is_empty() {
                report.ok(res);
            } else {
                report.failed(res, format!("never inhibits: {}", dead.join("; ")));
            }
        }
    }
}
