//! The gcp crate against the fake Google server: tokens (both sources, caching, sharing one
//! refresh), ID tokens, Compute Engine calls and their error classes, Pub/Sub publish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tocsin_testkit::fake_gcp::{Failure, FakeGcp, CLIENT_EMAIL};

use super::*;

const RID: &str = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab";
const T: Duration = Duration::from_secs(20);

fn cfg(f: &FakeGcp) -> GoogleConfig {
    GoogleConfig {
        metadata_url: Some(f.url()),
        compute_url: Some(f.url()),
        pubsub_url: Some(f.url()),
        ..Default::default()
    }
}

fn metadata_google(f: &FakeGcp) -> Google {
    Google::new(&cfg(f), Path::new("/"), "t").unwrap()
}

fn key_google(f: &FakeGcp, dir: &Path) -> Google {
    f.write_key(dir, "sa.json");
    let c = GoogleConfig {
        service_account_key_file: Some("sa.json".into()),
        ..cfg(f)
    };
    Google::new(&c, dir, "t").unwrap()
}

#[tokio::test]
async fn metadata_token_is_fetched_once_and_shared_by_concurrent_callers() {
    let f = FakeGcp::start();
    let g = Arc::new(metadata_google(&f));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let g = g.clone();
        tasks.push(tokio::spawn(async move { g.access_token().await.unwrap() }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    assert_eq!(f.counters().access_tokens, 1);
    let reqs = f.requests_to("/computeMetadata/");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(
        reqs[0].path,
        "/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert_eq!(reqs[0].header("metadata-flavor"), Some("Google"));
}

#[tokio::test]
async fn short_lived_token_is_refreshed() {
    let f = FakeGcp::start();
    // Below twice the 60 s margin: kept for half its life (1 s).
    f.set_token_ttl(2);
    let g = metadata_google(&f);
    let a = g.access_token().await.unwrap();
    assert_eq!(g.access_token().await.unwrap(), a);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = g.access_token().await.unwrap();
    assert_ne!(a, b);
    assert_eq!(f.counters().access_tokens, 2);
}

#[tokio::test]
async fn key_flow_signs_a_jwt_the_token_endpoint_accepts() {
    let f = FakeGcp::start();
    let dir = tempfile::tempdir().unwrap();
    let g = key_google(&f, dir.path());
    let t = g.access_token().await.unwrap();
    assert!(t.starts_with("key-token-"), "{t}");
    assert_eq!(g.access_token().await.unwrap(), t);
    let reqs = f.requests_to("/token");
    assert_eq!(reqs.len(), 1);
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&reqs[0].body).into_owned().collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let claims = FakeGcp::verify_id_token(&form["assertion"]).unwrap();
    assert_eq!(claims["iss"], CLIENT_EMAIL);
    assert_eq!(claims["aud"], format!("{}/token", f.url()));
    assert_eq!(claims["scope"], DEFAULT_SCOPE);
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 3600);
    // No metadata server involved.
    assert!(f.requests_to("/computeMetadata/").is_empty());
}

#[tokio::test]
async fn id_tokens_from_metadata_and_from_a_key() {
    let f = FakeGcp::start();
    let g = metadata_google(&f);
    let aud = "https://handler-abc.a.run.app/push";
    let t = g.id_token(aud).await.unwrap();
    assert_eq!(FakeGcp::verify_id_token(&t).unwrap()["aud"], aud);
    assert_eq!(g.id_token(aud).await.unwrap(), t, "cached");
    let r = &f.requests_to("/computeMetadata/v1/instance/service-accounts/default/identity")[0];
    assert_eq!(r.query_param("audience").as_deref(), Some(aud));
    assert_eq!(r.query_param("format").as_deref(), Some("full"));
    assert_eq!(f.counters().id_tokens, 1);

    let dir = tempfile::tempdir().unwrap();
    let k = key_google(&f, dir.path());
    let t = k.id_token(aud).await.unwrap();
    assert_eq!(FakeGcp::verify_id_token(&t).unwrap()["aud"], aud);
    k.id_token(aud).await.unwrap();
    assert_eq!(f.counters().id_tokens, 2);
}

#[tokio::test]
async fn metadata_unreachable_is_retryable() {
    let f = FakeGcp::start();
    let mut c = cfg(&f);
    c.metadata_url = Some("http://127.0.0.1:9".into());
    let g = Google::new(&c, Path::new("/"), "t").unwrap();
    let e = g.access_token().await.unwrap_err();
    assert!(e.retryable(), "{e}");
    assert!(e.to_string().contains("metadata server"), "{e}");
}

#[tokio::test]
async fn delete_waits_for_done_and_repeats_are_harmless() {
    let f = FakeGcp::start();
    f.add_instance("p", "z", "vm-1");
    f.set_operation_duration(Duration::from_millis(600));
    f.set_wait_max(Duration::from_millis(200));
    let g = metadata_google(&f);
    let out = g
        .instance_op(InstanceOp::Delete, "p", "z", "vm-1", RID, T)
        .await
        .unwrap();
    let InstanceOutcome::Done(op) = out else {
        panic!("{out:?}")
    };
    assert_eq!(op.status, "DONE");
    assert_eq!(op.client_operation_id, RID);
    let waits = f
        .requests_to("/compute/v1/projects/p/zones/z/operations/")
        .len();
    assert!(waits >= 2, "wait called again while not DONE: {waits}");
    // The same requestId: the earlier operation, nothing done again.
    let again = g
        .instance_op(InstanceOp::Delete, "p", "z", "vm-1", RID, T)
        .await
        .unwrap();
    assert!(matches!(again, InstanceOutcome::Done(_)), "{again:?}");
    assert_eq!(f.counters().deleted, 1);
    // Another requestId: 404 naming the instance = already gone.
    let other = g
        .instance_op(
            InstanceOp::Delete,
            "p",
            "z",
            "vm-1",
            "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ac",
            T,
        )
        .await
        .unwrap();
    assert!(
        matches!(other, InstanceOutcome::AlreadyGone(_)),
        "{other:?}"
    );
    assert_eq!(f.counters().access_tokens, 1);
}

#[tokio::test]
async fn wrong_zone_or_project_is_a_configuration_error() {
    let f = FakeGcp::start();
    f.add_instance("p", "z", "vm-1");
    let g = metadata_google(&f);
    for (p, z) in [("p", "nowhere-1a"), ("nope", "z")] {
        let e = g
            .instance_op(InstanceOp::Delete, p, z, "vm-1", RID, T)
            .await
            .unwrap_err();
        assert!(!e.retryable(), "{e}");
        assert!(e.is_status(404));
        assert!(e.to_string().contains("configuration error"), "{e}");
    }
    assert_eq!(f.counters().deleted, 0);
}

#[tokio::test]
async fn transient_failures_are_retryable_with_hints() {
    let f = FakeGcp::start();
    f.add_instance("p", "z", "vm-1");
    let g = metadata_google(&f);
    let op = |g: &'static Google| g.instance_op(InstanceOp::Reset, "p", "z", "vm-1", RID, T);
    let g: &'static Google = Box::leak(Box::new(g));
    f.fail_next(1, Failure::RateLimited);
    let e = op(g).await.unwrap_err();
    assert!(e.retryable() && e.is_status(403), "{e}");
    assert!(e.retry_after().unwrap() <= Duration::from_secs(60));
    f.fail_next(1, Failure::Unavailable);
    let e = op(g).await.unwrap_err();
    assert!(e.retryable() && e.is_status(503), "{e}");
    assert!(e.retry_after().is_none());
    f.fail_next(1, Failure::ResourceNotReady);
    assert!(op(g).await.unwrap_err().retryable());
    f.fail_next(1, Failure::DoneWithError("disk busy".into()));
    let e = op(g).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    assert!(e.to_string().contains("disk busy"), "{e}");
    assert_eq!(f.counters().reset, 0);
    // The same requestId gets the same failed operation back: retrying it cannot help.
    let e = op(g).await.unwrap_err();
    assert!(e.to_string().contains("disk busy"), "{e}");
    g.instance_op(
        InstanceOp::Reset,
        "p",
        "z",
        "vm-1",
        "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ad",
        T,
    )
    .await
    .unwrap();
    assert_eq!(f.counters().reset, 1);
}

#[tokio::test]
async fn revoked_token_is_replaced_once() {
    let f = FakeGcp::start();
    f.add_instance("p", "z", "vm-1");
    let g = metadata_google(&f);
    g.access_token().await.unwrap();
    f.revoke_tokens();
    g.instance_op(InstanceOp::Stop, "p", "z", "vm-1", RID, T)
        .await
        .unwrap();
    assert_eq!(f.counters().access_tokens, 2);
    assert_eq!(f.counters().unauthenticated, 1);
    assert_eq!(
        f.instance_status("p", "z", "vm-1").as_deref(),
        Some("TERMINATED")
    );
}

#[tokio::test]
async fn publish_sends_base64_data_and_attributes() {
    let f = FakeGcp::start();
    f.add_topic("projects/p/topics/alerts");
    let g = metadata_google(&f);
    let mut m = PubsubMessage {
        data: br#"{"version":"1.2"}"#.to_vec(),
        ..Default::default()
    };
    m.attributes.insert("state".into(), "open".into());
    let ids = g
        .publish("projects/p/topics/alerts", &[m.clone()], T)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let p = f.published();
    assert_eq!(p[0].data, m.data);
    assert_eq!(p[0].attributes, m.attributes);
    assert_eq!(p[0].message_id, ids[0]);
    let r = &f.requests_to("/v1/projects/p/topics/alerts:publish")[0];
    assert!(r
        .header("authorization")
        .unwrap()
        .starts_with("Bearer meta-token-"));
    let e = g
        .publish("projects/p/topics/missing", &[m.clone()], T)
        .await
        .unwrap_err();
    assert!(!e.retryable() && e.is_status(404), "{e}");
    f.fail_next(1, Failure::Unavailable);
    assert!(g
        .publish("projects/p/topics/alerts", &[m], T)
        .await
        .unwrap_err()
        .retryable());
}

#[test]
fn settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |c: GoogleConfig| Google::new(&c, dir.path(), "x").unwrap_err().to_string();
    let e = bad(GoogleConfig {
        service_account_key_file: Some("missing.json".into()),
        ..Default::default()
    });
    assert!(
        e.starts_with("x.google.service_account_key_file: ") && e.contains("missing.json"),
        "{e}"
    );
    let e = bad(GoogleConfig {
        compute_url: Some("ftp://x".into()),
        ..Default::default()
    });
    assert!(e.starts_with("x.google.compute_url: "), "{e}");
    let y = "http_config:\n  bearer_token: abc\n";
    let c: GoogleConfig = serde_norway::from_str(y).unwrap();
    assert!(bad(c).contains("x.google.http_config: authentication settings"));
    let y = "http_config:\n  nonsense: 1\n";
    let e = serde_norway::from_str::<GoogleConfig>(y)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nonsense"), "{e}");
    let e = serde_norway::from_str::<GoogleConfig>("bogus: 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus"), "{e}");
}
