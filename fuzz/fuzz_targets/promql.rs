//! PromQL: parsed as the query endpoints parse it (depth check first), then evaluated by our
//! engine, instant and over a bounded range, against a small fixed in-memory store, with a
//! sample limit and a timeout well below libFuzzer's so a slow query is a finding, not a hang.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tocsin_promql::{Engine, EngineOptions};
use tocsin_storage::MemoryStore;

fn store() -> &'static MemoryStore {
    static S: OnceLock<MemoryStore> = OnceLock::new();
    S.get_or_init(tocsin_fuzz::promql_store)
}

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        Engine::new(EngineOptions {
            max_samples: 500_000,
            timeout: Duration::from_secs(2),
            ..EngineOptions::default()
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(q) = std::str::from_utf8(rest) else {
        return;
    };
    if tocsin_promql::parse_if_shallow(q).is_err() {
        return;
    }
    let now = tocsin_fuzz::NOW_MS;
    let _ = engine().instant(store(), q, now - 60_000);
    // At most 121 steps: from 1 s to 1 h apart, over the hour the store holds (and beyond).
    let step = [1_000, 15_000, 60_000, 3_600_000][usize::from(mode & 3)];
    let span = (step * 120).min(2 * 3_600_000);
    let _ = engine().range(store(), q, now - span, now, step);
});
