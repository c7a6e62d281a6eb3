//! alerting/ERR/005: no inhibit rule inhibits its own source.

use crate::matcher_logic::{implies, show};
use crate::queries::positions::{resource, Positions};
use crate::{Class, Context, LintRule, Product, Report, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/ERR/005",
    product: Product::Alerting,
    class: Class::Err,
    title: "No inhibit rule has the same alerts as its source and its target",
    description: "When an inhibit rule's source and target matchers select the same alerts \
        (`source_matchers: [alertname=\"NodeDown\"]` and `target_matchers: [alertname=\"NodeDown\"]`, \
        or both sides empty), every alert that could inhibit is itself a target, with the same \
        `equal` labels: a naive reading mutes the source alert itself, so nothing would ever be \
        heard. The alert manager (like Alertmanager) never lets an alert that matches both sides \
        be inhibited by another that does, so such a rule in fact never mutes anything. Either \
        way it does not do what was meant: narrow the target to the alerts the source should \
        silence (usually a lower severity, `severity=\"warning\"` under a `severity=\"critical\"` \
        source).",
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
            let (Ok(source), Ok(target)) = (rule.source(), rule.target()) else {
                report.skipped(res, "its matchers do not parse (alerting/ERR/003)");
                continue;
            };
            if implies(&source, &target) && implies(&target, &source) {
                report.failed(
                    res,
                    format!(
                        "inhibits its own source: source {} and target {} select the same alerts",
                        show(&source),
                        show(&target)
                    ),
                );
            } else {
                report.ok(res);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::matcher_logic::implies;

    fn ms(list: &[&str]) -> Vec<tocsin_model::Matcher> {
        list.iter()
            .flat_map(|s| {
                tocsin_alerts::matchers::parse_matchers(s).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    fn same(a: &[&str], b: &[&str]) -> bool {
        let (a, b) = (ms(a), ms(b));
        implies(&a, &b) && implies(&b, &a)
    }

    #[test]
    fn same_alerts_on_both_sides() {
        assert!(same(
            &["alertname=\"NodeDown\""],
            &["alertname=\"NodeDown\""]
        ));
        assert!(same(&[], &[]));
        assert!(same(&["a=x", "b=y"], &["b=y", "a=x"]));
        // The usual shapes: a narrower target, or a target that includes the source alerts.
        assert!(!same(&["severity=critical"], &["severity=warning"]));
        assert!(!same(&["severity=critical"], &[]));
        assert!(!same(
            &["severity=critical"],
            &["severity=~\"critical|warning\""]
        ));
    }
}
