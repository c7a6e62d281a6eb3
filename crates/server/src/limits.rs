//! The `limits:` section (sizes of what clients may send: labels of a series, a silence) and the
//! `web:` section (HTTP connections: how many, how long a client may take to send its headers or
//! keep an idle connection, how large the headers and the bodies of each request class may be,
//! which `Host` names are served), resolved into the settings the API, the request guard, the
//! storage guard and the accept loop take, and the guarded store every writer is given. Defaults
//! are generous enough for normal users.

use std::time::Duration;

use serde::Deserialize;
use tocsin_api::am::SilenceLimits;
use tocsin_api::guard::{BodyLimits, GuardSettings, Origin};
use tocsin_storage::IngestLimits;

use crate::config::{Error, Problems};

/// The store as every writer sees it: the ingest limits (`storage.max_future`, `limits:`) in
/// front of it, so no write path can store what another would refuse.
pub struct GuardedAppendable<A> {
    pub inner: A,
    pub limits: IngestLimits,
}

impl<A: tocsin_storage::Appendable> tocsin_storage::Appendable for GuardedAppendable<A> {
    fn appender(&self) -> Box<dyn tocsin_storage::Appender + '_> {
        Box::new(tocsin_storage::Guarded::new(
            self.inner.appender(),
            self.limits,
            tocsin_model::Clock::now_ms(&tocsin_model::SystemClock),
        ))
    }
}

/// `limits:`; `0` turns a limit off.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_labels_per_series: usize,
    /// Bytes.
    pub max_label_name_length: usize,
    /// Bytes.
    pub max_label_value_length: usize,
    pub max_silence_matchers: usize,
    /// Bytes.
    pub max_silence_comment_length: usize,
    /// Size of one silence's JSON body, e.g. `256KB`.
    pub max_silence_body_size: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let i = IngestLimits::default();
        let s = SilenceLimits::default();
        Self {
            max_labels_per_series: i.max_labels_per_series,
            max_label_name_length: i.max_label_name_length,
            max_label_value_length: i.max_label_value_length,
            max_silence_matchers: s.max_matchers,
            max_silence_comment_length: s.max_comment_length,
            max_silence_body_size: "256KB".into(),
        }
    }
}

impl LimitsConfig {
    /// The ingest limits, with `storage.max_future` (already in milliseconds).
    pub fn ingest(&self, max_future_ms: i64) -> IngestLimits {
        IngestLimits {
            max_future_ms,
            retention_ms: 0,
            max_labels_per_series: self.max_labels_per_series,
            max_label_name_length: self.max_label_name_length,
            max_label_value_length: self.max_label_value_length,
        }
    }

    pub fn silences(&self, file: &str) -> Result<SilenceLimits, Error> {
        let mut p = Problems::new();
        let l = self.silences_checked(&mut p);
        match p.into_iter().next() {
            None => Ok(l),
            Some((field, message)) => Err(Error::Invalid {
                file: file.to_string(),
                field,
                message,
            }),
        }
    }

    /// The silence limits, with a bad field pushed to `p`.
    pub fn silences_checked(&self, p: &mut Problems) -> SilenceLimits {
        let body = tocsin_model::duration::parse_size(&self.max_silence_body_size).unwrap_or_else(
            |message| {
                p.push(("limits.max_silence_body_size".into(), message));
                256 << 10
            },
        );
        SilenceLimits {
            max_matchers: self.max_silence_matchers,
            max_comment_length: self.max_silence_comment_length,
            max_body_bytes: usize::try_from(body).unwrap_or(usize::MAX),
        }
    }
}

/// `web:`: the HTTP listener.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Most connections open at once (Prometheus's `--web.max-connections`); more are closed
    /// as soon as they are accepted and counted.
    pub max_connections: usize,
    /// Time a client has to send a request's headers. An idle keep-alive connection waits for
    /// the next request's headers, so it is closed after this too.
    pub header_read_timeout: String,
    /// Largest request line plus headers, e.g. `64KB`; more is answered 431.
    pub max_header_size: String,
    /// Largest request body per access class; more is answered 413.
    pub max_body_size: BodySizeConfig,
    /// Host names (without port) clients may address this server by; a request naming another
    /// in `Host` is refused 403, against DNS rebinding. Empty: any.
    pub allowed_hosts: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: "30s".into(),
            max_header_size: "64KB".into(),
            max_body_size: BodySizeConfig::default(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// `web.max_body_size`: sizes such as `64MB`, per access class (see `tocsin_api::class`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BodySizeConfig {
    /// Queries and other reads (POST forms to the query endpoints).
    pub read: String,
    /// Ingest: remote write, line protocol, JSON push. Measured as sent, compressed.
    pub write: String,
    /// Alerts, silences, heartbeats.
    pub alert: String,
    /// Delete series, snapshots, reload, quit.
    pub admin: String,
}

