//! The actions handlers through the router, over a small in-test engine that records what it was
//! asked: filters, ids, who and comment, and the envelope of answers and errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Mutex;
use tower::ServiceExt;

use super::*;
use crate::{router, PushMetrics, WriteMetrics};

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    last_query: Mutex<Option<ActionQuery>>,
}

impl ActionsApi for Fake {
    fn list(&self, q: &ActionQuery) -> Result<Vec<Value>, ActionsApiError> {
        *self.last_query.lock().unwrap() = Some(q.clone());
        Ok(vec![
            json!({"id": 2, "policy": "p"}),
            json!({"id": 1, "policy": "p"}),
        ])
    }
    fn get(&self, id: i64) -> Result<Value, ActionsApiError> {
        if id == 404 {
            return Err(ActionsApiError::NotFound("execution 404 not found".into()));
        }
        Ok(json!({"id": id, "events": []}))
    }
    fn approve(&self, id: i64, who: &str, comment: &str) -> Result<Value, ActionsApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("approve {id} {who} {comment}"));
        if id == 9 {
            return Err(ActionsApiError::BadData(
                "execution 9 is not waiting for approval".into(),
            ));
        }
        Ok(json!({"id": id, "outcome": "approved"}))
    }
    fn deny(&self, id: i64, who: &str, comment: &str) -> Result<Value, ActionsApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("deny {id} {who} {comment}"));
        Ok(json!({"id": id, "outcome": "denied"}))
    }
    fn reset(&self, policy: &str, who: &str) -> Result<Value, ActionsApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("reset {policy} {who}"));
        if policy == "nope" {
            return Err(ActionsApiError::NotFound("no policy \"nope\"".into()));
        }
        Ok(json!({"name": policy, "tripped": null}))
    }
    fn policies(&self) -> Result<Vec<Value>, ActionsApiError> {
        Err(ActionsApiError::Internal("state.db is gone".into()))
    }
}

struct NoDelete;

impl tocsin_storage::Deletable for NoDelete {
    fn delete(&self, _: i64, _: i64, _: &[tocsin_model::Matcher]) -> tocsin_storage::Result<u64> {
        Ok(0)
    }
}

fn state(actions: Option<Arc<dyn ActionsApi>>) -> ApiState {
    let store = Arc::new(tocsin_storage::MemoryStore::new());
    ApiState {
        appendable: store.clone(),
        write_metrics: Arc::new(WriteMetrics::default()),
        push_metrics: Arc::new(PushMetrics::default()),
        deletable: Arc::new(NoDelete),
        targets: Arc::new(tocsin_collect::scrape::NoTargets),
        queryable: store,
        local_queryable: None,
        query: Arc::new(crate::QueryState::new(
            tocsin_promql::EngineOptions::default(),
            1,
        )),
        metadata: Arc::new(tocsin_collect::scrape::NoMetadata),
        tsdb_stats: Arc::new(crate::prom::NoStatus),
        status: Arc::new(crate::prom::NoStatus),
        rules: Arc::new(crate::prom::NoRules),
        alertmanager: Arc::new(crate::am::NoAlertmanager),
        admin: None,
        actions,
        alerta: Default::default(),
    }
}

