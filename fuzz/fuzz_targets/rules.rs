//! Rule files: parsing and validation (YAML, PromQL expressions, durations, label and annotation
//! templates), as loading and `check rules` do.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tocsin_rules::parse_rule_file(text, "fuzz.rules.yml") {
        Ok(f) => {
            for g in &f.groups {
                for r in &g.rules {
                    let _ = (r.name().len(), r.expr().len());
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
