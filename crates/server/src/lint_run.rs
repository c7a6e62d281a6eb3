//! Lint wired to the server: the inputs of a run built from a loaded config (shared with
//! `tocsin lint`), the in-process transport that answers live questions from the API router
//! without a network hop or credentials, the read-only router over a data directory
//! (`tocsin lint --data-dir`), and the `lint:` loop that runs lint every `interval` and keeps the
//! failures for `tocsin_lint_failed{rule,resource}`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tocsin_api::{ApiState, PushMetrics, QueryState, WriteMetrics};
use tocsin_lint::live::{Live, LiveError, Transport};
use tocsin_lint::{registry, select, Context, Inputs, Outcome};
use tower::ServiceExt as _;

use crate::config::Config;

/// Largest API answer lint reads (a `/api/v1/series` page of a few series is tiny; this only
/// bounds a runaway).
const MAX_BODY: usize = 256 << 20;

/// The pieces of `cfg` lint looks at. `config_file` is where it was read from (None: the
/// embedded default), for relative rule file paths and the SARIF locations.
pub fn inputs(cfg: &Config, config_file: Option<&Path>) -> Result<Inputs, String> {
    let base = crate::config_dir(config_file);
    let rule_files = crate::alerting::rule_file_paths(&cfg.rule_files, &base)
        .map_err(|e| format!("rule_files: {e}"))?;
    let name = config_file.map_or("<embedded default config>".to_string(), |p| {
        p.display().to_string()
    });
    let mut config_texts = vec![(name, cfg.source.clone())];
    // `alertmanager: {file: F}`: the alert manager kept the text it parsed.
    if let Some(f) = cfg
        .alertmanager
        .as_ref()
        .and_then(|v| v.get("file"))
        .and_then(|v| v.as_str())
    {
        config_texts.push((base.join(f).display().to_string(), cfg.am.source.clone()));
    }
    Ok(Inputs {
        // Without an `alertmanager:` section alerts go to external Alertmanagers lint cannot see.
        alertmanager: cfg.alertmanager.is_some().then(|| cfg.am.clone()),
        rule_files,
        evaluation_interval_ms: cfg.global.evaluation_interval.0,
        scrape_interval_ms: cfg.global.scrape_interval.0,
        actions: cfg.actions.clone(),
        config_texts,
        live: None,
        settings: cfg.lint.clone().unwrap_or_default(),
    })
}

/// Answers live questions by calling an API router in-process. Called from lint's worker
/// threads (never from a runtime thread), it blocks on the runtime's handle.
pub struct RouterTransport {
    router: axum::Router,
    handle: tokio::runtime::Handle,
    what: String,
}

impl RouterTransport {
    pub fn new(router: axum::Router, handle: tokio::runtime::Handle, what: String) -> Self {
        RouterTransport {
            router,
            handle,
            what,
        }
    }
}

impl Transport for RouterTransport {
    fn describe(&self) -> String {
        self.what.clone()
    }

    fn get(&self, pq: &str) -> Result<Vec<u8>, LiveError> {
        let req = Request::get(pq)
            .body(Body::empty())
            .map_err(|e| LiveError(format!("{pq}: {e}")))?;
        let router = self.router.clone();
        self.handle.block_on(async move {
            let resp = router
                .oneshot(req)
                .await
                .map_err(|e| LiveError(format!("{pq}: {e}")))?;
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), MAX_BODY)
                .await
                .map_err(|e| LiveError(format!("{pq}: reading the answer: {e}")))?;
            if status.is_success() {
                Ok(body.to_vec())
            } else {
                Err(LiveError(error_message(status.as_u16(), &body)))
            }
        })
    }
}

/// The API's `error` field when the body has one, else the status and the body's start.
pub fn error_message(status: u16, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            )
        })
}

/// The query API over a data directory opened read-only (a stopped server's, or a copy):
/// series, queries and cardinality work; targets, rule groups and alert manager state do not
/// exist there and answer 404 or empty.
pub fn data_dir_router(dir: &Path) -> Result<axum::Router, String> {
    let db = tocsin_tsdb::Db::open_read_only(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cell = Arc::new(std::sync::OnceLock::new());
    let _ = cell.set(db);
    let lazy = Arc::new(crate::lazy_db::LazyDb(cell));
    Ok(tocsin_api::router(ApiState {
        appendable: lazy.clone(),
        deletable: lazy.clone(),
        write_metrics: Arc::new(WriteMetrics::default()),
        targets: Arc::new(tocsin_collect::scrape::NoTargets),
        push_metrics: Arc::new(PushMetrics::default()),
        queryable: lazy.clone(),
        local_queryable: None,
        query: Arc::new(QueryState::new(tocsin_promql::EngineOptions::default(), 8)),
        metadata: Arc::new(tocsin_collect::scrape::metadata::NoMetadata),
        tsdb_stats: lazy,
        status: Arc::new(tocsin_api::prom::views::NoStatus),
        rules: Arc::new(tocsin_api::prom::rules::NoRules),
        alertmanager: Arc::new(tocsin_api::am::NoAlertmanager),
        admin: None,
        actions: None,
        alerta: Default::default(),
    }))
}

/// The last run of the server's own lint, for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// (rule id, resource) of every failure.
    pub failed: Vec<(String, String)>,
    pub runs: u64,
    /// Runs that could not start (rule files gone since the last reload, ...).
    pub errors: u64,
    pub last_run_unix: f64,
    pub last_duration_s: f64,
}

#[derive(Debug, Default)]
pub struct LintState(parking_lot::Mutex<Snapshot>);

impl LintState {
    pub fn snapshot(&self) -> Snapshot {
        self.0.lock().clone()
    }
}

/// Runs lint every `lint.interval` while the config has a `lint:` section, and at once after a
/// reload (`kick`). Waits for storage first: the live rules read it.
pub async fn run_loop(
    config: impl Fn() -> (Option<Duration>, Result<Inputs, String>) + Send + 'static,
    router: axum::Router,
    state: Arc<LintState>,
    kick: Arc<tokio::sync::Notify>,
) {
    let handle = tokio::runtime::Handle::current();
    loop {
        let (every, inputs) = config();
        let Some(every) = every else {
            state.0.lock().failed.clear();
            kick.notified().await;
            continue;
        };
        let transport = RouterTransport::new(router.clone(), handle.clone(), "this server".into());
        let st = state.clone();
        let done = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut inputs = match inputs {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!("lint: cannot run: {e}");
                    st.0.lock().errors += 1;
                    return;
                }
            };
            let rules = select::select(
                registry::ALL,
                &inputs.settings.include,
                &inputs.settings.exclude,
            );
            inputs.live = Some(Live::new(Box::new(transport), now_ms()));
            let ctx = Context::new(inputs);
            let results = tocsin_lint::run(&ctx, &rules);
            let failed: Vec<(String, String)> = results
                .iter()
                .flat_map(|r| {
                    r.entries
                        .iter()
                        .filter(|e| e.outcome == Outcome::Failed)
                        .map(|e| (r.meta.id.to_string(), e.resource.name.clone()))
                })
                .collect();
            tracing::info!(
                failed = failed.len(),
                seconds = started.elapsed().as_secs_f64(),
                "lint run finished"
            );
            let mut s = st.0.lock();
            s.failed = failed;
            s.runs += 1;
            s.last_run_unix = now_ms() as f64 / 1000.0;
            s.last_duration_s = started.elapsed().as_secs_f64();
        })
        .await;
        if let Err(e) = done {
            tracing::error!("lint run failed: {e}");
            state.0.lock().errors += 1;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = kick.notified() => {}
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
