//! Go templates, parsed and executed with data, through both users of the engine: an alerting
//! rule's label/annotation expansion (Prometheus's functions, a `query` that returns fixed
//! series) and a receiver field rendered over the notification data with the default templates
//! loaded (Alertmanager's functions). The first byte chooses.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tocsin_alerts::notify::NotifyCx;
use tocsin_alerts::tmpl::{NotifyTemplates, TmplData};
use tocsin_model::{Alert, Labels};
use tocsin_rules::template::{expand, TemplateData};

fn query(q: &str) -> Result<Vec<(Labels, f64)>, String> {
    if q.contains("error") {
        return Err("query failed".into());
    }
    Ok(vec![
        (
            Labels::from_pairs(&[("__name__", "up"), ("instance", "a:1")]),
            1.0,
        ),
        (
            Labels::from_pairs(&[("__name__", "up"), ("instance", "b:2")]),
            0.0,
        ),
    ])
}

fn notify() -> Option<&'static (Arc<NotifyTemplates>, TmplData)> {
    static N: OnceLock<Option<(Arc<NotifyTemplates>, TmplData)>> = OnceLock::new();
    N.get_or_init(|| {
        let t = NotifyTemplates::defaults().ok()?;
        let cx = NotifyCx {
            receiver: "team-x".into(),
            group_key: "{}:{alertname=\"Down\"}".into(),
            group_labels: Labels::from_pairs(&[("alertname", "Down")]),
            now_ms: tocsin_fuzz::NOW_MS,
            external_url: "http://tocsin.example:9090".into(),
            group_interval_ms: 300_000,
            notification_id: String::new(),
        };
        let mut ann = BTreeMap::new();
        ann.insert("summary".to_string(), "<b>web-1</b> is down".to_string());
        let alerts = [
            Alert {
                labels: Labels::from_pairs(&[("alertname", "Down"), ("instance", "web-1")]),
                annotations: ann,
                starts_at: tocsin_fuzz::NOW_MS - 60_000,
                ends_at: 0,
                generator_url: "http://tocsin.example:9090/graph".into(),
                updated_at: 0,
                timeout: false,
            },
            Alert {
                labels: Labels::from_pairs(&[("alertname", "Down"), ("instance", "web-2")]),
                annotations: BTreeMap::new(),
                starts_at: tocsin_fuzz::NOW_MS - 600_000,
                ends_at: tocsin_fuzz::NOW_MS - 1_000,
                generator_url: String::new(),
                updated_at: 0,
                timeout: false,
            },
        ];
        let data = TmplData::new(&cx, &alerts);
        Some((t, data))
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        let labels = Labels::from_pairs(&[
            ("__name__", "ALERTS"),
            ("alertname", "Down"),
            ("instance", "web-1:9100"),
        ]);
        let ext = Labels::from_pairs(&[("cluster", "eu-1")]);
        let d = TemplateData {
            labels: &labels,
            external_labels: &ext,
            external_url: "http://tocsin.example:9090/prefix",
            value: 0.25,
            eval_time_ms: tocsin_fuzz::NOW_MS,
        };
        let _ = tocsin_rules::template::check("fuzz", text);
        let _ = expand("fuzz", text, &d, &query);
    } else if let Some((t, d)) = notify() {
        let _ = t.check(text);
        let _ = t.render(text, d, tocsin_fuzz::NOW_MS);
        if mode & 2 != 0 {
            let _ = t.render(text, &d.html_escaped(), tocsin_fuzz::NOW_MS);
        }
    }
});
