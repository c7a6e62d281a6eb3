//! The web configuration file (`--web.config.file`): Prometheus's format (`tls_server_config`,
//! `http_server_config`, `basic_auth_users`) plus Tocsin's additions (`basic_auth_roles`,
//! `bearer_tokens`, `allow`), read with positions so every problem is reported as
//! `file:line:col: field: message`, and resolved into [`WebConfig`]: files named in it are read
//! here (token files) or checked (certificates, by building the TLS settings), so a file that
//! loads is one the server can run with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use tocsin_api::class::Class;
use tocsin_confdiag::{did_you_mean, Diagnostic, Diagnostics, Doc};

/// `tls_server_config`, with Go's names and values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsFile {
    pub cert_file: String,
    pub key_file: String,
    pub client_auth_type: String,
    pub client_ca_file: String,
    pub min_version: String,
    pub max_version: String,
    pub cipher_suites: Vec<String>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Vec<String>,
    // Refused with a message when set (see `check_tls`).
    pub cert: Option<serde_norway::Value>,
    pub key: Option<serde_norway::Value>,
    pub client_ca: Option<serde_norway::Value>,
    pub client_allowed_sans: Option<serde_norway::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFile {
    pub http2: Option<bool>,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// A name for logs (defaults to the file name).
    #[serde(default)]
    pub name: String,
    pub token_file: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowFile {
    pub networks: Vec<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebFile {
    pub tls_server_config: Option<TlsFile>,
    pub http_server_config: Option<HttpFile>,
    pub basic_auth_users: BTreeMap<String, String>,
    pub rate_limit: Option<serde_norway::Value>,
    // Tocsin's additions.
    pub basic_auth_roles: BTreeMap<String, Vec<String>>,
    pub bearer_tokens: Vec<TokenFile>,
    pub allow: Vec<AllowFile>,
}

/// A set of roles (classes a caller may use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles(pub BTreeSet<Class>);

impl Roles {
    pub fn all() -> Roles {
        Roles(
            Class::ROLES
                .iter()
                .filter_map(|r| Class::parse(r))
                .collect(),
        )
    }

    pub fn allows(&self, c: Class) -> bool {
        c == Class::Public || self.0.contains(&c)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub hash: String,
    pub roles: Roles,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub secret: String,
    pub roles: Roles,
}

#[derive(Debug, Clone)]
pub struct AllowNet {
    pub nets: Vec<IpNet>,
    pub roles: Roles,
}

/// Resolved TLS settings; the certificates themselves are read when the rustls config is built.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    /// Allowed versions, by Go's name (`TLS12`, `TLS13`).
    pub tls12: bool,
    pub tls13: bool,
    /// Go names of the TLS 1.2 suites; empty = rustls's defaults.
    pub cipher_suites: Vec<String>,
    pub prefer_server_cipher_suites: bool,
    /// Go names of the key-exchange groups; empty = rustls's defaults.
    pub curves: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: [&'static str; 5] = [
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ];

    fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// The headers Prometheus lets a web config set on every response.
pub const ALLOWED_HEADERS: [&str; 5] = [
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

/// A loaded, checked web configuration.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsSettings>,
    pub headers: Vec<(String, String)>,
    pub users: BTreeMap<String, User>,
    pub tokens: Vec<Token>,
    pub allow: Vec<AllowNet>,
    /// Files whose change means a reload (token files, certificates, the client CA).
    pub watched: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

impl WebConfig {
    /// True when requests must be authenticated (some credential or network is configured);
    /// a file with only TLS or headers leaves access open, as in Prometheus.
    pub fn auth_enabled(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty() || !self.allow.is_empty()
    }

    /// The roles of a source address without credentials, if it is in an `allow` network.
    pub fn network_roles(&self, ip: IpAddr) -> Option<&Roles> {
        let ip = ip.to_canonical();
        self.allow
            .iter()
            .find(|a| a.nets.iter().any(|n| n.contains(&ip)))
            .map(|a| &a.roles)
    }

    /// Reads and checks `path`; relative paths in it resolve against its directory.
    pub fn load(path: &Path) -> Result<WebConfig, Diagnostics> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic::new(
                &file,
                None,
                "",
                format!("cannot read the web config file: {e}"),
            )])
        })?;
        let base = crate::config_dir(Some(path));
        let cfg = Self::parse(&text, &file, &base)?;
        // The rustls config is built once here so a bad certificate is a load error with its
        // field, not a handshake failure later.
        if let Some(t) = &cfg.tls {
            if let Err((field, m)) = super::tls::server_config(t) {
                let doc = Doc::parse(&text, &file)?;
                return Err(Diagnostics(vec![doc.at(&field, m)]));
            }
        }
        Ok(cfg)
    }

    /// Parses and checks text (files it names are read, relative to `base`).
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<WebConfig, Diagnostics> {
        let mut doc = Doc::parse(text, file)?;
        let mut errs = Vec::new();
        let raw: WebFile = doc.take("", &mut errs).unwrap_or_default();
        let mut cfg = WebConfig::default();
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if raw.rate_limit.is_some() {
            errs.push(doc.at_key("rate_limit", "not implemented; remove it"));
        }
        if let Some(t) = &raw.tls_server_config {
            cfg.tls = check_tls(t, &doc, &mut errs, &resolve);
            if let Some(t) = &cfg.tls {
                cfg.watched.push(t.cert_file.clone());
                cfg.watched.push(t.key_file.clone());
                cfg.watched.extend(t.client_ca_file.clone());
            }
        }
        if let Some(h) = &raw.http_server_config {
            check_http(h, &doc, &mut errs, &mut cfg);
        }
        for (name, hash) in &raw.basic_auth_users {
            let path = format!("basic_auth_users.{name}");
            if name.contains(':') {
                errs.push(doc.at_key(&path, "a user name cannot contain ':'"));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                errs.push(doc.at(
                    &path,
                    "not a bcrypt hash (expected $2a$, $2b$ or $2y$, cost and 53 characters)",
                ));
                continue;
            }
            let roles = match raw.basic_auth_roles.get(name) {
                None => Roles::all(),
                Some(r) => roles(r, &format!("basic_auth_roles.{name}"), &doc, &mut errs),
            };
            cfg.users.insert(
                name.clone(),
                User {
                    hash: hash.clone(),
                    roles,
                },
            );
        }
        for name in raw.basic_auth_roles.keys() {
            if !raw.basic_auth_users.contains_key(name) {
                errs.push(doc.at_key(
                    &format!("basic_auth_roles.{name}"),
                    format!("no user {name:?} in basic_auth_users"),
                ));
            }
        }
        for (i, t) in raw.bearer_tokens.iter().enumerate() {
            let path = format!("bearer_tokens[{i}]");
            let roles = roles(&t.roles, &format!("{path}.roles"), &doc, &mut errs);
            let f = resolve(&t.token_file);
            match std::fs::read_to_string(&f) {
                Err(e) => errs.push(doc.at(
                    &format!("{path}.token_file"),
                    format!("cannot read {}: {e}", f.display()),
                )),
                Ok(s) if s.trim().is_empty() => errs.push(doc.at(
                    &format!("{path}.token_file"),
                    format!("{} is empty", f.display()),
                )),
                Ok(s) => cfg.tokens.push(Token {
                    name: if t.name.is_empty() {
                        t.token_file.clone()
                    } else {
                        t.name.clone()
                    },
                    secret: s.trim().to_string(),
                    roles,
                }),
            }
            cfg.watched.push(f);
        }
        for (i, a) in raw.allow.iter().enumerate() {
            let path = format!("allow[{i}]");
            let roles = roles(&a.roles, &format!("{path}.roles"), &doc, &mut errs);
            let mut nets = Vec::new();
            if a.networks.is_empty() {
                errs.push(doc.at(&format!("{path}.networks"), "lists no network"));
            }
            for (j, n) in a.networks.iter().enumerate() {
                match parse_net(n) {
                    Some(net) => nets.push(net),
                    None => errs.push(doc.at(
                        &format!("{path}.networks[{j}]"),
                        format!("{n:?} is not a network (CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an address)"),
                    )),
                }
            }
            cfg.allow.push(AllowNet { nets, roles });
        }
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(Diagnostics(errs).sorted())
        }
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

