//! Checks that a warmed-up `expfmt::Parser` parses a body without touching the heap. Its own test
//! binary, because the counting allocator replaces the global one for everything linked in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use tocsin_collect::expfmt::{Entry, Format, Parser};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only the measuring thread counts: the test harness allocates on other threads meanwhile.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn count(f: impl FnOnce()) -> usize {
    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.load(Ordering::Relaxed)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/expfmt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

#[test]
fn warm_parser_does_not_allocate() {
    // Escaped label values and HELP text, exemplars and more than 16 labels all use scratch.
    let mut many = String::from("wide{");
    for i in 0..24 {
        many.push_str(&format!("l{i}=\"v\\\"{i}\","));
    }
    many.push_str("} 1\n");
    let mut text = fixture("node_exporter.txt");
    text.extend_from_slice(many.as_bytes());
    let om = fixture("exemplars.om");

    let mut p = Parser::new();
    let mut checksum = 0.0;
    let mut sink = |e: Entry<'_>| {
        if let Entry::Sample(s) = e {
            checksum += s.labels.len() as f64;
        }
    };
    for _ in 0..2 {
        p.parse(&text, Format::PromText, &mut sink).unwrap();
        p.parse(&om, Format::OpenMetrics, &mut sink).unwrap();
    }
    let n = count(|| {
        for _ in 0..3 {
            p.parse(&text, Format::PromText, &mut sink).unwrap();
            p.parse(&om, Format::OpenMetrics, &mut sink).unwrap();
        }
    });
    assert_eq!(n, 0, "allocations in steady state");
    assert!(checksum > 0.0);

    // Sanity check that the counter works at all.
    assert!(count(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
