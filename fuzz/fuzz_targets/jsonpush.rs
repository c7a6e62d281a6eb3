//! The JSON push API: our `POST /api/v1/push` and Cloud Monitoring's
//! `POST /v3/projects/{p}/timeSeries` shapes (the first byte chooses), decoded as the handlers
//! decode them and appended to a store.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let project = if mode & 1 == 0 {
        None
    } else {
        Some("my-project")
    };
    let Ok(decoded) = tocsin_collect::jsonpush::decode_for_project(body, project) else {
        return;
    };
    if decoded.errors_total > 0 {
        let _ = decoded.errors_message();
    }
    let mut items = Vec::new();
    for s in &decoded.series {
        let pairs = s.pairs();
        for &(t, v) in &s.samples {
            items.push((pairs.clone(), t, v));
        }
    }
    tocsin_fuzz::append_all(items);
});
