//! `tocsin lint`'s machine outputs checked against their schemas and its HTML report in a real
//! browser: the JSON output validates against crates/lint/schema/lint-report.schema.json, the
//! SARIF output against the SARIF 2.1.0 JSON schema (from an npm package scripts/test installs
//! under target/sarif-schema, never copied into the repository) with file URIs and regions for
//! rule-file and configuration findings, and the HTML report, opened from a file:// URL in
//! Debian's Chromium through playwright-core, draws every product, a failed rule with its reason
//! and description and the counts, without console errors or any request leaving the file.
//! The screenshot lands in target/browser-screens/lint-report.png.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lint(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .arg("lint")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A configuration failing rules of several products: a scrape job whose timeout exceeds the
/// interval (the server refuses it: config/ERR/002 and scrape/ERR/001), a rule file with a
/// template label the aggregation drops (rules/ERR/001) and a rate of a gauge (rules/WARN/005),
/// an inline password (config/SEC/001).
fn broken(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: JobErrors\n        expr: sum by (job) (rate(errors_total[5m])) > 1\n        labels: {severity: critical}\n        annotations:\n          summary: \"{{ $labels.instance }} <b>&\"\n      - alert: MemoryGrowing\n        expr: rate(process_resident_memory_bytes[30m]) > 1e6\n",
    )
    .unwrap();
    let cfg = dir.join("tocsin.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 15s\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: node\n    scrape_timeout: 20s\n    basic_auth: {username: u, password: hunter2}\n    static_configs: [{targets: [\"127.0.0.1:9100\"]}]\n",
    )
    .unwrap();
    cfg
}

/// A configuration the server loads, with routing failures (alerting/ERR/001, ERR/002).
fn loads_with_failures(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n        labels: {severity: critical}\n",
    )
    .unwrap();
    let cfg = dir.join("tocsin.yml");
    std::fs::write(
        &cfg,
        "rule_files: [rules.yml]\nalertmanager:\n  route:\n    receiver: nobody\n    routes:\n      - receiver: nobody\n      - matchers: [team=\"db\"]\n        receiver: nobody\n  receivers:\n    - name: nobody\n",
    )
    .unwrap();
    cfg
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("the schema does not compile: {e}"))
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate:\n{}\n{doc:#}",
        errors.join("\n")
    );
}

/// Every configuration these tests lint: failing (refused and loaded) and the clean examples.
fn configs(dir: &Path) -> Vec<PathBuf> {
    let a = dir.join("a");
    let b = dir.join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    vec![
        broken(&a),
        loads_with_failures(&b),
        workspace().join("examples/tocsin.yml"),
        workspace().join("examples/reactive-fleet/tocsin.yml"),
    ]
}

#[test]
fn json_output_validates_against_its_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("crates/lint/schema/lint-report.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let v = validator(&schema);
    let dir = tempfile::tempdir().unwrap();
    for cfg in configs(dir.path()) {
        let (_, out) = lint(&["--config", cfg.to_str().unwrap(), "--output", "json"]);
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_valid(&v, &doc, &format!("JSON of {}", cfg.display()));
    }
    // The schema is not vacuous: a wrong status, a missing field and an unknown one are refused.
    let (_, out) = lint(&[
        "--config",
        configs(dir.path())[0].to_str().unwrap(),
        "--output",
        "json",
    ]);
    let good: Value = serde_json::from_str(&out).unwrap();
    let mut bad = good.clone();
    bad["rules"][0]["entries"][0]["status"] = "broken".into();
    assert!(!v.is_valid(&bad));
    let mut bad = good.clone();
    bad["rules"][0].as_object_mut().unwrap().remove("class");
    assert!(!v.is_valid(&bad));
    let mut bad = good;
    bad["extra"] = 1.into();
    assert!(!v.is_valid(&bad));
}

