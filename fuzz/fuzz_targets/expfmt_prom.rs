//! Prometheus text exposition format 0.0.4, as a scrape parses it: the reusable parser of the scrape loop (kept across inputs, as
//! a loop keeps it across scrapes), every entry looked at.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tocsin_collect::expfmt::{Entry, Format, Parser};

thread_local! {
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

fuzz_target!(|data: &[u8]| {
    PARSER.with(|cell| {
        let mut parser = cell.borrow_mut();
        let mut items = Vec::new();
        let res = parser.parse(data, Format::PromText, |e| match e {
            Entry::Sample(s) => {
                let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(s.labels.len() + 1);
                pairs.push(("__name__", s.name));
                pairs.extend_from_slice(s.labels);
                pairs.sort_unstable();
                let pairs: Vec<(String, String)> = pairs
                    .into_iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect();
                items.push((
                    pairs,
                    s.timestamp_ms.unwrap_or(tocsin_fuzz::NOW_MS),
                    s.value,
                ));
            }
            Entry::Type { name, kind } => {
                let _ = (name.len(), kind.as_str());
            }
            Entry::Help { name, text } | Entry::Unit { name, unit: text } => {
                let _ = (name.len(), text.len());
            }
        });
        if res.is_ok() {
            tocsin_fuzz::append_all(items.iter().map(|(p, t, v)| {
                (
                    p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect(),
                    *t,
                    *v,
                )
            }));
        }
    });
});