impl Default for BodySizeConfig {
    fn default() -> Self {
        let d = BodyLimits::default();
        let mb = |n: u64| format!("{}MB", n >> 20);
        Self {
            read: mb(d.read),
            write: mb(d.write),
            alert: mb(d.alert),
            admin: mb(d.admin),
        }
    }
}

/// The `web:` section resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub body: BodyLimits,
    /// Lowercase, without brackets around IPv6 addresses.
    pub allowed_hosts: Vec<String>,
}

impl WebSettings {
    /// The request guard's settings; `external_url` (`--web.external-url`) is an origin of this
    /// server's own besides the one each request's `Host` names.
    pub fn guards(&self, external_url: Option<&str>) -> Result<GuardSettings, String> {
        let mut own_origins = Vec::new();
        if let Some(u) = external_url {
            let o = Origin::of_url(u).ok_or_else(|| {
                format!("--web.external-url {u:?} is not an absolute URL with a host")
            })?;
            let bare = o.host.trim_start_matches('[').trim_end_matches(']');
            if !self.allowed_hosts.is_empty() && !self.allowed_hosts.iter().any(|h| h == bare) {
                // Not an error: behind a proxy that rewrites Host the public name never arrives.
                tracing::warn!(
                    host = bare,
                    "the --web.external-url host is not in web.allowed_hosts: requests naming it \
                     in Host will be refused"
                );
            }
            own_origins.push(o);
        }
        Ok(GuardSettings {
            body: self.body,
            allowed_hosts: self.allowed_hosts.clone(),
            own_origins,
            refused: Default::default(),
        })
    }
}

/// Below this, ordinary requests (cookies, long query strings) would be refused.
const MIN_HEADER_BYTES: u64 = 8192;

impl WebConfig {
    pub fn settings(&self, file: &str) -> Result<WebSettings, Error> {
        let mut p = Problems::new();
        let w = self.settings_checked(&mut p);
        match p.into_iter().next() {
            None => Ok(w),
            Some((field, message)) => Err(Error::Invalid {
                file: file.to_string(),
                field,
                message,
            }),
        }
    }

