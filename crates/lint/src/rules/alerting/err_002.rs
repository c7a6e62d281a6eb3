//! alerting/ERR/002: every route can match some alert.

use tocsin_alerts::route::{Route, RouteTree};
use tocsin_model::Matcher;

use crate::matcher_logic::{implies, never_matches, show};
use crate::queries::positions::{resource, Positions};
use crate::{Class, Context, LintRule, Product, Report, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/ERR/002",
    product: Product::Alerting,
    class: Class::Err,
    title: "Every route of the routing tree can match some alert",
    description: "An alert only reaches a child route after matching every ancestor, and siblings \
        are tried in order until one matches without `continue: true`. A route whose matchers \
        contradict themselves or an ancestor's (`team=\"db\"` under a parent requiring \
        `team=\"web\"`, a regular expression that matches nothing), or that comes after a sibling \
        with `continue: false` taking every alert it would take (a catch-all without matchers), \
        never receives an alert: its receiver, grouping and timing are dead configuration, and \
        the alerts meant for it go elsewhere. Fix the matchers, move the route before the \
        sibling that shadows it, or set `continue: true` on that sibling.",
};

/// The YAML path of each route in pre-order (`route`, `route.routes[0]`, ...), the order the
/// tree numbers its routes in.
fn paths(tree: &RouteTree) -> Vec<String> {
    let mut out = vec![String::new(); tree.iter().count()];
    fn walk(tree: &RouteTree, i: usize, path: String, out: &mut Vec<String>) {
        let Some(r) = tree.get(i) else { return };
        for (n, &c) in r.children.iter().enumerate() {
            walk(tree, c, format!("{path}.routes[{n}]"), out);
        }
        if let Some(slot) = out.get_mut(i) {
            *slot = path;
        }
    }
    walk(tree, 0, "route".into(), &mut out);
    out
}

/// The matchers an alert must satisfy to reach `r`: its own and every ancestor's.
fn effective(tree: &RouteTree, r: &Route) -> Vec<Matcher> {
    let mut out = r.matchers.clone();
    let mut p = r.parent;
    while let Some(i) = p {
        let Some(a) = tree.get(i) else { break };
        out.extend(a.matchers.iter().cloned());
        p = a.parent;
    }
    out
}

/// Why `r` never receives an alert, if it never does.
fn dead(tree: &RouteTree, r: &Route, paths: &[String]) -> Option<String> {
    let all = effective(tree, r);
    if let Some(why) = never_matches(&r.matchers) {
        return Some(format!(
            "its matchers {} never match: {why}",
            show(&r.matchers)
        ));
    }
    if let Some(why) = never_matches(&all) {
        return Some(format!(
            "its matchers {} contradict its parents': {why}",
            show(&r.matchers)
        ));
    }
    let parent = tree.get(r.parent?)?;
    let pos = parent.children.iter().position(|&c| c == r.index)?;
    for &s in &parent.children[..pos] {
        let Some(sib) = tree.get(s) else { continue };
        if !sib.continue_ && implies(&all, &sib.matchers) {
            let at = paths.get(s).map_or("", String::as_str);
            return Some(format!(
                "the earlier sibling {at} (matchers {}, continue: false) takes every alert it would match",
                show(&sib.matchers)
            ));
        }
    }
    None
}

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
                "route tree",
                "no built-in alert manager configured (alerts go to an external Alertmanager)",
            );
            return;
        };
        let Ok(tree) = &routing.tree else {
            report.skipped(
                "route tree",
                "the routing tree does not build (alerting/ERR/001)",
            );
            return;
        };
        let pos = Positions::new(ctx.config_files());
        let paths = paths(tree);
        for r in tree.iter() {
            let path = paths.get(r.index).cloned().unwrap_or_default();
            let name = format!("{path} (receiver {})", r.receiver);
            let res = resource(name, pos.alertmanager(&path));
            match dead(tree, r, &paths) {
                Some(why) => report.failed(res, format!("never matches: {why}")),
                None => report.ok(res),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(yaml: &str) -> Vec<(String, Option<String>)> {
        let root: tocsin_alerts::config::RouteConfig =
            serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let tree = RouteTree::build(&root).unwrap_or_else(|e| panic!("{e}"));
        let p = paths(&tree);
        tree.iter()
            .map(|r| (p[r.index].clone(), dead(&tree, r, &p)))
            .collect()
    }

    #[test]
    fn contradictions_and_shadowed_siblings() {
        let v = verdicts(
            "receiver: a\nroutes:\n  - matchers: [team=\"web\"]\n    receiver: a\n    routes:\n      - matchers: [team=\"db\"]\n        receiver: a\n      - matchers: [severity=\"page\"]\n        receiver: a\n  - matchers: [severity=\"page\"]\n    receiver: a\n  - matchers: [severity=\"page\", team=\"ops\"]\n    receiver: a\n  - matchers: [team=\"ops\"]\n    receiver: a\n    continue: true\n  - matchers: [team=\"ops\", severity=\"info\"]\n    receiver: a\n  - receiver: a\n  - matchers: [x=\"y\"]\n    receiver: a\n",
        );
        let why = |path: &str| {
            v.iter()
                .find(|(p, _)| p == path)
                .unwrap_or_else(|| panic!("{path} in {v:?}"))
                .1
                .clone()
        };
        assert_eq!(why("route"), None);
        assert!(why("route.routes[0].routes[0]").is_some_and(|w| w.contains("contradict")));
        assert_eq!(why("route.routes[0].routes[1]"), None);
        assert_eq!(why("route.routes[1]"), None);
        assert!(
            why("route.routes[2]").is_some_and(|w| w.contains("earlier sibling route.routes[1]"))
        );
        // An earlier sibling with `continue: true` hides nothing.
        assert_eq!(why("route.routes[3]"), None);
        assert_eq!(why("route.routes[4]"), None);
        assert_eq!(why("route.routes[5]"), None);
        assert!(
            why("route.routes[6]").is_some_and(|w| w.contains("earlier sibling route.routes[5]"))
        );
    }
}
