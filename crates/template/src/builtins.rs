//! Go's predefined template functions (`and`, `or`, `not`, `len`, `index`, `slice`, the
//! `print` family, the `html`, `js` and `urlquery` escapers, and the comparisons with Go's
//! typing rules: an int and a float do not compare).

use std::sync::Arc;

use crate::error::FuncError;
use crate::gofmt;
use crate::value::Value;

pub(crate) type Builtin = fn(&[Value]) -> Result<Value, FuncError>;

pub(crate) fn lookup(name: &str) -> Option<Builtin> {
    Some(match name {
        "and" => and,
        "or" => or,
        "not" => not,
        "len" => len,
        "index" => index,
        "slice" => slice,
        "print" => |a| Ok(Value::Str(gofmt::sprint(a))),
        "printf" => printf,
        "println" => |a| Ok(Value::Str(gofmt::sprintln(a))),
        "html" => |a| Ok(Value::Str(html_escape(&eval_args(a)))),
        "js" => |a| Ok(Value::Str(js_escape(&eval_args(a)))),
        "urlquery" => |a| Ok(Value::Str(query_escape(&eval_args(a)))),
        "eq" => |a| eq(a).map(Value::Bool),
        "ne" => ne,
        "lt" => |a| cmp2(a, lt),
        "le" => |a| cmp2(a, le),
        "gt" => |a| cmp2(a, |x, y| le(x, y).map(|b| !b)),
        "ge" => |a| cmp2(a, |x, y| lt(x, y).map(|b| !b)),
        "call" => call,
        _ => return None,
    })
}

/// `and` without short-circuit; the executor short-circuits the real calls.
fn and(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args_at_least(args, 1)?;
    Ok(args
        .iter()
        .find(|a| !a.is_true())
        .or(args.last())
        .cloned()
        .unwrap_or_default())
}

fn or(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args_at_least(args, 1)?;
    Ok(args
        .iter()
        .find(|a| a.is_true())
        .or(args.last())
        .cloned()
        .unwrap_or_default())
}

fn not(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args(args, 1)?;
    Ok(Value::Bool(!args[0].is_true()))
}

fn call(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args_at_least(args, 1)?;
    Err(FuncError::Failed(format!(
        "non-function {} of type {}",
        args[0],
        args[0].type_name()
    )))
}

fn printf(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args_at_least(args, 1)?;
    let format = args[0].expect_str()?;
    Ok(Value::Str(gofmt::sprintf(format, &args[1..])))
}

fn len(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args(args, 1)?;
    let n = match &args[0].underlying() {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        Value::Nil => return Err("len of nil pointer".into()),
        other => return Err(format!("len of type {}", other.type_name()).into()),
    };
    Ok(Value::Int(n as i64))
}

/// An index into something of length `cap`, as Go checks it.
fn index_arg(i: &Value, cap: usize) -> Result<usize, FuncError> {
    match i {
        Value::Int(x) => {
            if *x < 0 || *x as u64 > cap as u64 {
                Err(format!("index out of range: {x}").into())
            } else {
                Ok(*x as usize)
            }
        }
        Value::Nil => Err("cannot index slice/array with nil".into()),
        other => Err(format!("cannot index slice/array with type {}", other.type_name()).into()),
    }
}

fn index(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args_at_least(args, 1)?;
    let mut item = args[0].underlying();
    if let Value::Nil = item {
        return Err("index of untyped nil".into());
    }
    for i in &args[1..] {
        item = match &item {
            Value::List(l) => {
                let x = index_arg(i, l.len())?;
                l.get(x)
                    .cloned()
                    .ok_or_else(|| FuncError::from(format!("index out of range: {x}")))?
            }
            Value::Str(s) => {
                let x = index_arg(i, s.len())?;
                let b = s
                    .as_bytes()
                    .get(x)
                    .ok_or_else(|| FuncError::from(format!("index out of range: {x}")))?;
                Value::Int(i64::from(*b))
            }
            Value::Map(m) => match i {
                Value::Str(k) => m.get_or_zero(k),
                other => {
                    return Err(
                        format!("value has type {}; should be string", other.type_name()).into(),
                    )
                }
            },
            Value::Nil => return Err("index of nil pointer".into()),
            other => return Err(format!("can't index item of type {}", other.type_name()).into()),
        };
    }
    Ok(item)
}

