//! Per-file outcome counts, the printed table and failure details, and the record file that holds
//! the number of passing cases the conformance test must not fall below.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use super::run::Unsupported;
use super::script::ScriptError;

/// The files whose passing count gates the conformance test: the long-standing PromQL files,
/// as opposed to the ones testing experimental features.
pub const TARGET_FILES: &[&str] = &[
    "aggregators.test",
    "at_modifier.test",
    "collision.test",
    "functions.test",
    "histograms.test",
    "literals.test",
    "operators.test",
    "range_queries.test",
    "selectors.test",
    "staleness.test",
    "subquery.test",
    "trig_functions.test",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCategory {
    /// The eval itself did not parse as script text.
    Script,
    /// promql-parser rejected the query (a parser gap, or an error Go raises later).
    QueryParse,
    /// The engine returned an error (or panicked) where a result was expected.
    Engine,
    /// The result differs from the expectation.
    Mismatch,
    /// The query was expected to fail and did not.
    UnexpectedSuccess,
    /// The result was right but warnings/infos were not as expected.
    Annotations,
    /// One of the optional `@`-variant / range-mode checks.
    Extra,
}

impl fmt::Display for FailureCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureCategory::Script => "script error",
            FailureCategory::QueryParse => "parse error",
            FailureCategory::Engine => "engine error",
            FailureCategory::Mismatch => "wrong result",
            FailureCategory::UnexpectedSuccess => "expected failure",
            FailureCategory::Annotations => "annotations",
            FailureCategory::Extra => "extra check",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub line: usize,
    pub query: String,
    pub category: FailureCategory,
    pub detail: String,
}

/// How many optional checks ran and passed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtraCount {
    pub run: usize,
    pub passed: usize,
}

/// The outcome of one file. `evals = passed + failed + unsupported_nh + unsupported_st`.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub name: String,
    pub evals: usize,
    pub passed: usize,
    pub failed: usize,
    /// Failed because promql-parser rejected the query (included in `failed`).
    pub query_parse_errors: usize,
    /// Failed only on the warn/info checks (included in `failed`).
    pub annotation_only: usize,
    /// Not run: the eval involves native histograms.
    pub unsupported_nh: usize,
    /// Not run: the eval's series carry start timestamps (`@st` lines).
    pub unsupported_st: usize,
    /// Expected-failure evals that passed because the parser already rejected the query.
    pub parse_rejected_expected_fail: usize,
    /// Annotation or error texts that differ from Go's (advisory; they never fail an eval).
    pub advisory_message_mismatches: usize,
    pub script_errors: Vec<ScriptError>,
    /// Samples the store refused while loading.
    pub load_errors: Vec<ScriptError>,
    pub failures: Vec<Failure>,
    /// Informational entries (expected failures caught by the parser).
    pub notes: Vec<Failure>,
    pub at_check: ExtraCount,
    pub range_check: ExtraCount,
    pub extra_failures: Vec<Failure>,
    /// The evals not run, with why.
    pub unsupported: Vec<(usize, String, Unsupported)>,
}

impl FileReport {
    pub fn record_failure(&mut self, f: Failure) {
        self.failed += 1;
        match f.category {
            FailureCategory::QueryParse => self.query_parse_errors += 1,
            FailureCategory::Annotations => self.annotation_only += 1,
            _ => {}
        }
        self.failures.push(f);
    }

    pub fn is_target(&self) -> bool {
        TARGET_FILES.contains(&self.name.as_str())
    }

    /// Failure details, one block per failed eval, then the extra-check failures; with
    /// `unsupported`, also the evals that were not run.
    pub fn details(&self, unsupported: bool) -> String {
        let mut s = String::new();
        if unsupported {
            for (line, query, why) in &self.unsupported {
                let _ = writeln!(s, "{}:{line}: [unsupported: {why}] {query}", self.name);
            }
        }
        for e in self.script_errors.iter().chain(&self.load_errors) {
            let _ = writeln!(s, "{}:{}: [script] {}", self.name, e.line, e.message);
        }
        for f in &self.failures {
            let _ = writeln!(
                s,
                "{}:{}: [{}] {}\n    {}",
                self.name, f.line, f.category, f.query, f.detail
            );
        }
        for f in &self.extra_failures {
            let _ = writeln!(
                s,
                "{}:{}: [{}] {}\n    {}",
                self.name, f.line, f.category, f.query, f.detail
            );
        }
        s
    }
}

/// Sums of the counted columns over several files.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub evals: usize,
    pub passed: usize,
    pub failed: usize,
    pub query_parse_errors: usize,
    pub annotation_only: usize,
    pub unsupported_nh: usize,
    pub unsupported_st: usize,
    pub script_errors: usize,
    pub at_check: ExtraCount,
    pub range_check: ExtraCount,
}

impl Totals {
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a FileReport>) -> Totals {
        let mut t = Totals::default();
        for r in reports {
            t.evals += r.evals;
            t.passed += r.passed;
            t.failed += r.failed;
            t.query_parse_errors += r.query_parse_errors;
            t.annotation_only += r.annotation_only;
            t.unsupported_nh += r.unsupported_nh;
            t.unsupported_st += r.unsupported_st;
            t.script_errors += r.script_errors.len();
            t.at_check.run += r.at_check.run;
            t.at_check.passed += r.at_check.passed;
            t.range_check.run += r.range_check.run;
            t.range_check.passed += r.range_check.passed;
        }
        t
    }
}

