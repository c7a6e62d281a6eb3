//! One `remote_read:` entry in prometheus.yml's format, and its checks. Every key Prometheus
//! documents is read; anything else is refused, never ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::httpclient::HttpClientConfig;
use crate::scrape::config::Duration;

/// Keys of a `remote_read` entry, for the unknown-key message.
const FIELDS: &[&str] = &[
    "url",
    "name",
    "remote_timeout",
    "headers",
    "read_recent",
    "required_matchers",
    "filter_external_labels",
    "basic_auth",
    "authorization",
    "oauth2",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "http_headers",
];

/// Headers the client sets itself; Prometheus refuses them in `headers` too.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteReadConfig {
    pub url: String,
    /// Names the remote in metrics and messages; unique among `remote_read` entries. Defaults
    /// to a short hash of the URL, as Prometheus uses a hash of the entry.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_timeout")]
    pub remote_timeout: Duration,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Ask the remote also for time ranges the local storage holds (false: only for what is
    /// older than the oldest local sample).
    #[serde(default)]
    pub read_recent: bool,
    /// Label equality matchers a selector must carry for the remote to be asked.
    #[serde(default)]
    pub required_matchers: BTreeMap<String, String>,
    /// Send `global.external_labels` as equality matchers and strip them from the answers.
    #[serde(default = "yes")]
    pub filter_external_labels: bool,
    #[serde(flatten)]
    pub http: HttpClientConfig,
    #[serde(flatten, deserialize_with = "unknown")]
    pub unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

fn default_timeout() -> Duration {
    Duration(60_000)
}

fn yes() -> bool {
    true
}

/// `deny_unknown_fields` does not combine with `flatten`: leftovers land here and are refused.
fn unknown<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde::de::IgnoredAny>, D::Error> {
    let m = BTreeMap::<String, serde::de::IgnoredAny>::deserialize(d)?;
    if let Some(k) = m.keys().next() {
        let known = FIELDS.join("`, `");
        return Err(serde::de::Error::custom(format!(
            "unknown field `{k}` in remote_read, expected one of `{known}`"
        )));
    }
    Ok(m)
}

impl RemoteReadConfig {
    /// The name used in metrics and messages.
    pub fn effective_name(&self) -> String {
        match &self.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!(
                "{:06x}",
                xxhash_rust::xxh3::xxh3_64(self.url.as_bytes()) & 0xff_ffff
            ),
        }
    }

    /// Problems of this entry as (field relative to the entry, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => p.push((
                "url".into(),
                format!(
                    "{:?}: the scheme must be http or https with a host, not {:?}",
                    self.url,
                    u.scheme()
                ),
            )),
            Err(e) => p.push(("url".into(), format!("{:?}: {e}", self.url))),
        }
        if self.remote_timeout.0 <= 0 {
            p.push((
                "remote_timeout".into(),
                "the timeout must be positive".into(),
            ));
        }
        for k in self.headers.keys() {
            if RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                p.push((
                    format!("headers.{k}"),
                    format!("{k} is a reserved header; it cannot be set here"),
                ));
            } else if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                p.push((format!("headers.{k}"), "not a valid header name".into()));
            }
        }
        for (k, v) in &self.headers {
            if reqwest::header::HeaderValue::from_str(v).is_err() {
                p.push((format!("headers.{k}"), "not a valid header value".into()));
            }
        }
        for k in self.required_matchers.keys() {
            if let Err(e) = tocsin_model::labels::validate_label_name(k) {
                p.push((format!("required_matchers.{k}"), e.to_string()));
            }
        }
        if let Err(e) = self.http.validate() {
            p.push(match e {
                crate::httpclient::HttpConfigError::Invalid { field, message } => (field, message),
                other => (String::new(), other.to_string()),
            });
        }
        p
    }
}

/// The `remote_read:` list; an empty `remote_read:` (null) is no remote, as in Prometheus.
pub fn de_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RemoteReadConfig>, D::Error> {
    Option::<Vec<RemoteReadConfig>>::deserialize(d).map(Option::unwrap_or_default)
}

/// Problems of the whole section as (path such as `remote_read[1].url`, message): every entry's
/// own, and names used twice.
pub fn problems(cfgs: &[RemoteReadConfig]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, c) in cfgs.iter().enumerate() {
        for (f, m) in c.problems() {
            let path = if f.is_empty() {
                format!("remote_read[{i}]")
            } else {
                format!("remote_read[{i}].{f}")
            };
            out.push((path, m));
        }
        let name = c.effective_name();
        if let Some(j) = seen.insert(name.clone(), i) {
            let field = if c.name.is_some() { "name" } else { "url" };
            out.push((
                format!("remote_read[{i}].{field}"),
                format!("remote read name {name:?} is also used by remote_read[{j}]; names must be unique"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<Vec<RemoteReadConfig>, String> {
        serde_norway::from_str(y).map_err(|e| e.to_string())
    }

    #[test]
    fn prometheus_format_parses_with_defaults() {
        let c = parse(
            "- url: http://p:9090/api/v1/read\n  read_recent: true\n  required_matchers: {job: a}\n  headers: {X-Scope-OrgID: t1}\n  basic_auth: {username: u, password: p}\n  tls_config: {insecure_skip_verify: true}\n",
        )
        .unwrap();
        assert_eq!(c[0].remote_timeout, Duration(60_000));
        assert!(c[0].filter_external_labels);
        assert!(c[0].read_recent);
        assert_eq!(c[0].http.basic_auth.as_ref().unwrap().username, "u");
        assert!(problems(&c).is_empty(), "{:?}", problems(&c));
    }

    #[test]
    fn unknown_and_bad_settings_are_refused() {
        let e = parse("- url: http://p/\n  sigv4: {region: x}\n").unwrap_err();
        assert!(e.contains("unknown field `sigv4`"), "{e}");
        let c = parse(
            "- url: ftp://p/\n  remote_timeout: 0s\n  headers: {Authorization: x}\n  required_matchers: {'1a': b}\n- url: http://q/\n  name: a\n- url: http://r/\n  name: a\n",
        )
        .unwrap();
        let p = problems(&c);
        let paths: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "remote_read[0].url",
                "remote_read[0].remote_timeout",
                "remote_read[0].headers.Authorization",
                "remote_read[0].required_matchers.1a",
                "remote_read[2].name"
            ],
            "{p:?}"
        );
    }
}
