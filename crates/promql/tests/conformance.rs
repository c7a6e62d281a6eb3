//! PromQL conformance: runs Prometheus's own `.test` scripts through our engine, prints a per-file
//! table and fails when fewer cases of the target files pass than the record file says.
//!
//! Environment:
//! - `TOCSIN_PROMQL_TESTDATA`: directory of the `.test` files (default
//!   `$CARGO_MANIFEST_DIR/../../../shared/promql-testdata`).
//! - `PROMQLTEST_FILE=name[.test]`: run only that file and print its failure details (the record
//!   is not checked then, since the total is partial).
//! - `PROMQLTEST_VERBOSE=1`: print failure details of every file.
//! - `PROMQLTEST_UNSUPPORTED=1`: with the details, also list the evals not run and why.
//! - `PROMQLTEST_EXTRA=0`: skip the optional `@`-variant and range-mode checks.
//! - `TOCSIN_PROMQL_RECORD_UPDATE=1`: raise the record to the current numbers (never lowers it).
//!
//! Run with `cargo test -p tocsin-promql --test conformance -- --nocapture` to see the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tocsin_promql::promqltest::{
    format_parse_errors, format_table, run_file, test_files, FileReport, Record, RunOptions,
    TARGET_FILES,
};

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn testdata_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TOCSIN_PROMQL_TESTDATA") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/promql-testdata")
}

fn record_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/conformance-record.txt")
}

#[test]
fn promql_conformance() {
    let dir = testdata_dir();
    assert!(
        dir.is_dir(),
        "PromQL test data not found at {} (set TOCSIN_PROMQL_TESTDATA to the directory holding \
         Prometheus's promqltest *.test files)",
        dir.display()
    );
    let only = std::env::var("PROMQLTEST_FILE")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|f| {
            if f.ends_with(".test") {
                f
            } else {
                format!("{f}.test")
            }
        });
    let verbose = env_flag("PROMQLTEST_VERBOSE") || only.is_some();
    let show_unsupported = env_flag("PROMQLTEST_UNSUPPORTED");
    let opts = RunOptions {
        extra_checks: std::env::var("PROMQLTEST_EXTRA").map_or(true, |v| v != "0"),
    };

    let files = test_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    // A panicking engine is reported per eval; keep the default hook from printing each one, and
    // put it back before anything else can panic.
    std::panic::set_hook(Box::new(|_| {}));
    let run = std::panic::catch_unwind(|| {
        let mut reports = Vec::new();
        for path in &files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if only.as_ref().is_some_and(|o| *o != name) {
                continue;
            }
            reports.push(run_file(path, &opts));
        }
        reports
    });
    let _ = std::panic::take_hook();
    let reports: Vec<FileReport> = match run {
        Ok(r) => r
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}")),
        Err(p) => std::panic::resume_unwind(p),
    };

    if verbose {
        for r in &reports {
            print!("{}", r.details(show_unsupported));
        }
        println!();
    }
    let parse_errors = format_parse_errors(&reports);
    if !parse_errors.is_empty() {
        println!("Queries promql-parser rejects:\n{parse_errors}");
    }
    println!("{}", format_table(&reports));

    if let Some(f) = only {
        assert!(
            !reports.is_empty(),
            "no file named {f} in {}",
            dir.display()
        );
        println!("PROMQLTEST_FILE set: record not checked");
        return;
    }
    for t in TARGET_FILES {
        assert!(
            reports.iter().any(|r| r.name == *t),
            "target file {t} missing from {}",
            dir.display()
        );
    }

    let text = std::fs::read_to_string(record_path()).unwrap_or_default();
    let record =
        Record::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", record_path().display()));
    let current = Record::from_reports(&reports);
    for (f, &n) in &record.per_file {
        let now = current.per_file.get(f).copied().unwrap_or(0);
        if now < n {
            println!("note: {f} passes {now} cases, the record says {n}");
        }
    }
    println!(
        "passing target cases: {} (record {})",
        current.passing_target_cases, record.passing_target_cases
    );
    if env_flag("TOCSIN_PROMQL_RECORD_UPDATE") {
        let raised = record.raised(&current);
        if raised != record {
            std::fs::write(record_path(), raised.render())
                .unwrap_or_else(|e| panic!("writing {}: {e}", record_path().display()));
            println!("record updated: {}", record_path().display());
        }
    }
    assert!(
        current.passing_target_cases >= record.passing_target_cases,
        "PromQL conformance regressed: {} target cases pass, the record is {} \
         (run with PROMQLTEST_VERBOSE=1 -- --nocapture for details)",
        current.passing_target_cases,
        record.passing_target_cases
    );
}
