//! Tests of the Alerta API: the decoding and its refusals, and the handlers against a small
//! in-memory alert manager (the real one is exercised by `crates/tocsin/tests/alerta_cli.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tocsin_alerts::heartbeat::{HeartbeatStatus, Heartbeats, PingDetails};
use tocsin_alerts::silence::{Silence, SilenceState};
use tocsin_alerts::store::{HistoryEntry, HistoryQuery};
use tocsin_alerts::{AlertFilter, AlertState, AlertStatus, AlertView, GroupView};
use tocsin_model::{Alert, Matcher};
use tower::ServiceExt;

use super::decode::{decode_alert, decode_heartbeat, heartbeat_name, NEVER_MS};
use crate::am::AlertmanagerApi;

const NOW: i64 = 1_767_225_600_000;

fn full() -> Value {
    json!({
        "resource": "web01", "event": "HttpError", "environment": "Production",
        "severity": "Major", "correlate": ["HttpError", "HttpOK"], "status": "open",
        "service": ["Web", "Shop"], "group": "Application", "value": 503, "text": "Site down",
        "tags": ["dc1", "os:linux"], "attributes": {"region": "EU", "weight": 3, "gone": null},
        "origin": "curl/host1", "type": "exceptionAlert", "createTime": "2026-01-01T00:00:00.000Z",
        "timeout": 600, "rawData": "HTTP/1.1 503", "customer": "acme",
        "duplicateCount": 7, "history": []
    })
}

#[test]
fn an_alert_maps_to_labels_and_annotations() {
    let d = decode_alert(full().to_string().as_bytes(), NOW).unwrap();
    let labels: BTreeMap<&str, &str> = d
        .alert
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    let want: BTreeMap<&str, &str> = [
        ("alertname", "HttpError"),
        ("resource", "web01"),
        ("environment", "Production"),
        ("customer", "acme"),
        ("severity", "major"),
        ("service", "Web,Shop"),
        ("group", "Application"),
    ]
    .into();
    assert_eq!(labels, want);
    let ann = &d.alert.annotations;
    let a = |k: &str| ann.get(k).map(String::as_str);
    assert_eq!(a("summary"), Some("Site down"));
    assert_eq!(a("value"), Some("503"));
    assert_eq!(a("origin"), Some("curl/host1"));
    assert_eq!(a("type"), Some("exceptionAlert"));
    assert_eq!(a("tags"), Some("dc1,os:linux"));
    assert_eq!(a("correlate"), Some("HttpError,HttpOK"));
    assert_eq!(a("timeout"), Some("600"));
    assert_eq!(a("create_time"), Some("2026-01-01T00:00:00.000Z"));
    assert_eq!(a("raw_data"), Some("HTTP/1.1 503"));
    assert_eq!(a("attribute_region"), Some("EU"));
    assert_eq!(a("attribute_weight"), Some("3"));
    assert_eq!(a("attribute_gone"), None);
    assert_eq!(d.alert.starts_at, NOW, "createTime is not after now");
    assert_eq!(d.alert.ends_at, NOW + 600_000);
    assert!(!d.clears);

    let min = decode_alert(
        br#"{"resource":"r","event":"e","severity":"critical","timeout":0}"#,
        NOW,
    )
    .unwrap();
    assert_eq!(min.alert.ends_at, NEVER_MS, "timeout 0 never expires");
    assert_eq!(min.alert.labels.len(), 3);
    for clear in [
        r#"{"resource":"r","event":"e"}"#,
        r#"{"resource":"r","event":"e","severity":"ok"}"#,
        r#"{"resource":"r","event":"e","severity":"critical","status":"closed"}"#,
    ] {
        let d = decode_alert(clear.as_bytes(), NOW).unwrap();
        assert!(d.clears, "{clear}");
        assert_eq!(d.alert.ends_at, NOW);
    }
}

