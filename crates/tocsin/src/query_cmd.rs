//! `tocsin query EXPR` and `tocsin query range EXPR`: PromQL against a running server's HTTP API,
//! printed for a person (times in RFC 3339 UTC, a range as one row per series, "no data" for an
//! empty result, a parse error with a caret under its position) or, with `--json`, as the API's
//! JSON verbatim.
//! The request is a form-encoded POST, so long expressions need no URL encoding limits; times
//! and steps are passed through as given, so they take every form the API accepts.

use std::fmt::Write as _;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct QueryArgs {
    #[command(subcommand)]
    range: Option<QueryCmd>,
    #[command(flatten)]
    common: Common,
    /// PromQL expression.
    #[arg(required = true)]
    expr: Option<String>,
    /// Evaluation time: RFC 3339 or Unix seconds. Default: the server's now.
    #[arg(long)]
    time: Option<String>,
}

#[derive(Subcommand)]
enum QueryCmd {
    /// Evaluate an expression over a time range.
    Range(RangeArgs),
}

#[derive(Args)]
struct RangeArgs {
    #[command(flatten)]
    common: Common,
    /// PromQL expression.
    expr: String,
    /// Range start: RFC 3339 or Unix seconds.
    #[arg(long, allow_hyphen_values = true)]
    start: String,
    /// Range end: RFC 3339 or Unix seconds.
    #[arg(long, allow_hyphen_values = true)]
    end: String,
    /// Resolution: a duration (`15s`, `1m`) or float seconds.
    #[arg(long)]
    step: String,
}

#[derive(Args)]
struct Common {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9090", env = "TOCSIN_SERVER")]
    server: String,
    /// Print the API's JSON response as it is.
    #[arg(long)]
    json: bool,
}

pub fn run(a: QueryArgs) -> anyhow::Result<()> {
    let (common, path, form) = match a.range {
        Some(QueryCmd::Range(r)) => (
            r.common,
            "/api/v1/query_range",
            vec![
                ("query", r.expr),
                ("start", r.start),
                ("end", r.end),
                ("step", r.step),
            ],
        ),
        None => {
            let mut form = vec![("query", a.expr.unwrap_or_default())];
            if let Some(t) = a.time {
                form.push(("time", t));
            }
            (a.common, "/api/v1/query", form)
        }
    };
    let url = format!("{}{}", common.server.trim_end_matches('/'), path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .form(&form)
            .send()
            .await
            .with_context(|| format!("requesting {url}"))?;
        let status = r.status();
        let body = r.text().await.context("reading the response")?;
        anyhow::Ok((status, body))
    })?;
    if common.json {
        println!("{body}");
    }
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => bail!("{url}: HTTP {status}: {}", body.trim()),
    };
    if v["status"] != "success" {
        let msg = v["error"].as_str().unwrap_or(body.trim());
        let expr = form
            .iter()
            .find(|(k, _)| *k == "query")
            .map(|(_, e)| e.as_str());
        bail!(
            "{}: {}{}",
            v["errorType"].as_str().unwrap_or("error"),
            msg,
            expr.and_then(|e| caret(e, msg)).unwrap_or_default()
        );
    }
    for w in v["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
    if !common.json {
        print!("{}", table(&v["data"])?);
    }
    Ok(())
}

/// A time as the API sends it (float seconds) in RFC 3339, UTC.
fn time(p: &Value) -> anyhow::Result<(i64, String)> {
    let ts = p.as_f64().ok_or_else(|| anyhow!("bad timestamp {p}"))?;
    let ms = (ts * 1000.0).round() as i64;
    Ok((ms, tocsin_model::time::format_rfc3339_ms(ms)))
}

fn value(p: &Value) -> anyhow::Result<String> {
    Ok(p.as_str()
        .ok_or_else(|| anyhow!("bad value {p}"))?
        .to_string())
}

