//! HTTP handlers, translation only: requests are decoded, handed to the seams (`Appendable` for
//! writes, `Queryable` and the PromQL engine for reads, read-view traits for status) and answered
//! in the peers' formats. Error kinds map to HTTP codes in `error.rs`.

pub mod actions;
pub mod admin;
pub mod alert_marks;
pub mod alerta;
pub mod am;
pub mod class;
pub mod console;
pub mod error;
pub mod events;
pub mod guard;
pub mod prom;
pub mod pubsub;
pub mod push;
pub mod routes;
pub mod targets;
pub mod ui;
pub mod write;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tocsin_collect::scrape::{MetadataView, TargetsView};
use tocsin_storage::{Appendable, Deletable, Queryable};

pub use error::{ApiError, Error, Result};
pub use prom::{NoRules, QueryState, RulesView, StatusView, TsdbStatsView};
pub use push::PushMetrics;
pub use write::WriteMetrics;

/// What the handlers need; the server fills it in.
#[derive(Clone)]
pub struct ApiState {
    pub appendable: Arc<dyn Appendable>,
    pub write_metrics: Arc<WriteMetrics>,
    pub push_metrics: Arc<PushMetrics>,
    pub deletable: Arc<dyn Deletable>,
    pub targets: Arc<dyn TargetsView>,
    pub queryable: Arc<dyn Queryable>,
    /// This server's own storage without its `remote_read:` sources, for `/api/v1/read`
    /// (None: `queryable`).
    pub local_queryable: Option<Arc<dyn Queryable>>,
    /// Engine settings and the concurrency gate.
    pub query: Arc<QueryState>,
    pub metadata: Arc<dyn MetadataView>,
    pub tsdb_stats: Arc<dyn TsdbStatsView>,
    pub status: Arc<dyn StatusView>,
    pub rules: Arc<dyn RulesView>,
    pub alertmanager: Arc<dyn am::AlertmanagerApi>,
    /// Snapshots and tombstone cleaning; `None` unless `--web.enable-admin-api`, which also
    /// gates `delete_series`.
    pub admin: Option<Arc<dyn admin::TsdbAdmin>>,
    /// The remediation actions engine; the server always gives one (`None` in tests of other
    /// endpoints: the actions endpoints then answer 404).
    pub actions: Option<Arc<dyn actions::ActionsApi>>,
    /// The Alerta-compatible API's own state (one send at a time, duplicate counts).
    pub alerta: Arc<alerta::AlertaState>,
}

/// Default largest request body on write endpoints (`web.max_body_size.write`).
pub const MAX_WRITE_BODY: usize = 64 << 20;

/// Every route this crate serves: path, method and the class it is meant to have. The router is
/// built from the same table.
pub fn routes() -> Vec<routes::RouteInfo> {
    routes::infos(&table())
}

/// The API router. Request bodies are bounded by the guard layer (`guard::guard`, per class),
/// which the server puts in front of the whole application; axum's own default limit is lifted
/// so that a larger configured limit is the one that applies.
pub fn router(state: ApiState) -> Router {
    routes::build(table())
        .layer(DefaultBodyLimit::disable())
        // Answers are gzipped for clients that ask, as Prometheus does: a range query for a graph
        // of 500 series is 13 MiB of JSON and a tenth of that compressed. Bodies under 32 bytes,
        // server-sent events and the console's pre-compressed assets are left alone.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .with_state(state)
}

