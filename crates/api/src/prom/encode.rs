//! Prometheus's JSON envelope and the number formats its clients parse: sample values as strings
//! (shortest round-trip digits, an exponent only below 1e-6 and from 1e21 up, `NaN`, `+Inf`,
//! `-Inf`), timestamps as seconds with the milliseconds after a point (`1435781451.781`, and
//! `1.500`: Prometheus always writes three digits when there is a fraction). Query results are
//! written by hand instead of through `serde_json::Value`: a range query can return millions of
//! points, and building a tree of values for them first would double the memory of the answer.

use std::fmt::Write as _;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use tocsin_model::{ErrorKind, Labels};
use tocsin_promql::Value;

use crate::error::status_for;

/// An error answered in Prometheus's envelope: `{"status":"error","errorType":...,"error":...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PromError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadData, message)
    }

    /// `invalid parameter "name": reason`, Prometheus's wording for a bad request parameter.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {reason}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl From<tocsin_storage::Error> for PromError {
    fn from(e: tocsin_storage::Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

impl From<tocsin_promql::Error> for PromError {
    fn from(e: tocsin_promql::Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

/// The `errorType` Prometheus sends for an error kind.
pub fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadData => "bad_data",
        ErrorKind::Execution => "execution",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Canceled => "canceled",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Internal => "internal",
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let mut body = String::from(r#"{"status":"error","errorType":"#);
        json_str(&mut body, error_type(self.kind));
        body.push_str(r#","error":"#);
        json_str(&mut body, &self.message);
        body.push('}');
        json_response(status_for(self.kind), body)
    }
}

fn json_response(status: axum::http::StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A success envelope around `data` (already JSON); empty annotation lists are left out.
pub fn success_raw(data: &str, warnings: &[String], infos: &[String]) -> Response {
    let mut body = String::with_capacity(data.len() + 64);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data);
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if list.is_empty() {
            continue;
        }
        body.push_str(",\"");
        body.push_str(key);
        body.push_str("\":[");
        for (i, w) in list.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            json_str(&mut body, w);
        }
        body.push(']');
    }
    body.push('}');
    json_response(axum::http::StatusCode::OK, body)
}

/// A success envelope around a serializable value.
pub fn success<T: serde::Serialize>(data: &T, warnings: &[String]) -> Response {
    match serde_json::to_string(data) {
        Ok(s) => success_raw(&s, warnings, &[]),
        Err(e) => PromError::internal(format!("encoding the response: {e}")).into_response(),
    }
}

/// Appends `s` as a JSON string literal.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a timestamp (ms) as Prometheus writes it: seconds, then `.` and three digits of
/// milliseconds when there are any.
pub fn fmt_ts(out: &mut String, t: i64) {
    let (sign, a) = if t < 0 {
        ("-", t.unsigned_abs())
    } else {
        ("", t as u64)
    };
    let (s, ms) = (a / 1000, a % 1000);
    if ms == 0 {
        let _ = write!(out, "{sign}{s}");
    } else {
        let _ = write!(out, "{sign}{s}.{ms:03}");
    }
}

/// A sample value as the API writes it (without quotes): Go's `strconv.FormatFloat(v, 'f', -1)`,
/// switching to `'e'` below 1e-6 and from 1e21 up, as Prometheus's JSON encoder does.
pub fn fmt_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let a = v.abs();
        if a != 0.0 && !(1e-6..1e21).contains(&a) {
            go_exp(out, v);
        } else {
            // Rust's Display is the shortest round-trip form and never uses an exponent.
            let _ = write!(out, "{v}");
        }
    }
}

/// A value as the text exposition format writes it (federation): Go's `'g'` with the shortest
/// precision, `NaN`, `+Inf`, `-Inf`.
pub fn fmt_value_text(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push('0');
        return;
    }
    // Go's %g with the shortest precision uses the exponent form when the decimal exponent is
    // below -4 or at least 6, whatever the number of digits.
    let exp = decimal_exponent(v);
    if !(-4..6).contains(&exp) {
        go_exp(out, v);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The decimal exponent of a finite non-zero `v` in scientific notation (`1.5e3` → 3).
fn decimal_exponent(v: f64) -> i64 {
    let s = format!("{:e}", v.abs());
    s.split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0)
}

/// Go's `%e` with the shortest precision: `1e-07`, `1.5e+21` (at least two exponent digits).
fn go_exp(out: &mut String, v: f64) {
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    out.push_str(mant);
    out.push('e');
    out.push(sign);
    if digits.len() < 2 {
        out.push('0');
    }
    out.push_str(digits);
}

/// Appends a label set as a JSON object.
pub fn labels_json(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, lab) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, &lab.name);
        out.push(':');
        json_str(out, &lab.value);
    }
    out.push('}');
}

fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    fmt_ts(out, t);
    out.push_str(",\"");
    fmt_value(out, v);
    out.push_str("\"]");
}

