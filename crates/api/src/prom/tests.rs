//! The query API through the router, over an in-memory store: envelopes, GET and form POST, limits
//! and their warnings, and the evaluation path's error mapping.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tocsin_collect::scrape::{MetadataStore, MetricMetadata, NoTargets};
use tocsin_model::Labels;
use tocsin_promql::EngineOptions;
use tocsin_storage::{AppendOptions, Appendable, MemoryStore};
use tower::ServiceExt;

use super::{NoStatus, QueryState};
use crate::{router, ApiState, PushMetrics, WriteMetrics};

fn app() -> axum::Router {
    let store = MemoryStore::new();
    let mut a = store.appender();
    for (inst, v) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
        let l = Labels::from_pairs(&[("__name__", "up"), ("instance", inst), ("job", "node")]);
        a.append(&l, 1_000, v, &AppendOptions::default()).unwrap();
    }
    a.commit().unwrap();
    let md = Arc::new(MetadataStore::new());
    md.update([(
        "up".to_string(),
        MetricMetadata {
            kind: "gauge",
            help: "Target up.".into(),
            unit: String::new(),
        },
    )]);
    let store = Arc::new(store);
    router(ApiState {
        appendable: store.clone(),
        write_metrics: Arc::new(WriteMetrics::default()),
        push_metrics: Arc::new(PushMetrics::default()),
        deletable: Arc::new(NoDelete),
        targets: Arc::new(NoTargets),
        queryable: store,
        local_queryable: None,
        query: Arc::new(QueryState::new(EngineOptions::default(), 2)),
        metadata: md,
        tsdb_stats: Arc::new(NoStatus),
        status: Arc::new(NoStatus),
        rules: Arc::new(crate::prom::NoRules),
        alertmanager: Arc::new(crate::am::NoAlertmanager),
        admin: None,
        actions: None,
        alerta: Default::default(),
    })
}

struct NoDelete;

impl tocsin_storage::Deletable for NoDelete {
    fn delete(&self, _: i64, _: i64, _: &[tocsin_model::Matcher]) -> tocsin_storage::Result<u64> {
        Ok(0)
    }
}

async fn call(req: Request<Body>) -> (StatusCode, Value) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

async fn get(uri: &str) -> (StatusCode, Value) {
    call(Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(uri: &str, form: &str) -> (StatusCode, Value) {
    call(
        Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn labels_series_and_values() {
    let (s, v) = get("/api/v1/labels").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"status": "success", "data": ["__name__", "instance", "job"]})
    );
    let (_, v) = post("/api/v1/labels", "match%5B%5D=up&limit=2").await;
    assert_eq!(
        v,
        json!({"status": "success", "data": ["__name__", "instance"], "warnings": ["results truncated due to limit"]})
    );
    let (_, v) = get("/api/v1/label/instance/values?match[]=up%7Binstance!%3D%22a%22%7D").await;
    assert_eq!(v["data"], json!(["b", "c"]));
    let (_, v) = post(
        "/api/v1/series",
        "match%5B%5D=up%7Binstance%3D%22b%22%7D&start=0&end=2",
    )
    .await;
    assert_eq!(
        v,
        json!({"status": "success", "data": [{"__name__": "up", "instance": "b", "job": "node"}]})
    );
    let (_, v) = get("/api/v1/series?match[]=up&match[]=up%7Bjob%3D%22node%22%7D").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    let (_, v) = get("/api/v1/metadata").await;
    assert_eq!(
        v["data"],
        json!({"up": [{"type": "gauge", "help": "Target up.", "unit": ""}]})
    );
    let (_, v) = get("/api/v1/metadata?limit=0").await;
    assert_eq!(v["data"], json!({}));
}

#[tokio::test]
async fn errors_use_the_envelope_and_codes() {
    let (s, v) = get("/api/v1/series").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"status": "error", "errorType": "bad_data", "error": "no match[] parameter provided"})
    );
    let (s, v) = post("/api/v1/query", "query=up&time=x").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"],
        "invalid parameter \"time\": cannot parse \"x\" to a valid timestamp"
    );
    let (s, v) = get("/api/v1/query_range?query=up&start=1&end=2&step=1&timeout=-1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("\"timeout\""), "{v}");
    let (s, v) = get("/api/v1/status/tsdb").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["headStats"]["numSeries"], 0);
    assert_eq!(v["data"]["seriesCountByMetricName"], json!([]));
}

#[tokio::test]
async fn a_valid_query_reaches_the_engine() {
    // Whatever the engine answers (a result, or an execution error while it is being written),
    // the answer is an envelope with a Prometheus status code.
    let (s, v) = get("/api/v1/query?query=up&time=1").await;
    match s {
        StatusCode::OK => assert_eq!(v["data"]["resultType"], "vector"),
        StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(v["errorType"], "execution"),
        other => panic!("{other}: {v}"),
    }
}