/// The SARIF 2.1.0 schema as the npm package scripts/test installs ships it.
fn sarif_schema() -> Option<Value> {
    let path = std::env::var_os("TOCSIN_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace().join(
                "target/sarif-schema/node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json",
            )
        });
    match std::fs::read_to_string(&path) {
        // The `language` pattern of the rtm.5 schema has a stray `]`, a literal character in
        // ECMA-262 (the dialect JSON Schema patterns are written in) that Rust's regex engines
        // refuse; escaping it keeps the same language.
        Ok(t) => Some(
            serde_json::from_str(&t.replace(
                r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#,
                r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$""#,
            ))
            .unwrap(),
        ),
        Err(e) => {
            let msg = format!(
                "the SARIF 2.1.0 schema {} is missing ({e}); scripts/test installs it (npm install --prefix target/sarif-schema @microsoft/jest-sarif)",
                path.display()
            );
            if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

#[test]
fn sarif_output_validates_against_the_sarif_schema_with_locations() {
    let Some(schema) = sarif_schema() else { return };
    let v = validator(&schema);
    let dir = tempfile::tempdir().unwrap();
    let cfgs = configs(dir.path());
    for cfg in &cfgs {
        let (_, out) = lint(&["--config", cfg.to_str().unwrap(), "--output", "sarif"]);
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_valid(&v, &doc, &format!("SARIF of {}", cfg.display()));
    }
    let (code, out) = lint(&["--config", cfgs[0].to_str().unwrap(), "--output", "sarif"]);
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&out).unwrap();
    // The schema is not vacuous: a level SARIF does not know and a line 0 are refused.
    let mut bad = doc.clone();
    bad["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!v.is_valid(&bad));
    let mut bad = doc.clone();
    bad["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        0.into();
    assert!(!v.is_valid(&bad));
    let results = doc["runs"][0]["results"].as_array().unwrap();
    let loc = |id: &str| {
        let r = results
            .iter()
            .find(|r| r["ruleId"] == id)
            .unwrap_or_else(|| panic!("no {id} result: {doc:#}"));
        r["locations"][0]["physicalLocation"].clone()
    };
    // A configuration finding: the setting's own line and column.
    let l = loc("config/ERR/002");
    let uri = l["artifactLocation"]["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("file:///") && uri.ends_with("/a/tocsin.yml"),
        "{l:#}"
    );
    assert_eq!(
        (
            l["region"]["startLine"].as_u64(),
            l["region"]["startColumn"].as_u64()
        ),
        (Some(6), Some(21)),
        "{l:#}"
    );
    let l = loc("config/SEC/001");
    assert_eq!(l["region"]["startLine"], 7, "{l:#}");
    assert!(l["region"]["startColumn"].as_u64().unwrap() > 1, "{l:#}");
    // A rule-file finding: the rule's first line, at its `alert:` key.
    let l = loc("rules/ERR/001");
    assert!(
        l["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/a/rules.yml"),
        "{l:#}"
    );
    assert_eq!(
        (
            l["region"]["startLine"].as_u64(),
            l["region"]["startColumn"].as_u64()
        ),
        (Some(4), Some(9)),
        "{l:#}"
    );
    assert_eq!(loc("rules/WARN/005")["region"]["startLine"], 9);
    // Routes are located in the configuration too.
    let (_, out) = lint(&["--config", cfgs[1].to_str().unwrap(), "--output", "sarif"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let r = doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "alerting/ERR/002")
        .unwrap_or_else(|| panic!("no alerting/ERR/002 result: {doc:#}"))
        .clone();
    let region = &r["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(7), Some(9)),
        "{r:#}"
    );
}

fn deps_dir() -> PathBuf {
    std::env::var_os("TOCSIN_BROWSER_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/browser-deps"))
}

fn browser_available() -> bool {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("/usr/bin/chromium (apt: chromium)".to_string());
    }
    if !deps_dir().join("node_modules/playwright-core").is_dir() {
        missing.push(format!("playwright-core in {}", deps_dir().display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "the lint report browser test needs {}; scripts/test installs them",
        missing.join(", ")
    );
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

#[test]
fn html_report_draws_in_chromium_from_a_file_without_requests() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = broken(dir.path());
    let (code, html) = lint(&["--config", cfg.to_str().unwrap(), "--output", "html"]);
    assert_eq!(code, 1);
    let report = dir.path().join("lint report.html");
    std::fs::write(&report, &html).unwrap();
    let screens = workspace().join("target/browser-screens");
    std::fs::create_dir_all(&screens).unwrap();
    let shot = screens.join("lint-report.png");
    let url = format!(
        "file://{}",
        report.display().to_string().replace(' ', "%20")
    );
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/lint_report.mjs"))
        .arg(&url)
        .arg(&shot)
        .env("PLAYWRIGHT_DEPS", deps_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let r: Value = serde_json::from_str(line).unwrap();
    assert!(r.get("failure").is_none(), "{}", r["failure"]);
    assert_eq!(r["errors"], serde_json::json!([]), "console errors");
    // Self-contained: the only request is the file itself.
    assert_eq!(
        r["requests"],
        serde_json::json!([url]),
        "requests beyond the file"
    );
    assert_eq!(r["title"], "tocsin lint");
    let products: Vec<&str> = r["products"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Every product that has rules, once, in registry order.
    let mut want: Vec<&str> = Vec::new();
    for r in tocsin_lint::registry::ALL {
        let p = r.meta().product.as_str();
        if want.last() != Some(&p) {
            want.push(p);
        }
    }
    assert_eq!(products, want);
    assert!(products.starts_with(&["config", "scrape", "rules", "alerting"]));
    let rules = r["rules"].as_array().unwrap();
    let registry_len = tocsin_lint::registry::ALL.len();
    assert_eq!(rules.len(), registry_len, "every rule drawn");
    let failed: Vec<&Value> = rules.iter().filter(|x| x["status"] == "FAILED").collect();
    // The counts line agrees with what is drawn.
    let findings: usize = failed
        .iter()
        .map(|x| {
            x["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|row| row[0] == "failed")
                .count()
        })
        .sum();
    assert_eq!(
        r["summary"],
        format!(
            "{registry_len} rules run, {} failed, {findings} findings.",
            failed.len()
        ),
    );
    let tmpl = failed
        .iter()
        .find(|x| x["id"] == "rules/ERR/001")
        .unwrap_or_else(|| panic!("rules/ERR/001 not drawn as failed: {r:#}"));
    assert_eq!(tmpl["anchor"], "ruleserr001");
    assert!(
        tmpl["description"]
            .as_str()
            .unwrap()
            .contains("expands to the empty string"),
        "{tmpl:#}"
    );
    let row = &tmpl["rows"][0];
    assert_eq!(row[0], "failed");
    assert_eq!(row[1], "alert JobErrors");
    assert!(row[2].as_str().unwrap().ends_with("rules.yml:4:9"), "{row}");
    assert!(
        row[3]
            .as_str()
            .unwrap()
            .contains("$labels.instance (in summary) always empty"),
        "{row}"
    );
    // Failures are painted red, passes green.
    assert_eq!(tmpl["statusColor"], "rgb(176, 0, 32)");
    let ok = rules.iter().find(|x| x["status"] == "OK").unwrap();
    assert_eq!(ok["statusColor"], "rgb(27, 127, 59)");
    assert!(
        r["scrollWidth"].as_u64().unwrap() <= 1300,
        "the report overflows the width"
    );
    assert!(shot.is_file());
}