#[test]
fn bad_alerts_are_refused_naming_the_field() {
    let cases: &[(&str, &str)] = &[
        ("[]", "body: must be a JSON object"),
        ("{", "body: "),
        (r#"{"event":"e"}"#, "resource: missing"),
        (
            r#"{"resource":"r","event":" "}"#,
            "event: must not be empty",
        ),
        (
            r#"{"resource":"r","event":"e","severity":"bad"}"#,
            "severity: \"bad\" is not one of",
        ),
        (
            r#"{"resource":"r","event":"e","status":"ack"}"#,
            "status: \"ack\" cannot be sent",
        ),
        (
            r#"{"resource":"r","event":"e","tags":["a,b"]}"#,
            "tags[0]: \"a,b\" contains a comma",
        ),
        (
            r#"{"resource":"r","event":"e","service":[1]}"#,
            "service[0]: must be a string",
        ),
        (
            r#"{"resource":"r","event":"e","timeout":-1}"#,
            "timeout: must be whole seconds",
        ),
        (
            r#"{"resource":"r","event":"e","timeout":"soon"}"#,
            "timeout: must be whole seconds",
        ),
        (
            r#"{"resource":"r","event":"e","attributes":[]}"#,
            "attributes: must be an object",
        ),
        (
            r#"{"resource":"r","event":"e","createTime":"yesterday"}"#,
            "createTime: \"yesterday\"",
        ),
        (r#"{"resource":"r","event":"e","id":"a/b"}"#, "id: \"a/b\""),
        (
            r#"{"resource":7,"event":"e"}"#,
            "resource: must be a string, not a number",
        ),
    ];
    for (body, want) in cases {
        let e = decode_alert(body.as_bytes(), NOW).unwrap_err();
        assert!(e.starts_with(want), "{body}: {e}");
    }
}

#[test]
fn heartbeats_map_origin_and_attributes() {
    let h = decode_heartbeat(
        br#"{"origin":"cron/host1","tags":["nightly"],"timeout":120,"customer":"acme",
             "attributes":{"environment":"Production","severity":"critical","service":["DB","Backup"],"group":"Ops","team":"db"}}"#,
        NOW,
    )
    .unwrap();
    assert_eq!(h.name, "cron_host1");
    assert_eq!(h.timeout_s, 120);
    let l = |k: &str| h.labels.get(k).map(String::as_str);
    assert_eq!(l("severity"), Some("critical"));
    assert_eq!(l("environment"), Some("Production"));
    assert_eq!(l("service"), Some("DB,Backup"));
    assert_eq!(l("group"), Some("Ops"));
    assert_eq!(l("customer"), Some("acme"));
    assert_eq!(
        h.annotations.get("tags").map(String::as_str),
        Some("nightly")
    );
    assert_eq!(
        h.annotations.get("attribute_team").map(String::as_str),
        Some("db")
    );
    assert_eq!(heartbeat_name("a b:c/d.e-f_g"), "a_b_c_d.e-f_g");
    let d = decode_heartbeat(br#"{"origin":"x"}"#, NOW).unwrap();
    assert_eq!(d.timeout_s, 86_400);
    assert_eq!(d.labels.get("severity").map(String::as_str), Some("major"));
    for (body, want) in [
        (r#"{"tags":[]}"#, "origin: missing"),
        (
            r#"{"origin":"x","timeout":0}"#,
            "timeout: a heartbeat needs",
        ),
        (
            r#"{"origin":"x","attributes":{"severity":"ok"}}"#,
            "attributes.severity",
        ),
    ] {
        let e = decode_heartbeat(body.as_bytes(), NOW).unwrap_err();
        assert!(e.starts_with(want), "{body}: {e}");
    }
}

/// An alert manager holding alerts in a map, as the real store does for what these handlers
/// see: a put replaces the alert of its fingerprint, keeping the earlier start while active.
#[derive(Default)]
struct FakeAm {
    alerts: Mutex<BTreeMap<u64, Alert>>,
    heartbeats: Heartbeats,
    acks: Mutex<BTreeMap<u64, tocsin_alerts::Ack>>,
    shelves: Mutex<BTreeMap<u64, tocsin_alerts::Shelve>>,
}

impl FakeAm {
    fn firing(&self, fp: u64) -> tocsin_alerts::Result<()> {
        match self.alerts.lock().get(&fp) {
            Some(a) if !a.resolved_at(super::now_ms()) => Ok(()),
            Some(_) => Err(tocsin_alerts::Error::Conflict(format!(
                "alert {fp:016x} is not firing"
            ))),
            None => Err(tocsin_alerts::Error::NotFound(format!("alert {fp:016x}"))),
        }
    }
}

impl AlertmanagerApi for FakeAm {
    fn put_alerts(&self, alerts: Vec<Alert>) -> tocsin_alerts::Result<()> {
        let now = super::now_ms();
        let mut m = self.alerts.lock();
        for mut a in alerts {
            a.updated_at = now;
            if let Some(old) = m.get(&a.fingerprint()) {
                if !old.resolved_at(now) {
                    a.starts_at = a.starts_at.min(old.starts_at);
                }
            }
            m.insert(a.fingerprint(), a);
        }
        Ok(())
    }
    fn alerts(&self, _: &AlertFilter) -> Vec<AlertView> {
        let now = super::now_ms();
        self.alerts
            .lock()
            .values()
            .filter(|a| !a.resolved_at(now))
            .map(|a| AlertView {
                alert: a.clone(),
                status: AlertStatus {
                    state: AlertState::Active,
                    silenced_by: Vec::new(),
                    inhibited_by: Vec::new(),
                },
                receivers: Vec::new(),
            })
            .collect()
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
        1
    }
    fn heartbeat(&self, name: &str) -> tocsin_alerts::Result<()> {
        self.heartbeats.ping(name, super::now_ms())
    }
    fn heartbeats(&self) -> Vec<HeartbeatStatus> {
        self.heartbeats.status()
    }
    fn heartbeat_with(&self, name: &str, d: PingDetails) -> tocsin_alerts::Result<()> {
        self.heartbeats.ping_with(name, super::now_ms(), d)
    }
    fn recent_alerts(&self, ms: &[Matcher]) -> Vec<Alert> {
        self.alerts
            .lock()
            .values()
            .filter(|a| tocsin_alerts::matchers::matches_all(ms, &a.labels))
            .cloned()
            .collect()
    }
    fn ack(
        &self,
        fp: u64,
        by: &str,
        comment: &str,
        expires_ms: Option<i64>,
    ) -> tocsin_alerts::Result<bool> {
        self.firing(fp)?;
        let ack = tocsin_alerts::Ack {
            by: by.into(),
            at_ms: super::now_ms(),
            comment: comment.into(),
            expires_ms,
        };
        Ok(self.acks.lock().insert(fp, ack).is_none())
    }
    fn unack(&self, fp: u64, _: &str, _: &str) -> tocsin_alerts::Result<bool> {
        Ok(self.acks.lock().remove(&fp).is_some())
    }
    fn shelve(&self, fp: u64, by: &str, comment: &str, until_ms: i64) -> tocsin_alerts::Result<()> {
        self.firing(fp)?;
        let s = tocsin_alerts::Shelve {
            by: by.into(),
            at_ms: super::now_ms(),
            comment: comment.into(),
            until_ms,
        };
        self.shelves.lock().insert(fp, s);
        Ok(())
    }
    fn unshelve(&self, fp: u64, _: &str) -> tocsin_alerts::Result<bool> {
        Ok(self.shelves.lock().remove(&fp).is_some())
    }
    fn marks(
        &self,
    ) -> (
        Vec<(u64, tocsin_alerts::Ack)>,
        Vec<(u64, tocsin_alerts::Shelve)>,
    ) {
        (
            self.acks
                .lock()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            self.shelves
                .lock()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        )
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
        Ok(crate::pubsub::PushOutcome::Taken)
    }
}

struct NoDelete;

impl tocsin_storage::Deletable for NoDelete {
    fn delete(&self, _: i64, _: i64, _: &[Matcher]) -> tocsin_storage::Result<u64> {
        Ok(0)
    }
}

struct Api {
    am: Arc<FakeAm>,
    router: axum::Router,
}

fn api() -> Api {
    let am = Arc::new(FakeAm::default());
    let store = Arc::new(tocsin_storage::MemoryStore::new());
    let st = crate::ApiState {
        appendable: store.clone(),
        write_metrics: Arc::new(crate::WriteMetrics::default()),
        push_metrics: Arc::new(crate::PushMetrics::default()),
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
        alertmanager: am.clone(),
        admin: None,
        actions: None,
        alerta: Default::default(),
    };
    Api {
        am,
        router: crate::router(st),
    }
}

impl Api {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let b = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    fn firing(&self) -> Vec<Alert> {
        let now = super::now_ms();
        self.am
            .alerts
            .lock()
            .values()
            .filter(|a| !a.resolved_at(now))
            .cloned()
            .collect()
    }
}

fn send(severity: &str) -> Value {
    json!({"resource": "web01", "event": "NodeDown", "environment": "Production",
           "severity": severity, "correlate": ["NodeDown", "NodeUp"], "service": ["Web"],
           "text": format!("node is {severity}"), "timeout": 3600})
}

#[tokio::test]
async fn sends_dedup_by_key_and_keep_their_id() {
    let api = api();
    let (s, r) = api
        .call(Method::POST, "/api/alert", Some(send("major")))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "ok");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(r["alert"]["id"], id.as_str());
    assert_eq!(r["alert"]["status"], "open");
    assert_eq!(r["alert"]["service"], json!(["Web"]));
    assert_eq!(r["alert"]["timeout"], 3600);

    // Same again: a duplicate of the same alert.
    let (_, r2) = api
        .call(Method::POST, "/api/alert", Some(send("major")))
        .await;
    assert_eq!(r2["id"], id.as_str());
    assert_eq!(r2["alert"]["duplicateCount"], 1);
    assert_eq!(r2["alert"]["repeat"], true);
    assert_eq!(api.firing().len(), 1);

    // A new severity: the same id, one alert firing, at the new severity.
    let (_, r3) = api
        .call(Method::POST, "/api/alert", Some(send("critical")))
        .await;
    assert_eq!(r3["id"], id.as_str());
    assert_eq!(r3["alert"]["previousSeverity"], "major");
    assert_eq!(r3["alert"]["trendIndication"], "moreSevere");
    let firing = api.firing();
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].labels.get("severity"), Some("critical"));
    assert_eq!(firing[0].labels.get("alerta_id"), Some(id.as_str()));

    // Query by filter, by q and by short id.
    for uri in [
        "/api/alerts?resource=web01&status=open",
        "/api/alerts?q=severity:critical%20AND%20resource:web01",
        &format!("/api/alerts?id={}", &id[..8]),
    ] {
        let (s, r) = api.call(Method::GET, uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {r}");
        assert_eq!(r["total"], 1, "{uri}: {r}");
        assert_eq!(r["alerts"][0]["severity"], "critical", "{uri}");
        assert_eq!(r["statusCounts"]["open"], 1);
        assert!(r["lastTime"].is_string() && r["autoRefresh"] == true);
    }
    // The major one was resolved when the severity changed: one alert per id is listed.
    let (_, r) = api
        .call(Method::GET, "/api/alerts?status=closed", None)
        .await;
    assert_eq!(r["total"], 0, "{r}");
    let (_, r) = api
        .call(Method::GET, "/api/alerts/count?severity=critical", None)
        .await;
    assert_eq!(r["total"], 1);
    let (s, r) = api
        .call(Method::GET, &format!("/api/alert/{}", &id[..8]), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["alert"]["severity"], "critical");

    // The correlated clear resolves it.
    let mut up = send("normal");
    up["event"] = json!("NodeUp");
    let (s, r) = api.call(Method::POST, "/api/alert", Some(up)).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["alert"]["status"], "closed");
    assert!(api.firing().is_empty());
}

