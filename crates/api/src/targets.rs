//! `GET /api/v1/targets` in Prometheus's shape: `activeTargets` (labels, discoveredLabels,
//! scrapePool, scrapeUrl, globalUrl, health, lastError, lastScrape, lastScrapeDuration,
//! scrapeInterval, scrapeTimeout) and `droppedTargets`, filtered by `state` and `scrapePool`.
//! For fleets where discovery lists tens of thousands of targets (most dropped by relabelling),
//! extras filter and page on the server (`health`, `q`, `limit`/`offset`, `droppedLimit`, with
//! `activeTotal`/`droppedTotal` in the answer), and `GET /api/v1/targets/pools` summarises each
//! pool. Without the extras the answer is exactly Prometheus's.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tocsin_alerts::console::contains_ci;
use tocsin_collect::scrape::labels_map;
use tocsin_collect::scrape::target::{fmt_duration, Health};

use crate::prom::encode::PromError;
use crate::prom::params::Params;
use crate::ApiState;

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

/// Largest `limit` and `droppedLimit`.
pub const MAX_PAGE: usize = 10_000;

/// The extras, decoded; `None` fields were not given.
#[derive(Debug, Default, PartialEq)]
struct Extras {
    health: Option<Vec<Health>>,
    /// Lower case.
    text: Option<String>,
    limit: Option<usize>,
    offset: usize,
    dropped_limit: Option<usize>,
}

impl Extras {
    fn any(&self) -> bool {
        *self != Extras::default()
    }
}

fn decode_extras(p: &Params) -> Result<Extras, String> {
    let page = |key: &str| -> Result<Option<usize>, String> {
        p.get(key)
            .map(|v| match v.parse::<usize>() {
                Ok(n) if n <= MAX_PAGE => Ok(n),
                _ => Err(format!("{key}: {v:?} is not a number from 0 to {MAX_PAGE}")),
            })
            .transpose()
    };
    let mut health = Vec::new();
    for h in p.all("health").iter().flat_map(|h| h.split(',')) {
        let h = h.trim();
        if h.is_empty() {
            continue;
        }
        health.push(match h {
            "up" => Health::Up,
            "down" => Health::Down,
            "unknown" => Health::Unknown,
            _ => return Err(format!("health: {h:?} is not one of up, down, unknown")),
        });
    }
    let offset = match p.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("offset: {v:?} is not a non-negative number"))?,
    };
    Ok(Extras {
        health: (!health.is_empty()).then_some(health),
        text: p
            .get("q")
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty()),
        limit: page("limit")?,
        offset,
        dropped_limit: page("droppedLimit")?,
    })
}

fn text_in<'a>(mut values: impl Iterator<Item = &'a str>, needle: &str) -> bool {
    values.any(|v| contains_ci(v, needle))
}

