//! Graphite plaintext: the batch function the TCP listener calls on each read buffer, with a
//! mapper of a few rules (wildcards, captures into name and labels) and a store.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tocsin_collect::graphite::{append_batch, Mapper, MappingRule};
use tocsin_storage::MemoryStore;

fn mapper() -> Option<&'static Mapper> {
    static M: OnceLock<Option<Mapper>> = OnceLock::new();
    M.get_or_init(|| {
        let rule = |pattern: &str, name: &str, labels: &[(&str, &str)]| MappingRule {
            pattern: pattern.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        Mapper::new(&[
            rule("servers.*.cpu.*", "server_cpu_${2}", &[("host", "${1}")]),
            rule(
                "app.*.*.latency",
                "app_latency",
                &[("app", "${1}"), ("op", "${2}")],
            ),
            rule("*.count", "${1}_total", &[]),
        ])
        .ok()
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(m) = mapper() else {
        return;
    };
    let store = MemoryStore::new();
    let _ = append_batch(&store, m, data, 1, "fuzz", tocsin_fuzz::NOW_MS);
});
