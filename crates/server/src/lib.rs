//! Wiring and lifecycle of `tocsin server`: loads the config, binds the listener, opens the
//! database in the background (`/-/ready` answers 503 until WAL replay is done), serves the HTTP
//! API behind the request guard (`tocsin_api::guard`) and the optional Graphite listener, runs
//! storage maintenance, and shuts down cleanly on SIGTERM/SIGINT or `/-/quit` (stop accepting,
//! finish in-flight requests, flush and close the WAL).

pub mod actions;
pub mod alerting;
pub mod am;
pub mod am_targets;
pub mod config;
mod config_check;
pub mod expo;
mod lazy_db;
pub mod lifecycle;
pub mod limits;
pub mod lint_run;
pub mod metrics;
mod metrics_actions;
mod metrics_compat;
mod metrics_ha;
mod metrics_lint;
mod metrics_remote;
pub mod pubsub_push;
pub mod redact;
mod remote_read;
pub mod self_alerts;
pub mod self_monitor;
mod serve;
pub mod state_open;
mod status;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tocsin_api::{ApiState, PushMetrics, QueryState, WriteMetrics};
use tocsin_collect::scrape::{ScrapeManager, ScrapeMetrics};
use tocsin_storage::Appendable;
use tocsin_tsdb::Db;

pub use config::Config;
use lazy_db::LazyDb;
pub use lifecycle::route_table;
use status::{flags_map, RulesApi, ServerStatus};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Boxed: a config error carries every problem of the file, which would make each
    /// `Result` of the server this large.
    #[error(transparent)]
    Config(Box<config::Error>),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("opening the data directory {dir}: {source}")]
    Storage {
        dir: String,
        source: Box<tocsin_tsdb::Error>,
    },
    #[error("web config file:\n{0}")]
    WebConfig(tocsin_confdiag::Diagnostics),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<config::Error> for Error {
    fn from(e: config::Error) -> Self {
        Error::Config(Box::new(e))
    }
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config_file: Option<PathBuf>,
    pub listen: String,
    pub data_dir: PathBuf,
    /// Where to write the bound address (for `--listen 127.0.0.1:0` in tests).
    pub listen_addr_file: Option<PathBuf>,
    pub maintenance_interval: Duration,
    /// Base of links in alerts; None = `http://<bound address>`.
    pub external_url: Option<String>,
    /// `--web.enable-admin-api`: delete series, snapshot, clean tombstones.
    pub enable_admin_api: bool,
    /// `--web.enable-lifecycle`: `/-/reload` and `/-/quit`.
    pub enable_lifecycle: bool,
    /// `--self-monitoring=false`: `self_monitoring.enabled` is forced off at start and reload.
    pub self_monitoring: bool,
    /// `--web.config.file`: TLS, authentication and response headers (Prometheus's format).
    pub web_config_file: Option<PathBuf>,
}

#[derive(Clone)]
struct AppState {
    db: Arc<OnceLock<Db>>,
    registry: Arc<Registry>,
    reloader: Arc<Reloader>,
    lifecycle: bool,
    quit: Arc<lifecycle::Quit>,
}

/// Holds the running configuration and applies new ones: the whole file is validated first and
/// a failure leaves the old configuration running.
struct Reloader {
    config_file: Option<PathBuf>,
    web: Arc<web::WebRuntime>,
    self_addr: String,
    current: parking_lot::Mutex<Config>,
    scrape: Arc<ScrapeManager>,
    /// Scraping starts once storage is ready; until then a reload only swaps the config.
    started: std::sync::atomic::AtomicBool,
    metrics: Arc<metrics::ReloadMetrics>,
    lock: tokio::sync::Mutex<()>,
    rules: Arc<tocsin_rules::RuleManager>,
    am_discovery: Arc<am_targets::AmDiscovery>,
    relabel: Arc<alerting::RelabelSink>,
    external_url: String,
    am: Arc<am::AmRuntime>,
    actions: Arc<tocsin_actions::Engine>,
    /// What the self-monitoring writer reads at each tick.
    self_monitor: Arc<parking_lot::RwLock<self_monitor::SelfMonitorConfig>>,
    /// False under `--self-monitoring=false`.
    self_monitoring_allowed: bool,
    /// Wakes the `lint:` loop after a reload, so a changed section applies at once.
    lint_kick: Arc<tokio::sync::Notify>,
    /// The query side's remotes (`remote_read:`), replaced on reload.
    read: Arc<tocsin_collect::remote_read::ReadFanout>,
    read_metrics: Arc<tocsin_collect::remote_read::ReadMetrics>,
    /// Remote-write queues (`remote_write:`), applied on reload.
    remote: Arc<tocsin_remote::RemoteWrite>,
}

