//! Discovery of the external Alertmanagers named in `alerting.alertmanagers`: runs each entry's
//! static, file and HTTP discovery, turns every discovered target into an alerts URL the way
//! Prometheus does (`__scheme__` and `__alerts_path__` labels, then the entry's
//! `relabel_configs`), and keeps the sender's target list and the `/api/v1/alertmanagers` view
//! current as Alertmanagers come and go.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tocsin_collect::discovery::{
    spawn_tagged, Discoverer, FileDiscoverer, HttpDiscoverer, StaticDiscoverer, TargetGroup,
    ADDRESS_LABEL,
};
use tocsin_model::LabelsBuilder;
use tocsin_rules::sender::{AlertmanagerSender, AmTarget};
use tokio::sync::{mpsc, watch};

use crate::alerting::{AlertingConfig, AlertmanagerConfig};

const SCHEME_LABEL: &str = "__scheme__";
const PATH_LABEL: &str = "__alerts_path__";

/// How long a new discovery may stay silent before its (possibly partial) view replaces the old
/// one: until then the previous targets keep receiving alerts, so a reload does not drop any.
const FIRST_VIEW_DEADLINE: Duration = Duration::from_secs(5);

/// Alertmanagers in use and those the relabelling dropped, as alerts URLs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AmStatus {
    pub active: Vec<String>,
    pub dropped: Vec<String>,
}

/// One `alerting.alertmanagers` entry, checked and with its HTTP client built.
pub struct PreparedAm {
    cfg: AlertmanagerConfig,
    /// Client and timeout of the entry; each discovered target gets a copy with its URL.
    proto: AmTarget,
    http_sd: Vec<HttpDiscoverer>,
}

/// Checks every entry and builds what discovery needs, so a bad reload fails before anything
/// changes. Messages name the entry.
pub fn prepare(cfg: &AlertingConfig, base: &Path) -> Result<Vec<PreparedAm>, String> {
    let mut out = Vec::new();
    for (i, am) in cfg.alertmanagers.iter().enumerate() {
        let f = |m: String| format!("alerting.alertmanagers[{i}]: {m}");
        let timeout = Duration::from_millis(am.timeout.map_or(10_000, |d| d.0) as u64);
        let client = am
            .http
            .build_client(base, timeout, false)
            .map_err(|e| f(e.to_string()))?;
        let mut http_sd = Vec::new();
        for h in &am.http_sd_configs {
            http_sd.push(HttpDiscoverer::new(h).map_err(|e| f(e.to_string()))?);
        }
        let mut cfg = am.clone();
        for fsd in &mut cfg.file_sd_configs {
            fsd.set_directory(base);
        }
        out.push(PreparedAm {
            cfg,
            proto: AmTarget {
                url: String::new(),
                client,
                timeout,
            },
            http_sd,
        });
    }
    Ok(out)
}

/// Runs the discovery of the configured Alertmanagers and feeds the sender.
pub struct AmDiscovery {
    sender: Arc<AlertmanagerSender>,
    status: Arc<RwLock<AmStatus>>,
    stop: Mutex<Option<watch::Sender<bool>>>,
}

impl AmDiscovery {
    pub fn new(sender: Arc<AlertmanagerSender>) -> Arc<AmDiscovery> {
        Arc::new(AmDiscovery {
            sender,
            status: Arc::new(RwLock::new(AmStatus::default())),
            stop: Mutex::new(None),
        })
    }

    /// What `/api/v1/alertmanagers` shows.
    pub fn status(&self) -> AmStatus {
        self.status.read().clone()
    }

    /// Replaces the running discovery with one for `ams` (at start and at every reload). Must be
    /// called inside a tokio runtime.
    pub fn apply(&self, ams: Vec<PreparedAm>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(old) = self.stop.lock().replace(stop_tx) {
            let _ = old.send(true);
        }
        let (tx, rx) = mpsc::channel::<((usize, usize), Vec<TargetGroup>)>(16);
        let mut sources = 0;
        let mut entries = Vec::with_capacity(ams.len());
        for (i, am) in ams.into_iter().enumerate() {
            let mut ds: Vec<Box<dyn Discoverer>> = Vec::new();
            if !am.cfg.static_configs.is_empty() {
                ds.push(Box::new(StaticDiscoverer::new(&am.cfg.static_configs)));
            }
            for f in &am.cfg.file_sd_configs {
                ds.push(Box::new(FileDiscoverer::new(f)));
            }
            for h in am.http_sd {
                ds.push(Box::new(h));
            }
            sources += ds.len();
            spawn_tagged(ds, &tx, &stop_rx, |d| (i, d));
            entries.push(Entry {
                cfg: am.cfg,
                proto: am.proto,
            });
        }
        drop(tx);
        let sync = TargetSync {
            entries,
            sender: self.sender.clone(),
            status: self.status.clone(),
        };
        tokio::spawn(sync.run(rx, sources, stop_rx));
    }

    pub fn stop(&self) {
        if let Some(s) = self.stop.lock().take() {
            let _ = s.send(true);
        }
    }
}

struct Entry {
    cfg: AlertmanagerConfig,
    proto: AmTarget,
}

/// Merges the discoverers' updates and publishes the resulting targets.
struct TargetSync {
    entries: Vec<Entry>,
    sender: Arc<AlertmanagerSender>,
    status: Arc<RwLock<AmStatus>>,
}

