//! Binary operators: arithmetic, comparison (filtering or `bool`) and set operators, with vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`) and Prometheus's matching errors.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use tocsin_model::{hash_label_pairs, Labels};

use crate::engine::{Builder, Ctx, Evaluator, Pt, Ser, Val};
use crate::{Error, Result};

type TokenId = u16;

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// The value of `l op r` and whether the element is kept (comparisons filter).
pub(crate) fn elem_binop(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// The matching signature of a label set: the `on` labels, or all but `__name__` and the
/// `ignoring` labels.
pub(crate) fn signature(s: &Ser, matching: Option<&LabelModifier>) -> u64 {
    let visible = s
        .labels
        .iter()
        .filter(|x| !(s.drop_name && x.name == "__name__"));
    match matching {
        Some(LabelModifier::Include(on)) => hash_label_pairs(
            visible
                .filter(|x| on.labels.iter().any(|n| n == &x.name))
                .map(|x| (x.name.as_str(), x.value.as_str())),
        ),
        Some(LabelModifier::Exclude(ign)) => hash_label_pairs(
            visible
                .filter(|x| x.name != "__name__" && !ign.labels.iter().any(|n| n == &x.name))
                .map(|x| (x.name.as_str(), x.value.as_str())),
        ),
        None => hash_label_pairs(
            visible
                .filter(|x| x.name != "__name__")
                .map(|x| (x.name.as_str(), x.value.as_str())),
        ),
    }
}

impl Evaluator<'_> {
    pub fn eval_binary(&mut self, b: &BinaryExpr, ctx: Ctx) -> Result<Val> {
        let op = b.op.id();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs, ctx)?;
        let rhs = self.eval(&b.rhs, ctx)?;
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
                l.iter()
                    .zip(r.iter())
                    .map(|(&a, &c)| {
                        let (v, keep) = elem_binop(op, a, c);
                        if is_comparison(op) {
                            if keep {
                                1.0
                            } else {
                                0.0
                            }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (Val::Vector(l), Val::Scalar(r)) => {
                Ok(Val::Vector(vector_scalar(l, &r, op, return_bool, false)?))
            }
            (Val::Scalar(l), Val::Vector(r)) => {
                Ok(Val::Vector(vector_scalar(r, &l, op, return_bool, true)?))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                let fill = b
                    .modifier
                    .as_ref()
                    .map(|m| (m.fill_values.lhs, m.fill_values.rhs))
                    .unwrap_or((None, None));

                match op {
                    T_LAND | T_LUNLESS => {
                        Ok(Val::Vector(and_unless(l, r, matching, op == T_LAND, ctx)))
                    }
                    T_LOR => Ok(Val::Vector(or(l, r, matching, ctx)?)),
                    _ => {
                        let card = b
                            .modifier
                            .as_ref()
                            .map(|m| m.card.clone())
                            .unwrap_or(VectorMatchCardinality::OneToOne);
                        Ok(Val::Vector(self.vector_vector(
                            l,
                            r,
                            op,
                            return_bool,
                            matching,
                            &card,
                            fill,
                            ctx,
                        )?))
                    }
                }
            }
            _ => Err(Error::Execution("binary operator on a string".into())),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn vector_vector(
        &mut self,
        lhs: Vec<Ser>,
        rhs: Vec<Ser>,
        op: TokenId,
        return_bool: bool,
        matching: Option<&LabelModifier>,
        card: &VectorMatchCardinality,
        fill: (Option<f64>, Option<f64>),
        ctx: Ctx,
    ) -> Result<Vec<Ser>> {
        // `fill_left`/`fill_right` stand in for a missing side; with group_right the sides are
        // swapped internally, and so are the fills, as in Prometheus.
        let (fill_many, fill_one) = fill;
        let phantom = Ser::new(Labels::empty(), Vec::new());
        let mut one_present: Vec<u32> = Vec::new();
        let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let include: Vec<String> = match card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                l.labels.clone()
            }
            _ => Vec::new(),
        };
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        let many_sig: Vec<u64> = many.iter().map(|s| signature(s, matching)).collect();
        let one_sig: Vec<u64> = one.iter().map(|s| signature(s, matching)).collect();
        let drop = !is_comparison(op) || return_bool;

        let mut many_cur = vec![0usize; many.len()];
        let mut one_cur = vec![0usize; one.len()];
        let mut pairs: HashMap<(u32, u32), usize> = HashMap::new();
        let mut out = Builder::new();
        let mut one_at: HashMap<u64, (u32, f64)> = HashMap::new();
        let mut matched: HashMap<u64, u32> = HashMap::new();
        for i in 0..ctx.n as u32 {
            self.check_deadline()?;
            one_at.clear();
            matched.clear();
            one_present.clear();
            for (k, s) in one.iter().enumerate() {
                let c = &mut one_cur[k];
                if let Some(p) = s.pts.get(*c) {
                    if p.i == i {
                        *c += 1;
                        one_present.push(k as u32);
                        if let Some((prev, _)) = one_at.insert(one_sig[k], (k as u32, p.v)) {
                            let side = if swapped { "left" } else { "right" };
                            return Err(Error::Execution(format!(
                                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                                match_group_labels(s, matching),
                                one[prev as usize].labels,
                                s.labels
                            )));
                        }
                    }
                }
            }
            for (j, s) in many.iter().enumerate() {
                let c = &mut many_cur[j];
                let Some(&Pt { i: pi, v }) = s.pts.get(*c) else {
                    continue;
                };
                if pi != i {
                    continue;
                }
                *c += 1;
                let sig = many_sig[j];
                let (k, ov) = match one_at.get(&sig) {
                    Some(&(k, ov)) => {
                        if matched.insert(sig, j as u32).is_some() && one_to_one {
                            return Err(Error::Execution(
                                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                            ));
                        }
                        (k, ov)
                    }
                    None => match fill_one {
                        Some(f) => (u32::MAX, f),
                        None => continue,
                    },
                };
                let (fl, fr) = if swapped { (ov, v) } else { (v, ov) };
                let (mut val, mut keep) = elem_binop(op, fl, fr);
                if return_bool {
                    val = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if !keep {
                    continue;
                }
                let slot = match pairs.get(&(j as u32, k)) {
                    Some(&s) => s,
                    None => {
                        let other = one.get(k as usize).unwrap_or(&phantom);
                        let labels = result_labels(s, other, one_to_one, matching, &include);
                        let slot = out.slot(labels, drop || s.drop_name);
                        pairs.insert((j as u32, k), slot);
                        slot
                    }
                };
                if out.push(slot, i, val).is_err() {
                    return Err(Error::Execution(if one_to_one {
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()
                    } else {
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into()
                    }));
                }
            }
            let Some(fm) = fill_many else { continue };
            for &k in &one_present {
                let os = &one[k as usize];
                let sig = one_sig[k as usize];
                if matched.contains_key(&sig) {
                    continue;
                }
                let Some(&(_, ov)) = one_at.get(&sig) else {
                    continue;
                };
                let (fl, fr) = if swapped { (ov, fm) } else { (fm, ov) };
                let (mut val, mut keep) = elem_binop(op, fl, fr);
                if return_bool {
                    val = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if !keep {
                    continue;
                }
                let slot = match pairs.get(&(u32::MAX, k)) {
                    Some(&s) => s,
                    None => {
                        let slot = out.slot(match_group_labels(os, matching), false);
                        pairs.insert((u32::MAX, k), slot);
                        slot
                    }
                };
                out.push(slot, i, val)?;
            }
        }
        Ok(out.finish())
    }
}

/// The labels identifying a match group: the `on` labels, or all but the name and the
/// `ignoring` labels; a series filled in for a missing side gets these.
fn match_group_labels(s: &Ser, matching: Option<&LabelModifier>) -> Labels {
    let mut b = s.labels.builder();
    b.retain(|x| !(s.drop_name && x.name == "__name__"));
    match matching {
        Some(LabelModifier::Include(on)) => {
            b.retain(|x| on.labels.iter().any(|n| n == &x.name));
        }
        Some(LabelModifier::Exclude(ign)) => {
            b.retain(|x| x.name != "__name__" && !ign.labels.iter().any(|n| n == &x.name));
        }
        None => {
            b.retain(|x| x.name != "__name__");
        }
    }
    b.build()
}

/// The labels of a vector-vector result; the caller marks the name dropped where the operator
/// drops it.
fn result_labels(
    many: &Ser,
    one: &Ser,
    one_to_one: bool,
    matching: Option<&LabelModifier>,
    include: &[String],
) -> Labels {
    let mut b = many.labels.builder();
    if many.drop_name {
        b.del("__name__");
    }
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(on)) => {
                b.retain(|x| on.labels.iter().any(|n| n == &x.name));
            }
            Some(LabelModifier::Exclude(ign)) => {
                b.retain(|x| !ign.labels.iter().any(|n| n == &x.name));
            }
            None => {}
        }
    }
    for n in include {
        match one.get(n) {
            Some(v) if !v.is_empty() => {
                b.set(n, v);
            }
            _ => {
                b.del(n);
            }
        }
    }
    b.build()
}