/// A config checked and resolved down to what the rule side needs, so a reload can fail before
/// anything changes.
struct RulesSetup {
    groups: Vec<tocsin_rules::LoadedGroup>,
    alertmanagers: Vec<am_targets::PreparedAm>,
}

/// The directory relative paths in the config resolve against. A bare file name
/// (`--config tocsin.yml`) has the empty path as parent, which `current_dir` and friends refuse:
/// that is `.`.
pub fn config_dir(file: Option<&Path>) -> PathBuf {
    match file.and_then(Path::parent) {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Reloader {
    fn base_dir(&self) -> PathBuf {
        config_dir(self.config_file.as_deref())
    }

    fn load(&self) -> Result<Config, Error> {
        let mut cfg = match &self.config_file {
            Some(p) => Config::load_file(p)?,
            None => {
                let mut c = Config::load_default_for(&self.self_addr)?;
                self.web.adapt_self_scrape(&mut c);
                c
            }
        };
        if !self.self_monitoring_allowed {
            cfg.self_monitoring.enabled = false;
        }
        cfg.log_warnings();
        Ok(cfg)
    }

    fn rules_setup(&self, cfg: &Config) -> Result<RulesSetup, String> {
        let base = self.base_dir();
        let mut groups = alerting::load_groups(
            &cfg.rule_files,
            &base,
            cfg.global.evaluation_interval.0,
            cfg.global.rule_query_offset.map(|d| d.0),
        )?;
        groups.extend(cfg.self_monitoring.groups()?);
        let alertmanagers = am_targets::prepare(&cfg.alerting, &base)?;
        Ok(RulesSetup {
            groups,
            alertmanagers,
        })
    }

    fn apply_rules(&self, cfg: &Config, setup: RulesSetup) {
        let ctx = tocsin_rules::EvalContext {
            external_labels: tocsin_model::Labels::from_pairs(
                &cfg.global
                    .external_labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ),
            external_url: self.external_url.clone(),
        };
        // Policies first: the alert manager's new receivers name them.
        if let Err(e) = self.actions.reload(&cfg.actions, &self.base_dir()) {
            tracing::error!(error = %e, "actions reload failed; keeping the old policies");
        }
        if let Err(e) = self.am.am.reload(cfg.am.clone()) {
            tracing::error!(error = %e, "alert manager reload failed; keeping its old configuration");
        }
        if let Err(e) = self
            .am
            .heartbeats
            .configure(&cfg.heartbeats, self.am.clock.now_ms())
        {
            tracing::error!(error = %e, "heartbeat configuration failed");
        }
        self.am_discovery.apply(setup.alertmanagers);
        *self.relabel.configs.write() = cfg.alerting.alert_relabel_configs.clone();
        *self.self_monitor.write() = cfg.self_monitoring.clone();
        self.rules.update(setup.groups, ctx);
    }

    /// Starts scraping and rule evaluation with the current config (called once storage is ready).
    fn start(&self) -> Result<(), String> {
        let cfg = self.current.lock().clone();
        self.scrape
            .apply(&cfg.global, &cfg.scrape_configs, &self.base_dir())
            .map_err(|e| e.to_string())?;
        let setup = self.rules_setup(&cfg)?;
        self.apply_rules(&cfg, setup);
        self.remote
            .apply(cfg.remote_write(), &cfg.external_labels(), &self.base_dir())
            .map_err(|e| e.to_string())?;
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn reload(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let _serial = self.lock.lock().await;
        let res = self.load().map_err(|e| e.to_string()).and_then(|cfg| {
            let old = self.current.lock().clone();
            // Rule files (and the push verifier's key file) are read and checked before
            // anything changes.
            let setup = self.rules_setup(&cfg)?;
            let verifier = cfg.pubsub_push.verifier(&self.base_dir())?;
            let read_set = remote_read::build(
                &cfg,
                &self.base_dir(),
                &self.read_metrics,
                &tokio::runtime::Handle::current(),
            )?;
            // Remote-write clients (credential and certificate files) are built before anything
            // changes too.
            for (i, c) in cfg.remote_write().iter().enumerate() {
                tocsin_remote::endpoint(c, &self.base_dir())
                    .map_err(|e| format!("remote_write[{i}]: {e}"))?;
            }
            if self.started.load(Ordering::SeqCst) {
                self.scrape
                    .apply(&cfg.global, &cfg.scrape_configs, &self.base_dir())
                    .map_err(|e| e.to_string())?;
                self.apply_rules(&cfg, setup);
                self.remote
                    .apply(cfg.remote_write(), &cfg.external_labels(), &self.base_dir())
                    .map_err(|e| e.to_string())?;
            }
            self.am.pubsub.set_verifier(verifier);
            self.read.apply(read_set);
            if format!("{:?}", old.storage) != format!("{:?}", cfg.storage) {
                tracing::warn!("storage settings changed; they take effect at the next restart");
            }
            if old.ha != cfg.ha {
                tracing::warn!("ha settings changed; they take effect at the next restart");
            }
            if old.query != cfg.query {
                tracing::warn!("query settings changed; they take effect at the next restart");
            }
            if old.limits != cfg.limits || old.web != cfg.web {
                tracing::warn!(
                    "limits or web settings changed; they take effect at the next restart"
                );
            }
            *self.current.lock() = cfg;
            Ok(())
        });
        match &res {
            Ok(()) => {
                self.metrics.last_ok.store(true, Ordering::Relaxed);
                self.metrics
                    .last_success_unix
                    .store(unix_now(), Ordering::Relaxed);
                tracing::info!("configuration reloaded");
                self.lint_kick.notify_one();
            }
            Err(e) => {
                self.metrics.last_ok.store(false, Ordering::Relaxed);
                self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!("configuration reload failed, keeping the old one: {e}");
            }
        }
        res
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs the server until a shutdown signal or a fatal start-up error.
pub async fn run(opts: ServerOptions) -> Result<(), Error> {
    // Checked before binding so a bad file fails fast; the default is re-read below with the bound
    // address as its self-scrape target.
    let mut cfg = match &opts.config_file {
        Some(p) => Config::load_file(p)?,
        None => Config::load_default()?,
    };
    cfg.log_warnings();
    let file = opts
        .config_file
        .as_ref()
        .map_or("<embedded default config>".to_string(), |p| {
            p.display().to_string()
        });
    let db_opts = cfg.storage.to_options(&file)?;
    let query_settings = cfg.query_settings(&file)?;
    let mut ingest_limits = cfg.limits.ingest(cfg.storage.max_future_ms(&file)?);
    // Samples retention would delete at the next maintenance are refused instead of acknowledged.
    ingest_limits.retention_ms = db_opts.retention_ms;
    let silence_limits = cfg.limits.silences(&file)?;
    let web = cfg.web.settings(&file)?;
    let guards = web
        .guards(opts.external_url.as_deref())
        .map_err(Error::Internal)?;
    let server_metrics = Arc::new(metrics::ServerMetrics::default());
    let web_rt = web::WebRuntime::start(opts.web_config_file.as_deref(), &server_metrics)
        .map_err(Error::WebConfig)?;
    let start_ms = tocsin_collect::scrape::scrape_loop::now_ms();

    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| Error::Listen {
            addr: opts.listen.clone(),
            source: e,
        })?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %opts.data_dir.display(), "listening");
    if let Some(f) = &opts.listen_addr_file {
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())?;
        std::fs::rename(&tmp, f)?;
    }

    if opts.config_file.is_none() {
        cfg = Config::load_default_for(&addr.to_string())?;
        web_rt.adapt_self_scrape(&mut cfg);
    }
    if !opts.self_monitoring {
        cfg.self_monitoring.enabled = false;
    }

    let db_cell: Arc<OnceLock<Db>> = Arc::new(OnceLock::new());
    let write_metrics = Arc::new(WriteMetrics::default());
    let scrape_metrics = Arc::new(ScrapeMetrics::default());
    let reload_metrics = Arc::new(metrics::ReloadMetrics::default());
    reload_metrics
        .last_ok
        .store(true, std::sync::atomic::Ordering::Relaxed);
    reload_metrics
        .last_success_unix
        .store(unix_now(), std::sync::atomic::Ordering::Relaxed);
    let push_metrics = Arc::new(PushMetrics::default());
    let external_url = opts
        .external_url
        .clone()
        .unwrap_or_else(|| format!("{}://{addr}", web_rt.scheme()))
        .trim_end_matches('/')
        .to_string();
    let appendable: Arc<dyn Appendable> = Arc::new(limits::GuardedAppendable {
        inner: LazyDb(db_cell.clone()),
        limits: ingest_limits,
    });
    let sender = tocsin_rules::sender::AlertmanagerSender::new();
    let sender_task = tokio::spawn(sender.clone().run());
    let am_discovery = am_targets::AmDiscovery::new(sender.clone());
    std::fs::create_dir_all(&opts.data_dir)?;
    let state_path = opts.data_dir.join("state.db");
    let clock: Arc<dyn tocsin_model::Clock> = Arc::new(tocsin_model::SystemClock);
    let state = state_open::open(&state_path, clock.now_ms(), &server_metrics)?;
    let base_dir = config_dir(opts.config_file.as_deref());
    let read_metrics = Arc::new(tocsin_collect::remote_read::ReadMetrics::default());
    let read_fanout = remote_read::fanout(db_cell.clone());
    read_fanout.apply(
        remote_read::build(
            &cfg,
            &base_dir,
            &read_metrics,
            &tokio::runtime::Handle::current(),
        )
        .map_err(Error::Internal)?,
    );
    let pubsub = Arc::new(pubsub_push::PubsubIntake::new(
        tocsin_alerts::pubsub_log::PubsubLog::new(state.db.clone()),
        cfg.pubsub_push
            .verifier(&base_dir)
            .map_err(Error::Internal)?,
    ));
    let _ = web_rt.pubsub.set(pubsub.clone());
    // The actions engine comes first: the alert manager's receivers hold it.
    let action_engine = tocsin_actions::Engine::new(
        &cfg.actions,
        tocsin_actions::EngineOptions {
            state: state.db.clone(),
            clock: clock.clone(),
            base_dir: base_dir.clone(),
            external_url: external_url.clone(),
        },
    )
    .map_err(|e| Error::Internal(format!("starting the actions engine: {e}")))?;
    let alert_manager = tocsin_alerts::AlertManager::with_receiver_builder(
        cfg.am.clone(),
        tocsin_alerts::ManagerOptions {
            state: Some(state.db),
            base_dir,
            external_url: external_url.clone(),
            clock: clock.clone(),
        },
        actions::receiver_builder(action_engine.clone()),
    )
    .map_err(|e| Error::Internal(format!("starting the alert manager: {e}")))?;
    let ha = match &cfg.ha {
        None => None,
        Some(h) => {
            let mut h = h.clone();
            if let Some((f, m)) = h.validate(&config_dir(opts.config_file.as_deref())).pop() {
                return Err(Error::Internal(format!("{f}: {m}")));
            }
            let ha =
                tocsin_alerts::ha::Ha::start(h).map_err(|e| Error::Internal(format!("ha: {e}")))?;
            alert_manager
                .attach_ha(ha.clone())
                .map_err(|e| Error::Internal(format!("ha: {e}")))?;
            action_engine.attach_ha(ha.clone());
            tracing::info!(replica = %ha.replica(), "replica: alert state shared in PostgreSQL");
            Some(ha)
        }
    };
    let am_bridge = Arc::new(actions::AmBridge::default());
    am_bridge.set(&alert_manager);
    action_engine.attach(
        am_bridge,
        Arc::new(actions::PromQuery {
            engine: Arc::new(tocsin_promql::Engine::new(query_settings.engine.clone())),
            queryable: Arc::new(LazyDb(db_cell.clone())),
        }),
    );
    let am_task = alert_manager.spawn();
    // Replicas mirror their action executions into the journal they share.
    let mirror_task = ha
        .clone()
        .map(|h| tokio::spawn(actions::mirror_loop(action_engine.clone(), h)));
    let heartbeats = Arc::new(tocsin_alerts::heartbeat::Heartbeats::new());
    heartbeats
        .configure(&cfg.heartbeats, clock.now_ms())
        .map_err(|e| Error::Internal(e.to_string()))?;
    let am_rt = Arc::new(am::AmRuntime {
        am: alert_manager.clone(),
        heartbeats,
        appendable: appendable.clone(),
        clock: clock.clone(),
        silence_limits,
        pubsub,
    });
    am_rt.take_shared_ops(action_engine.clone());
    let relabel = Arc::new(alerting::RelabelSink {
        configs: parking_lot::RwLock::new(Vec::new()),
        inner: Arc::new(tocsin_rules::sender::FanOut(vec![
            Arc::new(am::BuiltinSink(alert_manager.clone())),
            sender.clone(),
        ])),
    });
    let rule_manager = tocsin_rules::RuleManager::new(tocsin_rules::ManagerOptions {
        engine: Arc::new(tocsin_promql::Engine::new(query_settings.engine.clone())),
        queryable: Arc::new(LazyDb(db_cell.clone())),
        appendable: appendable.clone(),
        clock: Arc::new(tocsin_model::SystemClock),
        sink: relabel.clone(),
        resend_delay_ms: cfg.rules.resend_delay.0,
        restore: tocsin_rules::RestoreOptions {
            outage_tolerance_ms: cfg.rules.outage_tolerance.0,
            for_grace_period_ms: cfg.rules.for_grace_period.0,
        },
    });
    let lint_state = Arc::new(lint_run::LintState::default());
    let scrape = Arc::new(ScrapeManager::new(
        appendable.clone(),
        scrape_metrics.clone(),
    ));
    let remote = Arc::new(tocsin_remote::RemoteWrite::new(
        &opts.data_dir,
        scrape.metadata(),
    ));
    let mut registry = metrics::registry(metrics::Sources {
        lint: lint_state.clone(),
        remote: remote.clone(),
        rules: rule_manager.clone(),
        sender: sender.clone(),
        am: am_rt.clone(),
        db: db_cell.clone(),
        write: write_metrics.clone(),
        push: push_metrics.clone(),
        scrape: scrape_metrics.clone(),
        reload: reload_metrics.clone(),
        server: server_metrics.clone(),
        data_dir: opts.data_dir.clone(),
        guard: guards.refused.clone(),
        actions: action_engine.clone(),
    });
    registry.register_collector(Box::new(remote_read::Metrics(read_metrics.clone())));
    if let Some(ha) = &ha {
        registry.register_collector(Box::new(metrics_ha::Metrics(ha.clone())));
    }
    let registry = Arc::new(registry);
    let self_monitor = Arc::new(parking_lot::RwLock::new(cfg.self_monitoring.clone()));
    let (self_alert_task, self_alert_kick) = self_alerts::spawn_builtin(
        relabel.clone(),
        clock.clone(),
        &external_url,
        state.set_aside,
        db_cell.clone(),
        ha.clone(),
    );
    let (graphite_stop, graphite_stop_rx) = tokio::sync::watch::channel(false);
    let graphite = match &cfg.graphite {
        None => None,
        Some(g) => {
            let l = tokio::net::TcpListener::bind(&g.listen)
                .await
                .map_err(|e| Error::Listen {
                    addr: g.listen.clone(),
                    source: e,
                })?;
            tracing::info!(addr = %l.local_addr()?, "graphite plaintext listening");
            Some(tokio::spawn(tocsin_collect::graphite::serve(
                l,
                Arc::new(g.clone()),
                appendable.clone(),
                graphite_stop_rx,
            )))
        }
    };
    let lint_kick = Arc::new(tokio::sync::Notify::new());
    let flags = flags_map(&opts, &cfg, &query_settings);
    let reloader = Arc::new(Reloader {
        config_file: opts.config_file.clone(),
        web: web_rt.clone(),
        self_addr: addr.to_string(),
        current: parking_lot::Mutex::new(cfg),
        scrape: scrape.clone(),
        started: std::sync::atomic::AtomicBool::new(false),
        metrics: reload_metrics,
        lock: tokio::sync::Mutex::new(()),
        rules: rule_manager.clone(),
        am_discovery: am_discovery.clone(),
        relabel,
        external_url,
        am: am_rt.clone(),
        actions: action_engine.clone(),
        self_monitor: self_monitor.clone(),
        self_monitoring_allowed: opts.self_monitoring,
        lint_kick: lint_kick.clone(),
        read: read_fanout.clone(),
        read_metrics,
        remote: remote.clone(),
    });
    // Registered now: SIGHUP's default action would kill a server still replaying its WAL.
    let hup = tokio::spawn(lifecycle::sighup_loop(reloader.clone()));
    let self_store = appendable.clone();
    let api = tocsin_api::router(ApiState {
        appendable,
        deletable: Arc::new(LazyDb(db_cell.clone())),
        write_metrics,
        targets: scrape.clone(),
        push_metrics,
        queryable: read_fanout,
        local_queryable: Some(Arc::new(LazyDb(db_cell.clone()))),
        query: Arc::new(QueryState::new(
            query_settings.engine.clone(),
            query_settings.max_concurrency,
        )),
        metadata: scrape.metadata(),
        tsdb_stats: Arc::new(LazyDb(db_cell.clone())),
        status: Arc::new(ServerStatus {
            reloader: reloader.clone(),
            db: db_cell.clone(),
            flags,
            start_ms,
        }),
        rules: Arc::new(RulesApi(rule_manager.clone(), am_discovery.clone())),
        alertmanager: am_rt.clone(),
        admin: opts
            .enable_admin_api
            .then(|| Arc::new(LazyDb(db_cell.clone())) as Arc<dyn tocsin_api::admin::TsdbAdmin>),
        actions: Some(Arc::new(actions::ActionsApiImpl(
            action_engine.clone(),
            ha.clone(),
        ))),
        alerta: Default::default(),
    });
    // Lint asks the API in-process: no network hop, and no credentials when web auth is on.
    let lint_router = api.clone();
    let quit = lifecycle::Quit::new();
    let app = lifecycle::own_router(AppState {
        db: db_cell.clone(),
        registry: registry.clone(),
        reloader: reloader.clone(),
        lifecycle: opts.enable_lifecycle,
        quit: quit.clone(),
    })
    .merge(api)
    .layer(axum::middleware::from_fn_with_state(
        Arc::new(guards),
        tocsin_api::guard::guard,
    ));
    let app = web::auth::layer(app, web_rt.clone());
    // Outermost, so routing, the guard and authentication all see the path without the prefix.
    let prefix = tocsin_api::ui::route_prefix(opts.external_url.as_deref().unwrap_or(""));
    let app = axum::Router::new().fallback_service(tower::ServiceExt::map_request(
        app,
        tocsin_api::ui::strip_prefix(prefix),
    ));

    let (fatal_tx, mut fatal_rx) = tokio::sync::mpsc::channel::<Error>(1);
    let dir = opts.data_dir.clone();
    let cell = db_cell.clone();
    let open = tokio::task::spawn_blocking(move || match Db::open(&dir, db_opts) {
        Ok(db) => {
            let _ = cell.set(db);
            Ok(())
        }
        Err(e) => Err(Error::Storage {
            dir: dir.display().to_string(),
            source: Box::new(e),
        }),
    });
    let watcher = tokio::spawn(async move {
        match open.await {
            Ok(Ok(())) => {
                tracing::info!("storage ready");
            }
            Ok(Err(e)) => {
                let _ = fatal_tx.send(e).await;
            }
            Err(e) => {
                let _ = fatal_tx
                    .send(Error::Internal(format!("storage start-up panicked: {e}")))
                    .await;
            }
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        web,
        server_metrics.clone(),
        web_rt,
        stop_rx,
    ));

    let mut maintenance = None;
    let mut heartbeat_task = None;
    let mut self_monitor_task = None;
    let mut actions_task = None;
    let mut lint_task = None;
    let mut fatal = None;
    let ready_wait = async {
        while db_cell.get().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        // A closed channel (start-up succeeded) disables this branch instead of ending the server.
        Some(e) = fatal_rx.recv() => { fatal = Some(e); }
        _ = lifecycle::shutdown_signal(quit.clone()) => {}
        _ = async {
            ready_wait.await;
            if let Some(db) = db_cell.get() {
                maintenance = Some(db.start_maintenance(opts.maintenance_interval));
            }
            // Damage found while opening storage is alerted on now, not a check interval later.
            self_alert_kick.notify_one();
            am_rt.restore_heartbeats(&LazyDb(db_cell.clone()));
            heartbeat_task = Some(tokio::spawn(am_rt.clone().heartbeat_loop()));
            self_monitor_task = Some(self_monitor::spawn_writer(
                registry.clone(),
                self_store.clone(),
                clock.clone(),
                addr.to_string(),
                self_monitor.clone(),
            ));
            if let Err(e) = reloader.start() {
                tracing::error!("starting scrapes: {e}");
            }
            // Decisions wait for storage: guards query it (fleet size, target age). Alerts
            // that reached the engine meanwhile are claimed and held.
            match action_engine.resume() {
                Ok(0) => {}
                Ok(n) => tracing::info!(executions = n, "open action executions resumed"),
                Err(e) => tracing::error!(error = %e, "resuming action executions failed"),
            }
            actions_task = Some(action_engine.spawn());
            let r = reloader.clone();
            lint_task = Some(tokio::spawn(lint_run::run_loop(
                move || {
                    let cfg = r.current.lock();
                    let every = cfg
                        .lint
                        .as_ref()
                        .map(|l| Duration::from_millis(l.interval.0.max(60_000) as u64));
                    (every, lint_run::inputs(&cfg, r.config_file.as_deref()))
                },
                lint_router.clone(),
                lint_state.clone(),
                lint_kick.clone(),
            )));
            lifecycle::shutdown_signal(quit.clone()).await;
        } => {}
    }
    hup.abort();
    scrape.stop();
    rule_manager.stop();
    am_discovery.stop();
    sender_task.abort();
    if let Some(t) = heartbeat_task {
        t.abort();
    }
    if let Some(t) = self_monitor_task {
        t.abort();
    }
    alert_manager.shutdown();
    am_task.abort();
    if let Some(t) = mirror_task {
        t.abort();
    }
    // Hands the sender lease over at once instead of after the takeover time.
    if let Some(ha) = &ha {
        ha.shutdown();
    }
    if let Some(t) = actions_task {
        t.abort();
    }
    if let Some(t) = lint_task {
        t.abort();
    }
    // An action in flight is given a moment to record its outcome; one that does not make it
    // is resumed (or marked unknown) at the next start.
    if tokio::time::timeout(Duration::from_secs(10), action_engine.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!("actions still running at shutdown; they are resumed at the next start");
    }
    let _ = stop_tx.send(());
    self_alert_task.abort();
    if let Err(e) = server.await {
        tracing::error!(error = %e, "HTTP server task failed");
    }
    // Graphite connections commit what they have read before the WAL closes.
    let _ = graphite_stop.send(true);
    if let Some(g) = graphite {
        match g.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "graphite listener error"),
            Err(e) => tracing::error!(error = %e, "graphite listener task failed"),
        }
    }
    // Remote-write queues send what they hold for a moment and save their WAL positions.
    remote.shutdown().await;
    drop(maintenance);
    let _ = watcher.await;
    if let Some(db) = db_cell.get() {
        if let Err(e) = db.close() {
            tracing::error!(error = %e, "closing the WAL failed");
        } else {
            tracing::info!("WAL flushed and closed");
        }
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
