//! The JSON custom-metric push API (`POST /api/v1/push`), shaped like Cloud Monitoring's
//! `CreateTimeSeries`: parsing and the mapping of each time series to a label set and samples.
//!
//! Mapping:
//! - metric name: `metric.type` without a leading domain segment (`custom.googleapis.com/` and the
//!   like: the first `/`-separated segment when it contains a `.`), the rest sanitized, so
//!   `custom.googleapis.com/vm/stuck_seconds` becomes `vm_stuck_seconds`;
//! - `metric.labels` and `resource.labels` become labels (names sanitized), `resource.type` becomes
//!   the label `resource_type`; a name given twice is an error for that series;
//! - each point is one sample at `interval.endTime`; `doubleValue`, `int64Value` (JSON string or
//!   number) and `boolValue` (1/0) are accepted; `metricKind` and `valueType` are checked but not
//!   stored (a DELTA point is stored as the increment it carries).
//!
//! Field names are taken in both spellings proto3 JSON allows: lowerCamelCase (`timeSeries`,
//! `endTime`, `doubleValue`) and the proto field name (`time_series`, `end_time`,
//! `double_value`); giving both spellings of one field is an error. Label keys are never renamed.
//!
//! A body that is not JSON or has no `timeSeries` array is rejected whole; otherwise every bad
//! series is reported with the JSON path of the offending value and the good ones are kept.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::names::{is_valid_label_name, push_sanitized, sanitize_label_name};

/// At most this many bad series are described; the rest are only counted.
pub const MAX_REPORTED_SERIES: usize = 20;

/// One time series ready to append: label pairs sorted by name (with `__name__`), samples sorted
/// by time.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

impl MappedSeries {
    /// The labels as borrowed pairs, the shape `Appender::append_pairs` takes.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }
}

/// A decoded request: the good series and the reasons the others were refused.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub series: Vec<MappedSeries>,
    /// The first [`MAX_REPORTED_SERIES`] bad series, each as `path: reason`.
    pub errors: Vec<String>,
    /// All bad series.
    pub errors_total: u64,
}

impl Decoded {
    /// The errors as one message, saying how many were left out.
    pub fn errors_message(&self) -> String {
        let mut s = self.errors.join("; ");
        let more = self.errors_total.saturating_sub(self.errors.len() as u64);
        if more > 0 {
            s.push_str(&format!("; and {more} more bad time series"));
        }
        s
    }
}

/// Parses and maps a request body.
pub fn decode(body: &[u8]) -> Result<Decoded> {
    decode_for_project(body, None)
}

/// Parses and maps a body sent to `projects/{project}/timeSeries`: like Cloud Monitoring, a
/// series whose labels carry no `project_id` gets the project of the request path.
pub fn decode_for_project(body: &[u8], project: Option<&str>) -> Result<Decoded> {
    let mut d = decode_inner(body)?;
    if let Some(p) = project {
        for s in &mut d.series {
            if !s.labels.iter().any(|(n, _)| n == "project_id") {
                s.labels.push(("project_id".to_string(), p.to_string()));
                s.labels.sort();
            }
        }
    }
    Ok(d)
}

fn decode_inner(body: &[u8]) -> Result<Decoded> {
    let root: Value = serde_json::from_slice(body).map_err(|e| Error::Json(e.to_string()))?;
    let Some(root) = root.as_object() else {
        return Err(Error::Json("the body must be a JSON object".into()));
    };
    let Some(list) = pick(root, "", "timeSeries").map_err(Error::Json)? else {
        return Err(Error::Json("missing field timeSeries".into()));
    };
    let Some(list) = list.as_array() else {
        return Err(Error::Json("timeSeries: must be an array".into()));
    };
    let mut out = Decoded::default();
    for (i, ts) in list.iter().enumerate() {
        match map_series(i, ts) {
            Ok(s) => out.series.push(s),
            Err(e) => {
                out.errors_total += 1;
                if out.errors.len() < MAX_REPORTED_SERIES {
                    out.errors.push(e);
                }
            }
        }
    }
    Ok(out)
}

