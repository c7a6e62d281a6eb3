//! The fake's Compute Engine: instances delete/reset/stop (per project and zone, as the test
//! added them), a `requestId` seen before answering with the earlier operation without acting
//! again, operations going PENDING → RUNNING → DONE over a configurable time, zone operations
//! get and wait, and Google's error bodies for unknown projects, zones and instances.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{google_error, lock, Acted, Failure, GcpRequest, Shared};

pub(crate) struct Op {
    name: String,
    id: u64,
    project: String,
    zone: String,
    op_type: String,
    instance: String,
    target_id: u64,
    request_id: Option<String>,
    created: Instant,
    insert_time: String,
    duration: Duration,
    error: Option<String>,
}

impl Op {
    fn status(&self) -> &'static str {
        let e = self.created.elapsed();
        if e >= self.duration {
            "DONE"
        } else if e >= self.duration / 2 {
            "RUNNING"
        } else {
            "PENDING"
        }
    }

    fn done_in(&self) -> Duration {
        self.duration.saturating_sub(self.created.elapsed())
    }

    fn json(&self, host: &str) -> Value {
        let base = format!("http://{host}/compute/v1/projects/{}", self.project);
        let zone = format!("{base}/zones/{}", self.zone);
        let status = self.status();
        let mut v = json!({
            "kind": "compute#operation",
            "id": self.id.to_string(),
            "name": self.name,
            "zone": zone,
            "operationType": self.op_type,
            "targetLink": format!("{zone}/instances/{}", self.instance),
            "targetId": self.target_id.to_string(),
            "status": status,
            "user": super::CLIENT_EMAIL,
            "progress": if status == "DONE" { 100 } else { 0 },
            "insertTime": self.insert_time,
            "selfLink": format!("{zone}/operations/{}", self.name),
        });
        if status != "PENDING" {
            v["startTime"] = json!(self.insert_time);
        }
        if let Some(r) = &self.request_id {
            v["clientOperationId"] = json!(r);
        }
        if status == "DONE" {
            v["endTime"] = json!(rfc3339(SystemTime::now()));
            if let Some(e) = &self.error {
                v["error"] = json!({"errors": [{"code": "INTERNAL_ERROR", "message": e}]});
                v["httpErrorStatusCode"] = json!(500);
                v["httpErrorMessage"] = json!("INTERNAL SERVER ERROR");
            }
        }
        v
    }
}

/// RFC 3339 with a UTC offset, as Compute Engine writes times.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}-00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

pub(crate) fn failure_response(f: &Failure) -> Response {
    match f {
        Failure::Unavailable => google_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "backendError",
            "Internal error. Please try again or contact Google Support.",
        ),
        Failure::RateLimited => google_error(
            StatusCode::FORBIDDEN,
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com'.",
        ),
        Failure::ResourceNotReady => google_error(
            StatusCode::BAD_REQUEST,
            "resourceNotReady",
            "The resource is not ready",
        ),
        Failure::DoneWithError(_) => google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backendError",
            "DoneWithError has no answer of its own",
        ),
    }
}

fn valid_request_id(r: &str) -> bool {
    let groups: Vec<&str> = r.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
        && !r.chars().all(|c| c == '0' || c == '-')
}

fn not_found(resource: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("The resource '{resource}' was not found"),
    )
}

pub(crate) async fn handle(st: &Shared, method: &Method, rest: &str, rec: &GcpRequest) -> Response {
    let host = rec.header("host").unwrap_or("127.0.0.1").to_string();
    let segs: Vec<&str> = rest.split('/').collect();
    match (method.clone(), segs.as_slice()) {
        (Method::DELETE, ["projects", p, "zones", z, "instances", i]) => {
            instance_call(st, "delete", p, z, i, rec, &host)
        }
        (Method::POST, ["projects", p, "zones", z, "instances", i, op @ ("reset" | "stop")]) => {
            instance_call(st, op, p, z, i, rec, &host)
        }
        (Method::GET, ["projects", p, "zones", z, "operations", op]) => {
            let s = lock(st);
            match s.ops.get(*op).filter(|o| o.project == *p && o.zone == *z) {
                Some(o) => axum::Json(o.json(&host)).into_response(),
                None => not_found(&format!("projects/{p}/zones/{z}/operations/{op}")),
            }
        }
        (Method::POST, ["projects", p, "zones", z, "operations", op, "wait"]) => {
            wait(st, p, z, op, &host).await
        }
        _ => google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            &format!("The fake has no method {method} /compute/v1/{rest}"),
        ),
    }
}

