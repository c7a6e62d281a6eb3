//! Tests of the push token verifier and of taking pushes once.

use std::sync::Arc;

use serde_json::json;
use tocsin_alerts::state::StateDb;
use tocsin_api::pubsub::decode_push;
use tocsin_testkit::oidc;

use super::*;

const AUD: &str = "https://tocsin.example.com/api/v1/pubsub/push";

fn setup(emails: &[&str]) -> (tempfile::TempDir, OidcVerifier) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), oidc::JWKS).unwrap();
    let cfg = OidcConfig {
        jwks_file: "jwks.json".into(),
        audience: AUD.into(),
        issuers: default_issuers(),
        service_account_emails: emails.iter().map(|s| s.to_string()).collect(),
    };
    let v = OidcVerifier::load(&cfg, dir.path()).unwrap();
    (dir, v)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn refused(v: &OidcVerifier, auth: Option<&str>) -> String {
    match v.verify(auth) {
        Err(AuthError::Unauthorized(m)) => m,
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn good_token_passes_and_bad_ones_are_refused_with_the_reason() {
    let (_d, v) = setup(&[]);
    let good = oidc::sign(&oidc::claims(AUD));
    v.verify(Some(&bearer(&good))).unwrap();

    assert!(refused(&v, None).contains("no Authorization header"));
    assert!(refused(&v, Some("Basic dTpw")).contains("not a Bearer token"));
    assert!(refused(&v, Some("Bearer x.y")).contains("not a JWT"));
    let wrong_aud = oidc::sign(&oidc::claims("https://elsewhere.example.com"));
    assert!(refused(&v, Some(&bearer(&wrong_aud))).contains("wrong audience (aud)"));
    let mut c = oidc::claims(AUD);
    c["iss"] = json!("https://evil.example.com");
    assert!(refused(&v, Some(&bearer(&oidc::sign(&c)))).contains("wrong issuer (iss)"));
    let mut c = oidc::claims(AUD);
    c["exp"] = json!(c["iat"].as_i64().unwrap() - 3600);
    assert!(refused(&v, Some(&bearer(&oidc::sign(&c)))).contains("expired (exp)"));
    let mut c = oidc::claims(AUD);
    c["iat"] = json!(c["iat"].as_i64().unwrap() + 3600);
    assert!(refused(&v, Some(&bearer(&oidc::sign(&c)))).contains("issued in the future"));
    let mut c = oidc::claims(AUD);
    c.as_object_mut().unwrap().remove("iat");
    assert!(refused(&v, Some(&bearer(&oidc::sign(&c)))).contains("claim iat missing"));
    let forged = oidc::sign_with(&oidc::claims(AUD), oidc::OTHER_KEY_PEM, oidc::KID);
    assert!(refused(&v, Some(&bearer(&forged))).contains("bad signature"));
    let unknown = oidc::sign_with(&oidc::claims(AUD), oidc::OTHER_KEY_PEM, "other");
    assert!(refused(&v, Some(&bearer(&unknown))).contains("unknown key id \"other\""));
    // An unsigned token ("alg": "none").
    let parts: Vec<&str> = good.split('.').collect();
    let none_header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"none","kid":"tocsin-test-1"}"#,
    );
    let unsigned = format!("{none_header}.{}.", parts[1]);
    assert!(refused(&v, Some(&bearer(&unsigned))).contains("not a JWT"));
}

#[test]
fn service_account_emails_are_checked_when_listed() {
    let (_d, v) = setup(&[oidc::EMAIL]);
    v.verify(Some(&bearer(&oidc::sign(&oidc::claims(AUD)))))
        .unwrap();
    let mut c = oidc::claims(AUD);
    c["email"] = json!("intruder@example.com");
    assert!(
        refused(&v, Some(&bearer(&oidc::sign(&c)))).contains("not one of service_account_emails")
    );
    let mut c = oidc::claims(AUD);
    c["email_verified"] = json!(false);
    assert!(refused(&v, Some(&bearer(&oidc::sign(&c)))).contains("email_verified"));
}

#[test]
fn a_rotated_jwks_file_is_re_read_for_an_unknown_key_id() {
    let (dir, v) = setup(&[]);
    let token = oidc::sign_with(&oidc::claims(AUD), oidc::TEST_KEY_PEM, "rotated");
    assert!(refused(&v, Some(&bearer(&token))).contains("unknown key id"));
    // The same public key published under the new id, as after a rotation.
    let rotated = oidc::JWKS.replace(oidc::KID, "rotated");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, rotated).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    v.verify(Some(&bearer(&token))).unwrap();
}

