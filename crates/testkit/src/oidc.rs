//! OIDC tokens like those Pub/Sub attaches to a push, signed with a fixed test RSA key whose
//! public part is in a JWKS file, for tests of the push endpoint's verification. The keys are
//! test-only (generated for this crate; never used anywhere else).

use serde_json::{json, Value};

/// The private key the tokens are signed with (PKCS#1 PEM).
pub const TEST_KEY_PEM: &str = include_str!("../data/pubsub_oidc_test_key.pem");
/// A second key, not in the JWKS: tokens signed with it have a bad signature.
pub const OTHER_KEY_PEM: &str = include_str!("../data/pubsub_oidc_other_key.pem");
/// A JWKS holding the public part of [`TEST_KEY_PEM`] under key id [`KID`].
pub const JWKS: &str = include_str!("../data/pubsub_oidc_test_jwks.json");
pub const KID: &str = "tocsin-test-1";
/// The service account the tokens name.
pub const EMAIL: &str = "pusher@fleet-prod.iam.gserviceaccount.com";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The claims of a Google-signed push token for `audience`, valid for an hour from now.
pub fn claims(audience: &str) -> Value {
    let now = now();
    json!({
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": "112233445566778899",
        "sub": "112233445566778899",
        "email": EMAIL,
        "email_verified": true,
        "iat": now,
        "exp": now + 3600,
    })
}

/// Signs `claims` (RS256) with `key_pem`, with `kid` in the header. Panics on a bad key: the
/// keys are fixed test data.
pub fn sign_with(claims: &Value, key_pem: &str, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    let signed = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes())
        .and_then(|key| jsonwebtoken::encode(&header, claims, &key));
    signed.unwrap_or_else(|e| panic!("signing a test token: {e}"))
}

/// Signs `claims` with the test key.
pub fn sign(claims: &Value) -> String {
    sign_with(claims, TEST_KEY_PEM, KID)
}