/// A JSON path and the reason the value there is refused.
fn err(path: &str, reason: impl std::fmt::Display) -> String {
    format!("{path}: {reason}")
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| err(path, "must be an object"))
}

/// The proto field name of a lowerCamelCase JSON name (`endTime` -> `end_time`).
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A field under either of its proto3 JSON spellings.
fn pick<'a>(
    o: &'a Map<String, Value>,
    path: &str,
    camel: &str,
) -> Result<Option<&'a Value>, String> {
    let sn = snake(camel);
    match (o.get(camel), (sn != camel).then(|| o.get(&sn)).flatten()) {
        (Some(_), Some(_)) => Err(err(
            &join(path, camel),
            format!("given twice, as {camel} and as {sn}"),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn field<'a>(o: &'a Map<String, Value>, path: &str, key: &str) -> Result<&'a Value, String> {
    pick(o, path, key)?.ok_or_else(|| err(&join(path, key), "missing"))
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| err(path, "must be a string"))
}

/// The metric name for a Cloud Monitoring metric type.
pub fn metric_name(metric_type: &str) -> String {
    let rest = match metric_type.split_once('/') {
        Some((domain, rest)) if domain.contains('.') => rest,
        _ => metric_type,
    };
    let mut name = String::with_capacity(rest.len() + 1);
    push_sanitized(&mut name, rest, true, true);
    name
}

fn map_series(i: usize, ts: &Value) -> Result<MappedSeries, String> {
    let base = format!("timeSeries[{i}]");
    let o = obj(ts, &base)?;
    let mpath = format!("{base}.metric");
    let metric = obj(field(o, &base, "metric")?, &mpath)?;
    let tpath = format!("{mpath}.type");
    let mtype = string(field(metric, &mpath, "type")?, &tpath)?;
    let name = metric_name(mtype);
    if name.is_empty() {
        return Err(err(&tpath, "empty metric type"));
    }
    // Label name -> the path that set it, to name both sides of a clash.
    let mut labels: Vec<(String, String, String)> = Vec::new();
    let mut add = |n: &str, v: &str, path: String| -> Result<(), String> {
        if n.is_empty() {
            return Err(err(&path, "empty label name"));
        }
        let n = sanitize_label_name(n).into_owned();
        if n == tocsin_model::METRIC_NAME || !is_valid_label_name(&n) {
            return Err(err(&path, format!("label name {n:?} is not allowed")));
        }
        if let Some((_, _, first)) = labels.iter().find(|(k, _, _)| *k == n) {
            return Err(err(
                &path,
                format!("label {n:?} is also set by {first}; metric and resource labels must not share names"),
            ));
        }
        labels.push((n, v.to_string(), path));
        Ok(())
    };
    if let Some(ml) = metric.get("labels") {
        let lpath = format!("{mpath}.labels");
        for (k, v) in obj(ml, &lpath)? {
            let p = format!("{lpath}.{k}");
            add(k, string(v, &p)?, p)?;
        }
    }
    if let Some(res) = o.get("resource") {
        let rpath = format!("{base}.resource");
        let res = obj(res, &rpath)?;
        let rtp = format!("{rpath}.type");
        let rtype = string(field(res, &rpath, "type")?, &rtp)?;
        add("resource_type", rtype, rtp)?;
        if let Some(rl) = res.get("labels") {
            let lpath = format!("{rpath}.labels");
            for (k, v) in obj(rl, &lpath)? {
                let p = format!("{lpath}.{k}");
                add(k, string(v, &p)?, p)?;
            }
        }
    }
    if let Some(k) = pick(o, &base, "metricKind")? {
        let p = format!("{base}.metricKind");
        match string(k, &p)? {
            "GAUGE" | "CUMULATIVE" | "DELTA" => {}
            other => {
                return Err(err(
                    &p,
                    format!("{other:?} is not one of GAUGE, CUMULATIVE, DELTA"),
                ))
            }
        }
    }
    let value_type = match pick(o, &base, "valueType")? {
        None => None,
        Some(v) => {
            let p = format!("{base}.valueType");
            match string(v, &p)? {
                t @ ("DOUBLE" | "INT64" | "BOOL") => Some(t),
                other => {
                    return Err(err(
                        &p,
                        format!("{other:?} is not supported (DOUBLE, INT64 or BOOL)"),
                    ))
                }
            }
        }
    };
    let ppath = format!("{base}.points");
    let points = field(o, &base, "points")?
        .as_array()
        .ok_or_else(|| err(&ppath, "must be an array"))?;
    if points.is_empty() {
        return Err(err(&ppath, "no points"));
    }
    let mut samples = Vec::with_capacity(points.len());
    for (j, p) in points.iter().enumerate() {
        samples.push(map_point(&format!("{ppath}[{j}]"), p, value_type)?);
    }
    samples.sort_by_key(|(t, _)| *t);
    let mut out: Vec<(String, String)> = labels
        .into_iter()
        .filter(|(_, v, _)| !v.is_empty())
        .map(|(n, v, _)| (n, v))
        .collect();
    out.push((tocsin_model::METRIC_NAME.to_string(), name));
    out.sort();
    Ok(MappedSeries {
        labels: out,
        samples,
    })
}

