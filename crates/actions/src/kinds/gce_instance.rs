//! The `gce_instance` action: Compute Engine v1 `instances.delete`, `reset` or `stop` on the
//! instance named by templates over the alert's labels, with a deterministic `requestId`, the
//! returned operation polled until `DONE`. Credentials and the REST calls are the `gcp`
//! crate's.

use std::path::Path;

use serde::Deserialize;

use super::{Attempt, BoxFuture, ExecCx, Kind, Prepared};
use crate::error::{Error, Result};
use crate::template::RenderCx;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GceInstanceConfig {
    /// `delete`, `reset` or `stop`.
    pub operation: String,
    /// Templates; defaults `{{ $labels.project_id }}`, `{{ $labels.zone }}`,
    /// `{{ $labels.instance_name }}`.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
    /// Google credentials and API base URLs (the `gcp` crate's settings).
    #[serde(default)]
    pub google: tocsin_gcp::GoogleConfig,
}

pub struct GceInstanceKind {}

impl GceInstanceKind {
    pub fn new(cfg: &GceInstanceConfig, _base_dir: &Path, what: &str) -> Result<GceInstanceKind> {
        let _ = cfg;
        Err(Error::Config(format!("{what}: not implemented yet")))
    }
}

impl Kind for GceInstanceKind {
    fn kind(&self) -> &'static str {
        "gce_instance"
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn prepare(&self, _cx: &RenderCx<'_>) -> Result<Prepared> {
        Err(Error::Internal("gce_instance: not implemented yet".into()))
    }

    fn execute<'a>(&'a self, _p: &'a Prepared, _cx: &'a ExecCx) -> BoxFuture<'a, Attempt> {
        Box::pin(async {
            Attempt::Failed {
                retryable: false,
                status: None,
                message: "gce_instance: not implemented yet".into(),
                retry_after: None,
            }
        })
    }
}
