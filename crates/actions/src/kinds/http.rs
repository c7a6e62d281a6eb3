//! The `http` action: a templated request (method, URL, headers, body) sent with prometheus.yml
//! `http_config` auth and TLS; success is one of `success_codes`, and an optional
//! `already_done` rule (status plus body match) counts as done.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tocsin_httpclient::HttpClientConfig;

use super::{Attempt, BoxFuture, ExecCx, Kind, Prepared};
use crate::error::{Error, Result};
use crate::template::RenderCx;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpActionConfig {
    /// Default `POST`.
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub http_config: Option<HttpClientConfig>,
    /// Statuses that mean success; default any 2xx.
    #[serde(default)]
    pub success_codes: Vec<u16>,
    #[serde(default)]
    pub already_done: Option<AlreadyDone>,
    /// The endpoint can take the same request twice, so an execution a crash interrupted is
    /// sent again at start-up.
    #[serde(default)]
    pub idempotent: bool,
}

/// An answer that says the work was already done, e.g. `{status: 404, body: "no such VM"}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlreadyDone {
    pub status: u16,
    /// A regular expression the body must contain a match of; empty: any body.
    #[serde(default)]
    pub body: String,
}

pub struct HttpKind {
    idempotent: bool,
}

impl HttpKind {
    pub fn new(cfg: &HttpActionConfig, _base_dir: &Path, what: &str) -> Result<HttpKind> {
        let _ = cfg;
        Err(Error::Config(format!("{what}: not implemented yet")))
    }
}

impl Kind for HttpKind {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn prepare(&self, _cx: &RenderCx<'_>) -> Result<Prepared> {
        Err(Error::Internal("http: not implemented yet".into()))
    }

    fn execute<'a>(&'a self, _p: &'a Prepared, _cx: &'a ExecCx) -> BoxFuture<'a, Attempt> {
        Box::pin(async {
            Attempt::Failed {
                retryable: false,
                status: None,
                message: "http: not implemented yet".into(),
                retry_after: None,
            }
        })
    }
}
