//! Action kinds: what a policy does to its target. Each kind lives in `kinds/<kind>.rs`, owns
//! its config section (`http:`, `exec:`, `gce_instance:`) and implements [`Kind`]: `prepare`
//! renders the request for one alert (what a dry run records and the audit keeps, secrets
//! redacted), `execute` makes one attempt. The engine owns everything around an attempt:
//! the journal, guards, retries with backoff, the overall timeout and the audit.

pub mod exec;
pub mod gce_instance;
pub mod http;

use std::any::Any;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::PolicyConfig;
use crate::error::Result;
use crate::template::RenderCx;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request rendered for one alert, ready to be sent (possibly several times).
pub struct Prepared {
    /// What will be sent, as the audit and dry runs show it: method, URL, headers, body,
    /// command line... with credentials replaced by `<secret>`.
    pub request: serde_json::Value,
    /// The kind's own form of the request (with secrets), downcast by its `execute`.
    pub payload: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// What one attempt ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The far side did it (or says it was already done).
    Done {
        /// HTTP status (or exit code for `exec`), when there is one.
        status: Option<i64>,
        /// A short description for the audit: response body excerpt, operation name...
        detail: String,
        /// True when the answer said the work was already done (404 naming the instance,
        /// the `already_done` rule of `http`).
        already_done: bool,
    },
    Failed {
        /// Whether another attempt may succeed (5xx, 429, rate limits, timeouts, connection
        /// errors); configuration errors and 4xx are not retried.
        retryable: bool,
        status: Option<i64>,
        message: String,
        /// When the far side said how long to wait (Retry-After, quota refill).
        retry_after: Option<Duration>,
    },
}

/// What an attempt is given besides the prepared request.
#[derive(Debug, Clone)]
pub struct ExecCx {
    /// The policy's `timeout` for this attempt: the kind stops waiting (and `exec` kills the
    /// process group) when it passes. The engine also drops the attempt a little after it.
    pub timeout: Duration,
    /// The attempt number, from 1.
    pub attempt: u32,
}

/// One configured action.
pub trait Kind: Send + Sync {
    /// `http`, `exec` or `gce_instance`, for metrics, the audit and logs.
    fn kind(&self) -> &'static str;
    /// Whether sending the same prepared request twice is harmless, so that an execution a
    /// crash interrupted may be sent again at start-up (else it is recorded as `unknown`).
    fn idempotent(&self) -> bool;
    /// Renders the request for one alert. `cx.request_id` is the execution's deterministic
    /// id; a kind that can pass an idempotency key to the far side uses it.
    fn prepare(&self, cx: &RenderCx<'_>) -> Result<Prepared>;
    /// Makes one attempt.
    fn execute<'a>(&'a self, p: &'a Prepared, cx: &'a ExecCx) -> BoxFuture<'a, Attempt>;
}

/// Builds the kind a policy names; `what` prefixes error messages (`policies[0]`), `base_dir`
/// resolves relative paths (credential files, commands).
pub fn build(policy: &PolicyConfig, base_dir: &Path, what: &str) -> Result<Arc<dyn Kind>> {
    let mut kinds: Vec<Arc<dyn Kind>> = Vec::new();
    if let Some(c) = &policy.http {
        kinds.push(Arc::new(http::HttpKind::new(
            c,
            base_dir,
            &format!("{what}.http"),
        )?));
    }
    if let Some(c) = &policy.exec {
        kinds.push(Arc::new(exec::ExecKind::new(
            c,
            base_dir,
            &format!("{what}.exec"),
        )?));
    }
    if let Some(c) = &policy.gce_instance {
        kinds.push(Arc::new(gce_instance::GceInstanceKind::new(
            c,
            base_dir,
            &format!("{what}.gce_instance"),
        )?));
    }
    match kinds.len() {
        1 => Ok(kinds.remove(0)),
        0 => Err(crate::Error::Config(format!(
            "{what}: no action: give one of http, exec, gce_instance"
        ))),
        _ => Err(crate::Error::Config(format!(
            "{what}: more than one action: give only one of http, exec, gce_instance"
        ))),
    }
}
