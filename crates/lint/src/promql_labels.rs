//! The labels an expression's result can carry, computed conservatively from the AST: when in
//! doubt the answer is "any label", so rules built on it only fail on certain loss
//! (`$labels.instance` after `sum by (job)`, or after `a > on(job) b`, which keeps only `job`).

use std::collections::BTreeSet;

use promql_parser::parser::{
    value::ValueType, AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, VectorMatchCardinality,
};

/// The possible label names of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSet {
    /// Exactly these names at most.
    Only(BTreeSet<String>),
    /// Any name except these (an unaggregated selector is `AllBut({})`).
    AllBut(BTreeSet<String>),
}

impl LabelSet {
    fn any() -> LabelSet {
        LabelSet::AllBut(BTreeSet::new())
    }

    fn none() -> LabelSet {
        LabelSet::Only(BTreeSet::new())
    }

    /// Whether `name` can be on a result series.
    pub fn may_have(&self, name: &str) -> bool {
        match self {
            LabelSet::Only(s) => s.contains(name),
            LabelSet::AllBut(s) => !s.contains(name),
        }
    }

    fn add(mut self, name: &str) -> LabelSet {
        match &mut self {
            LabelSet::Only(s) => {
                s.insert(name.to_string());
            }
            LabelSet::AllBut(s) => {
                s.remove(name);
            }
        }
        self
    }

    fn keep(self, names: &BTreeSet<String>) -> LabelSet {
        match self {
            LabelSet::Only(s) => LabelSet::Only(s.intersection(names).cloned().collect()),
            LabelSet::AllBut(s) => LabelSet::Only(names.difference(&s).cloned().collect()),
        }
    }

    fn remove(self, names: &BTreeSet<String>) -> LabelSet {
        match self {
            LabelSet::Only(s) => LabelSet::Only(s.difference(names).cloned().collect()),
            LabelSet::AllBut(s) => LabelSet::AllBut(s.union(names).cloned().collect()),
        }
    }

    fn union(self, other: LabelSet) -> LabelSet {
        match (self, other) {
            (LabelSet::Only(a), LabelSet::Only(b)) => {
                LabelSet::Only(a.union(&b).cloned().collect())
            }
            (LabelSet::AllBut(a), LabelSet::Only(b)) | (LabelSet::Only(b), LabelSet::AllBut(a)) => {
                LabelSet::AllBut(a.difference(&b).cloned().collect())
            }
            (LabelSet::AllBut(a), LabelSet::AllBut(b)) => {
                LabelSet::AllBut(a.intersection(&b).cloned().collect())
            }
        }
    }
}

fn names(m: &LabelModifier) -> BTreeSet<String> {
    m.labels().labels.iter().cloned().collect()
}

/// The label names the result of `e` can carry.
pub fn output_labels(e: &Expr) -> LabelSet {
    match e {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) | Expr::Extension(_) => LabelSet::any(),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => LabelSet::none(),
        Expr::Paren(p) => output_labels(&p.expr),
        Expr::Unary(u) => output_labels(&u.expr),
        Expr::Subquery(s) => output_labels(&s.expr),
        Expr::Aggregate(a) => aggregate(a),
        Expr::Call(c) => call(c),
        Expr::Binary(b) => binary(b),
    }
}

fn aggregate(a: &AggregateExpr) -> LabelSet {
    let op = a.op.to_string();
    match op.as_str() {
        // These pick series; they keep each one's labels.
        "topk" | "bottomk" | "limitk" | "limit_ratio" => output_labels(&a.expr),
        _ => {
            let grouped = match &a.modifier {
                None => LabelSet::none(),
                Some(m @ LabelModifier::Include(_)) => output_labels(&a.expr).keep(&names(m)),
                Some(m @ LabelModifier::Exclude(_)) => output_labels(&a.expr).remove(&names(m)),
            };
            if op == "count_values" {
                match a.param.as_deref() {
                    Some(Expr::StringLiteral(s)) => grouped.add(&s.val),
                    _ => LabelSet::any(),
                }
            } else {
                grouped
            }
        }
    }
}