fn roles(names: &[String], path: &str, doc: &Doc, errs: &mut Vec<Diagnostic>) -> Roles {
    let mut out = Roles::default();
    if names.is_empty() {
        errs.push(doc.at(
            path,
            format!("lists no role (roles: {})", Class::ROLES.join(", ")),
        ));
    }
    for (i, n) in names.iter().enumerate() {
        match Class::parse(n) {
            Some(c) => {
                out.0.insert(c);
            }
            None => {
                let hint = did_you_mean(n, &Class::ROLES)
                    .map(|s| format!("; did you mean {s:?}?"))
                    .unwrap_or_default();
                errs.push(doc.at(
                    &format!("{path}[{i}]"),
                    format!(
                        "unknown role {n:?} (roles: {}){hint}",
                        Class::ROLES.join(", ")
                    ),
                ));
            }
        }
    }
    out
}

fn check_http(h: &HttpFile, doc: &Doc, errs: &mut Vec<Diagnostic>, cfg: &mut WebConfig) {
    if h.http2 != Some(false) {
        cfg.warnings.push(
            "http_server_config.http2: Tocsin serves HTTP/1.1 only; HTTP/2 clients fall back to \
             HTTP/1.1 (TLS offers only http/1.1 in ALPN). Set http2: false to silence this."
                .into(),
        );
    }
    for (name, value) in &h.headers {
        let path = format!("http_server_config.headers.{name}");
        let Some(canon) = ALLOWED_HEADERS
            .iter()
            .find(|a| a.eq_ignore_ascii_case(name))
        else {
            errs.push(doc.at_key(
                &path,
                format!(
                    "header {name:?} cannot be set (allowed: {})",
                    ALLOWED_HEADERS.join(", ")
                ),
            ));
            continue;
        };
        let bad = match *canon {
            "X-Content-Type-Options" => !value.eq_ignore_ascii_case("nosniff"),
            "X-Frame-Options" => {
                !(value.eq_ignore_ascii_case("deny") || value.eq_ignore_ascii_case("sameorigin"))
            }
            _ => false,
        };
        if bad {
            errs.push(doc.at(
                &path,
                format!("invalid value {value:?} for {canon} (X-Content-Type-Options: nosniff; X-Frame-Options: deny or sameorigin)"),
            ));
        } else if axum::http::HeaderValue::from_str(value).is_err() {
            errs.push(doc.at(&path, "not a valid header value"));
        } else {
            cfg.headers.push((canon.to_string(), value.clone()));
        }
    }
}

