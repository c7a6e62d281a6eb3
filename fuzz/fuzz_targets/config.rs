//! The server configuration (`tocsin.yml`): parsing and every check that needs only the text,
//! the inline `alertmanager:` section (Alertmanager's own format) included, as `--config` and
//! reload load it; then the derived settings the server asks for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_server::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.yml") {
        Ok(cfg) => {
            let _ = cfg.query_settings("fuzz.yml");
            let _ = cfg.storage.to_options("fuzz.yml");
            let _ = cfg.storage.max_future_ms("fuzz.yml");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