impl TargetSync {
    async fn run(
        self,
        mut rx: mpsc::Receiver<((usize, usize), Vec<TargetGroup>)>,
        sources: usize,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut pool: BTreeMap<(usize, usize, String), TargetGroup> = BTreeMap::new();
        let mut heard: HashSet<(usize, usize)> = HashSet::new();
        let mut published = false;
        if sources == 0 {
            self.publish(&pool);
            published = true;
        }
        let deadline = tokio::time::sleep(FIRST_VIEW_DEADLINE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(((i, d), groups)) = msg else { return };
                    if *stop.borrow() {
                        return;
                    }
                    for g in groups {
                        let key = (i, d, g.source.clone());
                        if g.targets.is_empty() {
                            pool.remove(&key);
                        } else {
                            pool.insert(key, g);
                        }
                    }
                    heard.insert((i, d));
                    if published || heard.len() >= sources {
                        self.publish(&pool);
                        published = true;
                    }
                }
                _ = &mut deadline, if !published => {
                    tracing::warn!("not every Alertmanager discovery answered within 5 s; using what is known");
                    self.publish(&pool);
                    published = true;
                }
                _ = stop.changed() => return,
            }
        }
    }

    fn publish(&self, pool: &BTreeMap<(usize, usize, String), TargetGroup>) {
        let mut seen = BTreeSet::new();
        let mut targets = Vec::new();
        let mut status = AmStatus::default();
        for ((i, _, _), g) in pool {
            let e = &self.entries[*i];
            let (active, dropped) = resolve(&e.cfg, g);
            status.dropped.extend(dropped);
            for url in active {
                // The same Alertmanager found twice gets each alert once, as in Prometheus.
                if seen.insert(url.clone()) {
                    status.active.push(url.clone());
                    targets.push(AmTarget {
                        url,
                        ..e.proto.clone()
                    });
                }
            }
        }
        tracing::info!(
            active = status.active.len(),
            dropped = status.dropped.len(),
            "Alertmanagers discovered"
        );
        self.sender.set_targets(targets);
        *self.status.write() = status;
    }
}

/// Prometheus's path of the alerts endpoint under `path_prefix`: `path.Join("/", prefix,
/// "/api/v2/alerts")`.
fn alerts_path(prefix: &str) -> String {
    let mut p: String = prefix
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(|s| format!("/{s}"))
        .collect();
    p.push_str("/api/v2/alerts");
    p
}

/// The alerts URLs of one group's targets: kept ones, and the dropped ones (built from their
/// labels before relabelling, as Prometheus lists them).
pub fn resolve(cfg: &AlertmanagerConfig, g: &TargetGroup) -> (Vec<String>, Vec<String>) {
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    for t in &g.targets {
        let mut lb = LabelsBuilder::new();
        for (k, v) in t {
            lb.set(k, v);
        }
        lb.set(SCHEME_LABEL, &cfg.scheme);
        lb.set(PATH_LABEL, &alerts_path(&cfg.path_prefix));
        for (k, v) in &g.labels {
            if !t.contains_key(k) {
                lb.set(k, v);
            }
        }
        let before = url_of(&lb);
        if !tocsin_collect::relabel::process(&mut lb, &cfg.relabel_configs) {
            if let Some(u) = before {
                dropped.push(u);
            }
            continue;
        }
        match url_of(&lb) {
            Some(u) => active.push(u),
            None => tracing::warn!(
                address = lb.get(ADDRESS_LABEL).unwrap_or(""),
                "discovered Alertmanager has no valid host:port address; skipped"
            ),
        }
    }
    (active, dropped)
}

fn url_of(lb: &LabelsBuilder) -> Option<String> {
    let addr = lb.get(ADDRESS_LABEL).unwrap_or("");
    if addr.is_empty() || addr.contains('/') {
        return None;
    }
    Some(format!(
        "{}://{addr}{}",
        lb.get(SCHEME_LABEL).unwrap_or("http"),
        lb.get(PATH_LABEL).unwrap_or("/api/v2/alerts")
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn am(yaml: &str) -> AlertmanagerConfig {
        serde_norway::from_str(yaml).expect("test config parses")
    }

    fn group(targets: &[&[(&str, &str)]], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            source: "s".into(),
            targets: targets
                .iter()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn alerts_path_joins_like_go_path_join() {
        assert_eq!(alerts_path(""), "/api/v2/alerts");
        assert_eq!(alerts_path("/"), "/api/v2/alerts");
        assert_eq!(alerts_path("am"), "/am/api/v2/alerts");
        assert_eq!(alerts_path("/am//x/"), "/am/x/api/v2/alerts");
    }

    #[test]
    fn scheme_prefix_and_relabelling_shape_the_url() {
        let cfg = am("scheme: https\npath_prefix: /alertmanager\nrelabel_configs:\n  - source_labels: [role]\n    regex: standby\n    action: drop\n  - source_labels: [__address__]\n    regex: '(.*):9093'\n    target_label: __address__\n    replacement: '${1}:9443'\n");
        let g = group(
            &[
                &[("__address__", "am-1:9093"), ("role", "primary")],
                &[("__address__", "am-2:9093"), ("role", "standby")],
            ],
            &[("dc", "x")],
        );
        let (active, dropped) = resolve(&cfg, &g);
        assert_eq!(active, vec!["https://am-1:9443/alertmanager/api/v2/alerts"]);
        assert_eq!(
            dropped,
            vec!["https://am-2:9093/alertmanager/api/v2/alerts"]
        );
    }

    #[test]
    fn relabelling_can_change_scheme_and_path() {
        let cfg = am("relabel_configs:\n  - target_label: __scheme__\n    replacement: https\n  - target_label: __alerts_path__\n    replacement: /custom/api/v2/alerts\n");
        let g = group(&[&[("__address__", "am:9093")]], &[]);
        let (active, _) = resolve(&cfg, &g);
        assert_eq!(active, vec!["https://am:9093/custom/api/v2/alerts"]);
    }
}
