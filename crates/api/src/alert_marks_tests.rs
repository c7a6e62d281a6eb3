//! The ack/shelve/note handlers through the router over a fake manager that records what it was
//! asked: who (principal, or the body's `by` with authentication off), parsed expiries and
//! durations, 400s naming the field, 404 and 409 mapping, and the JSON shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tocsin_alerts::silence::{Silence, SilenceState};
use tocsin_alerts::store::{HistoryEntry, HistoryQuery};
use tocsin_alerts::{AlertFilter, AlertState, AlertStatus, AlertView, GroupView};
use tocsin_model::{Alert, Labels};
use tower::ServiceExt;

use super::*;
use crate::am::AlertmanagerApi;
use crate::{router, PushMetrics, WriteMetrics};

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const FP: u64 = 0xabc;

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
}

impl Fake {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn check(&self, fp: u64) -> tocsin_alerts::Result<()> {
        match fp {
            FP => Ok(()),
            0xdead => Err(tocsin_alerts::Error::Conflict("alert resolved".into())),
            _ => Err(tocsin_alerts::Error::NotFound(format!("alert {fp:016x}"))),
        }
    }
}

impl AlertmanagerApi for Fake {
    fn put_alerts(&self, _: Vec<Alert>) -> tocsin_alerts::Result<()> {
        Ok(())
    }
    fn alerts(&self, _: &AlertFilter) -> Vec<AlertView> {
        Vec::new()
    }
    fn groups(&self, _: &AlertFilter) -> Vec<GroupView> {
        Vec::new()
    }
    fn silences(&self) -> Vec<(Silence, SilenceState)> {
        Vec::new()
    }
    fn silence(&self, _: &str) -> Option<(Silence, SilenceState)> {
        None
    }
    fn upsert_silence(&self, _: Silence) -> tocsin_alerts::Result<String> {
        Ok(String::new())
    }
    fn expire_silence(&self, _: &str) -> tocsin_alerts::Result<()> {
        Ok(())
    }
    fn receivers(&self) -> Vec<String> {
        Vec::new()
    }
    fn config_yaml(&self) -> String {
        String::new()
    }
    fn started_at_ms(&self) -> i64 {
        0
    }
    fn heartbeat(&self, _: &str) -> tocsin_alerts::Result<()> {
        Ok(())
    }
    fn heartbeats(&self) -> Vec<tocsin_alerts::heartbeat::HeartbeatStatus> {
        Vec::new()
    }
    fn history(&self, _: &HistoryQuery) -> tocsin_alerts::Result<Vec<HistoryEntry>> {
        Ok(Vec::new())
    }
    fn pubsub_authorize(&self, _: Option<&str>) -> Result<(), crate::pubsub::AuthError> {
        Ok(())
    }
    fn pubsub_push(
        &self,
        _: &crate::pubsub::PushMessage,
    ) -> tocsin_alerts::Result<crate::pubsub::PushOutcome> {
        Err(tocsin_alerts::Error::Internal("no".into()))
    }
    fn now_ms(&self) -> i64 {
        NOW
    }
    fn ack(
        &self,
        fp: u64,
        by: &str,
        comment: &str,
        expires_ms: Option<i64>,
    ) -> tocsin_alerts::Result<bool> {
        self.check(fp)?;
        self.calls
            .lock()
            .unwrap()
            .push(format!("ack {by} {comment:?} {expires_ms:?}"));
        Ok(true)
    }
    fn unack(&self, fp: u64, by: &str, comment: &str) -> tocsin_alerts::Result<bool> {
        self.check(fp)?;
        self.calls
            .lock()
            .unwrap()
            .push(format!("unack {by} {comment:?}"));
        Ok(false)
    }
    fn shelve(&self, fp: u64, by: &str, comment: &str, until: i64) -> tocsin_alerts::Result<()> {
        self.check(fp)?;
        self.calls
            .lock()
            .unwrap()
            .push(format!("shelve {by} {comment:?} +{}", until - NOW));
        Ok(())
    }
    fn note(&self, fp: u64, by: &str, text: &str) -> tocsin_alerts::Result<i64> {
        self.check(fp)?;
        self.calls
            .lock()
            .unwrap()
            .push(format!("note {by} {text:?}"));
        Ok(7)
    }
    fn alert_detail(&self, fp: u64) -> tocsin_alerts::Result<AlertDetail> {
        self.check(fp)?;
        Ok(AlertDetail {
            alert: Alert {
                labels: Labels::from_pairs(&[("alertname", "Disk")]),
                annotations: [("runbook".to_string(), "http://rb".to_string())].into(),
                starts_at: NOW - 60_000,
                ends_at: NOW + 3_600_000,
                generator_url: "http://gen".into(),
                updated_at: NOW,
                timeout: true,
            },
            firing: true,
            status: AlertStatus {
                state: AlertState::Suppressed,
                silenced_by: vec!["s1".into()],
                inhibited_by: Vec::new(),
            },
            receivers: vec!["team".into()],
            ack: Some(Ack {
                by: "ann".into(),
                at_ms: NOW,
                comment: "on it".into(),
                expires_ms: None,
            }),
            shelve: None,
            notes: 2,
        })
    }
    fn timeline(&self, fp: u64, limit: usize) -> tocsin_alerts::Result<Vec<TimelineEvent>> {
        self.check(fp)?;
        self.calls.lock().unwrap().push(format!("timeline {limit}"));
        Ok(vec![
            TimelineEvent {
                at_ms: NOW,
                kind: "notification".into(),
                receiver: "team".into(),
                integration: "team/webhook/0".into(),
                status: "firing".into(),
                outcome: "failed".into(),
                text: "500".into(),
                ..TimelineEvent::default()
            },
            TimelineEvent {
                at_ms: NOW - 1,
                kind: "ack".into(),
                by: "ann".into(),
                text: "on it".into(),
                until_ms: Some(NOW + 1),
                ..TimelineEvent::default()
            },
        ])
    }
}

