//! The Pub/Sub receiver's Google modes against the fake Google server: publishing incidents to
//! a topic (`projects.topics.publish`) and pushing with a Google-signed ID token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use tocsin_testkit::fake_gcp::{Failure, FakeGcp};

use super::pubsub::{incident, notification, IncidentShape};
use super::tests::*;
use super::*;

fn google(f: &FakeGcp) -> String {
    f.google_yaml(4, None)
}

#[tokio::test]
async fn pubsub_publishes_incidents_to_a_topic() -> R {
    let f = FakeGcp::start();
    f.add_topic("projects/my-proj/topics/incidents");
    let n = build_one(
        &format!(
            "name: r\npubsub_configs:\n- topic: projects/my-proj/topics/incidents\n  project_id: my-proj\n  google:\n{}",
            google(&f)
        ),
        Path::new("."),
    );
    let (a, b) = group();
    n.notify(&cx(), &[a.clone(), b.clone()]).await?;
    // One publish request carrying both incidents.
    let calls = f.requests_to("/v1/projects/my-proj/topics/incidents:publish");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert!(calls[0]
        .header("authorization")
        .unwrap()
        .starts_with("Bearer meta-token-"));
    assert_eq!(calls[0].json()["messages"].as_array().unwrap().len(), 2);
    let p = f.published();
    assert_eq!(p.len(), 2);
    let open = p[0].json();
    assert_eq!(open["version"], "1.2");
    let id = format!("{}-{STARTS}", a.fingerprint_hex());
    assert_eq!(open["incident"]["incident_id"], Value::from(id.clone()));
    assert_eq!(open["incident"]["state"], "open");
    assert_eq!(open["incident"]["scoping_project_id"], "my-proj");
    assert_eq!(p[0].attributes["incident_id"], id);
    assert_eq!(p[0].attributes["state"], "open");
    assert_eq!(p[1].json()["incident"]["state"], "closed");
    // The same incident JSON as a push would carry.
    let push_data = notification(&incident(
        &a,
        &cx(),
        &IncidentShape {
            project_id: Some("my-proj".into()),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(p[0].data, push_data);
    Ok(())
}

#[tokio::test]
async fn pubsub_publish_errors_are_classified() -> R {
    let f = FakeGcp::start();
    let yaml = format!(
        "name: r\npubsub_configs:\n- topic: projects/p/topics/t\n  google:\n{}",
        google(&f)
    );
    let n = build_one(&yaml, Path::new("."));
    let (a, _) = group();
    // A topic that does not exist: not retried.
    let e = n.notify(&cx(), std::slice::from_ref(&a)).await.unwrap_err();
    assert!(!e.retryable, "{e:?}");
    assert!(e.message.contains("NOT_FOUND"), "{}", e.message);
    f.add_topic("projects/p/topics/t");
    f.fail_next(1, Failure::Unavailable);
    let e = n.notify(&cx(), std::slice::from_ref(&a)).await.unwrap_err();
    assert!(e.retryable, "{e:?}");
    f.fail_next(1, Failure::RateLimited);
    assert!(n.notify(&cx(), std::slice::from_ref(&a)).await.unwrap_err().retryable);
    n.notify(&cx(), &[a]).await?;
    assert_eq!(f.published().len(), 1);
    // One token served every call.
    assert_eq!(f.counters().access_tokens, 1);
    Ok(())
}

#[tokio::test]
async fn pubsub_publish_with_a_service_account_key() -> R {
    let f = FakeGcp::start();
    f.add_topic("projects/p/topics/t");
    let dir = tempfile::tempdir().unwrap();
    f.write_key(dir.path(), "sa.json");
    let n = build_one(
        &format!(
            "name: r\npubsub_configs:\n- topic: projects/p/topics/t\n  google:\n{}    service_account_key_file: sa.json\n",
            google(&f)
        ),
        dir.path(),
    );
    n.notify(&cx(), &[group().0]).await?;
    assert_eq!(f.requests_to("/token").len(), 1);
    assert!(f.requests_to("/computeMetadata/").is_empty());
    assert_eq!(f.published().len(), 1);
    Ok(())
}

#[tokio::test]
async fn pubsub_push_carries_a_google_id_token_for_the_url() -> R {
    let f = FakeGcp::start();
    let srv = Server::start(&[]).await;
    let url = srv.url("/push");
    let n = build_one(
        &format!(
            "name: r\npubsub_configs:\n- url: {url}\n  id_token: {{}}\n  google:\n{}",
            google(&f)
        ),
        Path::new("."),
    );
    let (a, b) = group();
    n.notify(&cx(), &[a, b]).await?;
    let reqs = srv.reqs();
    assert_eq!(reqs.len(), 2);
    let auth = reqs[0].header("authorization").unwrap();
    let token = auth.strip_prefix("Bearer ").unwrap();
    let claims = FakeGcp::verify_id_token(token).unwrap();
    assert_eq!(claims["aud"], Value::from(url.clone()));
    assert_eq!(reqs[1].header("authorization").unwrap(), auth);
    // Fetched once from the metadata server, with the audience asked for.
    let ids = f.requests_to("/computeMetadata/v1/instance/service-accounts/default/identity");
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].query_param("audience"), Some(url));
    assert_eq!(ids[0].header("metadata-flavor"), Some("Google"));
    Ok(())
}

#[tokio::test]
async fn pubsub_push_id_token_audience_and_key() -> R {
    let f = FakeGcp::start();
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    f.write_key(dir.path(), "sa.json");
    let n = build_one(
        &format!(
            "name: r\npubsub_configs:\n- url: {}\n  id_token: {{audience: 'https://handler-xyz.a.run.app'}}\n  google:\n{}    service_account_key_file: sa.json\n",
            srv.url("/push"),
            google(&f)
        ),
        dir.path(),
    );
    n.notify(&cx(), &[group().0]).await?;
    let auth = srv.reqs()[0].header("authorization").unwrap();
    let claims = FakeGcp::verify_id_token(auth.strip_prefix("Bearer ").unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://handler-xyz.a.run.app");
    assert_eq!(f.requests_to("/token").len(), 1);
    Ok(())
}

#[tokio::test]
async fn pubsub_push_fails_retryably_when_no_id_token_can_be_had() -> R {
    let srv = Server::start(&[]).await;
    let n = build_one(
        &format!(
            "name: r\npubsub_configs:\n- url: {}\n  id_token: {{}}\n  google: {{metadata_url: 'http://127.0.0.1:9'}}\n",
            srv.url("/push")
        ),
        Path::new("."),
    );
    let e = n.notify(&cx(), &[group().0]).await.unwrap_err();
    assert!(e.retryable, "{e:?}");
    assert!(srv.reqs().is_empty(), "nothing pushed without the token");
    Ok(())
}

#[test]
fn pubsub_delivery_config_errors() {
    let bad = [
        ("- url: http://x/\n  topic: projects/p/topics/t\n", "only one of url"),
        ("- project_id: p\n", "one of url"),
        ("- topic: p/t\n", "topic: "),
        (
            "- topic: projects/p/topics/t\n  id_token: {}\n",
            "id_token: only for url pushes",
        ),
        (
            "- topic: projects/p/topics/t\n  http_config: {bearer_token: x}\n",
            "google.http_config",
        ),
        (
            "- url: http://x/\n  id_token: {}\n  http_config: {bearer_token: x}\n",
            "give only one",
        ),
        ("- url: http://x/\n  id_token: {audience: ''}\n", "audience"),
        (
            "- url: http://x/\n  google: {metadata_url: 'http://127.0.0.1:9'}\n",
            "google: only used with topic or id_token",
        ),
        (
            "- topic: projects/p/topics/t\n  google: {service_account_key_file: /nonexistent/sa.json}\n",
            "/nonexistent/sa.json",
        ),
    ];
    for (yaml, want) in bad {
        let e = build_receiver(
            &receiver(&format!("name: r\npubsub_configs:\n{yaml}")),
            Path::new("."),
        )
        .err()
        .unwrap_or_else(|| panic!("accepted: {yaml}"))
        .to_string();
        assert!(
            e.contains("pubsub_configs[0]") && e.contains(want),
            "{yaml}: {e}"
        );
    }
    let e = serde_norway::from_str::<ReceiverConfig>(
        "name: r\npubsub_configs:\n- url: http://x/\n  id_token: {audiense: x}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("audiense"), "{e}");
}