fn vector_scalar(
    v: Vec<Ser>,
    s: &[f64],
    op: TokenId,
    return_bool: bool,
    swap: bool,
) -> Result<Vec<Ser>> {
    let keep_name = is_comparison(op) && !return_bool;
    crate::engine::map_series(v, keep_name, |i, x| {
        let sv = s[i as usize];
        let (lv, rv) = if swap { (sv, x) } else { (x, sv) };
        let (mut val, mut keep) = elem_binop(op, lv, rv);
        if is_comparison(op) && swap {
            val = rv;
        }
        if return_bool {
            val = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        keep.then_some(val)
    })
}

/// For each signature, the steps at which some series with it has a value.
fn sig_steps(
    v: &[Ser],
    matching: Option<&LabelModifier>,
    n: usize,
) -> (Vec<u64>, HashMap<u64, Vec<bool>>) {
    let mut sigs = Vec::with_capacity(v.len());
    let mut m: HashMap<u64, Vec<bool>> = HashMap::new();
    for s in v {
        let sig = signature(s, matching);
        sigs.push(sig);
        let e = m.entry(sig).or_insert_with(|| vec![false; n]);
        for p in &s.pts {
            e[p.i as usize] = true;
        }
    }
    (sigs, m)
}

fn and_unless(
    lhs: Vec<Ser>,
    rhs: Vec<Ser>,
    matching: Option<&LabelModifier>,
    and: bool,
    ctx: Ctx,
) -> Vec<Ser> {
    let (_, rsteps) = sig_steps(&rhs, matching, ctx.n);
    let mut out = Vec::new();
    for mut s in lhs {
        let sig = signature(&s, matching);
        let present = rsteps.get(&sig);
        s.pts
            .retain(|p| present.is_some_and(|st| st[p.i as usize]) == and);
        if !s.pts.is_empty() {
            out.push(s);
        }
    }
    out
}

fn or(
    lhs: Vec<Ser>,
    rhs: Vec<Ser>,
    matching: Option<&LabelModifier>,
    ctx: Ctx,
) -> Result<Vec<Ser>> {
    let (_, lsteps) = sig_steps(&lhs, matching, ctx.n);
    let mut b = Builder::new();
    for s in lhs {
        let slot = b.slot(s.labels, s.drop_name);
        for p in s.pts {
            b.push(slot, p.i, p.v)?;
        }
    }
    for s in rhs {
        let sig = signature(&s, matching);
        let present = lsteps.get(&sig);
        let pts: Vec<Pt> = s
            .pts
            .into_iter()
            .filter(|p| !present.is_some_and(|st| st[p.i as usize]))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let slot = b.slot(s.labels, s.drop_name);
        for p in pts {
            b.push(slot, p.i, p.v)?;
        }
    }
    Ok(b.finish())
}