#[test]
fn jwks_files_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |f: &str| PubsubPushConfig {
        oidc: Some(OidcConfig {
            jwks_file: f.into(),
            audience: AUD.into(),
            issuers: default_issuers(),
            service_account_emails: vec![],
        }),
    };
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let err = |f: &str| cfg(f).verifier(dir.path()).unwrap_err();
    assert!(err("missing.json").starts_with("pubsub_push.oidc.jwks_file: reading"));
    write("a.json", "nope");
    assert!(err("a.json").contains("not JSON"));
    write("b.json", r#"{"keys": []}"#);
    assert!(err("b.json").ends_with("no keys"));
    write(
        "c.json",
        r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}"#,
    );
    assert!(err("c.json").contains("keys[0]: kty \"EC\": only RSA keys"));
    let no_kid = oidc::JWKS.replace("\"kid\": \"tocsin-test-1\",", "");
    write("d.json", &no_kid);
    assert!(
        err("d.json").contains("keys[0]: kid: missing"),
        "{}",
        err("d.json")
    );
    assert!(PubsubPushConfig::default()
        .verifier(dir.path())
        .unwrap()
        .is_none());
}

#[test]
fn section_problems_name_the_field() {
    let mut p = Problems::new();
    PubsubPushConfig {
        oidc: Some(OidcConfig {
            jwks_file: "".into(),
            audience: " ".into(),
            issuers: vec![],
            service_account_emails: vec!["nobody".into()],
        }),
    }
    .problems(&mut p);
    let paths: Vec<&str> = p.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        paths,
        [
            "pubsub_push.oidc.jwks_file",
            "pubsub_push.oidc.audience",
            "pubsub_push.oidc.issuers",
            "pubsub_push.oidc.service_account_emails[0]"
        ]
    );
}

fn push_body(id: &str, state: &str) -> Vec<u8> {
    let inc = json!({"version": "1.2", "incident": {
        "incident_id": "0.abc", "state": state, "policy_name": "VM CPU",
        "started_at": 1_767_225_000_i64,
        "ended_at": if state == "closed" { json!(1_767_225_300_i64) } else { json!(null) },
        "resource": {"type": "gce_instance", "labels": {"instance_id": "17", "zone": "z"}}}});
    let data = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        serde_json::to_vec(&inc).unwrap(),
    );
    serde_json::to_vec(&json!({"message": {"data": data, "messageId": id},
        "subscription": "projects/p/subscriptions/s"}))
    .unwrap()
}

#[tokio::test]
async fn a_message_is_taken_once_and_a_late_open_does_not_reopen() {
    let clock = Arc::new(tocsin_model::ManualClock::new(1_767_225_060_000));
    let db = StateDb::in_memory().unwrap();
    let am = tocsin_alerts::AlertManager::new(
        tocsin_alerts::AmConfig::default(),
        tocsin_alerts::ManagerOptions {
            state: Some(db.clone()),
            base_dir: ".".into(),
            external_url: "http://t".into(),
            clock: clock.clone(),
        },
    )
    .unwrap();
    let intake = PubsubIntake::new(PubsubLog::new(db.clone()), None);
    let now = 1_767_225_060_000;
    let open = decode_push(&push_body("1", "open"), now).unwrap();
    assert_eq!(intake.push(&am, &open, now).unwrap(), PushOutcome::Taken);
    assert_eq!(
        intake.push(&am, &open, now).unwrap(),
        PushOutcome::Duplicate
    );
    // The same open under a new message id updates the one alert.
    let again = decode_push(&push_body("2", "open"), now).unwrap();
    assert_eq!(intake.push(&am, &again, now).unwrap(), PushOutcome::Taken);
    assert_eq!(am.store().len(), 1);
    let now = 1_767_225_400_000;
    clock.set(now);
    let closed = decode_push(&push_body("3", "closed"), now).unwrap();
    assert_eq!(intake.push(&am, &closed, now).unwrap(), PushOutcome::Taken);
    let stored = am.store().get(open.alert.fingerprint()).unwrap();
    assert!(stored.resolved_at(now));
    // An open redelivered after the close (Pub/Sub keeps no order) leaves it resolved.
    let late = decode_push(&push_body("4", "open"), now).unwrap();
    assert_eq!(intake.push(&am, &late, now).unwrap(), PushOutcome::Stale);
    assert!(am
        .store()
        .get(open.alert.fingerprint())
        .unwrap()
        .resolved_at(now));
    assert_eq!(PubsubLog::new(db).len().unwrap(), 4);
}
