//! The web configuration at run time: the file given by `--web.config.file` loaded into the
//! settings in force (TLS, response headers, credentials and networks), and reloaded when the
//! file or any file it names (certificates, client CA, token files) changes. Changes are noticed
//! by comparing modification times at most once a second, on the next connection or request, so
//! a rotated certificate or a new user needs no restart; a new file that does not load is logged
//! and the old settings stay in force.

pub mod auth;
pub mod config;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderName, HeaderValue};
use tocsin_confdiag::Diagnostics;

pub use config::WebConfig;

use crate::metrics::ServerMetrics;

/// How often file changes are looked for.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Settings in force: a loaded config and what is built from it.
pub struct Active {
    pub cfg: WebConfig,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Successful password checks; new with each load, so a changed hash is checked again.
    pub cache: auth::Cache,
}

impl Active {
    fn build(cfg: WebConfig) -> Result<Active, String> {
        let tls = match &cfg.tls {
            None => None,
            Some(t) => Some(tls::server_config(t).map_err(|(f, m)| format!("{f}: {m}"))?),
        };
        let headers = cfg
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        Ok(Active {
            cfg,
            tls,
            headers,
            cache: auth::Cache::default(),
        })
    }
}

/// What identifies a version of a file: a change of any part is a change of the file.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

struct Watch {
    last_check: Instant,
    files: Vec<(PathBuf, Stamp)>,
}

pub struct WebRuntime {
    /// A random bearer token with the read role, known only to this process: the embedded
    /// default configuration's self-scrape sends it (see `adapt_self_scrape`).
    pub(crate) self_token: String,
    path: Option<PathBuf>,
    active: parking_lot::RwLock<Arc<Active>>,
    watch: parking_lot::Mutex<Watch>,
    pub metrics: Arc<ServerMetrics>,
    /// The Cloud Monitoring intake, set once the server has built it: with `pubsub_push.oidc`
    /// configured, a push's Google-signed bearer token authenticates it (see `auth.rs`).
    pub(crate) pubsub: std::sync::OnceLock<Arc<crate::pubsub_push::PubsubIntake>>,
}

impl WebRuntime {
    /// The runtime for `--web.config.file` (None: plain HTTP, no authentication).
    pub fn start(
        path: Option<&Path>,
        metrics: &Arc<ServerMetrics>,
    ) -> Result<Arc<WebRuntime>, Diagnostics> {
        Ok(Arc::new(match path {
            Some(p) => WebRuntime::load(p, metrics.clone())?,
            None => WebRuntime::disabled(metrics.clone()),
        }))
    }

    /// The embedded default configuration scrapes the server itself over plain HTTP without
    /// credentials; with TLS or authentication in force its `tocsin` job is given https (the
    /// certificate is not checked: the target is this process's own listener) and this
    /// process's token, so the self-scrape keeps working. A user's `--config` is left alone.
    pub fn adapt_self_scrape(&self, cfg: &mut crate::Config) {
        let a = self.current();
        for job in cfg
            .scrape_configs
            .iter_mut()
            .filter(|j| j.job_name == "tocsin")
        {
            if a.tls.is_some() {
                job.scheme = "https".into();
                let mut t = job.http.tls_config.clone().unwrap_or_default();
                t.insecure_skip_verify = true;
                job.http.tls_config = Some(t);
            }
            if a.cfg.auth_enabled() {
                job.http.authorization = Some(tocsin_collect::httpclient::Authorization {
                    kind: None,
                    credentials: Some(self.self_token.clone()),
                    credentials_file: None,
                });
            }
        }
    }

    /// `https` when TLS is in force, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.active.read().tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// No web config file: plain HTTP, no authentication, as before.
    pub fn disabled(metrics: Arc<ServerMetrics>) -> WebRuntime {
        WebRuntime {
            self_token: random_token(),
            path: None,
            active: parking_lot::RwLock::new(Arc::new(Active {
                cfg: WebConfig::default(),
                tls: None,
                headers: Vec::new(),
                cache: auth::Cache::default(),
            })),
            watch: parking_lot::Mutex::new(Watch {
                last_check: Instant::now(),
                files: Vec::new(),
            }),
            metrics,
            pubsub: std::sync::OnceLock::new(),
        }
    }

    /// Loads `path`; any problem is a start-up error.
    pub fn load(path: &Path, metrics: Arc<ServerMetrics>) -> Result<WebRuntime, Diagnostics> {
        let files = watched_stamps(path, &[]);
        let cfg = WebConfig::load(path)?;
        for w in &cfg.warnings {
            tracing::warn!(file = %path.display(), "{w}");
        }
        let files = watched_stamps_with(files, &cfg.watched);
        let active = Active::build(cfg).map_err(|m| {
            Diagnostics(vec![tocsin_confdiag::Diagnostic::new(
                &path.display().to_string(),
                None,
                "",
                m,
            )])
        })?;
        Ok(WebRuntime {
            self_token: random_token(),
            path: Some(path.to_path_buf()),
            active: parking_lot::RwLock::new(Arc::new(active)),
            watch: parking_lot::Mutex::new(Watch {
                last_check: Instant::now(),
                files,
            }),
            metrics,
            pubsub: std::sync::OnceLock::new(),
        })
    }

    /// The settings in force, reloaded first if a watched file changed (checked at most once a
    /// second; a caller that finds another checking does not wait).
    pub fn current(&self) -> Arc<Active> {
        if let Some(path) = &self.path {
            if let Some(mut w) = self.watch.try_lock() {
                if w.last_check.elapsed() >= CHECK_EVERY {
                    w.last_check = Instant::now();
                    if w.files.iter().any(|(p, s)| stamp(p) != *s) {
                        self.reload(path, &mut w);
                    }
                }
            }
        }
        self.active.read().clone()
    }

    fn reload(&self, path: &Path, w: &mut Watch) {
        // Stamped before reading, so a change made during the load is seen at the next check.
        let before = watched_stamps(path, &[]);
        match WebConfig::load(path).and_then(|cfg| {
            let watched = cfg.watched.clone();
            let a = Active::build(cfg).map_err(|m| {
                Diagnostics(vec![tocsin_confdiag::Diagnostic::new(
                    &path.display().to_string(),
                    None,
                    "",
                    m,
                )])
            })?;
            Ok((a, watched))
        }) {
            Ok((a, watched)) => {
                for warning in &a.cfg.warnings {
                    tracing::warn!(file = %path.display(), "{warning}");
                }
                w.files = watched_stamps_with(before, &watched);
                *self.active.write() = Arc::new(a);
                tracing::info!(file = %path.display(), "web configuration reloaded");
            }
            Err(e) => {
                // Keep watching the files of the settings in force and the new stamps, so the
                // error is logged once per change, not once a second.
                let watched = self.active.read().cfg.watched.clone();
                w.files = watched_stamps_with(before, &watched);
                tracing::error!(
                    file = %path.display(),
                    "web configuration reload failed; keeping the old settings:\n{e}"
                );
            }
        }
    }
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    let rng = rustls::crypto::ring::default_provider().secure_random;
    if rng.fill(&mut b).is_err() {
        // Without randomness no token is accepted (see `auth::authenticate`).
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn watched_stamps(path: &Path, more: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    watched_stamps_with(vec![(path.to_path_buf(), stamp(path))], more)
}

fn watched_stamps_with(mut v: Vec<(PathBuf, Stamp)>, more: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    for p in more {
        v.push((p.clone(), stamp(p)));
    }
    v
}
