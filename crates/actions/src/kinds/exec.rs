//! The `exec` action: a command with templated arguments, the alert as JSON on stdin; success is
//! exit status 0; the timeout kills the whole process group.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Attempt, BoxFuture, ExecCx, Kind, Prepared};
use crate::error::{Error, Result};
use crate::template::RenderCx;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecActionConfig {
    /// The program: an absolute path, a path relative to the config file, or a name looked up
    /// in `PATH`. Templated.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (values templated).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory; default the config file's directory.
    #[serde(default)]
    pub dir: Option<String>,
    /// Running the command twice is harmless, so an execution a crash interrupted is run
    /// again at start-up.
    #[serde(default)]
    pub idempotent: bool,
}

pub struct ExecKind {
    idempotent: bool,
}

impl ExecKind {
    pub fn new(cfg: &ExecActionConfig, _base_dir: &Path, what: &str) -> Result<ExecKind> {
        let _ = cfg;
        Err(Error::Config(format!("{what}: not implemented yet")))
    }
}

impl Kind for ExecKind {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn prepare(&self, _cx: &RenderCx<'_>) -> Result<Prepared> {
        Err(Error::Internal("exec: not implemented yet".into()))
    }

    fn execute<'a>(&'a self, _p: &'a Prepared, _cx: &'a ExecCx) -> BoxFuture<'a, Attempt> {
        Box::pin(async {
            Attempt::Failed {
                retryable: false,
                status: None,
                message: "exec: not implemented yet".into(),
                retry_after: None,
            }
        })
    }
}