async fn call(app: axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

fn app(fake: &Arc<Fake>) -> axum::Router {
    router(state(Some(fake.clone() as Arc<dyn ActionsApi>)))
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn list_passes_filters_and_wraps_in_the_envelope() {
    let fake = Arc::new(Fake::default());
    let (s, v) = call(
        app(&fake),
        get_req("/api/v1/actions?policy=p&outcome=suppressed&target=vm-1&start=2026-01-01T00:00:00Z&end=1767312000&limit=5"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"][0]["id"], 2);
    let q = fake.last_query.lock().unwrap().clone().unwrap();
    assert_eq!(
        q,
        ActionQuery {
            policy: Some("p".into()),
            outcome: Some("suppressed".into()),
            target: Some("vm-1".into()),
            from_ms: Some(1_767_225_600_000),
            to_ms: Some(1_767_312_000_000),
            limit: 5,
        }
    );
    call(app(&fake), get_req("/api/v1/actions")).await;
    let q = fake.last_query.lock().unwrap().clone().unwrap();
    assert_eq!(q.limit, LIST_DEFAULT);
    assert_eq!((q.policy, q.from_ms, q.to_ms), (None, None, None));
}

#[tokio::test]
async fn bad_list_parameters_are_400_naming_the_parameter() {
    let fake = Arc::new(Fake::default());
    for (uri, want) in [
        ("/api/v1/actions?limit=0", "limit:"),
        ("/api/v1/actions?limit=10001", "limit:"),
        ("/api/v1/actions?start=yesterday", "start:"),
        (
            "/api/v1/actions?start=200&end=100",
            "end: must not be before start",
        ),
    ] {
        let (s, v) = call(app(&fake), get_req(uri)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().starts_with(want), "{uri}: {v}");
    }
    assert!(fake.last_query.lock().unwrap().is_none());
}

#[tokio::test]
async fn get_one_and_not_found_and_bad_id() {
    let fake = Arc::new(Fake::default());
    let (s, v) = call(app(&fake), get_req("/api/v1/actions/7")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"], json!({"id": 7, "events": []}));
    let (s, v) = call(app(&fake), get_req("/api/v1/actions/404")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["errorType"], "not_found");
    assert_eq!(v["error"], "execution 404 not found");
    let (s, v) = call(app(&fake), get_req("/api/v1/actions/abc")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("\"abc\""), "{v}");
}

#[tokio::test]
async fn approve_and_deny_pass_principal_and_comment() {
    let fake = Arc::new(Fake::default());
    let with_principal =
        |name: &str| app(&fake).layer(axum::Extension(crate::class::Principal(name.to_string())));
    let (s, v) = call(
        with_principal("alice"),
        Request::post("/api/v1/actions/3/approve")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"comment":"go ahead"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["outcome"], "approved");
    let (s, _) = call(
        with_principal("bob"),
        Request::post("/api/v1/actions/4/deny")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("comment=not+now"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // No body, no auth layer: anonymous with an empty comment.
    let (s, _) = call(
        app(&fake),
        Request::post("/api/v1/actions/5/deny")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        *fake.calls.lock().unwrap(),
        vec![
            "approve 3 alice go ahead".to_string(),
            "deny 4 bob not now".to_string(),
            "deny 5 anonymous ".to_string(),
        ]
    );
}

#[tokio::test]
async fn approve_errors_are_in_the_envelope() {
    let fake = Arc::new(Fake::default());
    let (s, v) = call(
        app(&fake),
        Request::post("/api/v1/actions/9/approve")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "execution 9 is not waiting for approval");
    let (s, v) = call(
        app(&fake),
        Request::post("/api/v1/actions/3/approve")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"coment":"typo"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("\"coment\""), "{v}");
    // The typo was refused before reaching the engine.
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn reset_and_policies() {
    let fake = Arc::new(Fake::default());
    let app2 = || app(&fake).layer(axum::Extension(crate::class::Principal("ops".into())));
    let (s, v) = call(
        app2(),
        Request::post("/api/v1/actions/policies/delete-vm/reset")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["name"], "delete-vm");
    let (s, v) = call(
        app2(),
        Request::post("/api/v1/actions/policies/nope/reset")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "no policy \"nope\"");
    assert_eq!(
        *fake.calls.lock().unwrap(),
        vec![
            "reset delete-vm ops".to_string(),
            "reset nope ops".to_string()
        ]
    );
    // `policies` is a static segment, not an execution id.
    let (s, v) = call(app(&fake), get_req("/api/v1/actions/policies")).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["errorType"], "internal");
    assert_eq!(v["error"], "state.db is gone");
}

#[tokio::test]
async fn without_an_engine_the_endpoints_say_so() {
    let (s, v) = call(router(state(None)), get_req("/api/v1/actions")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "no actions engine is running");
}
