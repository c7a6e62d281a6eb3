//! `gce_instance` against the fake Google server: the exact requests, operation polling,
//! failures and their classes, token caching, and configuration errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use tocsin_model::{Alert, Labels};
use tocsin_testkit::fake_gcp::{Failure, FakeGcp};

use super::*;

const RID: &str = "0f8e2a6c-1b2d-4c3e-9f00-123456789abc";

fn alert(instance: &str) -> Alert {
    Alert {
        labels: Labels::from_pairs(&[
            ("alertname", "HighCpu"),
            ("project_id", "fleet"),
            ("zone", "europe-west1-b"),
            ("instance_name", instance),
            ("instance_id", "1234"),
        ]),
        annotations: Default::default(),
        starts_at: 1_700_000_000_000,
        ends_at: 0,
        generator_url: String::new(),
        updated_at: 0,
        timeout: false,
    }
}

fn cx<'a>(a: &'a Alert, rid: &'a str) -> RenderCx<'a> {
    RenderCx {
        alert: a,
        policy: "delete-vm",
        target: "1234",
        request_id: rid,
        now_ms: 1_700_000_001_000,
    }
}

fn exec(timeout: Duration) -> ExecCx {
    ExecCx {
        timeout,
        attempt: 1,
    }
}

fn kind_yaml(yaml: &str, base: &Path) -> Result<GceInstanceKind> {
    let cfg: GceInstanceConfig = serde_norway::from_str(yaml).unwrap();
    GceInstanceKind::new(&cfg, base, "actions.policies[0].gce_instance")
}

fn kind(f: &FakeGcp, op: &str) -> GceInstanceKind {
    kind_yaml(
        &format!("operation: {op}\ngoogle:\n{}", f.google_yaml(2, None)),
        Path::new("/"),
    )
    .unwrap()
}

async fn run(k: &GceInstanceKind, a: &Alert, rid: &str) -> Attempt {
    let p = k.prepare(&cx(a, rid)).unwrap();
    k.execute(&p, &exec(Duration::from_secs(20))).await
}

fn fleet(f: &FakeGcp, n: usize) {
    for i in 0..n {
        f.add_instance("fleet", "europe-west1-b", &format!("vm-{i}"));
    }
}

#[tokio::test]
async fn delete_sends_the_exact_request_with_request_id_and_bearer_token() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    let k = kind(&f, "delete");
    let a = alert("vm-0");
    let p = k.prepare(&cx(&a, RID)).unwrap();
    let url = format!(
        "{}/compute/v1/projects/fleet/zones/europe-west1-b/instances/vm-0?requestId={RID}",
        f.url()
    );
    assert_eq!(
        p.request,
        json!({"method": "DELETE", "url": url, "operation": "delete", "project": "fleet",
               "zone": "europe-west1-b", "instance": "vm-0", "requestId": RID})
    );
    // No request is made before execute.
    assert!(f.requests().is_empty());
    let out = k.execute(&p, &exec(Duration::from_secs(20))).await;
    assert!(
        matches!(
            &out,
            Attempt::Done {
                status: Some(200),
                already_done: false,
                ..
            }
        ),
        "{out:?}"
    );
    let calls: Vec<_> = f
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/instances/"))
        .collect();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.method, "DELETE");
    assert_eq!(
        c.path,
        "/compute/v1/projects/fleet/zones/europe-west1-b/instances/vm-0"
    );
    assert_eq!(c.query_param("requestId").as_deref(), Some(RID));
    let auth = c.header("authorization").unwrap();
    assert!(auth.starts_with("Bearer meta-token-"), "{auth}");
    assert_eq!(f.counters().deleted, 1);
    assert_eq!(
        f.instance_status("fleet", "europe-west1-b", "vm-0"),
        None,
        "deleted"
    );
}

