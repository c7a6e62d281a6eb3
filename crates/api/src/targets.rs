//! `GET /api/v1/targets` in Prometheus's shape: `activeTargets` (labels, discoveredLabels,
//! scrapePool, scrapeUrl, globalUrl, health, lastError, lastScrape, lastScrapeDuration,
//! scrapeInterval, scrapeTimeout) and `droppedTargets`, filtered by `state` and `scrapePool`.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tocsin_collect::scrape::labels_map;
use tocsin_collect::scrape::target::fmt_duration;

use crate::ApiState;

#[derive(Debug, Deserialize, Default)]
pub struct TargetsQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default, rename = "scrapePool")]
    scrape_pool: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    if ms <= 0 {
        // Go's zero time, which Prometheus shows for targets not scraped yet.
        return "0001-01-01T00:00:00Z".into();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

/// The URL with a loopback host replaced by this machine's name, as Prometheus's `globalUrl`.
fn global_url(url: &str) -> String {
    let Ok(mut u) = reqwest_url(url) else {
        return url.to_string();
    };
    if matches!(
        u.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    ) {
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim();
            if !h.is_empty() && u.set_host(Some(h)).is_ok() {
                return u.to_string();
            }
        }
    }
    url.to_string()
}

fn reqwest_url(s: &str) -> Result<url::Url, url::ParseError> {
    url::Url::parse(s)
}

pub async fn targets(State(st): State<ApiState>, Query(q): Query<TargetsQuery>) -> Response {
    let state = q.state.as_deref().unwrap_or("any").to_ascii_lowercase();
    let want_active = state == "any" || state == "active" || state.is_empty();
    let want_dropped = state == "any" || state == "dropped" || state.is_empty();
    let pool_ok = |p: &str| q.scrape_pool.as_deref().is_none_or(|w| w == p);
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts: BTreeMap<String, u64> = BTreeMap::new();
    if want_active {
        for a in st.targets.active_targets() {
            if !pool_ok(&a.pool) {
                continue;
            }
            let t = &a.target;
            let s = t.status.lock().clone();
            active.push(json!({
                "discoveredLabels": t.discovered,
                "labels": labels_map(&t.labels),
                "scrapePool": a.pool,
                "scrapeUrl": t.url,
                "globalUrl": global_url(&t.url),
                "lastError": s.last_error,
                "lastScrape": rfc3339(s.last_scrape_ms),
                "lastScrapeDuration": s.last_duration_secs,
                "health": s.health.as_str(),
                "scrapeInterval": fmt_duration(t.interval_ms),
                "scrapeTimeout": fmt_duration(t.timeout_ms),
            }));
        }
    }
    for d in st.targets.dropped_targets() {
        if !pool_ok(&d.pool) {
            continue;
        }
        *dropped_counts.entry(d.pool.clone()).or_default() += 1;
        if want_dropped {
            dropped.push(json!({ "discoveredLabels": d.discovered }));
        }
    }
    let mut data = serde_json::Map::new();
    data.insert("activeTargets".into(), Value::Array(active));
    data.insert("droppedTargets".into(), Value::Array(dropped));
    data.insert("droppedTargetCounts".into(), json!(dropped_counts));
    Json(json!({"status": "success", "data": data})).into_response()
}
