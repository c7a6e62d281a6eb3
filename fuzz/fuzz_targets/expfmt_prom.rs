//! Prometheus text exposition format 0.0.4, as a scrape parses it (see `tocsin_fuzz::exposition`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_collect::expfmt::Format;

fuzz_target!(|data: &[u8]| tocsin_fuzz::exposition(data, Format::PromText));
