//! What kind of access a request needs. Every route belongs to one class; the auth layer checks
//! a caller's roles against it, and the body limits are set per class. One function decides, from
//! the method and the path, so a route added later falls into a class by the same rules (and the
//! route-coverage test checks every route of the router against it).

use axum::http::Method;

/// Access classes, from the least to the most powerful. A role grants exactly its class; `admin`
/// does not imply the others (a credential lists every role it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Liveness and readiness probes: answered to anyone, they reveal nothing.
    Public,
    /// Queries, metadata, status, the console: reading.
    Read,
    /// Ingest endpoints: remote write, line protocol, JSON push.
    Write,
    /// Changing alert state: posting alerts (also as Pub/Sub pushes), silences, heartbeats,
    /// acknowledgements.
    Alert,
    /// Destructive or process-wide: delete series, snapshots, reload, quit, action approval.
    Admin,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Read => "read",
            Class::Write => "write",
            Class::Alert => "alert",
            Class::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Some(match s {
            "read" => Class::Read,
            "write" => Class::Write,
            "alert" => Class::Alert,
            "admin" => Class::Admin,
            _ => return None,
        })
    }

    /// The role names a configuration may grant (`public` is not one: it needs no role).
    pub const ROLES: [&'static str; 4] = ["read", "write", "alert", "admin"];
}

/// Who made a request, as the auth layer established it: a basic-auth user name, a bearer
/// token's configured name, `network <address>` for a caller let in by an `allow` network,
/// `anonymous` when no authentication is configured. The auth layer puts it in the request's
/// extensions; handlers that record who did something (approving an action) read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

impl Principal {
    /// The name when authentication is off.
    pub const ANONYMOUS: &'static str = "anonymous";
}

/// Ingest paths, whatever the method.
const WRITE_PATHS: &[&str] = &["/api/v1/write", "/write", "/api/v2/write", "/api/v1/push"];

/// The class of a request. Unknown paths are `Read` for safe methods and `Admin` otherwise, so
/// a new state-changing route is locked down until it is classified on purpose.
pub fn classify(method: &Method, path: &str) -> Class {
    // Alerta's client reads `/api/config` before every command, without credentials.
    if path == "/-/healthy"
        || path == "/-/ready"
        || (path == "/api/config" && *method == Method::GET)
    {
        return Class::Public;
    }
    if path.starts_with("/api/v1/admin/") || path.starts_with("/-/") {
        return Class::Admin;
    }
    if WRITE_PATHS.contains(&path)
        || (path.starts_with("/v3/projects/") && path.ends_with("/timeSeries"))
    {
        return Class::Write;
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    // Read endpoints that also take POST (Prometheus accepts form bodies on these; InfluxDB's
    // /query is a read too).
    const POST_READS: &[&str] = &[
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/format_query",
        "/api/v1/query_exemplars",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/rules",
        // The read protocol (remote_read of another server).
        "/api/v1/read",
        "/query",
    ];
    if safe || (*method == Method::POST && POST_READS.contains(&path)) {
        return Class::Read;
    }
    if path.starts_with("/api/v2/alerts")
        || path.starts_with("/api/v2/silence")
        || path.starts_with("/api/v1/heartbeat/")
        || path.starts_with("/api/v1/alerts")
        || path == "/api/v1/pubsub/push"
        || path == "/api/alert"
        || path.starts_with("/api/alert/")
        || path == "/api/heartbeat"
    {
        return Class::Alert;
    }
    Class::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let c = |m: Method, p: &str| classify(&m, p);
        assert_eq!(c(Method::GET, "/-/healthy"), Class::Public);
        assert_eq!(c(Method::GET, "/api/v1/query"), Class::Read);
        assert_eq!(c(Method::POST, "/api/v1/query"), Class::Read);
        assert_eq!(c(Method::POST, "/api/v1/write"), Class::Write);
        assert_eq!(c(Method::POST, "/v3/projects/p/timeSeries"), Class::Write);
        assert_eq!(c(Method::POST, "/api/v2/silences"), Class::Alert);
        assert_eq!(c(Method::DELETE, "/api/v2/silence/x"), Class::Alert);
        assert_eq!(c(Method::POST, "/api/v1/heartbeat/x"), Class::Alert);
        assert_eq!(c(Method::POST, "/api/v1/pubsub/push"), Class::Alert);
        assert_eq!(c(Method::GET, "/api/config"), Class::Public);
        assert_eq!(c(Method::POST, "/api/config"), Class::Admin);
        assert_eq!(c(Method::POST, "/api/alert"), Class::Alert);
        assert_eq!(c(Method::PUT, "/api/alert/x/action"), Class::Alert);
        assert_eq!(c(Method::DELETE, "/api/alert/x"), Class::Alert);
        assert_eq!(c(Method::GET, "/api/alerts"), Class::Read);
        assert_eq!(c(Method::POST, "/api/heartbeat"), Class::Alert);
        assert_eq!(c(Method::POST, "/api/v1/alerts/0a/ack"), Class::Alert);
        assert_eq!(c(Method::POST, "/api/v1/alerts/0a/note"), Class::Alert);
        assert_eq!(c(Method::GET, "/api/v1/alerts/0a/timeline"), Class::Read);
        assert_eq!(c(Method::POST, "/-/reload"), Class::Admin);
        assert_eq!(c(Method::GET, "/-/reload"), Class::Admin);
        assert_eq!(
            c(Method::POST, "/api/v1/admin/tsdb/delete_series"),
            Class::Admin
        );
        assert_eq!(c(Method::POST, "/something/new"), Class::Admin);
        assert_eq!(c(Method::GET, "/metrics"), Class::Read);
        assert_eq!(c(Method::GET, "/api/v1/actions"), Class::Read);
        assert_eq!(c(Method::GET, "/api/v1/actions/7"), Class::Read);
        assert_eq!(c(Method::GET, "/api/v1/actions/policies"), Class::Read);
        assert_eq!(c(Method::POST, "/api/v1/actions/7/approve"), Class::Admin);
        assert_eq!(c(Method::POST, "/api/v1/actions/7/deny"), Class::Admin);
        assert_eq!(
            c(Method::POST, "/api/v1/actions/policies/p/reset"),
            Class::Admin
        );
    }
}