fn slice(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args_at_least(args, 1)?;
    let item = &args[0].underlying();
    let idx = &args[1..];
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()).into());
    }
    let len = match item {
        Value::Nil => return Err("slice of untyped nil".into()),
        Value::Str(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name()).into()),
    };
    let mut bounds = [0, len, len];
    for (k, i) in idx.iter().enumerate() {
        bounds[k] = index_arg(i, len)?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!("invalid slice index: {} > {}", bounds[0], bounds[1]).into());
    }
    if idx.len() == 3 && bounds[1] > bounds[2] {
        return Err(format!("invalid slice index: {} > {}", bounds[1], bounds[2]).into());
    }
    Ok(match item {
        Value::Str(s) => {
            Value::Str(String::from_utf8_lossy(&s.as_bytes()[bounds[0]..bounds[1]]).into_owned())
        }
        Value::List(l) => Value::list(l[bounds[0]..bounds[1]].to_vec()),
        _ => Value::Nil,
    })
}

/// The text of the arguments as the escapers see it: a lone string as is, else `print`'s.
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::Str(s)] => s.clone(),
        _ => gofmt::sprint(args),
    }
}

/// Go's `HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`: unreserved characters stay, a space becomes `+`, the rest `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn incompatible() -> FuncError {
    "incompatible types for comparison".into()
}

fn bad_type() -> FuncError {
    "invalid type for comparison".into()
}

fn is_basic(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_)
    )
}

/// `eq a b c...`: whether `a` equals any of the others.
pub(crate) fn eq(args: &[Value]) -> Result<bool, FuncError> {
    FuncError::check_args_at_least(args, 1)?;
    let a = &args[0];
    if args.len() == 1 {
        return Err("missing argument for comparison".into());
    }
    for b in &args[1..] {
        let truth = match (a, b) {
            (Value::Nil, Value::Nil) => true,
            // Go compares a missing value with anything as unequal, without complaint.
            (Value::Nil, _) | (_, Value::Nil) => false,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x), Value::Str(y)) => x == y,
            (Value::Object(x), Value::Object(y)) => Arc::ptr_eq(x, y),
            (x, y) if is_basic(x) || is_basic(y) => return Err(incompatible()),
            (x, y) if x.type_name() != y.type_name() => return Err(incompatible()),
            (x, _) => {
                return Err(format!("non-comparable type {x}: {}", x.type_name()).into());
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn ne(args: &[Value]) -> Result<Value, FuncError> {
    FuncError::check_args(args, 2)?;
    eq(args).map(|b| Value::Bool(!b))
}

fn cmp2(
    args: &[Value],
    f: impl Fn(&Value, &Value) -> Result<bool, FuncError>,
) -> Result<Value, FuncError> {
    FuncError::check_args(args, 2)?;
    f(&args[0], &args[1]).map(Value::Bool)
}

fn lt(a: &Value, b: &Value) -> Result<bool, FuncError> {
    if !is_basic(a) || !is_basic(b) {
        return Err(bad_type());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        (Value::Bool(_), Value::Bool(_)) => Err(bad_type()),
        _ => Err(incompatible()),
    }
}

fn le(a: &Value, b: &Value) -> Result<bool, FuncError> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(&[a.clone(), b.clone()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapers() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            js_escape("a'b\"c<d>=&\\\n"),
            "a\\'b\\\"c\\u003Cd\\u003E\\u003D\\u0026\\\\\\u000A"
        );
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn comparisons_follow_go_typing() {
        assert_eq!(eq(&[Value::Int(1), Value::Int(2), Value::Int(1)]), Ok(true));
        assert_eq!(eq(&[Value::Nil, Value::str("x")]), Ok(false));
        assert!(eq(&[Value::Int(1), Value::Float(1.0)]).is_err());
        assert!(lt(&Value::Float(1.0), &Value::Int(2)).is_err());
        assert!(lt(&Value::Bool(true), &Value::Bool(false)).is_err());
        assert_eq!(lt(&Value::str("a"), &Value::str("b")), Ok(true));
        assert_eq!(le(&Value::Float(2.0), &Value::Float(2.0)), Ok(true));
    }
}
