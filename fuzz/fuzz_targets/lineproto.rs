//! InfluxDB line protocol (`/write`, `/api/v2/write`): the decoder the handlers use, with each
//! precision, appending what it yields to a store.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tocsin_collect::lineproto::{precision_hint, Decoder, Options, Precision, Report};
use tocsin_storage::{Appendable, MemoryStore};

thread_local! {
    // Reused across inputs, as the handlers keep one per worker thread with its scratch buffers.
    static DECODER: RefCell<Decoder> = RefCell::new(Decoder::new());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let precision = match mode % 6 {
        0 => Precision::Nanoseconds,
        1 => Precision::Microseconds,
        2 => Precision::Milliseconds,
        3 => Precision::Seconds,
        4 => Precision::Minutes,
        _ => Precision::Hours,
    };
    let opts = Options {
        precision,
        now_ms: tocsin_fuzz::NOW_MS,
    };
    let store = MemoryStore::new();
    let mut app = store.appender();
    let mut report = Report::default();
    let res = DECODER.with(|cell| {
        let mut dec = cell.borrow_mut();
        dec.decode(body, &opts, &mut report, |pairs, t, v| {
            let _ = precision_hint(t, opts.precision, opts.now_ms);
            match app.append_pairs(pairs, t, v) {
                Ok(_) => Ok(()),
                Err(e) if e.is_sample_rejection() => Ok(()),
                Err(e) => Err(e),
            }
        })
    });
    if res.is_ok() {
        let _ = app.commit();
    } else {
        app.rollback();
    }
    if report.bad_total > 0 {
        let _ = report.bad_lines_message();
    }
});
