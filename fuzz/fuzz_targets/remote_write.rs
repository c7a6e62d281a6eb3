//! Remote write 1.0 (`POST /api/v1/write`): snappy, then protobuf decoding and validation, then
//! appending, as `tocsin_api::write` does. The first byte chooses whether the rest is the body as
//! sent (snappy framing is fuzzed too) or a protobuf the target compresses first (so the fuzzer
//! reaches the protobuf decoder without having to learn snappy).
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tocsin_collect::remote_write::{DecodedWrite, DEFAULT_MAX_DECOMPRESSED_BYTES};

thread_local! {
    // Reused across inputs like the server's per-thread buffer, so the reuse path (which keeps
    // borrowed label pairs into its own buffer) is exercised under the address sanitizer.
    static DECODED: RefCell<DecodedWrite> = RefCell::new(DecodedWrite::default());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        match snap::raw::Encoder::new().compress_vec(rest) {
            Ok(b) => b,
            Err(_) => return,
        }
    };
    DECODED.with(|cell| {
        let mut req = cell.borrow_mut();
        if req
            .decode_into(&body, DEFAULT_MAX_DECOMPRESSED_BYTES)
            .is_err()
        {
            return;
        }
        let _ = (
            req.histogram_count(),
            req.exemplar_count(),
            req.metadata_count(),
        );
        assert_eq!(req.series().len(), req.series_count());
        let mut items = Vec::new();
        for s in req.series() {
            for &(t, v) in s.samples() {
                items.push((s.labels().to_vec(), t, v));
            }
        }
        tocsin_fuzz::append_all(items);
    });
});
