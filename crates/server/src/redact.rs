//! Secrets hidden from the configuration the status endpoints return (`/api/v1/status/config`,
//! `/api/v2/status`): the text is parsed, every secret value replaced by `<secret>` as Prometheus
//! and Alertmanager print their `Secret` and `SecretURL` fields, passwords inside other URLs
//! replaced too, and the result written back as YAML. Paths of `*_file` settings stay visible.

use serde_norway::Value;

/// What secrets are shown as.
pub const SECRET: &str = "<secret>";

/// Keys whose value is a secret wherever they appear (Prometheus's HTTP client settings and
/// service discovery, Alertmanager's receivers and `global`, tocsin's own receivers).
const SECRET_KEYS: &[&str] = &[
    "password",
    "bearer_token",
    "credentials",
    "client_secret",
    "secret_key",
    "api_key",
    "api_secret",
    "token",
    "token_id",
    "auth_password",
    "auth_secret",
    "routing_key",
    "service_key",
    "user_key",
    "bot_token",
    "app_token",
    "smtp_auth_password",
    "smtp_auth_secret",
    "opsgenie_api_key",
    "victorops_api_key",
    "wechat_api_secret",
    "telegram_bot_token",
    "rocketchat_token",
    "rocketchat_token_id",
    "slack_app_token",
    "slack_api_url",
    "webhook_url",
    "discord_webhook_url",
    "mattermost_webhook_url",
    // `http_headers: {Name: {secrets: [...]}}` and `proxy_connect_header: {Name: [...]}`.
    "secrets",
    "proxy_connect_header",
    "private_key",
];

/// Keys that are secret inside one kind of section only: `(section, key)`.
const SECRET_IN: &[(&str, &str)] = &[
    // Alertmanager's webhook `url` is a SecretURL: its path or query often carries a token.
    ("webhook_configs", "url"),
    // Slack's incoming-webhook URL is the credential.
    ("slack_configs", "api_url"),
    // A heartbeat URL (healthchecks.io and the like) embeds the check's secret id.
    ("heartbeat_configs", "url"),
    // `tls_config.key` is the private key itself (`key_file` is its path).
    ("tls_config", "key"),
];

/// The config text with its secrets hidden. A text that does not parse (it was validated when
/// loaded, so this should not happen) is not returned at all rather than risk showing a secret.
pub fn redact_yaml(text: &str) -> String {
    if text.trim().is_empty() {
        return String::new();
    }
    let mut v: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return format!(
                "# configuration hidden: it could not be re-read to hide its secrets ({e})\n"
            )
        }
    };
    redact(&mut v, "");
    serde_norway::to_string(&v).unwrap_or_else(|e| {
        format!("# configuration hidden: it could not be written with its secrets hidden ({e})\n")
    })
}

fn is_secret(section: &str, key: &str) -> bool {
    SECRET_KEYS.contains(&key) || SECRET_IN.contains(&(section, key))
}

/// `section` is the key of the closest mapping entry above (list items inherit their list's).
fn redact(v: &mut Value, section: &str) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let key = k.as_str().unwrap_or_default();
                if is_secret(section, key) {
                    hide(val);
                } else if key == "url" || key.ends_with("_url") {
                    if let Value::String(s) = val {
                        *s = hide_url_password(s);
                    }
                } else {
                    redact(val, key);
                }
            }
        }
        Value::Sequence(s) => {
            for x in s {
                redact(x, section);
            }
        }
        Value::Tagged(t) => redact(&mut t.value, section),
        _ => {}
    }
}

/// Replaces every leaf value under a secret key, keeping the shape (a list of header values stays
/// a list) so the output still reads as valid configuration.
fn hide(v: &mut Value) {
    match v {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::Mapping(m) => {
            for (_, x) in m.iter_mut() {
                hide(x);
            }
        }
        Value::Sequence(s) => {
            for x in s {
                hide(x);
            }
        }
        Value::Tagged(t) => hide(&mut t.value),
        other => *other = Value::String(SECRET.into()),
    }
}

