//! Scrape-loop behaviour against a loopback exposition server and an in-memory store: label
//! merging (`honor_labels`), limits, failures and the staleness they cause, timestamps.

use std::sync::Arc;

use tocsin_model::{is_stale_nan, Labels};
use tocsin_storage::MemoryStore;
use tocsin_testkit::expo::{ExpoOptions, ExpoServer};

use super::config::{GlobalConfig, ScrapeConfig};
use super::scrape_loop::ScrapeLoop;
use super::target::{populate, Health};
use super::ScrapeMetrics;

fn job(yaml: &str) -> super::ResolvedScrape {
    let c: ScrapeConfig = serde_norway::from_str(yaml).unwrap();
    c.resolve(&GlobalConfig::default()).unwrap()
}

fn make_loop(expo: &ExpoServer, yaml: &str, store: &MemoryStore) -> ScrapeLoop {
    let cfg = Arc::new(job(yaml));
    let mut discovered = std::collections::BTreeMap::new();
    discovered.insert("__address__".to_string(), expo.addr.to_string());
    discovered.insert("team".to_string(), "db".to_string());
    let t = match populate(&cfg, discovered) {
        super::target::Populated::Target(t) => Arc::new(t),
        _ => panic!("target not populated"),
    };
    let client = cfg
        .cfg
        .http
        .build_client(
            std::path::Path::new("."),
            std::time::Duration::from_secs(5),
            true,
        )
        .unwrap();
    ScrapeLoop::new(
        t,
        cfg,
        client,
        Arc::new(store.clone()),
        Arc::new(ScrapeMetrics::default()),
    )
}

fn series(store: &MemoryStore, name: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
    store
        .snapshot()
        .into_iter()
        .filter(|(l, _)| l.metric_name() == Some(name))
        .map(|(l, s)| (l, s.iter().map(|x| (x.t, x.v)).collect()))
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn clashing_labels_become_exported_unless_honored() {
    let body = "m{job=\"exposed\",team=\"exposed\",x=\"1\"} 1\n";
    let expo = ExpoServer::start(body, ExpoOptions::default());
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\n", &store);
    rt().block_on(l.scrape_once(1_000));
    let m = series(&store, "m");
    assert_eq!(
        m[0].0.to_string(),
        format!(
            "{{__name__=\"m\", exported_job=\"exposed\", exported_team=\"exposed\", instance=\"{}\", job=\"j\", team=\"db\", x=\"1\"}}",
            expo.addr
        )
    );
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\nhonor_labels: true\n", &store);
    rt().block_on(l.scrape_once(1_000));
    let m = series(&store, "m");
    assert_eq!(m[0].0.get("job"), Some("exposed"));
    assert_eq!(m[0].0.get("team"), Some("exposed"));
    assert_eq!(m[0].0.get("exported_job"), None);
}

#[test]
fn sample_limit_fails_the_scrape_and_marks_earlier_series_stale() {
    let expo = ExpoServer::start("a 1\nb 2\n", ExpoOptions::default());
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\nsample_limit: 2\n", &store);
    let r = rt();
    r.block_on(l.scrape_once(1_000));
    assert_eq!(series(&store, "up")[0].1, vec![(1_000, 1.0)]);
    expo.set_body("a 1\nb 2\nc 3\n");
    r.block_on(l.scrape_once(2_000));
    assert_eq!(series(&store, "up")[0].1[1], (2_000, 0.0));
    assert!(
        series(&store, "c").is_empty(),
        "nothing of a failed scrape is stored"
    );
    let a = &series(&store, "a")[0].1;
    assert_eq!(a.len(), 2);
    assert!(is_stale_nan(a[1].1) && a[1].0 == 2_000, "{a:?}");
    let st = l.target.status.lock().clone();
    assert_eq!(st.health, Health::Down);
    assert!(st.last_error.contains("sample limit"), "{}", st.last_error);
    assert_eq!(
        series(&store, "scrape_samples_scraped")[0].1[1],
        (2_000, 0.0)
    );
}

#[test]
fn label_limit_and_body_size_limit_fail_the_scrape() {
    let expo = ExpoServer::start("m{a=\"1\",b=\"2\",c=\"3\"} 1\n", ExpoOptions::default());
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\nlabel_limit: 4\n", &store);
    rt().block_on(l.scrape_once(1_000));
    assert!(l.target.status.lock().last_error.contains("label_limit"));
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\nbody_size_limit: 10B\n", &store);
    rt().block_on(l.scrape_once(1_000));
    assert!(l
        .target
        .status
        .lock()
        .last_error
        .contains("body size limit"));
    assert_eq!(series(&store, "up")[0].1, vec![(1_000, 0.0)]);
}

#[test]
fn bad_exposition_names_the_line() {
    let expo = ExpoServer::start("ok 1\nbroken{ 2\n", ExpoOptions::default());
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\n", &store);
    rt().block_on(l.scrape_once(1_000));
    let e = l.target.status.lock().last_error.clone();
    assert!(e.contains("line 2"), "{e}");
    assert!(series(&store, "ok").is_empty());
}

#[test]
fn exposed_timestamps_are_honored_unless_disabled_and_get_no_stale_marker() {
    let expo = ExpoServer::start("m 5 123456\nn 1\n", ExpoOptions::default());
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\n", &store);
    let r = rt();
    r.block_on(l.scrape_once(200_000));
    assert_eq!(series(&store, "m")[0].1, vec![(123_456, 5.0)]);
    expo.set_body("other 1\n");
    r.block_on(l.scrape_once(215_000));
    // `n` vanished and goes stale; `m` carried its own timestamp, so it does not.
    assert!(is_stale_nan(series(&store, "n")[0].1[1].1));
    assert_eq!(series(&store, "m")[0].1.len(), 1);

    expo.set_body("m 5 123456\n");
    let store = MemoryStore::new();
    let mut l = make_loop(&expo, "job_name: j\nhonor_timestamps: false\n", &store);
    r.block_on(l.scrape_once(300_000));
    assert_eq!(series(&store, "m")[0].1, vec![(300_000, 5.0)]);
}

#[test]
fn target_population_follows_prometheus() {
    let cfg = job(
        "job_name: blackbox\nmetrics_path: /probe\nparams: {module: [http_2xx]}\nrelabel_configs:\n  - source_labels: [__address__]\n    target_label: __param_target\n  - target_label: __address__\n    replacement: prober:9115\n",
    );
    let mut d = std::collections::BTreeMap::new();
    d.insert("__address__".to_string(), "example.org".to_string());
    d.insert("__meta_x".to_string(), "y".to_string());
    let super::target::Populated::Target(t) = populate(&cfg, d) else {
        panic!("dropped")
    };
    assert_eq!(
        t.url,
        "http://prober:9115/probe?module=http_2xx&target=example.org"
    );
    assert_eq!(
        t.labels.to_string(),
        "{instance=\"prober:9115\", job=\"blackbox\"}"
    );
    assert_eq!(t.discovered.get("__meta_x").map(String::as_str), Some("y"));
}
