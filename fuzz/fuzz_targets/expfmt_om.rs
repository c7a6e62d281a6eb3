//! OpenMetrics 1.0 text, as a scrape parses it (see `tocsin_fuzz::exposition`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_collect::expfmt::Format;

fuzz_target!(|data: &[u8]| tocsin_fuzz::exposition(data, Format::OpenMetrics));