fn check_tls(
    t: &TlsFile,
    doc: &Doc,
    errs: &mut Vec<Diagnostic>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<TlsSettings> {
    let p = |f: &str| format!("tls_server_config.{f}");
    let n0 = errs.len();
    for (f, set) in [
        ("cert", t.cert.is_some()),
        ("key", t.key.is_some()),
        ("client_ca", t.client_ca.is_some()),
    ] {
        if set {
            errs.push(doc.at_key(
                &p(f),
                format!("inline PEM is not implemented; put it in a file and use {f}_file"),
            ));
        }
    }
    if t.client_allowed_sans.is_some() {
        errs.push(doc.at_key(
            &p("client_allowed_sans"),
            "not implemented; remove it (client certificates are checked against client_ca_file only)",
        ));
    }
    let mut s = TlsSettings {
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        ..Default::default()
    };
    if t.cert_file.is_empty() && t.key_file.is_empty() {
        // Prometheus serves plain HTTP when no certificate is given.
        if !t.client_ca_file.is_empty() || !t.client_auth_type.is_empty() {
            errs.push(doc.at(
                "tls_server_config",
                "client_auth_type and client_ca_file need cert_file and key_file",
            ));
        }
        return None;
    }
    if t.cert_file.is_empty() {
        errs.push(doc.at_key("tls_server_config", "missing cert_file"));
    }
    if t.key_file.is_empty() {
        errs.push(doc.at_key("tls_server_config", "missing key_file"));
    }
    s.cert_file = resolve(&t.cert_file);
    s.key_file = resolve(&t.key_file);
    match ClientAuth::parse(&t.client_auth_type) {
        Some(a) => s.client_auth = a,
        None => errs.push(doc.at(
            &p("client_auth_type"),
            format!(
                "invalid client_auth_type {:?} (one of {})",
                t.client_auth_type,
                ClientAuth::NAMES.join(", ")
            ),
        )),
    }
    if !t.client_ca_file.is_empty() {
        s.client_ca_file = Some(resolve(&t.client_ca_file));
        if s.client_auth == ClientAuth::NoClientCert {
            errs.push(doc.at(
                &p("client_ca_file"),
                "client_ca_file is set but client_auth_type is NoClientCert; set client_auth_type (e.g. RequireAndVerifyClientCert)",
            ));
        }
    } else if s.client_auth.verifies() {
        errs.push(doc.at(
            &p("client_auth_type"),
            format!("{:?} needs client_ca_file", s.client_auth),
        ));
    }
    let mut version = |field: &str, v: &str, default: u8| -> Option<u8> {
        let m = match v {
            "" => return Some(default),
            "TLS12" => return Some(12),
            "TLS13" => return Some(13),
            "TLS10" | "TLS11" => format!(
                "{v} is not supported (rustls implements TLS 1.2 and 1.3 only); use TLS12 or TLS13"
            ),
            _ => format!("unknown TLS version {v:?} (TLS12 or TLS13)"),
        };
        errs.push(doc.at(&p(field), m));
        None
    };
    let min = version("min_version", &t.min_version, 12);
    let max = version("max_version", &t.max_version, 13);
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            errs.push(doc.at(&p("max_version"), "max_version is below min_version"));
        }
        s.tls12 = min <= 12 && max >= 12;
        s.tls13 = max >= 13;
        if !t.cipher_suites.is_empty() && !s.tls12 {
            errs.push(doc.at(
                &p("cipher_suites"),
                "cipher_suites apply to TLS 1.2 only, which min_version excludes",
            ));
        }
    }
    for (i, c) in t.cipher_suites.iter().enumerate() {
        if super::tls::cipher_suite(c).is_none() {
            errs.push(doc.at(
                &format!("{}[{i}]", p("cipher_suites")),
                format!(
                    "cipher suite {c:?} is not available (rustls has: {})",
                    super::tls::CIPHER_NAMES.join(", ")
                ),
            ));
        }
    }
    s.cipher_suites = t.cipher_suites.clone();
    for (i, c) in t.curve_preferences.iter().enumerate() {
        if super::tls::curve(c).is_none() {
            errs.push(doc.at(
                &format!("{}[{i}]", p("curve_preferences")),
                format!(
                    "curve {c:?} is not available (rustls has: {})",
                    super::tls::CURVE_NAMES.join(", ")
                ),
            ));
        }
    }
    s.curves = t.curve_preferences.clone();
    (errs.len() == n0).then_some(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.token"), "tok\n").unwrap();
        WebConfig::parse(text, "web.yml", dir.path()).map_err(|e| e.to_string())
    }

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    #[test]
    fn prometheus_file_unchanged_gives_users_every_role() {
        let c = parse(&format!(
            "basic_auth_users:\n  alice: {HASH}\nhttp_server_config:\n  headers:\n    x-frame-options: SAMEORIGIN\n"
        ))
        .unwrap();
        assert!(c.auth_enabled());
        assert_eq!(c.users["alice"].roles, Roles::all());
        assert_eq!(
            c.headers,
            vec![("X-Frame-Options".to_string(), "SAMEORIGIN".to_string())]
        );
        // http2 left at Prometheus's default: accepted, with a word that we serve HTTP/1.1.
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn empty_file_and_tls_only_leave_access_open() {
        assert!(!parse("").unwrap().auth_enabled());
        // No certificate: Prometheus serves plain HTTP.
        assert!(parse("tls_server_config: {}\n").unwrap().tls.is_none());
    }

    #[test]
    fn tokens_networks_and_roles() {
        let c = parse(
            "bearer_tokens:\n  - token_file: t.token\n    roles: [write]\nallow:\n  - networks: [10.1.0.0/16, '2001:db8::/32', 192.168.1.7]\n    roles: [read, alert]\n",
        )
        .unwrap();
        assert_eq!(c.tokens[0].secret, "tok");
        assert_eq!(c.tokens[0].name, "t.token");
        let r = c.network_roles("10.1.2.3".parse().unwrap()).unwrap();
        assert!(r.allows(Class::Read) && r.allows(Class::Alert) && !r.allows(Class::Admin));
        assert!(c.network_roles("2001:db8::1".parse().unwrap()).is_some());
        assert!(c
            .network_roles("::ffff:10.1.0.9".parse().unwrap())
            .is_some());
        assert!(c.network_roles("192.168.1.7".parse().unwrap()).is_some());
        assert!(c.network_roles("192.168.1.8".parse().unwrap()).is_none());
    }

    #[test]
    fn tls_settings_refused_with_positions() {
        let e = parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n  curve_preferences: [CurveP521]\n  max_version: TLS12\n  min_version: TLS13\n",
        )
        .unwrap_err();
        assert!(e.contains("web.yml:4:21: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file"), "{e}");
        assert!(e.contains("web.yml:5:23: tls_server_config.curve_preferences[0]: curve \"CurveP521\" is not available"), "{e}");
        assert!(
            e.contains("tls_server_config.max_version: max_version is below min_version"),
            "{e}"
        );
        let e = parse("tls_server_config:\n  cert_file: a\n").unwrap_err();
        assert!(e.contains("missing key_file"), "{e}");
        let e = parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n")
            .unwrap_err();
        assert!(e.contains("client_auth_type is NoClientCert"), "{e}");
        let e = parse("rate_limit:\n  interval: 1s\n").unwrap_err();
        assert!(
            e.contains("web.yml:1:1: rate_limit: not implemented"),
            "{e}"
        );
    }

    #[test]
    fn roles_are_checked() {
        let e = parse(&format!(
            "basic_auth_users:\n  a: {HASH}\nbasic_auth_roles:\n  a: []\nallow:\n  - networks: [127.0.0.1]\n    roles: [admn]\n"
        ))
        .unwrap_err();
        assert!(e.contains("basic_auth_roles.a: lists no role"), "{e}");
        assert!(e.contains("did you mean \"admin\"?"), "{e}");
    }
}