/// The result for a person: instant results as rows of (labels, value, time); a range as one
/// row per series with its values on the union of all series' steps (`_` where a series has no
/// point), the times given once above; "no data" when nothing matched.
fn table(data: &Value) -> anyhow::Result<String> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut out = String::new();
    let empty = data["result"].as_array().is_some_and(|r| r.is_empty());
    if empty {
        return Ok("no data\n".into());
    }
    match data["resultType"].as_str() {
        Some("vector") => {
            rows.push(vec!["LABELS".into(), "VALUE".into(), "TIME".into()]);
            for s in data["result"].as_array().into_iter().flatten() {
                let (_, t) = time(&s["value"][0])?;
                rows.push(vec![labels(&s["metric"]), value(&s["value"][1])?, t]);
            }
        }
        Some("matrix") => {
            let series = data["result"].as_array().cloned().unwrap_or_default();
            let mut steps = std::collections::BTreeSet::new();
            let mut parsed = Vec::with_capacity(series.len());
            for s in &series {
                let mut pts = std::collections::HashMap::new();
                for p in s["values"].as_array().into_iter().flatten() {
                    let (ms, _) = time(&p[0])?;
                    steps.insert(ms);
                    pts.insert(ms, value(&p[1])?);
                }
                parsed.push((labels(&s["metric"]), pts));
            }
            let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
                return Ok("no data\n".into());
            };
            let _ = writeln!(
                out,
                "{} steps from {} to {}",
                steps.len(),
                tocsin_model::time::format_rfc3339_ms(*first),
                tocsin_model::time::format_rfc3339_ms(*last)
            );
            rows.push(vec!["LABELS".into(), "VALUES".into()]);
            for (l, pts) in parsed {
                let vals: Vec<&str> = steps
                    .iter()
                    .map(|t| pts.get(t).map(String::as_str).unwrap_or("_"))
                    .collect();
                rows.push(vec![l, vals.join(" ")]);
            }
        }
        Some("scalar") | Some("string") => {
            rows.push(vec!["VALUE".into(), "TIME".into()]);
            let (_, t) = time(&data["result"][0])?;
            rows.push(vec![value(&data["result"][1])?, t]);
        }
        other => bail!("unexpected result type {other:?}"),
    }
    let cols = rows.first().map_or(0, Vec::len);
    let mut w = vec![0usize; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<width$}  ", width = w[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// The expression with a caret under the error's position, when the message starts its reason
/// with `line:col:` as Prometheus's parse errors do (after an optional `invalid parameter ...: `).
fn caret(expr: &str, msg: &str) -> Option<String> {
    let reason = msg.rsplit_once("\": ").map_or(msg, |(_, r)| r);
    let mut it = reason.splitn(3, ':');
    let line: usize = it.next()?.trim().parse().ok()?;
    let col: usize = it.next()?.trim().parse().ok()?;
    let text = expr.lines().nth(line.checked_sub(1)?)?;
    let pad: String = text
        .chars()
        .take(col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!("\n  {text}\n  {pad}^"))
}

/// `name{a="b", ...}` from a JSON label object (the API sends it sorted by name).
fn labels(m: &Value) -> String {
    let Some(obj) = m.as_object() else {
        return "{}".into();
    };
    let name = obj.get("__name__").and_then(Value::as_str).unwrap_or("");
    let rest: Vec<String> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={}", Value::String(v.as_str().unwrap_or("").into())))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        return name.to_string();
    }
    format!("{name}{{{}}}", rest.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_and_matrix_tables() {
        let v: Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.5,"1"]}]}"#,
        )
        .unwrap();
        let t = table(&v).unwrap();
        assert_eq!(
            t,
            "LABELS       VALUE  TIME\nup{job=\"a\"}  1      2023-11-14T22:13:20.5Z\n"
        );
        let m: Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"1"],[2,"NaN"]]},{"metric":{"job":"b"},"values":[[2,"3"]]}]}"#,
        )
        .unwrap();
        let t = table(&m).unwrap();
        assert_eq!(
            t,
            "2 steps from 1970-01-01T00:00:01Z to 1970-01-01T00:00:02Z\nLABELS     VALUES\n{job=\"a\"}  1 NaN\n{job=\"b\"}  _ 3\n"
        );
        let s: Value = serde_json::from_str(r#"{"resultType":"scalar","result":[1,"2"]}"#).unwrap();
        assert_eq!(
            table(&s).unwrap(),
            "VALUE  TIME\n2      1970-01-01T00:00:01Z\n"
        );
        for r in ["vector", "matrix"] {
            let e: Value =
                serde_json::from_str(&format!(r#"{{"resultType":"{r}","result":[]}}"#)).unwrap();
            assert_eq!(table(&e).unwrap(), "no data\n");
        }
    }

    #[test]
    fn caret_under_the_error_position() {
        assert_eq!(
            caret(
                "sum(rate(x[5m])",
                "invalid parameter \"query\": 1:16: parse error: unclosed left parenthesis"
            )
            .unwrap(),
            "\n  sum(rate(x[5m])\n                 ^"
        );
        assert_eq!(caret("up", "no position here"), None);
    }
}
