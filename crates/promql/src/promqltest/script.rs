//! Splitting a `.test` script into commands (`load`, `clear`, `eval`) and parsing each command's
//! header, directives and expected results.

use tocsin_model::Labels;

use super::notation::{
    parse_duration, parse_scalar_line, parse_series, parse_values, unquote_prefix, SeqValue,
};

/// A problem in the script itself (not in the engine): the command is skipped and reported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// A parsed script: its commands in file order, plus the commands that did not parse.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub commands: Vec<Command>,
    pub errors: Vec<ScriptError>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Load(Load),
    Clear {
        line: usize,
    },
    Eval(Box<Eval>),
    /// An eval whose header parsed but whose body did not; it counts as a failed case.
    BrokenEval {
        line: usize,
        query: String,
    },
}

#[derive(Debug, Clone)]
pub struct Load {
    pub line: usize,
    pub interval_ms: i64,
    /// `load_with_nhcb`: classic histograms in the block also become native histograms.
    pub with_nhcb: bool,
    pub series: Vec<LoadSeries>,
    /// The block had `@st` start-timestamp lines (ignored when loading).
    pub start_timestamp_series: Vec<Labels>,
}

#[derive(Debug, Clone)]
pub struct LoadSeries {
    pub line: usize,
    pub labels: Labels,
    pub values: Vec<SeqValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalKind {
    Instant { t: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// How an expected message is given; the text is Go's, so the runner treats it as advisory.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageMatch {
    Any,
    Exact(String),
    Regex(String),
}

impl MessageMatch {
    /// Whether `msg` satisfies this expectation; an invalid regex matches nothing.
    pub fn matches(&self, msg: &str) -> bool {
        match self {
            MessageMatch::Any => true,
            MessageMatch::Exact(m) => msg.trim() == m.trim(),
            MessageMatch::Regex(re) => regex::Regex::new(re).is_ok_and(|r| r.is_match(msg)),
        }
    }
}

/// Expectations on one kind of annotation (warnings or infos).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnnotationExpect {
    /// `expect warn ...` lines: at least one annotation, each matching some line.
    pub lines: Vec<MessageMatch>,
    /// `expect no_warn`: none at all.
    pub none: bool,
}

impl AnnotationExpect {
    /// Annotations of this kind are checked only when the eval says something about them.
    pub fn is_checked(&self) -> bool {
        self.none || !self.lines.is_empty()
    }
}

/// One expected output series and its slots.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedSeries {
    pub line: usize,
    pub labels: Labels,
    pub values: Vec<SeqValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// Series lines (possibly none: the result must be empty).
    Series(Vec<ExpectedSeries>),
    Scalar(f64),
}

/// `expect range vector from <start> to <end> step <step>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeVectorExpect {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

#[derive(Debug, Clone)]
pub struct Eval {
    pub line: usize,
    pub query: String,
    pub kind: EvalKind,
    pub fail: Option<MessageMatch>,
    pub warn: AnnotationExpect,
    pub info: AnnotationExpect,
    pub ordered: bool,
    pub range_vector: Option<RangeVectorExpect>,
    pub string: Option<String>,
    pub expected: Expected,
}

impl Eval {
    /// Whether the expected output contains a native histogram.
    pub fn expects_histogram(&self) -> bool {
        match &self.expected {
            Expected::Series(s) => s
                .iter()
                .any(|e| e.values.iter().any(|v| matches!(v, SeqValue::Histogram(_)))),
            Expected::Scalar(_) => false,
        }
    }

    /// The time an instant eval runs at (the end of an `expect range vector` window).
    pub fn instant_time(&self) -> Option<i64> {
        match self.kind {
            EvalKind::Instant { t } => Some(self.range_vector.map_or(t, |r| r.end)),
            EvalKind::Range { .. } => None,
        }
    }
}

fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Comment lines count as empty lines: both end a command's body.
fn is_blank(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

/// Parses a whole script. Problems are collected per command rather than aborting the file, so
/// one odd construct costs only its own cases.
pub fn parse_script(text: &str) -> Script {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut script = Script::default();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_blank(line) {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        let (word, _) = first_word(line);
        let word = word.to_ascii_lowercase();
        if word == "clear" {
            script.commands.push(Command::Clear { line: lineno });
            i += 1;
        } else if word.starts_with("load") {
            let end = block_end(&lines, i + 1);
            match parse_load(&lines, i, end) {
                Ok(l) => script.commands.push(Command::Load(l)),
                Err(e) => script.errors.push(e),
            }
            i = end;
        } else if word.starts_with("eval") {
            i = parse_eval(&lines, i, &mut script);
        } else {
            script.errors.push(ScriptError {
                line: lineno,
                message: format!("unknown command {word:?}"),
            });
            i = block_end(&lines, i + 1);
        }
    }
    script
}

fn block_end(lines: &[&str], from: usize) -> usize {
    let mut j = from;
    while j < lines.len() && !is_blank(lines[j]) {
        j += 1;
    }
    j
}

fn parse_load(lines: &[&str], header: usize, end: usize) -> Result<Load, ScriptError> {
    let err = |line: usize, message: String| ScriptError {
        line: line + 1,
        message,
    };
    let (word, rest) = first_word(lines[header]);
    let with_nhcb = match word.to_ascii_lowercase().as_str() {
        "load" => false,
        "load_with_nhcb" => true,
        w => return Err(err(header, format!("unknown command {w:?}"))),
    };
    let (interval, extra) = first_word(rest);
    if !extra.is_empty() {
        return Err(err(
            header,
            format!("unexpected text after the interval: {extra:?}"),
        ));
    }
    let interval_ms = parse_duration(interval).map_err(|e| err(header, e))?;
    let mut load = Load {
        line: header + 1,
        interval_ms,
        with_nhcb,
        series: Vec::new(),
        start_timestamp_series: Vec::new(),
    };
    for (j, line) in lines.iter().enumerate().take(end).skip(header + 1) {
        let (first, _) = first_word(line);
        if let Some(desc) = first.strip_suffix("@st") {
            // Start timestamps are not modelled; remember the series so its evals can be told apart.
            let (labels, _) = parse_series(desc).map_err(|e| err(j, e))?;
            load.start_timestamp_series.push(labels);
            continue;
        }
        let (labels, rest) = parse_series(line).map_err(|e| err(j, e))?;
        let values = parse_values(rest).map_err(|e| err(j, e))?;
        // A series repeated within a block: the later line wins.
        load.series.retain(|s| s.labels != labels);
        load.series.push(LoadSeries {
            line: j + 1,
            labels,
            values,
        });
    }
    Ok(load)
}

/// Parses the eval starting at `header` and returns the index of the first line after it.
fn parse_eval(lines: &[&str], header: usize, script: &mut Script) -> usize {
    let mut eval = match parse_eval_header(lines[header]) {
        Ok(e) => e,
        Err(message) => {
            script.errors.push(ScriptError {
                line: header + 1,
                message,
            });
            return block_end(lines, header + 1);
        }
    };
    eval.line = header + 1;
    let mut series = Vec::new();
    let mut scalar = None;
    let mut j = header + 1;
    let mut error = None;
    while j < lines.len() && !is_blank(lines[j]) {
        let line = lines[j];
        j += 1;
        let (word, rest) = first_word(line);
        let res = if word == "expect" {
            parse_directive(rest, &mut eval)
        } else if word == "expected_fail_message" || word == "expected_fail_regexp" {
            eval.fail = Some(if word == "expected_fail_message" {
                MessageMatch::Exact(rest.to_string())
            } else {
                MessageMatch::Regex(rest.to_string())
            });
            // The legacy message line ends the block, as a scalar line does.
            break;
        } else if let Some(v) = parse_scalar_line(line) {
            scalar = Some(v);
            break;
        } else {
            parse_series(line).and_then(|(labels, rest)| {
                series.push(ExpectedSeries {
                    line: j,
                    labels,
                    values: parse_values(rest)?,
                });
                Ok(())
            })
        };
        if let Err(message) = res {
            error.get_or_insert(ScriptError { line: j, message });
        }
    }
    if error.is_none() {
        if let Err(message) = check_eval(&eval, &series, scalar) {
            error = Some(ScriptError {
                line: eval.line,
                message,
            });
        }
    }
    if let Some(e) = error {
        script.errors.push(e);
        script.commands.push(Command::BrokenEval {
            line: eval.line,
            query: eval.query,
        });
        return j;
    }
    eval.expected = match scalar {
        Some(v) => Expected::Scalar(v),
        None => Expected::Series(series),
    };
    script.commands.push(Command::Eval(Box::new(eval)));
    j
}

/// Consistency rules between the header, directives and expected lines.
fn check_eval(eval: &Eval, series: &[ExpectedSeries], scalar: Option<f64>) -> Result<(), String> {
    if eval.warn.none && !eval.warn.lines.is_empty() {
        return Err("both 'expect warn' and 'expect no_warn'".into());
    }
    if eval.info.none && !eval.info.lines.is_empty() {
        return Err("both 'expect info' and 'expect no_info'".into());
    }
    if scalar.is_some() && !series.is_empty() {
        return Err("both a scalar and series as expected result".into());
    }
    let slots = match (eval.kind, eval.range_vector) {
        (EvalKind::Range { start, end, step }, _)
        | (_, Some(RangeVectorExpect { start, end, step })) => {
            if step <= 0 || end < start {
                return Err("invalid range".into());
            }
            ((end - start) / step + 1) as usize
        }
        (EvalKind::Instant { .. }, None) => 1,
    };
    let instant = matches!(eval.kind, EvalKind::Instant { .. }) && eval.range_vector.is_none();
    for s in series {
        if instant && s.values.len() != 1 {
            return Err(format!(
                "line {}: an instant eval expects exactly one value per series, got {}",
                s.line,
                s.values.len()
            ));
        }
        if s.values.len() > slots {
            return Err(format!(
                "line {}: {} values but the range has only {slots} steps",
                s.line,
                s.values.len()
            ));
        }
    }
    if matches!(eval.kind, EvalKind::Range { .. })
        && (eval.ordered || eval.range_vector.is_some() || eval.string.is_some())
    {
        return Err("'ordered', 'range vector' and 'string' are for instant evals only".into());
    }
    Ok(())
}

fn parse_eval_header(line: &str) -> Result<Eval, String> {
    let (cmd, rest) = first_word(line);
    let cmd = cmd.to_ascii_lowercase();
    let mut eval = Eval {
        line: 0,
        query: String::new(),
        kind: EvalKind::Instant { t: 0 },
        fail: None,
        warn: AnnotationExpect::default(),
        info: AnnotationExpect::default(),
        ordered: false,
        range_vector: None,
        string: None,
        expected: Expected::Series(Vec::new()),
    };
    match cmd.as_str() {
        "eval" => {}
        "eval_fail" => eval.fail = Some(MessageMatch::Any),
        "eval_warn" => eval.warn.lines.push(MessageMatch::Any),
        "eval_info" => eval.info.lines.push(MessageMatch::Any),
        "eval_ordered" => eval.ordered = true,
        c => return Err(format!("unknown eval command {c:?}")),
    }
    let (mode, rest) = first_word(rest);
    let query = match mode {
        "instant" => {
            let (mut w, mut rest) = first_word(rest);
            if w == "at" {
                (w, rest) = first_word(rest);
            }
            eval.kind = EvalKind::Instant {
                t: parse_duration(w)?,
            };
            rest
        }
        "range" => {
            let (start, end, step, rest) = parse_from_to_step(rest)?;
            if cmd == "eval_ordered" {
                return Err("eval_ordered is for instant queries only".into());
            }
            eval.kind = EvalKind::Range { start, end, step };
            rest
        }
        m => return Err(format!("expected 'instant' or 'range', got {m:?}")),
    };
    if query.is_empty() {
        return Err("eval without a query".into());
    }
    eval.query = query.to_string();
    Ok(eval)
}

/// Parses `from <d> to <d> step <d>` and returns the rest of the line.
fn parse_from_to_step(s: &str) -> Result<(i64, i64, i64, &str), String> {
    let mut rest = s;
    let mut vals = [0i64; 3];
    for (k, kw) in ["from", "to", "step"].iter().enumerate() {
        let (w, r) = first_word(rest);
        if w != *kw {
            return Err(format!("expected {kw:?}, got {w:?}"));
        }
        let (d, r) = first_word(r);
        vals[k] = parse_duration(d)?;
        rest = r;
    }
    Ok((vals[0], vals[1], vals[2], rest))
}

fn parse_message(rest: &str) -> Result<MessageMatch, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        Ok(MessageMatch::Any)
    } else if let Some(m) = rest.strip_prefix("msg:") {
        Ok(MessageMatch::Exact(m.trim().to_string()))
    } else if let Some(r) = rest.strip_prefix("regex:") {
        Ok(MessageMatch::Regex(r.trim().to_string()))
    } else {
        Err(format!("expected 'msg:' or 'regex:', got {rest:?}"))
    }
}

