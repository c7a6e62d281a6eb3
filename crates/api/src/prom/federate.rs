//! `GET /federate?match[]=...`: the newest sample of every matching series within the lookback
//! window, in the text exposition format, so another Prometheus can scrape this server. Series
//! are grouped by metric name under `# TYPE <name> untyped` (types are not kept per series),
//! external labels are added where a series lacks them, timestamps are in ms, and series whose
//! newest sample is a staleness marker are left out, all as Prometheus does.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tocsin_model::{is_stale_nan, Labels, METRIC_NAME};
use tocsin_storage::SelectHints;

use super::encode::fmt_value_text;
use super::params::{parse_matchers, Params};
use super::query::now_ms;
use crate::ApiState;

pub async fn federate(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    let mut sets = Vec::new();
    for s in p.all("match[]") {
        match parse_matchers(s) {
            Ok(ms) => sets.push(ms),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{}\n", e.message)).into_response(),
        }
    }
    let maxt = now_ms();
    let mint = maxt - st.query.options().lookback_delta;
    let external = st.status.external_labels();
    let res = tokio::task::spawn_blocking(move || -> tocsin_storage::Result<String> {
        let q = st.queryable.querier(mint, maxt)?;
        let hints = SelectHints {
            start: mint,
            end: maxt,
            func: Some("series".into()),
            ..SelectHints::default()
        };
        // Several selectors may match one series; a map keeps each once, ordered by name.
        let mut latest: BTreeMap<Labels, (i64, f64)> = BTreeMap::new();
        for ms in &sets {
            for s in q.select(&hints, ms)? {
                let mut s = s?;
                let mut last = None;
                while let Some(x) = s.samples.next() {
                    if x.t <= maxt {
                        last = Some((x.t, x.v));
                    }
                }
                if let Some((t, v)) = last {
                    if !is_stale_nan(v) {
                        latest.insert(s.labels, (t, v));
                    }
                }
            }
        }
        // The text format has no place for warnings (a remote_read source that failed): they
        // are logged, and what the other sources had is served.
        for w in q.warnings() {
            tracing::warn!(warning = %w, "federation answered without a source");
        }
        Ok(render(&latest, &external))
    })
    .await;
    match res {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(e)) => (
            crate::error::status_for(e.kind()),
            format!("federation failed: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("federation failed: {e}\n"),
        )
            .into_response(),
    }
}

/// Text exposition of the samples; `latest` is ordered by labels, so by metric name first.
fn render(latest: &BTreeMap<Labels, (i64, f64)>, external: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for (l, (t, v)) in latest {
        let name = l.metric_name().unwrap_or("");
        if current != Some(name) {
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(" untyped\n");
            current = Some(name);
        }
        out.push_str(name);
        let mut pairs: Vec<(&str, &str)> = l
            .iter()
            .filter(|x| x.name != METRIC_NAME)
            .map(|x| (x.name.as_str(), x.value.as_str()))
            .collect();
        for (n, v) in external {
            if l.get(n).is_none() {
                pairs.push((n, v));
            }
        }
        pairs.sort_unstable();
        if !pairs.is_empty() {
            out.push('{');
            for (i, (n, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(n);
                out.push_str("=\"");
                escape_label_value(&mut out, v);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        fmt_value_text(&mut out, *v);
        out.push(' ');
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_and_external_labels_added() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs(&[("__name__", "up"), ("job", "a\"b")]),
            (1000, 1.0),
        );
        m.insert(
            Labels::from_pairs(&[("__name__", "up"), ("job", "c"), ("region", "x")]),
            (2000, 0.0),
        );
        m.insert(Labels::from_pairs(&[("__name__", "a_total")]), (3000, 1e6));
        let out = render(&m, &[("region".into(), "eu".into())]);
        assert_eq!(
            out,
            "# TYPE a_total untyped\n\
             a_total{region=\"eu\"} 1e+06 3000\n\
             # TYPE up untyped\n\
             up{job=\"a\\\"b\",region=\"eu\"} 1 1000\n\
             up{job=\"c\",region=\"x\"} 0 2000\n"
        );
    }
}