fn instance_call(
    st: &Shared,
    op: &str,
    p: &str,
    z: &str,
    i: &str,
    rec: &GcpRequest,
    host: &str,
) -> Response {
    let mut s = lock(st);
    if let Some(f) = s.failures.front().cloned() {
        if !matches!(f, Failure::DoneWithError(_)) {
            s.failures.pop_front();
            return failure_response(&f);
        }
    }
    let rid = rec.query_param("requestId");
    if let Some(r) = &rid {
        if !valid_request_id(r) {
            return google_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                &format!("Invalid value for field 'requestId': '{r}'. The requestId must be a valid UUID with the exception that zero UUID is not supported (00000000-0000-0000-0000-000000000000)."),
            );
        }
    }
    if !s.zones.keys().any(|(pp, _)| pp == p) {
        return not_found(&format!("projects/{p}"));
    }
    let key = (p.to_string(), z.to_string());
    if !s.zones.contains_key(&key) {
        return not_found(&format!("projects/{p}/zones/{z}"));
    }
    if let Some(r) = &rid {
        if let Some(name) = s.by_request_id.get(&(p.to_string(), r.clone())) {
            if let Some(o) = s.ops.get(name) {
                return axum::Json(o.json(host)).into_response();
            }
        }
    }
    let Some((target_id, _)) = s.zones.get(&key).and_then(|m| m.get(i)).cloned() else {
        return not_found(&format!("projects/{p}/zones/{z}/instances/{i}"));
    };
    let error = match s.failures.front().cloned() {
        Some(Failure::DoneWithError(m)) => {
            s.failures.pop_front();
            Some(m)
        }
        _ => None,
    };
    if error.is_none() {
        let zone = s.zones.entry(key).or_default();
        match op {
            "delete" => {
                zone.remove(i);
                s.counters.deleted += 1;
            }
            "stop" => {
                if let Some(inst) = zone.get_mut(i) {
                    inst.1 = "TERMINATED".into();
                }
                s.counters.stopped += 1;
            }
            _ => s.counters.reset += 1,
        }
        s.acted.push(Acted {
            operation: op.to_string(),
            project: p.to_string(),
            zone: z.to_string(),
            instance: i.to_string(),
            request_id: rid.clone(),
        });
    }
    let n = s.next_id;
    s.next_id += 1;
    let name = format!("operation-{n}-{:x}", 0x5eed_0000u64 + n);
    let o = Op {
        name: name.clone(),
        id: 7_000_000_000 + n,
        project: p.to_string(),
        zone: z.to_string(),
        op_type: op.to_string(),
        instance: i.to_string(),
        target_id,
        request_id: rid.clone(),
        created: Instant::now(),
        insert_time: rfc3339(SystemTime::now()),
        duration: s.op_duration,
        error,
    };
    let body = o.json(host);
    if let Some(r) = rid {
        s.by_request_id.insert((p.to_string(), r), name.clone());
    }
    s.ops.insert(name, o);
    axum::Json(body).into_response()
}

async fn wait(st: &Shared, p: &str, z: &str, op: &str, host: &str) -> Response {
    let started = Instant::now();
    loop {
        let (body, done_in, wait_max) = {
            let s = lock(st);
            let Some(o) = s.ops.get(op).filter(|o| o.project == p && o.zone == z) else {
                return not_found(&format!("projects/{p}/zones/{z}/operations/{op}"));
            };
            (o.json(host), o.done_in(), s.wait_max)
        };
        let waited = started.elapsed();
        if done_in.is_zero() || waited >= wait_max {
            return axum::Json(body).into_response();
        }
        tokio::time::sleep(done_in.min(wait_max - waited) + Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123-00:00");
    }
}
