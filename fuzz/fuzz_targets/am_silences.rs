//! Alertmanager `POST /api/v2/silences` bodies: the decoder and limits the handler applies, then
//! the silence is stored in an in-memory silence set (its own validation) and matched against a
//! few label sets, as every incoming alert is.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tocsin_alerts::silence::Silences;
use tocsin_api::am::{decode_silence, SilenceLimits};
use tocsin_model::{Labels, ManualClock};

fuzz_target!(|data: &[u8]| {
    let limits = SilenceLimits::default();
    if data.len() > limits.max_body_bytes {
        return;
    }
    let Ok(s) = decode_silence(data) else {
        return;
    };
    if limits.check(&s).is_err() {
        return;
    }
    let labels = [
        Labels::from_pairs(&[("alertname", "Down"), ("instance", "web-1"), ("job", "api")]),
        Labels::from_pairs(&[("alertname", "DiskFull"), ("severity", "page")]),
        Labels::from_pairs::<&str, &str>(&[]),
    ];
    for l in &labels {
        let _ = s.matches(l);
    }
    let _ = s.state_at(tocsin_fuzz::NOW_MS);
    let Ok(set) = Silences::new(None, Arc::new(ManualClock::new(tocsin_fuzz::NOW_MS))) else {
        return;
    };
    if let Ok(id) = set.upsert(s) {
        let _ = set.get(&id);
        let _ = set.expire(&id);
    }
});