struct NoDelete;

impl tocsin_storage::Deletable for NoDelete {
    fn delete(&self, _: i64, _: i64, _: &[tocsin_model::Matcher]) -> tocsin_storage::Result<u64> {
        Ok(0)
    }
}

fn state(am: Arc<Fake>) -> ApiState {
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
        alertmanager: am,
        admin: None,
        actions: None,
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

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn as_user(fake: &Arc<Fake>, name: &str) -> axum::Router {
    router(state(fake.clone())).layer(axum::Extension(Principal(name.to_string())))
}

#[tokio::test]
async fn ack_records_the_principal_and_parses_expiry() {
    let fake = Arc::new(Fake::default());
    let (s, v) = call(
        as_user(&fake, "alice"),
        post(
            "/api/v1/alerts/0000000000000abc/ack",
            r#"{"comment":"on it","expires":"2h","by":"mallory"}"#,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["changed"], true);
    assert_eq!(v["data"]["ack"]["by"], "ann");
    let (s, _) = call(
        as_user(&fake, Principal::ANONYMOUS),
        post(
            "/api/v1/alerts/abc/ack",
            r#"{"expires":"2026-01-01T01:00:00Z","by":"bob"}"#,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // No body at all is an ack without comment or expiry.
    let (s, _) = call(as_user(&fake, "carol"), post("/api/v1/alerts/abc/ack", "")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        fake.calls(),
        [
            format!("ack alice \"on it\" Some({})", NOW + 7_200_000),
            format!("ack bob \"\" Some({})", NOW + 3_600_000),
            "ack carol \"\" None".to_string(),
        ]
    );
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let fake = Arc::new(Fake::default());
    for (uri, body, want) in [
        (
            "/api/v1/alerts/abc/ack",
            r#"{"expires":"soon"}"#,
            "expires:",
        ),
        ("/api/v1/alerts/abc/ack", r#"{"comment":5}"#, "comment:"),
        ("/api/v1/alerts/abc/ack", r#"{"coment":"x"}"#, "coment:"),
        ("/api/v1/alerts/abc/ack", r#"["x"]"#, "body:"),
        ("/api/v1/alerts/abc/ack", r#"{"#, "body:"),
        (
            "/api/v1/alerts/abc/shelve",
            r#"{"comment":"x"}"#,
            "duration:",
        ),
        (
            "/api/v1/alerts/abc/shelve",
            r#"{"duration":"-1h"}"#,
            "duration:",
        ),
        (
            "/api/v1/alerts/abc/shelve",
            r#"{"duration":"0s"}"#,
            "duration:",
        ),
        ("/api/v1/alerts/abc/note", r#"{}"#, "text:"),
        ("/api/v1/alerts/abc/note", r#"{"text":" "}"#, "text:"),
        ("/api/v1/alerts/xyz/ack", r#"{}"#, "fingerprint:"),
        (
            "/api/v1/alerts/00000000000000abc/ack",
            r#"{}"#,
            "fingerprint:",
        ),
    ] {
        let (s, v) = call(as_user(&fake, "alice"), post(uri, body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri} {body}: {v}");
        assert_eq!(v["errorType"], "bad_data");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with(want), "{uri} {body}: {msg}");
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn unknown_is_404_and_resolved_is_409() {
    let fake = Arc::new(Fake::default());
    let (s, v) = call(as_user(&fake, "a"), post("/api/v1/alerts/123/ack", "{}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains("0000000000000123"));
    let (s, v) = call(as_user(&fake, "a"), post("/api/v1/alerts/dead/ack", "{}")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["errorType"], "conflict");
    let (s, _) = call(
        as_user(&fake, "a"),
        Request::get("/api/v1/alerts/123/timeline")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shelve_note_unack_and_reads() {
    let fake = Arc::new(Fake::default());
    let app = || as_user(&fake, "ann");
    let (s, v) = call(
        app(),
        post(
            "/api/v1/alerts/abc/shelve",
            r#"{"duration":"30m","comment":"flap"}"#,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(app(), post("/api/v1/alerts/abc/note", r#"{"text":"hi"}"#)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["id"], 7);
    let (s, v) = call(app(), post("/api/v1/alerts/abc/unack", "")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["changed"], false);
    let (s, v) = call(
        app(),
        Request::get("/api/v1/alerts/abc")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let d = &v["data"];
    // The alert's own fingerprint (the fake's labels are not those of 0xabc).
    assert_eq!(d["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(d["labels"]["alertname"], "Disk");
    assert_eq!(d["annotations"]["runbook"], "http://rb");
    assert_eq!(d["state"], "firing");
    assert_eq!(d["endsAt"], Value::Null);
    assert_eq!(d["status"], "suppressed");
    assert_eq!(d["silencedBy"][0], "s1");
    assert_eq!(d["ack"]["comment"], "on it");
    assert_eq!(d["ack"]["expires"], Value::Null);
    assert_eq!(d["shelved_until"], Value::Null);
    assert_eq!(d["notes"], 2);
    let (s, v) = call(
        app(),
        Request::get("/api/v1/alerts/abc/timeline?limit=5")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tl = v["data"].as_array().unwrap();
    assert_eq!(tl[0]["type"], "notification");
    assert_eq!(tl[0]["outcome"], "failed");
    assert_eq!(tl[0]["error"], "500");
    assert_eq!(tl[0]["receiver"], "team");
    assert_eq!(tl[1]["type"], "ack");
    assert_eq!(tl[1]["comment"], "on it");
    assert_eq!(tl[1]["expires"], "2026-01-01T00:00:00.001Z");
    let (s, v) = call(
        app(),
        Request::get("/api/v1/alerts/abc/timeline?limit=0")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        fake.calls(),
        [
            "shelve ann \"flap\" +1800000",
            "note ann \"hi\"",
            "unack ann \"\"",
            "timeline 5"
        ]
    );
}