fn call(c: &Call) -> LabelSet {
    let args = &c.args.args;
    match c.func.name {
        "label_replace" | "label_join" => {
            let base = args
                .first()
                .map_or_else(LabelSet::none, |a| output_labels(a));
            match args.get(1).map(|a| a.as_ref()) {
                Some(Expr::StringLiteral(dst)) => base.add(&dst.val),
                _ => LabelSet::any(),
            }
        }
        // Their labels come from the selector's equality matchers: not worth modelling here.
        "absent" | "absent_over_time" => LabelSet::any(),
        _ if c.func.return_type == ValueType::Scalar => LabelSet::none(),
        // Every other function returns its (first) vector argument's series.
        _ => args
            .iter()
            .find(|a| !is_scalar(a))
            .map_or_else(LabelSet::none, |a| output_labels(a)),
    }
}

fn binary(b: &BinaryExpr) -> LabelSet {
    let (ls, rs) = (is_scalar(&b.lhs), is_scalar(&b.rhs));
    if ls && rs {
        return LabelSet::none();
    }
    if ls {
        return output_labels(&b.rhs);
    }
    if rs {
        return output_labels(&b.lhs);
    }
    let op = b.op.to_string();
    let lhs = output_labels(&b.lhs);
    match op.as_str() {
        "and" | "unless" => return lhs,
        "or" => return lhs.union(output_labels(&b.rhs)),
        _ => {}
    }
    let Some(m) = &b.modifier else { return lhs };
    match &m.card {
        VectorMatchCardinality::ManyToOne(include) => {
            include.labels.iter().fold(lhs, |s, l| s.add(l))
        }
        VectorMatchCardinality::OneToMany(include) => include
            .labels
            .iter()
            .fold(output_labels(&b.rhs), |s, l| s.add(l)),
        // One-to-one matching keeps only the `on` labels, or drops the `ignoring` ones.
        VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {
            match &m.matching {
                Some(on @ LabelModifier::Include(_)) => lhs.keep(&names(on)),
                Some(ig @ LabelModifier::Exclude(_)) => lhs.remove(&names(ig)),
                None => lhs,
            }
        }
    }
}

/// Whether `e` is a scalar (or string): its result has no series to carry labels.
pub fn is_scalar(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Paren(p) => is_scalar(&p.expr),
        Expr::Unary(u) => is_scalar(&u.expr),
        Expr::Call(c) => matches!(c.func.return_type, ValueType::Scalar | ValueType::String),
        Expr::Binary(b) => is_scalar(&b.lhs) && is_scalar(&b.rhs),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(q: &str) -> LabelSet {
        let p = promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        output_labels(&p)
    }

    fn only(names: &[&str]) -> LabelSet {
        LabelSet::Only(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn aggregations_keep_their_grouping() {
        assert_eq!(out("sum by (job) (rate(x[5m]))"), only(&["job"]));
        assert_eq!(out("sum(x)"), only(&[]));
        assert!(!out("sum without (instance) (x)").may_have("instance"));
        assert!(out("sum without (instance) (x)").may_have("job"));
        assert!(out("topk(3, x)").may_have("instance"));
        assert_eq!(out("count_values by (job) (\"v\", x)"), only(&["job", "v"]));
    }

    #[test]
    fn binary_matching() {
        assert!(out("x > 0.9").may_have("instance"));
        assert_eq!(out("x > on(job) y"), only(&["job"]));
        assert!(!out("x - ignoring(instance) y").may_have("instance"));
        assert_eq!(
            out("sum by (a) (x) * on(a) group_left(b) y"),
            only(&["a", "b"])
        );
        assert!(out("sum by (a) (x) or y").may_have("instance"));
        assert_eq!(out("sum by (a) (x) and y"), only(&["a"]));
        assert_eq!(out("2 * sum by (a) (x)"), only(&["a"]));
    }

    #[test]
    fn functions() {
        assert_eq!(
            out("label_replace(sum by (a) (x), \"b\", \"$1\", \"a\", \"(.*)\")"),
            only(&["a", "b"])
        );
        assert_eq!(
            out("histogram_quantile(0.9, sum by (le, job) (rate(x[5m])))"),
            only(&["le", "job"])
        );
        assert_eq!(out("vector(1)"), only(&[]));
        assert!(out("absent(up{job=\"a\"})").may_have("job"));
    }
}
