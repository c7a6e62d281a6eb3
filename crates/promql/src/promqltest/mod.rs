//! A runner for Prometheus's PromQL `.test` scripts (the `promqltest` format), used as a
//! conformance harness: it parses a script, loads its data into a `MemoryStore`, runs each eval
//! through our engine and compares the results with the script's expectations.
//!
//! Written from the format description in `shared/promql-testdata/FORMAT.md`. Evals that need
//! native histograms or start timestamps are counted as unsupported rather than run, because our
//! storage holds neither.

mod compare;
mod notation;
mod report;
mod run;
mod script;

use std::path::{Path, PathBuf};

pub use compare::float_eq;
pub use notation::{parse_series, parse_values, SeqValue};
pub use report::{
    format_parse_errors, format_table, ExtraCount, Failure, FailureCategory, FileReport, Record,
    RecordError, Totals, TARGET_FILES,
};
pub use run::{run_script, test_engine, RunOptions, Unsupported};
pub use script::{parse_script, Command, Eval, EvalKind, Expected, Script, ScriptError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Parses and runs one script file; the report is named after the file.
pub fn run_file(path: &Path, opts: &RunOptions) -> Result<FileReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(run_script(&name, &parse_script(&text), opts))
}

/// The `.test` files of a directory, sorted by name.
pub fn test_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.extension().is_some_and(|e| e == "test") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn runs_a_small_script_against_the_engine() {
        let text = r#"
load 1m
    m{a="1"} 1 2 3

eval instant at 1m m
    m{a="1"} 2

eval instant at 1m m
    expect fail

eval instant at 0 h
    h {{sum:1}}

eval instant at 0 m +
    {} 1
"#;
        let r = run_script("x.test", &parse_script(text), &RunOptions::default());
        assert_eq!(r.evals, 4);
        assert_eq!(r.unsupported_nh, 1);
        assert_eq!(r.passed + r.failed, 3);
        assert_eq!(r.query_parse_errors, 1);
        assert!(
            r.details(false).contains("x.test:14: [parse error]"),
            "{}",
            r.details(false)
        );
        let t = format_table(&[r]);
        assert!(t.contains("x.test"), "{t}");
    }
}
