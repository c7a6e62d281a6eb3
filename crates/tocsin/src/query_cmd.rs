//! `tocsin query EXPR` and `tocsin query range EXPR`: PromQL against a running server's HTTP API,
//! printed as a table (labels, value, timestamp) or, with `--json`, as the API's JSON verbatim.
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
        bail!(
            "{}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or(body.trim())
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

/// Rows of (labels, value, timestamp), aligned in columns.
fn table(data: &Value) -> anyhow::Result<String> {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let point = |p: &Value| -> anyhow::Result<(String, String)> {
        let ts = p[0].as_f64().ok_or_else(|| anyhow!("bad point {p}"))?;
        let v = p[1].as_str().ok_or_else(|| anyhow!("bad point {p}"))?;
        Ok((v.to_string(), format!("{ts:.3}")))
    };
    match data["resultType"].as_str() {
        Some("vector") => {
            for s in data["result"].as_array().into_iter().flatten() {
                let (v, t) = point(&s["value"])?;
                rows.push([labels(&s["metric"]), v, t]);
            }
        }
        Some("matrix") => {
            for s in data["result"].as_array().into_iter().flatten() {
                let l = labels(&s["metric"]);
                for p in s["values"].as_array().into_iter().flatten() {
                    let (v, t) = point(p)?;
                    rows.push([l.clone(), v, t]);
                }
            }
        }
        Some("scalar") | Some("string") => {
            let (v, t) = point(&data["result"])?;
            rows.push(["{}".into(), v, t]);
        }
        other => bail!("unexpected result type {other:?}"),
    }
    let mut w = [6usize, 5, 9];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(["LABELS".into(), "VALUE".into(), "TIMESTAMP".into()]).chain(rows) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {}",
            r[0],
            r[1],
            r[2],
            w0 = w[0],
            w1 = w[1]
        );
    }
    Ok(out)
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
        assert!(t.contains("up{job=\"a\"}"), "{t}");
        assert!(t.contains("1700000000.500"), "{t}");
        let m: Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"1"],[2,"NaN"]]}]}"#,
        )
        .unwrap();
        let t = table(&m).unwrap();
        assert_eq!(t.lines().count(), 3, "{t}");
        assert!(t.contains("NaN"));
        let s: Value = serde_json::from_str(r#"{"resultType":"scalar","result":[1,"2"]}"#).unwrap();
        assert!(table(&s).unwrap().contains('2'));
    }
}
