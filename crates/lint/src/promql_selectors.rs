//! The series selectors of an expression as the live rules need them: each leaf selector with
//! what surrounds it (inside `absent()`, under `rate()` with which window), and the `on(...)`
//! joins whose sides are one plain selector each, so a label missing from that selector's live
//! series means the side cannot pair.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, LabelModifier, VectorSelector};

/// Functions that need at least two samples in their window.
const RATE_LIKE: &[&str] = &["rate", "irate", "increase", "delta", "idelta", "deriv"];

/// One leaf selector of an expression.
#[derive(Debug, Clone)]
pub struct SelectorUse {
    /// The selector as PromQL, without range, offset or `@`.
    pub selector: String,
    /// Under `absent()` / `absent_over_time()`: missing series are the point there.
    pub in_absent: bool,
    /// The rate-like function and window (ms) directly around it, e.g. `rate(x[1m])`.
    pub window: Option<(String, i64)>,
}

/// A vector match `on(labels)` with one plain selector per side.
#[derive(Debug, Clone)]
pub struct Join {
    pub on: Vec<String>,
    /// The left and right sides' selectors (PromQL, without range, offset or `@`).
    pub sides: [String; 2],
}

fn clean(vs: &VectorSelector) -> VectorSelector {
    let mut v = vs.clone();
    v.offset = None;
    v.at = None;
    v
}

/// `selector` with `name op value` added (to every `or` branch too).
pub fn with_matcher(selector: &str, name: &str, op: MatchOp, value: &str) -> Option<String> {
    let parsed = promql_parser::parser::parse(selector).ok()?;
    let Expr::VectorSelector(mut vs) = parsed else {
        return None;
    };
    let m = Matcher::new(op, name, value);
    vs.matchers.matchers.push(m.clone());
    for g in &mut vs.matchers.or_matchers {
        g.push(m.clone());
    }
    Some(vs.to_string())
}

/// Every leaf selector of `e`.
pub fn selectors(e: &Expr) -> Vec<SelectorUse> {
    let mut out = Vec::new();
    walk(e, false, None, &mut out);
    out
}

fn walk(e: &Expr, in_absent: bool, window: Option<(String, i64)>, out: &mut Vec<SelectorUse>) {
    match e {
        Expr::VectorSelector(vs) => out.push(SelectorUse {
            selector: clean(vs).to_string(),
            in_absent,
            window,
        }),
        Expr::MatrixSelector(ms) => out.push(SelectorUse {
            selector: clean(&ms.vs).to_string(),
            in_absent,
            window,
        }),
        Expr::Call(c) => {
            let name = c.func.name;
            let absent = in_absent || name == "absent" || name == "absent_over_time";
            for a in &c.args.args {
                let w = match a.as_ref() {
                    Expr::MatrixSelector(ms) if RATE_LIKE.contains(&name) => {
                        Some((name.to_string(), ms.range.as_millis() as i64))
                    }
                    _ => None,
                };
                walk(a, absent, w, out);
            }
        }
        Expr::Binary(b) => {
            walk(&b.lhs, in_absent, None, out);
            walk(&b.rhs, in_absent, None, out);
        }
        Expr::Paren(p) => walk(&p.expr, in_absent, None, out),
        Expr::Unary(u) => walk(&u.expr, in_absent, None, out),
        Expr::Subquery(s) => walk(&s.expr, in_absent, None, out),
        Expr::Aggregate(a) => walk(&a.expr, in_absent, None, out),
        _ => {}
    }
}

/// The single selector under `e` when `e` cannot add or rename labels on the way up (no
/// `label_replace`/`label_join`, no nested vector match); None otherwise.
fn plain_selector(e: &Expr) -> Option<String> {
    let mut leaves = Vec::new();
    if !collect_plain(e, &mut leaves) || leaves.len() != 1 {
        return None;
    }
    leaves.pop()
}

fn collect_plain(e: &Expr, leaves: &mut Vec<String>) -> bool {
    match e {
        Expr::VectorSelector(vs) => {
            leaves.push(clean(vs).to_string());
            true
        }
        Expr::MatrixSelector(ms) => {
            leaves.push(clean(&ms.vs).to_string());
            true
        }
        Expr::Call(c) => {
            !matches!(c.func.name, "label_replace" | "label_join")
                && c.args.args.iter().all(|a| collect_plain(a, leaves))
        }
        // A comparison or arithmetic with a number keeps the selector's labels.
        Expr::Binary(b) => {
            let (l, r) = (b.lhs.as_ref(), b.rhs.as_ref());
            match (is_number(l), is_number(r)) {
                (true, false) => collect_plain(r, leaves),
                (false, true) => collect_plain(l, leaves),
                _ => false,
            }
        }
        Expr::Paren(p) => collect_plain(&p.expr, leaves),
        Expr::Unary(u) => collect_plain(&u.expr, leaves),
        Expr::Subquery(s) => collect_plain(&s.expr, leaves),
        Expr::Aggregate(a) => collect_plain(&a.expr, leaves),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        _ => false,
    }
}

fn is_number(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_number(&p.expr),
        Expr::Unary(u) => is_number(&u.expr),
        _ => false,
    }
}

/// Every `on(...)` vector match of `e` whose two sides are one plain selector each.
pub fn joins(e: &Expr) -> Vec<Join> {
    let mut out = Vec::new();
    collect_joins(e, &mut out);
    out
}

fn collect_joins(e: &Expr, out: &mut Vec<Join>) {
    match e {
        Expr::Binary(b) => {
            let on = b.modifier.as_ref().and_then(|m| match &m.matching {
                Some(LabelModifier::Include(l)) if !l.labels.is_empty() => Some(l.labels.clone()),
                _ => None,
            });
            if let (Some(on), Some(l), Some(r)) =
                (on, plain_selector(&b.lhs), plain_selector(&b.rhs))
            {
                out.push(Join { on, sides: [l, r] });
            }
            collect_joins(&b.lhs, out);
            collect_joins(&b.rhs, out);
        }
        Expr::Paren(p) => collect_joins(&p.expr, out),
        Expr::Unary(u) => collect_joins(&u.expr, out),
        Expr::Subquery(s) => collect_joins(&s.expr, out),
        Expr::Aggregate(a) => collect_joins(&a.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_joins(a, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Expr {
        promql_parser::parser::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn finds_selectors_windows_and_absent() {
        let u = selectors(&parse(
            r#"rate(a{job="x"}[1m] offset 5m) > 0 and absent(b) or sum_over_time(c[5m:])"#,
        ));
        assert_eq!(u.len(), 3);
        assert_eq!(u[0].selector, r#"a{job="x"}"#);
        assert_eq!(u[0].window, Some(("rate".into(), 60_000)));
        assert!(u[1].in_absent && u[1].window.is_none());
        assert_eq!(u[2].selector, "c");
    }

    #[test]
    fn joins_with_plain_sides_only() {
        let j = joins(&parse(
            "(cpu > 0.95) and on(instance_id) (uptime > 600) or (x + y) * on(a) z",
        ));
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].on, vec!["instance_id".to_string()]);
        assert_eq!(j[0].sides, ["cpu".to_string(), "uptime".to_string()]);
        assert!(joins(&parse(
            r#"label_replace(a, "l", "$1", "m", "(.*)") * on(l) b"#
        ))
        .is_empty());
    }

    #[test]
    fn adds_a_matcher() {
        let s = with_matcher(r#"cpu{job="a"}"#, "instance_id", MatchOp::Equal, "");
        assert_eq!(s.as_deref(), Some(r#"cpu{instance_id="",job="a"}"#));
    }
}
