//! The `gce_instance` action: Compute Engine v1 `instances.delete`, `reset` or `stop` on the
//! instance named by templates over the alert's labels, with a deterministic `requestId`, the
//! returned operation polled until `DONE`. Credentials and the REST calls are the `gcp`
//! crate's.
//!
//! ```yaml
//! gce_instance:
//!   operation: delete                        # delete | reset | stop
//!   project: '{{ $labels.project_id }}'      # the defaults
//!   zone: '{{ $labels.zone }}'
//!   instance: '{{ $labels.instance_name }}'
//!   google:
//!     service_account_key_file: sa.json      # else the metadata server
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use tocsin_gcp::{Google, InstanceOp, InstanceOutcome};

use super::{Attempt, BoxFuture, ExecCx, Kind, Prepared};
use crate::error::{Error, Result};
use crate::template::{ActionTemplate, RenderCx};

pub const DEFAULT_PROJECT: &str = "{{ $labels.project_id }}";
pub const DEFAULT_ZONE: &str = "{{ $labels.zone }}";
pub const DEFAULT_INSTANCE: &str = "{{ $labels.instance_name }}";

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

pub struct GceInstanceKind {
    op: InstanceOp,
    project: ActionTemplate,
    zone: ActionTemplate,
    instance: ActionTemplate,
    google: Arc<Google>,
    /// The config path, for render errors (`actions.policies[0].gce_instance`).
    what: String,
}

/// What `execute` sends: the rendered names and the request id.
#[derive(Debug, Clone)]
struct Payload {
    project: String,
    zone: String,
    instance: String,
    request_id: String,
}

impl GceInstanceKind {
    /// Checks the settings, parses the templates and reads the key file; makes no request.
    pub fn new(cfg: &GceInstanceConfig, base_dir: &Path, what: &str) -> Result<GceInstanceKind> {
        let op = InstanceOp::parse(cfg.operation.trim()).ok_or_else(|| {
            Error::Config(format!(
                "{what}.operation: must be delete, reset or stop, not {:?}",
                cfg.operation
            ))
        })?;
        let tmpl = |field: &str, v: &Option<String>, default: &str| {
            ActionTemplate::parse(&format!("{what}.{field}"), v.as_deref().unwrap_or(default))
        };
        Ok(GceInstanceKind {
            op,
            project: tmpl("project", &cfg.project, DEFAULT_PROJECT)?,
            zone: tmpl("zone", &cfg.zone, DEFAULT_ZONE)?,
            instance: tmpl("instance", &cfg.instance, DEFAULT_INSTANCE)?,
            google: Arc::new(
                Google::new(&cfg.google, base_dir, what)
                    .map_err(|e| Error::Config(e.to_string()))?,
            ),
            what: what.to_string(),
        })
    }

    /// The Google user (its token cache), for tests and metrics.
    pub fn google(&self) -> &Google {
        &self.google
    }
}

/// Renders one name; an empty result, or one that is not a single path segment, is an error
/// naming the field (Compute Engine would only answer with a confusing 404).
fn render_name(t: &ActionTemplate, field: &str, cx: &RenderCx<'_>) -> Result<String> {
    let v = t.render(cx)?.trim().to_string();
    if v.is_empty() {
        return Err(Error::Render(format!(
            "{field}: {:?} rendered empty for this alert",
            t.source()
        )));
    }
    if v.contains(['/', '?', '#']) || v.chars().any(char::is_whitespace) {
        return Err(Error::Render(format!(
            "{field}: {v:?} (from {:?}) is not a Compute Engine name",
            t.source()
        )));
    }
    Ok(v)
}

impl Kind for GceInstanceKind {
    fn kind(&self) -> &'static str {
        "gce_instance"
    }

    /// The `requestId` makes a repeat return the first call's operation.
    fn idempotent(&self) -> bool {
        true
    }

    fn prepare(&self, cx: &RenderCx<'_>) -> Result<Prepared> {
        let field = |f: &str| format!("{}.{f}", self.what);
        let project = render_name(&self.project, &field("project"), cx)?;
        let zone = render_name(&self.zone, &field("zone"), cx)?;
        let instance = render_name(&self.instance, &field("instance"), cx)?;
        tocsin_gcp::compute::check_request_id(cx.request_id)
            .map_err(|e| Error::Internal(format!("gce_instance: {e}")))?;
        let url = self
            .google
            .instance_url(self.op, &project, &zone, &instance, cx.request_id)
            .map_err(|e| Error::Render(e.to_string()))?;
        let request = json!({
            "method": self.op.method().as_str(),
            "url": url.as_str(),
            "operation": self.op.as_str(),
            "project": project,
            "zone": zone,
            "instance": instance,
            "requestId": cx.request_id,
        });
        Ok(Prepared {
            request,
            payload: Box::new(Payload {
                project,
                zone,
                instance,
                request_id: cx.request_id.to_string(),
            }),
        })
    }

    fn execute<'a>(&'a self, p: &'a Prepared, cx: &'a ExecCx) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let Some(p) = p.payload.downcast_ref::<Payload>() else {
                return Attempt::Failed {
                    retryable: false,
                    status: None,
                    message: "gce_instance: the prepared request is not this kind's".into(),
                    retry_after: None,
                };
            };
            let call = self.google.instance_op(
                self.op,
                &p.project,
                &p.zone,
                &p.instance,
                &p.request_id,
                cx.timeout,
            );
            match call.await {
                Ok(InstanceOutcome::Done(op)) => Attempt::Done {
                    status: Some(200),
                    detail: format!("operation {} {}", op.name, op.status),
                    already_done: false,
                },
                Ok(InstanceOutcome::AlreadyGone(message)) => Attempt::Done {
                    status: Some(404),
                    detail: message,
                    already_done: true,
                },
                Err(e) => Attempt::Failed {
                    retryable: e.retryable(),
                    status: e.status().map(i64::from),
                    message: e.to_string(),
                    retry_after: e.retry_after(),
                },
            }
        })
    }
}

#[cfg(test)]
#[path = "gce_instance_tests.rs"]
mod tests;
