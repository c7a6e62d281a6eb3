//! The live side of lint: what the query modules may ask a running server (`--server URL`), a
//! data directory opened in-process (`--data-dir`), or the server itself (the `lint:` loop).
//! All three speak the Prometheus HTTP API through a [`Transport`], so one parser serves them and
//! `--server` also works against a plain Prometheus (the rules whose data it lacks are skipped).
//! Query modules call [`Live`] and cache the answers; rules never do.

use std::collections::BTreeMap;

use serde_json::Value;

/// A series as labels.
pub type SeriesLabels = BTreeMap<String, String>;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LiveError(pub String);

/// How a request reaches the API: HTTP, or the router called in-process.
pub trait Transport: Send + Sync {
    /// Where the data comes from, for the report header.
    fn describe(&self) -> String;
    /// GETs `path_and_query` (`/api/v1/...?...`); the body of a 2xx answer, else an error that
    /// carries the API's own message.
    fn get(&self, path_and_query: &str) -> Result<Vec<u8>, LiveError>;
}

/// One element of an instant vector (a scalar comes back as one sample without labels).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: SeriesLabels,
    pub value: f64,
}

/// An active scrape target as `/api/v1/targets` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub pool: String,
    pub labels: SeriesLabels,
    pub health: String,
    pub last_error: String,
    pub last_duration_s: f64,
    pub interval_ms: i64,
    pub timeout_ms: i64,
}

/// A rule group as `/api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupState {
    pub file: String,
    pub name: String,
    pub interval_s: f64,
    /// Seconds the last evaluation of the whole group took.
    pub evaluation_s: f64,
}

/// The parts of `/api/v1/status/tsdb` lint reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStatus {
    pub num_series: u64,
    pub series_by_metric: Vec<(String, u64)>,
    pub values_by_label: Vec<(String, u64)>,
    /// Series created per hour, oldest first (a Tocsin addition; empty from Prometheus).
    pub created_per_hour: Vec<u64>,
    /// False when the server does not report series creation (not a Tocsin).
    pub has_created: bool,
}

/// The live source of one run: a transport and the run's "now".
pub struct Live {
    transport: Box<dyn Transport>,
    /// Unix ms every live question is asked at.
    pub now_ms: i64,
}