#[tokio::test]
async fn reset_and_stop_post_to_their_methods() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    for (op, rid) in [
        ("reset", "0f8e2a6c-1b2d-4c3e-9f00-000000000001"),
        ("stop", "0f8e2a6c-1b2d-4c3e-9f00-000000000002"),
    ] {
        let out = run(&kind(&f, op), &alert("vm-0"), rid).await;
        assert!(matches!(out, Attempt::Done { .. }), "{op}: {out:?}");
        let last = f
            .requests()
            .into_iter()
            .rfind(|r| r.path.contains("/instances/"))
            .unwrap();
        assert_eq!(last.method, "POST");
        assert_eq!(
            last.path,
            format!("/compute/v1/projects/fleet/zones/europe-west1-b/instances/vm-0/{op}")
        );
    }
    let c = f.counters();
    assert_eq!((c.reset, c.stopped, c.deleted), (1, 1, 0));
    assert_eq!(
        f.instance_status("fleet", "europe-west1-b", "vm-0")
            .as_deref(),
        Some("TERMINATED")
    );
}

#[tokio::test]
async fn operation_is_polled_until_done() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    f.set_operation_duration(Duration::from_millis(800));
    f.set_wait_max(Duration::from_millis(150));
    let out = run(&kind(&f, "delete"), &alert("vm-0"), RID).await;
    assert!(
        matches!(&out, Attempt::Done { detail, .. } if detail.ends_with("DONE")),
        "{out:?}"
    );
    let waits = f.requests_to("/compute/v1/projects/fleet/zones/europe-west1-b/operations/");
    assert!(waits.len() >= 3, "{} waits", waits.len());
    assert!(waits
        .iter()
        .all(|w| w.method == "POST" && w.path.ends_with("/wait")));
}

#[tokio::test]
async fn operation_not_done_within_the_timeout_is_retryable() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    f.set_operation_duration(Duration::from_secs(30));
    f.set_wait_max(Duration::from_millis(100));
    let k = kind(&f, "delete");
    let a = alert("vm-0");
    let p = k.prepare(&cx(&a, RID)).unwrap();
    let out = k.execute(&p, &exec(Duration::from_millis(500))).await;
    assert!(
        matches!(
            &out,
            Attempt::Failed {
                retryable: true,
                ..
            }
        ),
        "{out:?}"
    );
}

