//! Golden tests: the default templates render what Alertmanager's render for the same data
//! (`testdata/tmpl/<case>/<template>.txt`, made with `amtool template render`), plus the data
//! methods and functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use tocsin_template::gotime::Time;

use super::*;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/tmpl")
}

fn kv(v: &serde_json::Value) -> Kv {
    Kv(v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default())
}

fn time(v: &serde_json::Value) -> Time {
    let s = v.as_str().unwrap_or("");
    if s.starts_with("0001-") {
        return Time::from_unix(-62_135_596_800, 0);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap_or_default();
    Time::from_unix_millis(t.timestamp_millis())
}

/// The data of a case as Alertmanager's `template.Data` JSON.
fn data_from_json(text: &str) -> TmplData {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let alerts = v["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| TmplAlert {
            status: if a["status"] == "firing" {
                "firing"
            } else {
                "resolved"
            },
            labels: kv(&a["labels"]),
            annotations: kv(&a["annotations"]),
            starts_at: time(&a["startsAt"]),
            ends_at: time(&a["endsAt"]),
            generator_url: a["generatorURL"].as_str().unwrap_or("").to_string(),
            fingerprint: a["fingerprint"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    TmplData {
        receiver: s("receiver"),
        status: if v["status"] == "firing" {
            "firing"
        } else {
            "resolved"
        },
        alerts: Alerts(alerts),
        group_labels: kv(&v["groupLabels"]),
        common_labels: kv(&v["commonLabels"]),
        common_annotations: kv(&v["commonAnnotations"]),
        external_url: s("externalURL"),
    }
}

#[test]
fn default_templates_render_like_alertmanager() {
    let t = NotifyTemplates::defaults().expect("defaults parse");
    let mut checked = 0;
    for case in ["mixed", "firing", "resolved"] {
        let dir = testdata().join(case);
        let data =
            data_from_json(&std::fs::read_to_string(dir.join("data.json")).expect("data.json"));
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("case dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".txt"))
            .collect();
        names.sort();
        for file in names {
            let name = file.trim_end_matches(".txt");
            let want = std::fs::read_to_string(dir.join(&file)).expect("golden");
            let arg = if name == "__text_alert_list" {
                ".Alerts"
            } else {
                "."
            };
            let got = t
                .render(&format!("{{{{ template \"{name}\" {arg} }}}}"), &data, 0)
                .unwrap_or_else(|e| format!("ERROR: {e}"));
            assert_eq!(got, want, "{case}/{name}");
            checked += 1;
        }
    }
    assert!(checked >= 45, "only {checked} goldens");
}

fn sample() -> TmplData {
    data_from_json(&std::fs::read_to_string(testdata().join("mixed/data.json")).expect("data.json"))
}

#[test]
fn data_methods_and_functions() {
    let t = NotifyTemplates::defaults().expect("defaults parse");
    let d = sample();
    let cases: &[(&str, &str)] = &[
        ("{{ .Receiver }} {{ .Status }} {{ .ExternalURL }}", "team-X.mails firing http://am:9093"),
        ("{{ len .Alerts }} {{ len .Alerts.Firing }} {{ len .Alerts.Resolved }}", "2 1 1"),
        ("{{ range .Alerts.Resolved }}{{ .Labels.instance }} {{ .EndsAt }}{{ end }}", "b:9100 2026-12-03 18:30:00 +0000 UTC"),
        ("{{ .GroupLabels.Names }} {{ .GroupLabels.Values }}", "[alertname cluster] [HighLatency eu1]"),
        ("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}", "alertname=HighLatency;cluster=eu1;service=api;severity=critical;"),
        ("{{ .CommonLabels.SortedPairs.Names | join \",\" }}", "alertname,cluster,service,severity"),
        ("{{ (.CommonLabels.Remove (stringSlice \"alertname\" \"cluster\")).Names }}", "[service severity]"),
        ("{{ .CommonLabels.severity | toUpper }} {{ \"a b_c\" | title }} {{ toLower \"AB\" }}", "CRITICAL A B_c ab"),
        ("{{ if match \"^High\" .CommonLabels.alertname }}yes{{ end }}", "yes"),
        ("{{ reReplaceAll \"(\\\\d+)\" \"<$1>\" \"a:9100\" }}", "a:<9100>"),
        ("{{ trimSpace \"  x \" }}|{{ safeHtml \"<b>\" }}", "x|<b>"),
        ("{{ range .Alerts.Firing }}{{ .StartsAt | date \"2006-01-02 15:04\" }} {{ (.StartsAt | tz \"UTC\").Unix }}{{ end }}", "2026-12-03 18:00 1796320800"),
        ("{{ humanizeDuration 3725 }}", "1h 2m 5s"),
        ("{{ range .Alerts.Firing }}{{ since .StartsAt }}{{ end }}", "1h0m0s"),
        ("{{ .CommonLabels.nosuch }}|", "|"),
        ("{{ range .Alerts }}{{ .Fingerprint }} {{ end }}", "0123456789abcdef fedcba9876543210 "),
    ];
    let now = 1_796_320_800_000 + 3_600_000;
    for (text, want) in cases {
        assert_eq!(
            t.render(text, &d, now)
                .unwrap_or_else(|e| format!("ERROR: {e}")),
            *want,
            "{text}"
        );
    }
    let e = t
        .render("{{ .Alerts.Nope }}", &d, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("can't evaluate field Nope"), "{e}");
    assert!(t
        .check("{{ nope }}")
        .unwrap_err()
        .contains("function \"nope\" not defined"));
    assert_eq!(t.render("plain", &d, 0).unwrap_or_default(), "plain");
}

#[test]
fn template_files_load_by_glob_and_parse_errors_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("t")).expect("mkdir");
    std::fs::write(
        dir.path().join("t/a.tmpl"),
        "{{ define \"my.subject\" }}S: {{ template \"__subject\" . }}{{ end }}",
    )
    .expect("write");
    std::fs::write(dir.path().join("t/b.txt"), "{{ broken").expect("write");
    let t = NotifyTemplates::load(&["t/*.tmpl".into()], dir.path()).expect("loads");
    assert_eq!(t.files.len(), 1);
    let out = t
        .render("{{ template \"my.subject\" . }}", &sample(), 0)
        .expect("renders");
    assert_eq!(out, "S: [FIRING:1] HighLatency eu1 (api critical)");
    // Overriding a default changes what the receivers' defaults render.
    std::fs::write(
        dir.path().join("t/c.tmpl"),
        "{{ define \"__subject\" }}custom{{ end }}",
    )
    .expect("write");
    let t = NotifyTemplates::load(&["t/*.tmpl".into()], dir.path()).expect("loads");
    assert_eq!(
        t.render("{{ template \"slack.default.title\" . }}", &sample(), 0)
            .expect("renders"),
        "custom"
    );
    std::fs::write(dir.path().join("t/d.tmpl"), "ok\n\n{{ if }}").expect("write");
    let errs = NotifyTemplates::load(&["t/*.tmpl".into()], dir.path()).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    let want = format!("{}:3: ", dir.path().join("t/d.tmpl").display());
    assert!(errs[0].starts_with(&want), "{errs:?}");
    // No match is not an error, as in Alertmanager.
    assert!(NotifyTemplates::load(&["none/*.tmpl".into()], dir.path()).is_ok());
}

#[test]
fn receiver_is_regex_quoted_in_data() {
    assert_eq!(quote_meta("team-X.mails (a)"), "team-X\\.mails \\(a\\)");
}

/// Alertmanager's own template files (shipped by Debian's prometheus-alertmanager), loaded as
/// user templates, parse with our engine and render the goldens too: users copy them.
#[test]
fn alertmanagers_own_template_files_load_and_render_the_goldens() {
    let dir = std::path::Path::new("/usr/share/prometheus/alertmanager");
    if !dir.join("default.tmpl").exists() {
        assert!(
            std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_none(),
            "{} is not installed (scripts/test installs prometheus-alertmanager)",
            dir.display()
        );
        eprintln!("SKIPPED: {} not installed", dir.display());
        return;
    }
    let t = NotifyTemplates::load(&["*.tmpl".into()], dir).expect("Alertmanager's templates load");
    assert!(t.files.len() >= 2, "{:?}", t.files);
    let case = testdata().join("mixed");
    let data = data_from_json(&std::fs::read_to_string(case.join("data.json")).unwrap());
    for name in [
        "__subject",
        "slack.default.fallback",
        "opsgenie.default.description",
        "telegram.default.message",
    ] {
        let want = std::fs::read_to_string(case.join(format!("{name}.txt"))).unwrap();
        let got = t
            .render(&format!("{{{{ template \"{name}\" . }}}}"), &data, 0)
            .unwrap_or_else(|e| format!("ERROR: {e}"));
        assert_eq!(got, want, "{name}");
    }
}
