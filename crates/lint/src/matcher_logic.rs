//! What a list of label matchers (a route's, an inhibit rule's side) can select, decided
//! conservatively: [`never_matches`] only answers when no label set can satisfy the list, and
//! [`implies`] only when every label set satisfying one list certainly satisfies another. Both
//! read a missing label as the empty value, as the alert manager does.

use std::collections::BTreeMap;

use tocsin_model::{MatchOp, Matcher};

/// Why no label set satisfies every matcher of `ms`, or None when one may.
pub fn never_matches(ms: &[Matcher]) -> Option<String> {
    for m in ms {
        if let Some(why) = never_matches_alone(m) {
            return Some(why);
        }
    }
    let mut by_name: BTreeMap<&str, Vec<&Matcher>> = BTreeMap::new();
    for m in ms {
        by_name.entry(m.name.as_str()).or_default().push(m);
    }
    for (name, group) in by_name {
        let equal: Vec<&&Matcher> = group.iter().filter(|m| m.op == MatchOp::Equal).collect();
        // With an equality the label's only possible value is known: every other matcher on it
        // must accept that value.
        if let Some(first) = equal.first() {
            let v = first.value.as_str();
            if let Some(other) = group.iter().find(|m| !m.matches(v)) {
                return Some(format!(
                    "{first} and {other} cannot both hold (the only value {name} may have is {v:?})"
                ));
            }
            continue;
        }
        // `a!="x"` and `a=~"x"` and the like: a regex with finitely many literal values
        // (an alternation) must keep one value every other matcher accepts.
        for m in group.iter().filter(|m| m.op == MatchOp::Regex) {
            let Some(values) = literal_alternatives(&m.value) else {
                continue;
            };
            if !values.iter().any(|v| group.iter().all(|o| o.matches(v))) {
                let others: Vec<String> = group
                    .iter()
                    .filter(|o| !std::ptr::eq(**o, *m))
                    .map(|o| o.to_string())
                    .collect();
                return Some(format!(
                    "no value {m} allows is also allowed by {}",
                    others.join(", ")
                ));
            }
        }
    }
    None
}

/// Why the single matcher `m` rejects every value, if it does.
fn never_matches_alone(m: &Matcher) -> Option<String> {
    match m.op {
        MatchOp::Regex => {
            // regex-syntax gives no minimum length exactly when the language is empty.
            let hir = regex_syntax::parse(&format!("^(?s:{})$", m.value)).ok()?;
            hir.properties()
                .minimum_len()
                .is_none()
                .then(|| format!("the regular expression of {m} matches nothing"))
        }
        // `.*` (any string) negated rejects every value, the empty one included.
        MatchOp::NotRegex => matches!(m.value.as_str(), ".*" | "(.*)" | "(?s:.*)")
            .then(|| format!("{m} rejects every value, the empty one included")),
        MatchOp::Equal | MatchOp::NotEqual => None,
    }
}

/// The literal values of a regex that is an alternation of plain words (`a|b|c`), if it is one.
fn literal_alternatives(re: &str) -> Option<Vec<String>> {
    let inner = re
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(re);
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' ' | ':' | '/' | '@'))
    };
    let parts: Vec<String> = inner.split('|').map(str::to_string).collect();
    parts.iter().all(|p| plain(p)).then_some(parts)
}

/// Whether every label set that satisfies all of `a` satisfies all of `b` (true only when
/// certain).
pub fn implies(a: &[Matcher], b: &[Matcher]) -> bool {
    b.iter().all(|m| {
        if accepts_everything(m) {
            return true;
        }
        a.iter().any(|x| {
            x.name == m.name
                && ((x.op == m.op && x.value == m.value)
                    || (x.op == MatchOp::Equal && m.matches(&x.value)))
        })
    })
}

/// Whether `m` accepts every value, the empty one included.
fn accepts_everything(m: &Matcher) -> bool {
    match m.op {
        MatchOp::Regex => matches!(m.value.as_str(), ".*" | "(.*)" | "(?s:.*)"),
        MatchOp::NotRegex => regex_syntax::parse(&format!("^(?s:{})$", m.value))
            .is_ok_and(|h| h.properties().minimum_len().is_none()),
        MatchOp::Equal | MatchOp::NotEqual => false,
    }
}

/// The matchers as the configuration shows them: `{a="x", b=~"y"}`.
pub fn show(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(list: &[&str]) -> Vec<Matcher> {
        list.iter()
            .flat_map(|s| {
                tocsin_alerts::matchers::parse_matchers(s).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    #[test]
    fn contradictions() {
        assert!(never_matches(&ms(&["a=x", "a=y"])).is_some());
        assert!(never_matches(&ms(&["a=x", "a!=x"])).is_some());
        assert!(never_matches(&ms(&["a=x", "a=~\"y|z\""])).is_some());
        assert!(never_matches(&ms(&["a=~\"x|y\"", "a!~\"x|y\""])).is_some());
        assert!(never_matches(&ms(&["a=~\"[a&&b]\""])).is_some());
        assert!(never_matches(&ms(&["a!~\".*\""])).is_some());
        assert!(never_matches(&ms(&["a=x", "b=y"])).is_none());
        assert!(never_matches(&ms(&["a=~\"x|y\"", "a!=x"])).is_none());
        assert!(never_matches(&ms(&["a=~\"x.*\"", "a!~\"xy\""])).is_none());
        assert!(never_matches(&ms(&["a=\"\"", "a!~\".+\""])).is_none());
    }

    #[test]
    fn implications() {
        assert!(implies(&ms(&["a=x", "b=y"]), &ms(&["a=x"])));
        assert!(implies(&ms(&["a=x"]), &ms(&["a=~\"x|y\""])));
        assert!(implies(&ms(&["a=x"]), &[]));
        assert!(implies(&ms(&["a=x"]), &ms(&["b=~\".*\""])));
        assert!(!implies(&ms(&["a=x"]), &ms(&["b=y"])));
        assert!(!implies(&ms(&["a=~\"x|y\""]), &ms(&["a=x"])));
    }
}
