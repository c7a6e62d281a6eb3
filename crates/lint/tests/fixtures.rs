//! Every lint rule against its fixtures: `testdata/<id, slashes as dashes>/ok/` must give at least
//! one ok and no failure; `fail/` must give a failure whose reason contains `fail/expected.txt`.
//! A fixture directory holds any of `rules.yml`, `alertmanager.yml`, `actions.yml` and `tocsin.yml` (the
//! `actions:` section's value), and `config-problems.txt`: the server loader's verdict as
//! `file:line:col: path: message` lines (empty: it loaded). A live rule's fixture holds `live.json`:
//! the answers of the server's API as a list of `{path, contains, body}`; a request gets the body of
//! the first entry whose path is its path and whose `contains` (if any) is in its decoded query
//! string, else a 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tocsin_lint::live::{Live, LiveError, Transport};
use tocsin_lint::queries::config_load::ConfigLoad;
use tocsin_lint::{registry, Context, Inputs, Outcome};

/// The run's "now" in live fixtures (2027-01-15T08:00:00Z).
const NOW_MS: i64 = 1_800_000_000_000;

struct Canned(Vec<serde_json::Value>);

impl Transport for Canned {
    fn describe(&self) -> String {
        "fixture".into()
    }
    fn get(&self, pq: &str) -> Result<Vec<u8>, LiveError> {
        let (path, q) = pq.split_once('?').unwrap_or((pq, ""));
        let decoded: String = form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| format!("{k}={v}&"))
            .collect();
        self.0
            .iter()
            .find(|e| {
                e["path"] == path && e["contains"].as_str().is_none_or(|c| decoded.contains(c))
            })
            .map(|e| serde_json::to_vec(&e["body"]).unwrap())
            .ok_or_else(|| LiveError(format!("404 page not found: {path}?{decoded}")))
    }
}

fn run(id: &str, dir: &Path) -> Vec<tocsin_lint::Entry> {
    let am = dir.join("alertmanager.yml");
    let rules = dir.join("rules.yml");
    let ctx = Context::new(Inputs {
        alertmanager: am
            .exists()
            .then(|| tocsin_alerts::AmConfig::load_file(&am).expect("fixture alertmanager.yml")),
        rule_files: if rules.exists() { vec![rules] } else { vec![] },
        evaluation_interval_ms: 60_000,
        scrape_interval_ms: 60_000,
        actions: std::fs::read_to_string(dir.join("actions.yml"))
            .map(|t| serde_norway::from_str(&t).expect("fixture actions.yml"))
            .unwrap_or_default(),
        config_texts: ["tocsin.yml", "alertmanager.yml"]
            .iter()
            .filter_map(|f| Some((f.to_string(), std::fs::read_to_string(dir.join(f)).ok()?)))
            .collect(),
        live: std::fs::read_to_string(dir.join("live.json"))
            .ok()
            .map(|t| {
                Live::new(
                    Box::new(Canned(serde_json::from_str(&t).expect("fixture live.json"))),
                    NOW_MS,
                )
            }),
        settings: Default::default(),
    });
    // The server loader's verdict, as the binary would hand it: `file:line:col: path: message`
    // lines (an empty file: it loaded).
    if let Ok(t) = std::fs::read_to_string(dir.join("config-problems.txt")) {
        let problems: Vec<_> = t
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(tocsin_confdiag::Diagnostic::from_line)
            .collect();
        let file = "tocsin.yml".to_string();
        ctx.set_config_load(if problems.is_empty() {
            ConfigLoad::Loaded { file }
        } else {
            ConfigLoad::Refused { file, problems }
        });
    }
    let rule = registry::by_id(id).unwrap();
    tocsin_lint::run(&ctx, &[rule]).remove(0).entries
}

#[test]
fn every_rule_passes_its_ok_fixture_and_fails_its_fail_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for rule in registry::ALL {
        let id = rule.meta().id;
        let dir = root.join(id.replace('/', "-"));
        let ok = run(id, &dir.join("ok"));
        assert!(
            ok.iter().any(|e| e.outcome == Outcome::Ok)
                && !ok.iter().any(|e| e.outcome == Outcome::Failed),
            "{id} ok fixture: {ok:?}"
        );
        let expected = std::fs::read_to_string(dir.join("fail/expected.txt"))
            .unwrap_or_else(|e| panic!("{id}: fail/expected.txt: {e}"));
        let fail = run(id, &dir.join("fail"));
        assert!(
            fail.iter()
                .any(|e| e.outcome == Outcome::Failed && e.reason.contains(expected.trim())),
            "{id} fail fixture, expected {:?}: {fail:?}",
            expected.trim()
        );
    }
}

#[test]
fn ids_are_unique_and_match_product_and_class() {
    let mut seen = std::collections::BTreeSet::new();
    for rule in registry::ALL {
        let m = rule.meta();
        assert!(seen.insert(m.id), "{} twice", m.id);
        let want = format!("{}/{}/", m.product.as_str(), m.class.as_str());
        assert!(m.id.starts_with(&want), "{} is not under {want}", m.id);
    }
}

#[test]
fn every_rule_has_a_readme_entry() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    for rule in registry::ALL {
        let id = rule.meta().id;
        assert!(
            readme.lines().any(|l| l == format!("#### {id}")),
            "README has no `#### {id}` heading (the rule's doc anchor)"
        );
    }
}

#[test]
fn prefetch_reports_every_query_module_once() {
    let ctx = Context::new(Inputs::default());
    let seen = std::sync::Mutex::new(Vec::new());
    ctx.prefetch_with(|name| seen.lock().unwrap().push(name));
    let mut seen = seen.into_inner().unwrap();
    assert_eq!(
        seen.len() as u64,
        Context::PREFETCH_MODULES,
        "PREFETCH_MODULES sizes the progress bar: {seen:?}"
    );
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen.len() as u64,
        Context::PREFETCH_MODULES,
        "names repeat: {seen:?}"
    );
}
