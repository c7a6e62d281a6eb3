//! Compute Engine v1: `instances.delete`, `reset` and `stop` with a caller-given `requestId`
//! (so a repeated call returns the first call's operation instead of acting again), and the
//! returned zone operation waited on (`operations/OP/wait`, called again while not `DONE`).
//!
//! A 404 whose message names `projects/P/zones/Z/instances/I` means the instance is already
//! gone; any other 404 (wrong project or zone) is a configuration error.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{classify, ApiError, Error, Result};
use crate::{join, Google};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceOp {
    Delete,
    Reset,
    Stop,
}

impl InstanceOp {
    pub fn parse(s: &str) -> Option<InstanceOp> {
        Some(match s {
            "delete" => InstanceOp::Delete,
            "reset" => InstanceOp::Reset,
            "stop" => InstanceOp::Stop,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceOp::Delete => "delete",
            InstanceOp::Reset => "reset",
            InstanceOp::Stop => "stop",
        }
    }

    pub fn method(self) -> reqwest::Method {
        match self {
            InstanceOp::Delete => reqwest::Method::DELETE,
            InstanceOp::Reset | InstanceOp::Stop => reqwest::Method::POST,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OperationErrorItem {
    pub code: String,
    pub location: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperationError {
    pub errors: Vec<OperationErrorItem>,
}

/// A zone operation, as far as we read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Operation {
    pub name: String,
    pub status: String,
    pub operation_type: String,
    pub target_link: String,
    pub client_operation_id: String,
    pub self_link: String,
    pub error: Option<OperationError>,
    pub http_error_status_code: Option<i64>,
    pub http_error_message: Option<String>,
}

impl Operation {
    pub fn done(&self) -> bool {
        self.status == "DONE"
    }

    /// The failure of a `DONE` operation, if it has one.
    pub fn failure(&self) -> Option<String> {
        let e = self.error.as_ref()?;
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|i| {
                if i.code.is_empty() {
                    i.message.clone()
                } else {
                    format!("{}: {}", i.code, i.message)
                }
            })
            .collect();
        Some(if parts.is_empty() {
            self.http_error_message
                .clone()
                .unwrap_or_else(|| "operation failed".into())
        } else {
            parts.join("; ")
        })
    }
}

/// How a call ended when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceOutcome {
    /// The operation reached `DONE` without error.
    Done(Operation),
    /// Compute Engine said the instance does not exist (404 naming it): nothing left to do.
    AlreadyGone(String),
}

/// Checks a `requestId`: a UUID in its 8-4-4-4-12 hex form, not all zeros, as Compute Engine
/// requires.
pub fn check_request_id(id: &str) -> Result<()> {
    let groups: Vec<&str> = id.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let shaped = groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if !shaped {
        return Err(Error::Config(format!("requestId {id:?} is not a UUID")));
    }
    if id.chars().all(|c| c == '0' || c == '-') {
        return Err(Error::Config("requestId must not be all zeros".into()));
    }
    Ok(())
}

/// Pause between operation waits that came back early and not `DONE`, so a server that
/// answers at once is not hammered.
const EARLY_WAIT_PAUSE: Duration = Duration::from_millis(200);

impl Google {
    /// The instance's resource name, as Google's error messages spell it.
    pub fn instance_resource(project: &str, zone: &str, instance: &str) -> String {
        format!("projects/{project}/zones/{zone}/instances/{instance}")
    }

    /// The URL of an instance call, `requestId` included.
    pub fn instance_url(
        &self,
        op: InstanceOp,
        project: &str,
        zone: &str,
        instance: &str,
        request_id: &str,
    ) -> Result<reqwest::Url> {
        let mut segs = vec![
            "compute",
            "v1",
            "projects",
            project,
            "zones",
            zone,
            "instances",
            instance,
        ];
        match op {
            InstanceOp::Delete => {}
            InstanceOp::Reset => segs.push("reset"),
            InstanceOp::Stop => segs.push("stop"),
        }
        let mut u = join(&self.compute_url, &segs)?;
        u.query_pairs_mut().append_pair("requestId", request_id);
        Ok(u)
    }

    /// Runs `op` on the instance and waits for its operation to finish, for at most
    /// `timeout` in all.
    pub async fn instance_op(
        &self,
        op: InstanceOp,
        project: &str,
        zone: &str,
        instance: &str,
        request_id: &str,
        timeout: Duration,
    ) -> Result<InstanceOutcome> {
        for (field, v) in [("project", project), ("zone", zone), ("instance", instance)] {
            if v.is_empty() {
                return Err(Error::Config(format!("{field} is empty")));
            }
        }
        check_request_id(request_id)?;
        let deadline = Instant::now() + timeout;
        let what = format!(
            "{} {}",
            op.as_str(),
            Self::instance_resource(project, zone, instance)
        );
        let url = self.instance_url(op, project, zone, instance, request_id)?;
        let a = self.call(op.method(), url, None, timeout, &what).await?;
        if !a.ok() {
            if a.status == 404 {
                let e = ApiError::parse(&a.body);
                if e.names(&Self::instance_resource(project, zone, instance)) {
                    return Ok(InstanceOutcome::AlreadyGone(e.message));
                }
                return Err(Error::Api {
                    status: 404,
                    reason: e.reason,
                    message: format!(
                        "{what}: HTTP 404: {} (the project or zone does not exist: a configuration error)",
                        e.message
                    ),
                    retryable: false,
                    retry_after: None,
                });
            }
            return Err(classify(&what, a.status, &a.headers, &a.body));
        }
        let mut operation: Operation = serde_json::from_slice(&a.body)
            .map_err(|e| Error::BadResponse(format!("{what}: answer is not an Operation: {e}")))?;
        while !operation.done() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!(
                    "{what}: operation {} still {} when the timeout passed",
                    operation.name, operation.status
                )));
            }
            let started = Instant::now();
            operation = self
                .wait(project, zone, &operation.name, left, &what)
                .await?;
            if !operation.done() && started.elapsed() < EARLY_WAIT_PAUSE {
                tokio::time::sleep(EARLY_WAIT_PAUSE.min(left)).await;
            }
        }
        if let Some(f) = operation.failure() {
            return Err(Error::Operation(format!(
                "{what}: operation {} failed: {f}",
                operation.name
            )));
        }
        Ok(InstanceOutcome::Done(operation))
    }

    async fn wait(
        &self,
        project: &str,
        zone: &str,
        operation: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<Operation> {
        if operation.is_empty() {
            return Err(Error::BadResponse(format!(
                "{what}: the operation has no name to wait on"
            )));
        }
        let url = join(
            &self.compute_url,
            &[
                "compute",
                "v1",
                "projects",
                project,
                "zones",
                zone,
                "operations",
                operation,
                "wait",
            ],
        )?;
        let what = format!("{what}: waiting on operation {operation}");
        let a = self
            .call(reqwest::Method::POST, url, None, timeout, &what)
            .await?;
        if !a.ok() {
            return Err(classify(&what, a.status, &a.headers, &a.body));
        }
        serde_json::from_slice(&a.body)
            .map_err(|e| Error::BadResponse(format!("{what}: answer is not an Operation: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn request_ids() {
        check_request_id("0f8e2a6c-1b2d-4c3e-9f00-123456789abc").unwrap();
        assert!(check_request_id("00000000-0000-0000-0000-000000000000").is_err());
        assert!(check_request_id("r-1").is_err());
        assert!(check_request_id("0f8e2a6c1b2d4c3e9f00123456789abc").is_err());
    }

    #[test]
    fn operation_failure_message() {
        let op: Operation = serde_json::from_value(serde_json::json!({
            "name": "op-1", "status": "DONE",
            "error": {"errors": [{"code": "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", "message": "in use"}]}
        }))
        .unwrap();
        assert!(op.done());
        assert_eq!(
            op.failure().unwrap(),
            "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE: in use"
        );
    }
}
