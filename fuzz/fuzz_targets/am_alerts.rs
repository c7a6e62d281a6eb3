//! Alertmanager `POST /api/v2/alerts` bodies: the decoder the handler uses (JSON, label names,
//! RFC 3339 times), then what the alert manager does first with each alert: its fingerprint,
//! and matching against a few matchers as routes, inhibitions and silences do.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tocsin_model::{MatchOp, Matcher};

fn matchers() -> &'static [Matcher] {
    static M: OnceLock<Vec<Matcher>> = OnceLock::new();
    M.get_or_init(|| {
        [
            (MatchOp::Equal, "alertname", "Down"),
            (MatchOp::NotEqual, "severity", ""),
            (MatchOp::Regex, "instance", "web-.*|db-[0-9]+"),
            (MatchOp::NotRegex, "job", ".+"),
        ]
        .into_iter()
        .filter_map(|(op, n, v)| Matcher::new(op, n, v).ok())
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(alerts) = tocsin_api::am::decode_alerts(data) else {
        return;
    };
    for a in &alerts {
        let _ = a.labels.hash();
        for m in matchers() {
            let _ = m.matches(a.labels.get(&m.name).unwrap_or(""));
        }
    }
});