fn table() -> Vec<routes::Route<ApiState>> {
    use class::Class::{Admin, Alert, Public, Read, Write};
    use prom::{federate, meta, query, read, rules, status};
    use routes::{route as r, M::*};
    let mut t = vec![
        r("/api/v1/query", Get, Read, query::query),
        r("/api/v1/query", Post, Read, query::query),
        r("/api/v1/query_range", Get, Read, query::query_range),
        r("/api/v1/query_range", Post, Read, query::query_range),
        r("/api/v1/format_query", Get, Read, query::format_query),
        r("/api/v1/format_query", Post, Read, query::format_query),
        r("/api/v1/query_exemplars", Get, Read, query::query_exemplars),
        r(
            "/api/v1/query_exemplars",
            Post,
            Read,
            query::query_exemplars,
        ),
        r("/api/v1/series", Get, Read, meta::series),
        r("/api/v1/series", Post, Read, meta::series),
        r("/api/v1/labels", Get, Read, meta::labels),
        r("/api/v1/labels", Post, Read, meta::labels),
        r("/api/v1/label/{name}/values", Get, Read, meta::label_values),
        r("/api/v1/metadata", Get, Read, meta::metadata),
        r("/api/v1/rules", Get, Read, rules::rules),
        r("/api/v1/rules", Post, Read, rules::rules),
        r("/api/v1/alerts", Get, Read, rules::alerts),
        r("/api/v1/alertmanagers", Get, Read, rules::alertmanagers),
        r("/api/v1/alerts/history", Get, Read, am::history),
        r("/api/v1/console/alerts", Get, Read, console::alerts),
        r("/api/v1/events", Get, Read, events::events),
        r("/api/v1/alerts/marks", Get, Read, alert_marks::marks),
        r("/api/v1/alerts/{fingerprint}", Get, Read, alert_marks::get),
        r(
            "/api/v1/alerts/{fingerprint}/timeline",
            Get,
            Read,
            alert_marks::timeline,
        ),
        r(
            "/api/v1/alerts/{fingerprint}/ack",
            Post,
            Alert,
            alert_marks::ack,
        ),
        r(
            "/api/v1/alerts/{fingerprint}/unack",
            Post,
            Alert,
            alert_marks::unack,
        ),
        r(
            "/api/v1/alerts/{fingerprint}/shelve",
            Post,
            Alert,
            alert_marks::shelve,
        ),
        r(
            "/api/v1/alerts/{fingerprint}/unshelve",
            Post,
            Alert,
            alert_marks::unshelve,
        ),
        r(
            "/api/v1/alerts/{fingerprint}/note",
            Post,
            Alert,
            alert_marks::note,
        ),
        r("/api/v2/alerts", Get, Read, am::get_alerts),
        r("/api/v2/alerts", Post, Alert, am::post_alerts),
        r("/api/v2/alerts/groups", Get, Read, am::get_groups),
        r("/api/v2/silences", Get, Read, am::get_silences),
        r("/api/v2/silences", Post, Alert, am::post_silences),
        r("/api/v2/silence/{id}", Get, Read, am::get_silence),
        r("/api/v2/silence/{id}", Delete, Alert, am::delete_silence),
        r("/api/v2/status", Get, Read, am::get_status),
        r("/api/v2/receivers", Get, Read, am::get_receivers),
        r("/api/v1/heartbeat/{name}", Post, Alert, am::post_heartbeat),
        r("/api/v1/heartbeats", Get, Read, am::get_heartbeats),
        r("/api/v1/actions", Get, Read, actions::list),
        r("/api/v1/actions/policies", Get, Read, actions::policies),
        r("/api/v1/actions/{id}", Get, Read, actions::get),
        r(
            "/api/v1/actions/{id}/approve",
            Post,
            Admin,
            actions::approve,
        ),
        r("/api/v1/actions/{id}/deny", Post, Admin, actions::deny),
        r(
            "/api/v1/actions/policies/{name}/reset",
            Post,
            Admin,
            actions::reset,
        ),
        r("/api/v1/pubsub/push", Post, Alert, pubsub::post_push),
        r("/api/alert", Post, Alert, alerta::alerts::post_alert),
        r("/api/alert/{id}", Get, Read, alerta::alerts::get_alert),
        r(
            "/api/alert/{id}",
            Delete,
            Alert,
            alerta::alerts::delete_alert,
        ),
        r(
            "/api/alert/{id}/action",
            Put,
            Alert,
            alerta::alerts::put_action,
        ),
        r(
            "/api/alert/{id}/status",
            Put,
            Alert,
            alerta::alerts::put_status,
        ),
        r("/api/alerts", Get, Read, alerta::alerts::get_alerts),
        r("/api/alerts/count", Get, Read, alerta::alerts::get_count),
        r(
            "/api/heartbeat",
            Post,
            Alert,
            alerta::heartbeats::post_heartbeat,
        ),
        r(
            "/api/heartbeat/{id}",
            Get,
            Read,
            alerta::heartbeats::get_heartbeat,
        ),
        r(
            "/api/heartbeats",
            Get,
            Read,
            alerta::heartbeats::get_heartbeats,
        ),
        r("/api/config", Get, Public, alerta::server::get_config),
        r(
            "/api/management/status",
            Get,
            Read,
            alerta::server::get_status,
        ),
        r("/api/v1/status/buildinfo", Get, Read, status::buildinfo),
        r("/api/v1/status/runtimeinfo", Get, Read, status::runtimeinfo),
        r("/api/v1/status/flags", Get, Read, status::flags),
        r("/api/v1/status/config", Get, Read, status::config),
        r("/api/v1/status/tsdb", Get, Read, status::tsdb),
        r("/federate", Get, Read, federate::federate),
        r("/api/v1/read", Post, Read, read::read),
        r("/api/v1/write", Post, Write, write::remote_write),
        r("/api/v1/targets", Get, Read, targets::targets),
        r("/api/v1/targets/pools", Get, Read, targets::pools),
        r("/write", Post, Write, push::influx_write_v1),
        r("/api/v2/write", Post, Write, push::influx_write_v2),
        r("/ping", Get, Read, push::ping),
        r("/ping", Head, Read, push::ping),
        r("/query", Get, Read, push::influx_query),
        r("/query", Post, Read, push::influx_query),
        r("/api/v1/push", Post, Write, push::json_push),
        r(
            "/v3/projects/{project}/timeSeries",
            Post,
            Write,
            push::create_time_series,
        ),
        r(
            "/api/v1/admin/tsdb/delete_series",
            Post,
            Admin,
            admin::delete_series,
        ),
        r(
            "/api/v1/admin/tsdb/delete_series",
            Put,
            Admin,
            admin::delete_series,
        ),
        r("/api/v1/admin/tsdb/snapshot", Post, Admin, admin::snapshot),
        r("/api/v1/admin/tsdb/snapshot", Put, Admin, admin::snapshot),
        r(
            "/api/v1/admin/tsdb/clean_tombstones",
            Post,
            Admin,
            admin::clean_tombstones,
        ),
        r(
            "/api/v1/admin/tsdb/clean_tombstones",
            Put,
            Admin,
            admin::clean_tombstones,
        ),
        r(ui::ASSETS, Get, Read, ui::asset),
    ];
    // The web console: every client-side page answers with the same HTML.
    t.extend(ui::PAGES.iter().map(|&p| r(p, Get, Read, ui::index)));
    t
}

#[cfg(test)]
mod route_tests {
    use super::*;

    /// The class each table entry declares is the one `classify` gives its request, so the auth
    /// layer and the body limits treat every route as the table says.
    #[test]
    fn every_api_route_is_classified_as_declared() {
        let table = routes();
        assert!(table.len() > 40);
        for r in &table {
            let path = r.example_path("x");
            assert_eq!(
                class::classify(&r.method.method(), &path),
                r.class,
                "{:?} {}",
                r.method,
                r.path
            );
        }
        let mut seen = std::collections::HashSet::new();
        for r in &table {
            assert!(seen.insert((r.path, r.method)), "listed twice: {r:?}");
        }
    }
}