pub async fn targets(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q.as_deref(), &HeaderMap::new(), &[]);
    let extras = match decode_extras(&p) {
        Ok(x) => x,
        Err(e) => return PromError::bad_data(e).into_response(),
    };
    let state = p.get("state").unwrap_or("any").to_ascii_lowercase();
    let want_active = state == "any" || state == "active";
    let want_dropped = state == "any" || state == "dropped";
    let scrape_pool = p.get("scrapePool");
    let pool_ok = |p: &str| scrape_pool.is_none_or(|w| w == p);
    let text = extras.text.as_deref();
    let mut active = Vec::new();
    let mut active_total = 0usize;
    let mut dropped = Vec::new();
    let mut dropped_total = 0usize;
    let mut dropped_counts: BTreeMap<String, u64> = BTreeMap::new();
    if want_active {
        let limit = extras.limit.unwrap_or(usize::MAX);
        for a in st.targets.active_targets() {
            if !pool_ok(&a.pool) {
                continue;
            }
            let t = &a.target;
            let s = t.status.lock().clone();
            if let Some(h) = &extras.health {
                if !h.contains(&s.health) {
                    continue;
                }
            }
            if let Some(n) = text {
                let hit = text_in(t.labels.iter().map(|l| l.value.as_str()), n)
                    || contains_ci(&t.url, n)
                    || contains_ci(&s.last_error, n);
                if !hit {
                    continue;
                }
            }
            active_total += 1;
            if active_total <= extras.offset || active.len() >= limit {
                continue;
            }
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
    let dropped_limit = extras.dropped_limit.unwrap_or(usize::MAX);
    // Only the counts are shown: no need to copy every dropped target's labels.
    let listed = if want_dropped {
        st.targets.dropped_targets()
    } else {
        for (pool, n) in st.targets.dropped_counts() {
            if pool_ok(&pool) {
                dropped_counts.insert(pool, n as u64);
            }
        }
        Vec::new()
    };
    for d in listed {
        if !pool_ok(&d.pool) {
            continue;
        }
        *dropped_counts.entry(d.pool.clone()).or_default() += 1;
        if !want_dropped {
            continue;
        }
        if text.is_some_and(|n| !text_in(d.discovered.values().map(String::as_str), n)) {
            continue;
        }
        dropped_total += 1;
        if dropped.len() < dropped_limit {
            dropped.push(json!({ "discoveredLabels": d.discovered }));
        }
    }
    let mut data = serde_json::Map::new();
    data.insert("activeTargets".into(), Value::Array(active));
    data.insert("droppedTargets".into(), Value::Array(dropped));
    data.insert("droppedTargetCounts".into(), json!(dropped_counts));
    if extras.any() {
        data.insert("activeTotal".into(), json!(active_total));
        data.insert("droppedTotal".into(), json!(dropped_total));
    }
    Json(json!({"status": "success", "data": data})).into_response()
}

/// `GET /api/v1/targets/pools`: per scrape pool, active targets by health and the dropped count,
/// sorted by pool name; pools with only dropped targets are listed too.
pub async fn pools(State(st): State<ApiState>) -> Response {
    #[derive(Default)]
    struct Counts {
        up: usize,
        down: usize,
        unknown: usize,
        dropped: usize,
    }
    let mut pools: BTreeMap<String, Counts> = BTreeMap::new();
    for a in st.targets.active_targets() {
        let health = a.target.status.lock().health;
        let c = pools.entry(a.pool).or_default();
        match health {
            Health::Up => c.up += 1,
            Health::Down => c.down += 1,
            Health::Unknown => c.unknown += 1,
        }
    }
    for (pool, n) in st.targets.dropped_counts() {
        pools.entry(pool).or_default().dropped = n;
    }
    let data: Vec<Value> = pools
        .into_iter()
        .map(|(name, c)| {
            json!({
                "scrapePool": name,
                "active": c.up + c.down + c.unknown,
                "up": c.up,
                "down": c.down,
                "unknown": c.unknown,
                "dropped": c.dropped,
            })
        })
        .collect();
    Json(json!({"status": "success", "data": data})).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn x(s: &str) -> Result<Extras, String> {
        decode_extras(&Params::new(Some(s), &HeaderMap::new(), &[]))
    }

    #[test]
    fn extras_decode_and_name_bad_ones() {
        assert!(!x("state=active&scrapePool=a").unwrap().any());
        let e = x("health=up,down&q=Node&limit=10&offset=20&droppedLimit=0").unwrap();
        assert_eq!(e.health, Some(vec![Health::Up, Health::Down]));
        assert_eq!(e.text.as_deref(), Some("node"));
        assert_eq!(
            (e.limit, e.offset, e.dropped_limit),
            (Some(10), 20, Some(0))
        );
        for (s, field) in [
            ("health=sick", "health:"),
            ("limit=-1", "limit:"),
            ("limit=10001", "limit:"),
            ("offset=x", "offset:"),
            ("droppedLimit=y", "droppedLimit:"),
        ] {
            let e = x(s).unwrap_err();
            assert!(e.starts_with(field), "{s}: {e}");
        }
    }
}