    /// The settings, with every bad field pushed to `p` (and its default used in its place).
    pub fn settings_checked(&self, p: &mut Problems) -> WebSettings {
        let mut bad =
            |field: &str, message: &str| p.push((format!("web.{field}"), message.to_string()));
        if self.max_connections == 0 {
            bad("max_connections", "must be at least 1");
        }
        let t = match tocsin_model::duration::parse_duration_ms(&self.header_read_timeout) {
            Ok(t) if t <= 0 => {
                bad("header_read_timeout", "must be positive");
                30_000
            }
            Ok(t) => t,
            Err(e) => {
                bad("header_read_timeout", &e);
                30_000
            }
        };
        let h = match tocsin_model::duration::parse_size(&self.max_header_size) {
            Ok(h) if h < MIN_HEADER_BYTES => {
                bad("max_header_size", "must be at least 8KB");
                MIN_HEADER_BYTES
            }
            Ok(h) => h,
            Err(e) => {
                bad("max_header_size", &e);
                64 << 10
            }
        };
        let d = BodyLimits::default();
        let mut size = |field: &str, text: &str, default: u64| -> u64 {
            match tocsin_model::duration::parse_size(text) {
                Ok(0) => {
                    bad(&format!("max_body_size.{field}"), "must be more than 0");
                    default
                }
                Ok(n) => n,
                Err(e) => {
                    bad(&format!("max_body_size.{field}"), &e);
                    default
                }
            }
        };
        let b = &self.max_body_size;
        let body = BodyLimits {
            read: size("read", &b.read, d.read),
            write: size("write", &b.write, d.write),
            alert: size("alert", &b.alert, d.alert),
            admin: size("admin", &b.admin, d.admin),
        };
        let mut allowed_hosts = Vec::new();
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            let name = h.trim().trim_start_matches('[').trim_end_matches(']');
            if name.is_empty() || name.contains(['/', ' ']) || name.contains("://") {
                bad(
                    &format!("allowed_hosts[{i}]"),
                    &format!("{h:?} is not a host name (give names without scheme or port)"),
                );
                continue;
            }
            if name.contains(':') && !name.contains("::") && name.matches(':').count() == 1 {
                bad(
                    &format!("allowed_hosts[{i}]"),
                    &format!("{h:?}: give the host name without the port"),
                );
                continue;
            }
            allowed_hosts.push(name.trim_end_matches('.').to_ascii_lowercase());
        }
        WebSettings {
            max_connections: self.max_connections.max(1),
            header_read_timeout: Duration::from_millis(t as u64),
            max_header_bytes: usize::try_from(h).unwrap_or(usize::MAX),
            body,
            allowed_hosts,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::Config;

    #[test]
    fn limits_and_web_defaults_and_checks() {
        let c = Config::load_default().unwrap();
        let w = c.web.settings("x").unwrap();
        assert_eq!(w.max_connections, 512);
        assert_eq!(w.header_read_timeout.as_secs(), 30);
        assert_eq!(w.max_header_bytes, 64 << 10);
        assert_eq!(w.body.write, 64 << 20);
        assert_eq!(w.body.read, 8 << 20);
        assert!(w.allowed_hosts.is_empty());
        let i = c.limits.ingest(c.storage.max_future_ms("x").unwrap());
        assert_eq!(i.max_future_ms, 600_000);
        assert_eq!(i.max_labels_per_series, 64);
        assert_eq!(c.limits.silences("x").unwrap().max_body_bytes, 256 << 10);

        let c = Config::parse(
            "storage:\n  max_future: 1h\nlimits:\n  max_labels_per_series: 10\n  max_silence_body_size: 1MB\nweb:\n  max_connections: 3\n  header_read_timeout: 2s\n",
            "l.yml",
        )
        .unwrap();
        assert_eq!(c.storage.max_future_ms("l.yml").unwrap(), 3_600_000);
        assert_eq!(c.limits.ingest(0).max_labels_per_series, 10);
        assert_eq!(c.web.settings("l.yml").unwrap().max_connections, 3);
        let c = Config::parse(
            "web:\n  max_body_size:\n    alert: 16KB\n  allowed_hosts: [Tocsin.Example.com, \"[::1]\"]\n",
            "l.yml",
        )
        .unwrap();
        let w = c.web.settings("l.yml").unwrap();
        assert_eq!(w.body.alert, 16 << 10);
        assert_eq!(w.body.write, 64 << 20);
        assert_eq!(w.allowed_hosts, ["tocsin.example.com", "::1"]);
        let g = w.guards(Some("https://tocsin.example.com/p")).unwrap();
        assert_eq!(g.own_origins[0].port, 443);
        assert!(w.guards(Some("tocsin:9090")).is_err());

        for (text, field) in [
            ("web:\n  max_connections: 0\n", "web.max_connections"),
            (
                "web:\n  header_read_timeout: soon\n",
                "web.header_read_timeout",
            ),
            ("web:\n  max_header_size: 1KB\n", "web.max_header_size"),
            (
                "web:\n  max_body_size:\n    write: lots\n",
                "web.max_body_size.write",
            ),
            (
                "web:\n  max_body_size:\n    read: 0\n",
                "web.max_body_size.read",
            ),
            (
                "web:\n  allowed_hosts: [\"http://x\"]\n",
                "web.allowed_hosts[0]",
            ),
            (
                "web:\n  allowed_hosts: [ok, \"x.example:9090\"]\n",
                "web.allowed_hosts[1]",
            ),
            (
                "limits:\n  max_silence_body_size: big\n",
                "limits.max_silence_body_size",
            ),
            ("storage:\n  max_future: -1m\n", "storage.max_future"),
        ] {
            let e = Config::parse(text, "l.yml").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("l.yml"), "{text}: {e}");
        }
        let e = Config::parse("limits:\n  bogus: 1\n", "l.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