/// `{"resultType":...,"result":...}` for a query result, at most `limit` series (0 = all).
/// Returns whether series were cut off.
pub fn query_data(out: &mut String, v: &Value, limit: usize) -> bool {
    out.push_str(r#"{"resultType":""#);
    out.push_str(v.type_name());
    out.push_str(r#"","result":"#);
    let cap = |n: usize| if limit > 0 && n > limit { limit } else { n };
    let mut truncated = false;
    match v {
        Value::Scalar { t, v } => point(out, *t, *v),
        Value::String { t, v } => {
            out.push('[');
            fmt_ts(out, *t);
            out.push(',');
            json_str(out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            let n = cap(samples.len());
            truncated = n < samples.len();
            out.push('[');
            for (i, s) in samples[..n].iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                labels_json(out, &s.labels);
                out.push_str(r#","value":"#);
                point(out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            let n = cap(series.len());
            truncated = n < series.len();
            out.push('[');
            for (i, s) in series[..n].iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                labels_json(out, &s.labels);
                out.push_str(r#","values":["#);
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point(out, p.t, p.v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_model::Sample;
    use tocsin_promql::{InstantSample, RangeSeries};

    fn val(v: f64) -> String {
        let mut s = String::new();
        fmt_value(&mut s, v);
        s
    }

    fn text(v: f64) -> String {
        let mut s = String::new();
        fmt_value_text(&mut s, v);
        s
    }

    fn ts(t: i64) -> String {
        let mut s = String::new();
        fmt_ts(&mut s, t);
        s
    }

    #[test]
    fn values_are_formatted_like_prometheus() {
        assert_eq!(val(1.5), "1.5");
        assert_eq!(val(1.0), "1");
        assert_eq!(val(0.0), "0");
        assert_eq!(val(-0.0), "-0");
        assert_eq!(val(f64::NAN), "NaN");
        assert_eq!(val(f64::INFINITY), "+Inf");
        assert_eq!(val(f64::NEG_INFINITY), "-Inf");
        assert_eq!(val(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(val(1e20), "100000000000000000000");
        assert_eq!(val(1e21), "1e+21");
        assert_eq!(val(1.5e300), "1.5e+300");
        assert_eq!(val(0.000001), "0.000001");
        assert_eq!(val(1e-7), "1e-07");
        assert_eq!(val(-2.5e-10), "-2.5e-10");
        assert_eq!(val(123456789.125), "123456789.125");
    }

    #[test]
    fn text_values_use_go_g_format() {
        assert_eq!(text(1.0), "1");
        assert_eq!(text(-1.0), "-1");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(100000.0), "100000");
        assert_eq!(text(1000000.0), "1e+06");
        assert_eq!(text(123456789.0), "1.23456789e+08");
        assert_eq!(text(1234567.5), "1.2345675e+06");
        assert_eq!(text(0.0001), "0.0001");
        assert_eq!(text(0.00001), "1e-05");
        assert_eq!(text(1.5), "1.5");
        assert_eq!(text(f64::NAN), "NaN");
        assert_eq!(text(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn timestamps_are_seconds_with_milliseconds() {
        assert_eq!(ts(1435781451781), "1435781451.781");
        assert_eq!(ts(1500), "1.500");
        assert_eq!(ts(1005), "1.005");
        assert_eq!(ts(2000), "2");
        assert_eq!(ts(0), "0");
        assert_eq!(ts(-1500), "-1.500");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn result_shapes() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let mut s = String::new();
        query_data(
            &mut s,
            &Value::Vector(vec![InstantSample {
                labels: l.clone(),
                t: 1435781451781,
                v: 1.0,
            }]),
            0,
        );
        assert_eq!(
            s,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1435781451.781,"1"]}]}"#
        );
        let m = Value::Matrix(vec![
            RangeSeries {
                labels: l.clone(),
                samples: vec![
                    Sample { t: 1000, v: 1.0 },
                    Sample {
                        t: 2000,
                        v: f64::NAN,
                    },
                ],
            },
            RangeSeries {
                labels: Labels::from_pairs(&[("job", "b")]),
                samples: vec![],
            },
        ]);
        let mut s = String::new();
        assert!(query_data(&mut s, &m, 1));
        assert_eq!(
            s,
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1,"1"],[2,"NaN"]]}]}"#
        );
        let mut s = String::new();
        query_data(&mut s, &Value::Scalar { t: 1500, v: 2.0 }, 0);
        assert_eq!(s, r#"{"resultType":"scalar","result":[1.500,"2"]}"#);
        let mut s = String::new();
        query_data(
            &mut s,
            &Value::String {
                t: 1000,
                v: "x".into(),
            },
            0,
        );
        assert_eq!(s, r#"{"resultType":"string","result":[1,"x"]}"#);
    }
}