#[tokio::test]
async fn done_with_error_is_a_failure() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    f.fail_next(1, Failure::DoneWithError("instance is locked".into()));
    let out = run(&kind(&f, "delete"), &alert("vm-0"), RID).await;
    match out {
        Attempt::Failed {
            retryable, message, ..
        } => {
            assert!(!retryable);
            assert!(message.contains("instance is locked"), "{message}");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(f.counters().deleted, 0);
}

#[tokio::test]
async fn not_found_instance_is_already_done_but_wrong_zone_is_a_config_error() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    let k = kind(&f, "delete");
    let out = run(&k, &alert("vm-gone"), RID).await;
    match &out {
        Attempt::Done {
            status,
            already_done,
            detail,
        } => {
            assert_eq!(*status, Some(404));
            assert!(*already_done);
            assert!(detail.contains("instances/vm-gone"), "{detail}");
        }
        o => panic!("{o:?}"),
    }
    let mut a = alert("vm-0");
    a.labels = Labels::from_pairs(&[
        ("project_id", "fleet"),
        ("zone", "us-central1-a"),
        ("instance_name", "vm-0"),
    ]);
    let out = run(&k, &a, RID).await;
    match &out {
        Attempt::Failed {
            retryable,
            status,
            message,
            ..
        } => {
            assert!(!retryable);
            assert_eq!(*status, Some(404));
            assert!(message.contains("configuration error"), "{message}");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(f.counters().deleted, 0);
}

#[tokio::test]
async fn rate_limit_and_unavailable_are_retryable() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    let k = kind(&f, "delete");
    f.fail_next(1, Failure::RateLimited);
    match run(&k, &alert("vm-0"), RID).await {
        Attempt::Failed {
            retryable: true,
            status: Some(403),
            retry_after: Some(d),
            ..
        } => assert!(d <= Duration::from_secs(60)),
        o => panic!("{o:?}"),
    }
    f.fail_next(1, Failure::Unavailable);
    assert!(matches!(
        run(&k, &alert("vm-0"), RID).await,
        Attempt::Failed {
            retryable: true,
            status: Some(503),
            ..
        }
    ));
    // The retry with the same requestId then goes through, once.
    assert!(matches!(
        run(&k, &alert("vm-0"), RID).await,
        Attempt::Done {
            already_done: false,
            ..
        }
    ));
    assert_eq!(f.counters().deleted, 1);
}

#[tokio::test]
async fn one_token_serves_many_calls() {
    let f = FakeGcp::start();
    fleet(&f, 10);
    let k = kind(&f, "delete");
    for i in 0..10 {
        let rid = format!("0f8e2a6c-1b2d-4c3e-9f00-{i:012}");
        let out = run(&k, &alert(&format!("vm-{i}")), &rid).await;
        assert!(matches!(out, Attempt::Done { .. }), "{out:?}");
    }
    assert_eq!(f.counters().deleted, 10);
    assert_eq!(f.counters().access_tokens, 1);
    assert_eq!(f.requests_to("/computeMetadata/").len(), 1);
    let auths: std::collections::BTreeSet<_> = f
        .requests()
        .into_iter()
        .filter(|r| r.is_compute())
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(auths.len(), 1, "{auths:?}");
}

#[tokio::test]
async fn fake_metadata_server_refuses_requests_without_the_flavor_header() {
    let f = FakeGcp::start();
    let url = format!(
        "{}/computeMetadata/v1/instance/service-accounts/default/token",
        f.url()
    );
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = f.counters();
    assert_eq!((c.metadata_refused, c.access_tokens), (1, 1));
}

#[tokio::test]
async fn service_account_key_is_used_when_configured() {
    let f = FakeGcp::start();
    fleet(&f, 1);
    let dir = tempfile::tempdir().unwrap();
    f.write_key(dir.path(), "sa.json");
    let yaml = format!(
        "operation: delete\ninstance: '{{{{ $labels.instance_name }}}}'\ngoogle:\n{}",
        f.google_yaml(2, Some(Path::new("sa.json")))
    );
    let k = kind_yaml(&yaml, dir.path()).unwrap();
    let out = run(&k, &alert("vm-0"), RID).await;
    assert!(matches!(out, Attempt::Done { .. }), "{out:?}");
    assert_eq!(f.requests_to("/token").len(), 1);
    assert!(f.requests_to("/computeMetadata/").is_empty());
    let call = f
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/instances/"))
        .unwrap();
    assert!(call
        .header("authorization")
        .unwrap()
        .starts_with("Bearer key-token-"));
}

#[test]
fn configuration_errors_name_the_field() {
    let base = tempfile::tempdir().unwrap();
    let err = |y: &str| {
        kind_yaml(y, base.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = err("operation: destroy\n");
    assert!(
        e.starts_with("actions.policies[0].gce_instance.operation: ") && e.contains("destroy"),
        "{e}"
    );
    let e = err("operation: delete\ngoogle: {service_account_key_file: nope.json}\n");
    assert!(
        e.starts_with("actions.policies[0].gce_instance.google.service_account_key_file: ")
            && e.contains("nope.json"),
        "{e}"
    );
    let e = err("operation: delete\nzone: '{{ nosuch }}'\n");
    assert!(
        e.starts_with("actions.policies[0].gce_instance.zone: "),
        "{e}"
    );
    assert!(serde_norway::from_str::<GceInstanceConfig>("operation: delete\nbogus: 1\n").is_err());
}

#[test]
fn empty_or_bad_names_are_render_errors_naming_the_field() {
    let k = kind_yaml(
        "operation: delete\ngoogle: {metadata_url: 'http://127.0.0.1:9'}\n",
        Path::new("/"),
    )
    .unwrap();
    let mut a = alert("vm-0");
    a.labels = Labels::from_pairs(&[("project_id", "fleet"), ("instance_name", "vm-0")]);
    let e = k.prepare(&cx(&a, RID)).unwrap_err();
    assert!(matches!(e, Error::Render(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("actions.policies[0].gce_instance.zone: "),
        "{e}"
    );
    a.labels = Labels::from_pairs(&[
        ("project_id", "fleet"),
        ("zone", "projects/1/zones/z"),
        ("instance_name", "vm-0"),
    ]);
    let e = k.prepare(&cx(&a, RID)).unwrap_err().to_string();
    assert!(
        e.starts_with("actions.policies[0].gce_instance.zone: ")
            && e.contains("not a Compute Engine name"),
        "{e}"
    );
}
