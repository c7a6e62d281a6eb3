//! `/metrics` content negotiation: prometheus-client writes OpenMetrics text, where a counter
//! family `foo` has samples `foo_total`. Text format 0.0.4 has no such split: its `# HELP` and
//! `# TYPE` lines must carry the sample name, or parsers (Prometheus, promtool) see an empty typed
//! family and an untyped `foo_total`. This module serves `/metrics`, rewriting the OpenMetrics
//! text for 0.0.4 clients.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic text exposition.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the `Accept` header prefers OpenMetrics (as Prometheus's scraper asks by default).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut it = part.split(';');
            let ty = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            ty.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
        })
    })
}

/// OpenMetrics text (as prometheus-client writes it) rewritten as text format 0.0.4.
pub fn to_text_004(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    // The family's metadata is held until its TYPE is known, since HELP comes first.
    let mut help: Option<(String, String)> = None;
    // Sample-name suffixes the current family's samples may not keep in 0.0.4.
    let mut drop_suffix: Option<String> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            // OpenMetrics escapes `"` in HELP; 0.0.4 knows only `\\` and `\n` there.
            help = Some((name.to_string(), text.replace("\\\"", "\"")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name004, kind004) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                "unknown" => (name.to_string(), "untyped"),
                "gaugehistogram" => (name.to_string(), "histogram"),
                k => (name.to_string(), k),
            };
            drop_suffix = (kind == "counter").then(|| format!("{name}_created"));
            if let Some((hname, text)) = help.take() {
                if hname == name {
                    out.push_str(&format!("# HELP {name004} {text}\n"));
                } else {
                    out.push_str(&format!("# HELP {hname} {text}\n"));
                }
            }
            out.push_str(&format!("# TYPE {name004} {kind004}\n"));
            continue;
        }
        if let Some((hname, text)) = help.take() {
            out.push_str(&format!("# HELP {hname} {text}\n"));
        }
        if let Some(created) = &drop_suffix {
            let sample = line.split(['{', ' ']).next().unwrap_or("");
            if sample == created {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some((hname, text)) = help.take() {
        out.push_str(&format!("# HELP {hname} {text}\n"));
    }
    out
}

/// `GET /metrics`.
pub(crate) async fn handler(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let mut out = String::new();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match prometheus_client::encoding::text::encode(&mut out, &st.registry) {
        Ok(()) if wants_openmetrics(accept) => {
            ([(header::CONTENT_TYPE, OPENMETRICS)], out).into_response()
        }
        Ok(()) => ([(header::CONTENT_TYPE, TEXT_004)], to_text_004(&out)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_line_named_the_family_not_the_counter_samples() {
        let om = "# HELP foo Things \\\"done\\\".\n# TYPE foo counter\n# UNIT foo seconds\nfoo_total{a=\"x\"} 1\nfoo_created{a=\"x\"} 1.7e9\n# HELP g A gauge.\n# TYPE g gauge\ng 2.0\n# TYPE b_total counter\nb_total 3\n# TYPE i info\ni_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP foo_total Things \"done\".\n# TYPE foo_total counter\nfoo_total{a=\"x\"} 1\n# HELP g A gauge.\n# TYPE g gauge\ng 2.0\n# TYPE b_total counter\nb_total 3\n# TYPE i_info gauge\ni_info{v=\"1\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_only_when_asked() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;q=0,text/plain"
        )));
    }
}