/// `https://user:pw@host/x` -> `https://user:<secret>@host/x`; other text unchanged.
fn hide_url_password(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_string();
    };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return s.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return s.to_string();
    };
    format!(
        "{}{}:{SECRET}{}",
        &s[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRETS: &[&str] = &[
        "basic-pw-1",
        "bearer-tok-2",
        "authz-cred-3",
        "oauth-secret-4",
        "webhook-token-5",
        "slack-hook-6",
        "pd-routing-7",
        "alerta-key-8",
        "smtp-pw-9",
        "opsgenie-10",
        "url-pw-11",
        "header-secret-12",
        "tls-key-13",
        "discord-14",
        "pushover-15",
        "sigv4-16",
        "hb-17",
        "tg-bot-18",
        "teams-19",
        "mail-pw-20",
        "og-key-21",
        "pd-service-22",
        "discord-global-23",
        "slack-app-24",
    ];

    const CONFIG: &str = r##"
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: a
    basic_auth: {username: u, password: basic-pw-1, password_file: /etc/pw}
    bearer_token: bearer-tok-2
    static_configs: [{targets: ["127.0.0.1:1"]}]
  - job_name: b
    authorization: {type: Bearer, credentials: authz-cred-3}
    oauth2: {client_id: id, client_secret: oauth-secret-4, token_url: "https://t/x"}
    tls_config: {key: tls-key-13, cert_file: /c}
    http_headers:
      X-Api: {values: [visible], secrets: [header-secret-12]}
remote_write:
  - url: https://writer:url-pw-11@example.com/api/v1/write
    sigv4: {region: r, access_key: ak, secret_key: sigv4-16}
alertmanager:
  global:
    smtp_auth_password: smtp-pw-9
    opsgenie_api_key: opsgenie-10
    discord_webhook_url: "https://discord.com/api/webhooks/discord-global-23"
  route: {receiver: all}
  receivers:
    - name: all
      webhook_configs: [{url: "https://hooks.example.com/x?token=webhook-token-5"}]
      slack_configs: [{api_url: "https://hooks.slack.com/services/slack-hook-6", channel: "#c"}]
      pagerduty_configs: [{routing_key: pd-routing-7, url: "https://events.pagerduty.com/v2/enqueue"}]
      alerta_configs: [{url: "http://alerta.example.com/api", api_key: alerta-key-8}]
      discord_configs: [{webhook_url: "https://discord.com/api/webhooks/discord-14"}]
      pushover_configs: [{user_key: u, token: pushover-15}]
      heartbeat_configs: [{url: "https://hc-ping.com/hb-17"}]
    - name: more
      telegram_configs: [{bot_token: tg-bot-18, chat_id: 1}]
      msteams_configs: [{webhook_url: "https://x.webhook.office.com/teams-19"}]
      msteamsv2_configs: [{webhook_url: "https://x.logic.azure.com/teams-19"}]
      email_configs: [{to: a@b, auth_password: mail-pw-20}]
      opsgenie_configs: [{api_key: og-key-21}]
      pagerduty_configs: [{service_key: pd-service-22}]
      slack_configs: [{app_token: slack-app-24}]
"##;

    #[test]
    fn status_config_showed_every_kind_of_secret_in_clear() {
        let out = redact_yaml(CONFIG);
        for s in SECRETS {
            assert!(!out.contains(s), "{s} leaked:\n{out}");
        }
        // What is not a secret stays readable.
        for keep in [
            "/etc/pw",
            "visible",
            "https://events.pagerduty.com/v2/enqueue",
            "http://alerta.example.com/api",
            "https://writer:<secret>@example.com/api/v1/write",
            "client_id: id",
            "access_key: ak",
            "#c",
        ] {
            assert!(out.contains(keep), "{keep} missing:\n{out}");
        }
        assert!(out.matches(SECRET).count() >= SECRETS.len(), "{out}");
        // The result is still valid YAML of the same shape.
        let v: Value = serde_norway::from_str(&out).unwrap();
        assert_eq!(
            v["scrape_configs"][1]["http_headers"]["X-Api"]["secrets"][0],
            Value::String(SECRET.into())
        );
    }

    #[test]
    fn url_password_is_hidden_and_the_rest_kept() {
        assert_eq!(
            hide_url_password("http://a:b@h:1/p?q"),
            "http://a:<secret>@h:1/p?q"
        );
        assert_eq!(hide_url_password("http://a@h/p"), "http://a@h/p");
        assert_eq!(
            hide_url_password("http://h/p?x=a:b@c"),
            "http://h/p?x=a:b@c"
        );
        assert_eq!(hide_url_password("not a url"), "not a url");
    }

    #[test]
    fn empty_and_unparsable_text_show_no_secret() {
        assert_eq!(redact_yaml(""), "");
        let out = redact_yaml("password: [unclosed secret-x");
        assert!(!out.contains("secret-x") && out.starts_with('#'), "{out}");
    }
}