fn map_point(path: &str, p: &Value, value_type: Option<&str>) -> Result<(i64, f64), String> {
    let o = obj(p, path)?;
    let ipath = format!("{path}.interval");
    let interval = obj(field(o, path, "interval")?, &ipath)?;
    let epath = format!("{ipath}.endTime");
    let end = string(field(interval, &ipath, "endTime")?, &epath)?;
    let t = parse_rfc3339(end).ok_or_else(|| {
        err(
            &epath,
            format!("{end:?} is not an RFC 3339 time (like 2024-05-01T12:00:00Z)"),
        )
    })?;
    if let Some(s) = pick(interval, &ipath, "startTime")? {
        let spath = format!("{ipath}.startTime");
        let st = string(s, &spath)?;
        if parse_rfc3339(st).is_none() {
            return Err(err(&spath, format!("{st:?} is not an RFC 3339 time")));
        }
    }
    let vpath = format!("{path}.value");
    let value = obj(field(o, path, "value")?, &vpath)?;
    if value.len() != 1 {
        return Err(err(
            &vpath,
            "must hold exactly one of doubleValue, int64Value, boolValue",
        ));
    }
    let Some((kind, v)) = value.iter().next() else {
        return Err(err(&vpath, "empty value"));
    };
    let kpath = format!("{vpath}.{kind}");
    let (vt, f) = match kind.as_str() {
        "doubleValue" | "double_value" => (
            "DOUBLE",
            double(v).ok_or_else(|| err(&kpath, "must be a number"))?,
        ),
        "int64Value" | "int64_value" => (
            "INT64",
            int64(v)
                .ok_or_else(|| err(&kpath, "must be a 64-bit integer (a JSON string or number)"))?
                as f64,
        ),
        "boolValue" | "bool_value" => (
            "BOOL",
            match v.as_bool() {
                Some(true) => 1.0,
                Some(false) => 0.0,
                None => return Err(err(&kpath, "must be true or false")),
            },
        ),
        other => {
            return Err(err(
                &kpath,
                format!("{other} is not supported (doubleValue, int64Value or boolValue)"),
            ))
        }
    };
    if let Some(want) = value_type {
        if want != vt {
            return Err(err(&kpath, format!("does not match valueType {want}")));
        }
    }
    Ok((t, f))
}

/// A JSON number, or one of the strings proto3 JSON uses for non-finite doubles.
fn double(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// proto3 JSON writes int64 as a string; numbers are accepted too.
fn int64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Parses an RFC 3339 time to Unix milliseconds (the one parser every API shares).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    tocsin_model::time::parse_rfc3339_ms(s)
}

#[cfg(test)]
mod tests;