fn row(name: &str, t: &Totals) -> String {
    format!(
        "{:<26} {:>5} {:>5} {:>5} {:>6} {:>6} {:>5} {:>4} {:>6} {:>9} {:>9}\n",
        name,
        t.evals,
        t.passed,
        t.failed,
        t.query_parse_errors,
        t.annotation_only,
        t.unsupported_nh,
        t.unsupported_st,
        t.script_errors,
        format!("{}/{}", t.at_check.passed, t.at_check.run),
        format!("{}/{}", t.range_check.passed, t.range_check.run),
    )
}

/// The per-file table with subtotals for the target files, the other files, and everything.
pub fn format_table(reports: &[FileReport]) -> String {
    let mut s = format!(
        "{:<26} {:>5} {:>5} {:>5} {:>6} {:>6} {:>5} {:>4} {:>6} {:>9} {:>9}\n",
        "file",
        "evals",
        "pass",
        "fail",
        "parse",
        "annot",
        "nh",
        "st",
        "script",
        "@ ok/run",
        "rng ok/run"
    );
    let line = "-".repeat(s.len().saturating_sub(1));
    let _ = writeln!(s, "{line}");
    let (target, other): (Vec<&FileReport>, Vec<&FileReport>) =
        reports.iter().partition(|r| r.is_target());
    for group in [&target, &other] {
        for r in group.iter() {
            s.push_str(&row(&r.name, &Totals::of([*r])));
        }
        if !group.is_empty() {
            let _ = writeln!(s, "{line}");
        }
    }
    s.push_str(&row(
        "TOTAL target files",
        &Totals::of(target.iter().copied()),
    ));
    s.push_str(&row(
        "TOTAL other files",
        &Totals::of(other.iter().copied()),
    ));
    s.push_str(&row("TOTAL", &Totals::of(reports)));
    s.push_str(
        "columns: parse = failed because promql-parser rejected the query; annot = failed only on \
         warn/info; nh/st = not run (native histograms / start timestamps); script = script lines \
         that did not parse; @ and rng = optional checks, run only for instant evals that passed\n",
    );
    s
}

/// Queries promql-parser rejected, one line each, so parser gaps are easy to list.
pub fn format_parse_errors(reports: &[FileReport]) -> String {
    let mut s = String::new();
    for r in reports {
        for f in r.failures.iter().chain(&r.notes) {
            if f.category == FailureCategory::QueryParse {
                let _ = writeln!(s, "{}:{}: {}\n    {}", r.name, f.line, f.query, f.detail);
            }
        }
    }
    s
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record line {line}: {reason}")]
    Syntax { line: usize, reason: String },
}

/// The numbers the conformance test must reach: `passing_target_cases: N` plus optional
/// `<file>: N` lines (informational, shown when a file drops below its number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub passing_target_cases: usize,
    pub per_file: BTreeMap<String, usize>,
}

impl Record {
    pub fn parse(text: &str) -> Result<Record, RecordError> {
        let mut r = Record::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |reason: &str| RecordError::Syntax {
                line: i + 1,
                reason: reason.to_string(),
            };
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| syntax("expected `key: number`"))?;
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| syntax("expected a non-negative number"))?;
            match k.trim() {
                "passing_target_cases" => r.passing_target_cases = n,
                f => {
                    r.per_file.insert(f.to_string(), n);
                }
            }
        }
        Ok(r)
    }

    pub fn render(&self) -> String {
        let mut s = String::from(
            "# Passing PromQL conformance cases (crates/promql/tests/conformance.rs).\n\
             # The test fails when passing_target_cases drops below this number.\n\
             # Raise with TOCSIN_PROMQL_RECORD_UPDATE=1; numbers never go down automatically.\n",
        );
        let _ = writeln!(s, "passing_target_cases: {}", self.passing_target_cases);
        for (f, n) in &self.per_file {
            let _ = writeln!(s, "{f}: {n}");
        }
        s
    }

    /// Current passing counts of the target files.
    pub fn from_reports(reports: &[FileReport]) -> Record {
        let target: Vec<&FileReport> = reports.iter().filter(|r| r.is_target()).collect();
        Record {
            passing_target_cases: target.iter().map(|r| r.passed).sum(),
            per_file: target.iter().map(|r| (r.name.clone(), r.passed)).collect(),
        }
    }

    /// The element-wise maximum of two records, so an update never lowers a number.
    pub fn raised(&self, current: &Record) -> Record {
        let mut per_file = self.per_file.clone();
        for (f, n) in &current.per_file {
            let e = per_file.entry(f.clone()).or_insert(0);
            *e = (*e).max(*n);
        }
        Record {
            passing_target_cases: self.passing_target_cases.max(current.passing_target_cases),
            per_file,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn record_round_trip_and_raise() {
        let r = Record::parse("# c\npassing_target_cases: 10\nfunctions.test: 4\n").unwrap();
        assert_eq!(r.passing_target_cases, 10);
        assert_eq!(r.per_file.get("functions.test"), Some(&4));
        assert_eq!(Record::parse(&r.render()).unwrap(), r);
        let cur = Record {
            passing_target_cases: 8,
            per_file: [("functions.test".to_string(), 6)].into_iter().collect(),
        };
        let up = r.raised(&cur);
        assert_eq!(up.passing_target_cases, 10);
        assert_eq!(up.per_file.get("functions.test"), Some(&6));
        assert!(Record::parse("passing_target_cases: x").is_err());
        assert!(Record::parse("nonsense").is_err());
    }
}