#[tokio::test]
async fn close_and_open_actions_and_errors() {
    let api = api();
    let (_, r) = api
        .call(Method::POST, "/api/alert", Some(send("minor")))
        .await;
    let id = r["id"].as_str().unwrap().to_string();
    let act = |a: &str| json!({"action": a, "text": "by test", "timeout": null});
    let (s, r) = api
        .call(
            Method::PUT,
            &format!("/api/alert/{id}/action"),
            Some(act("close")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(api.firing().is_empty());
    let (_, r) = api
        .call(Method::GET, &format!("/api/alert/{id}"), None)
        .await;
    assert_eq!(r["alert"]["status"], "closed");
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/api/alert/{id}/status"),
            Some(json!({"status": "open"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.firing().len(), 1);
    let (s, _) = api
        .call(Method::DELETE, &format!("/api/alert/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(api.firing().is_empty());

    let (s, r) = api
        .call(
            Method::PUT,
            &format!("/api/alert/{id}/action"),
            Some(act("explode")),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(r["status"], "error");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("action: \"explode\""),
        "{r}"
    );
    let (s, r) = api
        .call(
            Method::PUT,
            &format!("/api/alert/{id}/action"),
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(r["message"], "action: missing");
    let (s, r) = api
        .call(
            Method::PUT,
            "/api/alert/00000000-nope/action",
            Some(act("close")),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{r}");
    assert_eq!(r["code"], 404);
    let (s, r) = api
        .call(
            Method::POST,
            "/api/alert",
            Some(json!({"resource": "r", "event": "e", "severity": "huge"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("severity: \"huge\""),
        "{r}"
    );
    let (s, r) = api.call(Method::GET, "/api/alerts?colour=red", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(r["message"].as_str().unwrap().contains("\"colour\""), "{r}");
}

#[tokio::test]
async fn heartbeats_and_server_endpoints() {
    let api = api();
    let (s, r) = api
        .call(
            Method::POST,
            "/api/heartbeat",
            Some(
                json!({"origin": "cron/host1", "tags": ["nightly"], "timeout": 120,
                        "attributes": {"severity": "critical"}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["heartbeat"]["origin"], "cron/host1");
    assert_eq!(r["heartbeat"]["timeout"], 120);
    assert_eq!(r["heartbeat"]["status"], "ok");
    assert_eq!(r["heartbeat"]["tags"], json!(["nightly"]));
    let id = r["id"].as_str().unwrap().to_string();
    let hb = &api.am.heartbeats.status()[0];
    assert_eq!(hb.name, "cron_host1");
    assert_eq!(hb.timeout_ms, Some(120_000));
    let (_, r) = api.call(Method::GET, "/api/heartbeats", None).await;
    assert_eq!(r["heartbeats"][0]["id"], id.as_str());
    let (s, _) = api
        .call(Method::GET, &format!("/api/heartbeat/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, r) = api.call(Method::GET, "/api/config", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["alarm_model"]["severity"]["critical"], 1);
    let (s, r) = api.call(Method::GET, "/api/management/status", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(r["version"].as_str().unwrap().starts_with("tocsin "));
    assert!(r["uptime"].as_i64().unwrap() > 0);
}