fn parse_directive(s: &str, eval: &mut Eval) -> Result<(), String> {
    let (kind, rest) = first_word(s);
    let instant_only = |what: &str| -> Result<(), String> {
        match eval.kind {
            EvalKind::Instant { .. } => Ok(()),
            EvalKind::Range { .. } => Err(format!("'expect {what}' is for instant evals only")),
        }
    };
    match kind {
        "fail" => {
            if eval.fail.is_some() {
                return Err("more than one 'expect fail'".into());
            }
            eval.fail = Some(parse_message(rest)?);
        }
        "warn" => eval.warn.lines.push(parse_message(rest)?),
        "info" => eval.info.lines.push(parse_message(rest)?),
        "no_warn" | "no_info" => {
            if !rest.is_empty() {
                return Err(format!("unexpected text after 'expect {kind}'"));
            }
            if kind == "no_warn" {
                eval.warn.none = true;
            } else {
                eval.info.none = true;
            }
        }
        "ordered" => {
            instant_only("ordered")?;
            if !rest.is_empty() {
                return Err("unexpected text after 'expect ordered'".into());
            }
            eval.ordered = true;
        }
        "range" => {
            instant_only("range vector")?;
            let (w, rest) = first_word(rest);
            if w != "vector" {
                return Err(format!("expected 'vector' after 'expect range', got {w:?}"));
            }
            let (start, end, step, tail) = parse_from_to_step(rest)?;
            if !tail.is_empty() {
                return Err(format!("unexpected text {tail:?}"));
            }
            eval.range_vector = Some(RangeVectorExpect { start, end, step });
        }
        "string" => {
            instant_only("string")?;
            let (v, n) = unquote_prefix(rest)?;
            if !rest[n..].trim().is_empty() {
                return Err(format!(
                    "unexpected text after the string: {:?}",
                    &rest[n..]
                ));
            }
            eval.string = Some(v);
        }
        k => return Err(format!("unknown directive 'expect {k}'")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn evals(s: &Script) -> Vec<&Eval> {
        s.commands
            .iter()
            .filter_map(|c| match c {
                Command::Eval(e) => Some(&**e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn blocks_and_commands() {
        let text = r#"
# a comment
load 5m
    http_requests{job="api", instance="0"}  0+10x10
    other 1 _ 3 stale

eval instant at 50m sum(http_requests)
    {} 100

clear
eval instant at 0m other
# empty
load 1m
    x 1
"#;
        let s = parse_script(text);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.commands.len(), 5);
        let Command::Load(l) = &s.commands[0] else {
            panic!("expected load")
        };
        assert_eq!(l.interval_ms, 300_000);
        assert_eq!(l.series.len(), 2);
        assert_eq!(l.series[0].values.len(), 11);
        assert_eq!(l.line, 3);
        assert!(matches!(s.commands[2], Command::Clear { line: 10 }));
        let e = evals(&s);
        assert_eq!(e[0].kind, EvalKind::Instant { t: 3_000_000 });
        assert_eq!(e[0].query, "sum(http_requests)");
        // `clear` takes no body: the eval right after it is a command of its own, and the
        // comment line ends that eval with no expected series.
        assert_eq!(e[1].line, 11);
        assert_eq!(e[1].expected, Expected::Series(vec![]));
        assert!(matches!(s.commands[4], Command::Load(_)));
    }

    #[test]
    fn repeated_series_in_a_load_block() {
        let s = parse_script("load 1m\n  a 1 2\n  b 3\n  a 5\n");
        let Command::Load(l) = &s.commands[0] else {
            panic!("expected load")
        };
        assert_eq!(l.series.len(), 2);
        assert_eq!(l.series[1].values, vec![SeqValue::Float(5.0)]);
    }

    #[test]
    fn scalar_line_ends_block() {
        let s = parse_script("eval instant at 1m 1+1\n  2\neval instant at 1m 3\n  3\n");
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let e = evals(&s);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].expected, Expected::Scalar(2.0));
        assert_eq!(e[1].expected, Expected::Scalar(3.0));
    }

    #[test]
    fn expect_lines() {
        let text = r#"
eval instant at 1m foo
  expect fail msg: something went wrong
  expect no_info

eval instant at 1m bar
  expect warn regex: PromQL warning: .*
  expect warn
  expect ordered
  bar{a="1"} 1
  bar{a="2"} 2

eval instant at 1m "x"
  expect string "Foo\n"

eval instant at 1m m[1m]
  expect range vector from 10s to 1m step 10s
  m 1 2 3 _ 5 6

eval_fail instant at 1m baz

eval range from 0 to 2m step 1m rate(x[1m])
  expect info
  {} 1 _ 3
"#;
        let s = parse_script(text);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let e = evals(&s);
        assert_eq!(e.len(), 6);
        assert_eq!(
            e[0].fail,
            Some(MessageMatch::Exact("something went wrong".into()))
        );
        assert!(e[0].info.none && e[0].info.is_checked() && !e[0].warn.is_checked());
        assert_eq!(e[1].warn.lines.len(), 2);
        assert!(e[1].ordered);
        assert!(e[1].warn.lines[0].matches("PromQL warning: foo (1:1)"));
        assert_eq!(e[2].string.as_deref(), Some("Foo\n"));
        assert_eq!(
            e[3].range_vector,
            Some(RangeVectorExpect {
                start: 10_000,
                end: 60_000,
                step: 10_000
            })
        );
        assert_eq!(e[3].instant_time(), Some(60_000));
        assert_eq!(e[4].fail, Some(MessageMatch::Any));
        assert_eq!(
            e[5].kind,
            EvalKind::Range {
                start: 0,
                end: 120_000,
                step: 60_000
            }
        );
        assert_eq!(e[5].info.lines, vec![MessageMatch::Any]);
    }

    #[test]
    fn broken_evals_are_reported_not_fatal() {
        let text = "eval instant at 1m foo\n  expect bogus\n\neval instant at 1m a\n  a 1 2\n\neval instant at 1m ok\n  ok 1\n";
        let s = parse_script(text);
        assert_eq!(s.errors.len(), 2);
        assert_eq!(s.errors[0].line, 2);
        assert!(matches!(s.commands[0], Command::BrokenEval { line: 1, .. }));
        assert!(matches!(s.commands[1], Command::BrokenEval { line: 4, .. }));
        assert_eq!(evals(&s).len(), 1);
    }

    #[test]
    fn warn_with_no_warn_is_an_error() {
        let s = parse_script("eval instant at 1m a\n  expect warn\n  expect no_warn\n");
        assert_eq!(s.errors.len(), 1);
    }

    #[test]
    fn start_timestamp_lines_are_set_aside() {
        let s =
            parse_script("load 1m\n  c{type=\"a\"}@st _ _ -30s-1mx2\n  c{type=\"a\"} 0 1 2 3\n");
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let Command::Load(l) = &s.commands[0] else {
            panic!("expected load")
        };
        assert_eq!(l.series.len(), 1);
        assert_eq!(l.start_timestamp_series.len(), 1);
    }
}