impl Live {
    pub fn new(transport: Box<dyn Transport>, now_ms: i64) -> Live {
        Live { transport, now_ms }
    }

    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    fn get_data(&self, path: &str, params: &[(&str, String)]) -> Result<Value, LiveError> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            q.append_pair(k, v);
        }
        let q = q.finish();
        let pq = if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        };
        let body = self.transport.get(&pq)?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| LiveError(format!("{path}: the answer is not JSON: {e}")))?;
        if v["status"] != "success" {
            return Err(LiveError(format!(
                "{path}: {}",
                v["error"].as_str().unwrap_or("the answer is not a success")
            )));
        }
        Ok(v["data"].clone())
    }

    /// An instant query at the run's now.
    pub fn query(&self, expr: &str) -> Result<Vec<Sample>, LiveError> {
        let d = self.get_data(
            "/api/v1/query",
            &[("query", expr.to_string()), ("time", secs(self.now_ms))],
        )?;
        match d["resultType"].as_str() {
            Some("vector") => Ok(d["result"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| {
                            Some(Sample {
                                labels: labels_of(&s["metric"]),
                                value: point_value(&s["value"])?,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default()),
            Some("scalar") => Ok(point_value(&d["result"])
                .map(|value| Sample {
                    labels: SeriesLabels::new(),
                    value,
                })
                .into_iter()
                .collect()),
            other => Err(LiveError(format!(
                "query {expr:?}: expected a vector, got {}",
                other.unwrap_or("nothing")
            ))),
        }
    }

    /// Series matching `selector` with samples in the last `lookback_ms`, at most `limit`.
    pub fn series(
        &self,
        selector: &str,
        lookback_ms: i64,
        limit: usize,
    ) -> Result<Vec<SeriesLabels>, LiveError> {
        let d = self.get_data(
            "/api/v1/series",
            &[
                ("match[]", selector.to_string()),
                ("start", secs(self.now_ms - lookback_ms)),
                ("end", secs(self.now_ms)),
                ("limit", limit.to_string()),
            ],
        )?;
        let mut v: Vec<SeriesLabels> = d
            .as_array()
            .map(|a| a.iter().map(labels_of).collect())
            .unwrap_or_default();
        // A server that ignores `limit` (older Prometheus) still gives a bounded answer here.
        v.truncate(limit);
        Ok(v)
    }

    pub fn targets(&self) -> Result<Vec<Target>, LiveError> {
        let d = self.get_data("/api/v1/targets", &[("state", "active".into())])?;
        let dur = |v: &Value| {
            v.as_str()
                .and_then(|s| tocsin_model::duration::parse_duration_ms(s).ok())
                .unwrap_or(0)
        };
        Ok(d["activeTargets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| Target {
                        pool: t["scrapePool"].as_str().unwrap_or_default().to_string(),
                        labels: labels_of(&t["labels"]),
                        health: t["health"].as_str().unwrap_or_default().to_string(),
                        last_error: t["lastError"].as_str().unwrap_or_default().to_string(),
                        last_duration_s: t["lastScrapeDuration"].as_f64().unwrap_or(0.0),
                        interval_ms: dur(&t["scrapeInterval"]),
                        timeout_ms: dur(&t["scrapeTimeout"]),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn rule_groups(&self) -> Result<Vec<GroupState>, LiveError> {
        let d = self.get_data("/api/v1/rules", &[])?;
        Ok(d["groups"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|g| GroupState {
                        file: g["file"].as_str().unwrap_or_default().to_string(),
                        name: g["name"].as_str().unwrap_or_default().to_string(),
                        interval_s: g["interval"].as_f64().unwrap_or(0.0),
                        evaluation_s: g["evaluationTime"].as_f64().unwrap_or(0.0),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn tsdb_status(&self, limit: usize) -> Result<TsdbStatus, LiveError> {
        let d = self.get_data("/api/v1/status/tsdb", &[("limit", limit.to_string())])?;
        let list = |v: &Value| -> Vec<(String, u64)> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            (
                                e["name"].as_str().unwrap_or_default().to_string(),
                                e["value"].as_u64().unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let created = d["seriesCreatedPerHour"].as_array();
        Ok(TsdbStatus {
            num_series: d["headStats"]["numSeries"].as_u64().unwrap_or(0),
            series_by_metric: list(&d["seriesCountByMetricName"]),
            values_by_label: list(&d["labelValueCountByLabelName"]),
            has_created: created.is_some(),
            created_per_hour: created
                .map(|a| a.iter().map(|e| e["count"].as_u64().unwrap_or(0)).collect())
                .unwrap_or_default(),
        })
    }
}

impl Live {
    /// Active alerts of the built-in alert manager matching `filter` (Alertmanager's
    /// `/api/v2/alerts?filter=`), as (labels, summary annotation).
    pub fn am_alerts(&self, filter: &str) -> Result<Vec<(SeriesLabels, String)>, LiveError> {
        let pq = format!(
            "/api/v2/alerts?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("filter", filter)
                .append_pair("silenced", "false")
                .append_pair("inhibited", "false")
                .finish()
        );
        let body = self.transport.get(&pq)?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| LiveError(format!("/api/v2/alerts: the answer is not JSON: {e}")))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            labels_of(&x["labels"]),
                            x["annotations"]["summary"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Unix seconds with milliseconds, as the API takes times.
fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn labels_of(v: &Value) -> SeriesLabels {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `[t, "v"]` as f64 (the API sends values as strings, `NaN` and `+Inf` included).
fn point_value(v: &Value) -> Option<f64> {
    v.get(1)?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Canned(Mutex<Vec<String>>, &'static str);

    impl Transport for Canned {
        fn describe(&self) -> String {
            "canned".into()
        }
        fn get(&self, pq: &str) -> Result<Vec<u8>, LiveError> {
            self.0
                .lock()
                .map_err(|e| LiveError(e.to_string()))?
                .push(pq.to_string());
            Ok(self.1.as_bytes().to_vec())
        }
    }

    #[test]
    fn query_parses_vectors_and_encodes_the_request() {
        let t = Canned(
            Mutex::new(Vec::new()),
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"job":"a"},"value":[1,"2.5"]},{"metric":{},"value":[1,"NaN"]}]}}"#,
        );
        let live = Live::new(Box::new(t), 1_500);
        let v = live.query("up{job=\"a\"} == 0").unwrap_or_default();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].value, 2.5);
        assert_eq!(v[0].labels.get("job").map(String::as_str), Some("a"));
        assert!(v[1].value.is_nan());
    }

    #[test]
    fn api_errors_carry_the_servers_message() {
        let t = Canned(
            Mutex::new(Vec::new()),
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        );
        let live = Live::new(Box::new(t), 0);
        let e = live.query("a b").err().map(|e| e.0).unwrap_or_default();
        assert!(e.contains("parse error at char 3"), "{e}");
    }

    #[test]
    fn times_are_seconds_with_millis() {
        assert_eq!(secs(1_500), "1.500");
        assert_eq!(secs(1_764_000_000_007), "1764000000.007");
    }
}
