//! Tests of the exposition parsers: fixtures, the golden corpus in `testdata/expfmt`, every
//! error with its line number, and property tests that no input panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Renders entries one per line, in a form meant for reading in a diff.
fn dump(input: &[u8], format: Format) -> Result<(Vec<String>, ParseStats), ExpfmtError> {
    let mut out = Vec::new();
    let stats = Parser::new().parse(input, format, |e| out.push(render(&e)))?;
    Ok((out, stats))
}

fn render(e: &Entry<'_>) -> String {
    match e {
        Entry::Type { name, kind } => format!("TYPE {name} {}", kind.as_str()),
        Entry::Help { name, text } => format!("HELP {name} {text:?}"),
        Entry::Unit { name, unit } => format!("UNIT {name} {unit:?}"),
        Entry::Sample(s) => {
            let mut line = s.name.to_string();
            if !s.labels.is_empty() {
                line.push('{');
                for (i, (n, v)) in s.labels.iter().enumerate() {
                    let sep = if i > 0 { "," } else { "" };
                    write!(line, "{sep}{n}={v:?}").unwrap();
                }
                line.push('}');
            }
            write!(line, " {:?}", s.value).unwrap();
            if let Some(ts) = s.timestamp_ms {
                write!(line, " @{ts}").unwrap();
            }
            line
        }
    }
}

/// An owned sample: name, labels, value, timestamp.
type Sample = (String, Vec<(String, String)>, f64, Option<i64>);

fn samples(input: &str, format: Format) -> Vec<Sample> {
    let mut out = Vec::new();
    Parser::new()
        .parse(input.as_bytes(), format, |e| {
            if let Entry::Sample(s) = e {
                out.push((
                    s.name.to_string(),
                    s.labels
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    s.value,
                    s.timestamp_ms,
                ));
            }
        })
        .unwrap();
    out
}

fn err(input: &str, format: Format) -> ExpfmtError {
    match Parser::new().parse(input.as_bytes(), format, |_| {}) {
        Ok(st) => panic!("expected an error for {input:?}, got {st:?}"),
        Err(e) => e,
    }
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/expfmt")
}

/// Golden corpus: each `*.txt` (text format) or `*.om` (OpenMetrics) body has a `.out` file with
/// the rendered entries or the error. `EXPFMT_BLESS=1` rewrites the `.out` files.
#[test]
fn corpus() {
    let bless = std::env::var_os("EXPFMT_BLESS").is_some();
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("txt") => Format::PromText,
            Some("om") => Format::OpenMetrics,
            _ => continue,
        };
        seen += 1;
        let input = std::fs::read(&path).unwrap();
        let got = match dump(&input, format) {
            Ok((lines, stats)) => {
                let mut s = lines.join("\n");
                write!(s, "\n# samples={} lines={}\n", stats.samples, stats.lines).unwrap();
                s
            }
            Err(e) => format!("error: {e}\n"),
        };
        let out = path.with_extension(format!(
            "{}.out",
            path.extension().unwrap().to_str().unwrap()
        ));
        if bless {
            std::fs::write(&out, &got).unwrap();
        } else {
            let want = std::fs::read_to_string(&out)
                .unwrap_or_else(|_| panic!("{} missing; run with EXPFMT_BLESS=1", out.display()));
            assert_eq!(got, want, "{}", path.display());
        }
    }
    assert!(seen >= 2);
}

#[test]
fn node_exporter_fixture() {
    let body = std::fs::read_to_string(testdata().join("node_exporter.txt")).unwrap();
    let mut helps = Vec::new();
    let mut types = Vec::new();
    let stats = Parser::new()
        .parse(body.as_bytes(), Format::PromText, |e| match e {
            Entry::Help { name, text } => helps.push((name.to_string(), text.to_string())),
            Entry::Type { name, kind } => types.push((name.to_string(), kind)),
            _ => {}
        })
        .unwrap();
    assert_eq!(stats.lines, 56);
    assert_eq!(stats.samples, 34);
    assert!(types.contains(&("go_gc_duration_seconds".into(), MetricType::Summary)));
    assert!(types.contains(&("node_disk_io_time_seconds".into(), MetricType::Histogram)));
    assert!(types.contains(&("process_max_fds".into(), MetricType::Unknown)));
    let info = helps
        .iter()
        .find(|(n, _)| n == "node_network_info")
        .unwrap();
    assert_eq!(
        info.1,
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.\nSecond line with a \\ backslash."
    );

    let s = samples(&body, Format::PromText);
    let find = |name: &str, label: Option<(&str, &str)>| {
        s.iter()
            .find(|(n, l, _, _)| {
                n == name && label.is_none_or(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    assert_eq!(
        find("go_gc_duration_seconds", Some(("quantile", "0.25"))).2,
        3.5497e-05
    );
    assert_eq!(find("go_gc_duration_seconds_count", None).2, 17542.0);
    assert!(find("node_hwmon_temp_celsius", Some(("sensor", "temp1")))
        .2
        .is_nan());
    assert!(!tocsin_model::is_stale_nan(
        find("node_hwmon_temp_celsius", Some(("sensor", "temp1"))).2
    ));
    assert_eq!(find("process_max_fds", None).2, f64::INFINITY);
    assert_eq!(find("process_min_headroom", None).2, f64::NEG_INFINITY);
    // `le` is kept as written, not normalised.
    let inf_bucket = find("node_disk_io_time_seconds_bucket", Some(("le", "+Inf")));
    assert_eq!(inf_bucket.2, 2511.0);
    find("node_disk_io_time_seconds_bucket", Some(("le", "1")));
    let net = find("node_network_info", None);
    assert_eq!(
        net.1,
        vec![
            ("address".to_string(), "00:1a:2b:3c:4d:5e".to_string()),
            ("device".into(), "eth0".into()),
            ("ifalias".into(), "uplink \"core\"\nrack 4".into()),
            ("operstate".into(), "up".into()),
        ]
    );
    let win = find("node_filesystem_avail_bytes", Some(("fstype", "ntfs")));
    assert_eq!(win.1[0].1, "C:\\Windows");
    let tmpfs = find("node_filesystem_avail_bytes", Some(("fstype", "tmpfs")));
    assert_eq!(tmpfs.1.len(), 3, "trailing comma");
    let t = find("node_time_seconds", None);
    assert_eq!((t.2, t.3), (1.7123456789123e9, Some(1712345678912)));
    let ws = find("node_textfile_scrape_error", None);
    assert_eq!((ws.2, ws.3), (0.0, None));
    let spaced = find(
        "node_scrape_collector_success",
        Some(("collector", "bonding")),
    );
    assert_eq!((spaced.2, spaced.3), (0.0, Some(1712345678000)));
}

#[test]
fn openmetrics_exemplars_are_dropped() {
    let body = std::fs::read_to_string(testdata().join("exemplars.om")).unwrap();
    let s = samples(&body, Format::OpenMetrics);
    let names: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_sum",
            "http_request_duration_seconds_count",
            "http_request_duration_seconds_created",
            "acme_requests_total",
            "acme_requests_created",
            "build_info",
            "feature",
            "feature",
            "queue_bucket",
            "queue_gcount",
            "queue_gsum",
            "rpc",
            "rpc_sum",
            "rpc_count",
            "mystery",
        ]
    );
    // Exemplar labels never leak into the sample.
    assert_eq!(s[1].1, vec![("le".to_string(), "1".to_string())]);
    assert_eq!(s[1].3, None);
    assert_eq!(
        s[6].1,
        vec![
            ("path".to_string(), "/api".to_string()),
            ("code".into(), "200".into())
        ]
    );
    assert_eq!((s[6].2, s[6].3), (13000.0, Some(1520879607789)));
    assert_eq!(s[8].1[1].1, "abc\"d");
    assert_eq!(s[15].3, Some(-1500));
    assert_eq!(s[16].3, Some(0), "0.1 ms truncates to 0");
    assert_eq!(s[17].3, None);
    let (lines, _) = dump(body.as_bytes(), Format::OpenMetrics).unwrap();
    assert!(lines.contains(&"UNIT http_request_duration_seconds \"seconds\"".to_string()));
    assert!(lines.contains(&"UNIT mystery \"\"".to_string()));
    assert!(lines.contains(
        &"HELP http_request_duration_seconds \"Request latency, quoted \\\"like this\\\" and with \\\\ and \\n escapes.\"".to_string()
    ));
}

#[test]
fn openmetrics_eof() {
    let om = Format::OpenMetrics;
    assert_eq!(
        Parser::new().parse(b"a 1\n# EOF\n", om, |_| {}).unwrap(),
        ParseStats {
            samples: 1,
            lines: 2
        }
    );
    assert_eq!(
        Parser::new().parse(b"a 1\n# EOF", om, |_| {}).unwrap(),
        ParseStats {
            samples: 1,
            lines: 2
        }
    );
    assert_eq!(
        Parser::new().parse(b"# EOF\n", om, |_| {}).unwrap().samples,
        0
    );
    for (input, line, what) in [
        ("", 1, "does not end with \"# EOF\""),
        ("a 1\n", 2, "does not end with \"# EOF\""),
        ("a 1", 1, "does not end with \"# EOF\""),
        ("# TYPE a gauge", 1, "does not end with \"# EOF\""),
        ("a 1\n# EOF\n\n", 3, "unexpected data after"),
        ("# EOF\na 1\n", 2, "unexpected data after"),
        ("a 1\n# EOF \n", 2, "only"),
        ("a 1\n#  EOF\n", 2, "only"),
        ("a 1\n# EOF\r\n", 2, "Windows line ending"),
    ] {
        let e = err(input, om);
        assert_eq!(e.line, line, "{input:?}: {e}");
        assert!(e.message.contains(what), "{input:?}: {e}");
    }
}

#[test]
fn errors_name_the_line() {
    let text = Format::PromText;
    let om = Format::OpenMetrics;
    let cases: &[(&str, Format, usize, &str)] = &[
        // Text format.
        ("a 1\n{b=\"c\"} 1\n", text, 2, "expected a metric name"),
        ("a 1\n1a 1\n", text, 2, "expected a metric name"),
        ("a\n", text, 1, "expected a value"),
        ("a{b=\"c\"}\n", text, 1, "expected a value"),
        ("a x\n", text, 1, "invalid sample value \"x\""),
        ("a 1e999\n", text, 1, "out of range"),
        ("a 0x10\n", text, 1, "invalid sample value"),
        ("a 1_0\n", text, 1, "invalid sample value"),
        ("a +nan\n", text, 1, "invalid sample value"),
        ("a 1 -5\n", text, 1, "expected a timestamp"),
        ("a 1 1.5\n", text, 1, "unexpected text after the timestamp"),
        ("a 1 2 3\n", text, 1, "unexpected text after the timestamp"),
        ("a 1 99999999999999999999\n", text, 1, "out of range"),
        ("a 1{\n", text, 1, "expected a timestamp"),
        ("a{b=\"c\" 1\n", text, 1, "expected a label name or '}'"),
        ("a{b=\"c\n", text, 1, "unterminated quoted label value"),
        (
            "a{b=\"c\\\"} 1\n",
            text,
            1,
            "unterminated quoted label value",
        ),
        ("a{b\n", text, 1, "expected '='"),
        ("a{\n", text, 1, "unterminated label set"),
        ("a{b=c} 1\n", text, 1, "expected a quoted label value"),
        ("a{1b=\"c\"} 1\n", text, 1, "expected a label name"),
        ("a{,} 1\n", text, 1, "expected a label name"),
        ("a{b=\"1\",,c=\"2\"} 1\n", text, 1, "expected a label name"),
        ("a{b:c=\"1\"} 1\n", text, 1, "expected '='"),
        (
            "a{b=\"1\",b=\"2\"} 1\n",
            text,
            1,
            "label name \"b\" appears twice",
        ),
        ("a{__name__=\"b\"} 1\n", text, 1, "__name__"),
        (
            "# TYPE a gauge\n# TYPE a counters\n",
            text,
            2,
            "invalid metric type \"counters\"",
        ),
        ("# TYPE a info\n", text, 1, "invalid metric type \"info\""),
        (
            "# TYPE a  gauge\n",
            text,
            1,
            "invalid metric type \" gauge\"",
        ),
        (
            "# TYPE a gauge \n",
            text,
            1,
            "invalid metric type \"gauge \"",
        ),
        ("# TYPE a\n", text, 1, "invalid metric type \"\""),
        (
            "# HELP 1a text\n",
            text,
            1,
            "expected a metric name after # HELP",
        ),
        (
            "# HELP a-b text\n",
            text,
            1,
            "expected a space after the metric name",
        ),
        ("a 1", text, 1, "does not end with a line feed"),
        ("# HELP a b", text, 1, "does not end with a line feed"),
        ("a 1\r\n", text, 1, "Windows line ending"),
        ("a 1 1000\r\n", text, 1, "Windows line ending"),
        ("# TYPE a gauge\r\n", text, 1, "Windows line ending"),
        // OpenMetrics.
        ("a 1\n\n# EOF\n", om, 2, "empty lines"),
        ("a  1\n# EOF\n", om, 1, "exactly one space"),
        ("a 1 \n# EOF\n", om, 1, "exactly one space"),
        ("a\t1\n# EOF\n", om, 1, "single space"),
        (" a 1\n# EOF\n", om, 1, "expected a metric name"),
        (
            "a{b=\"c\", d=\"e\"} 1\n# EOF\n",
            om,
            1,
            "expected a label name",
        ),
        ("a{b = \"c\"} 1\n# EOF\n", om, 1, "expected '='"),
        ("a{b=\"c\"d=\"e\"} 1\n# EOF\n", om, 1, "expected ',' or '}'"),
        ("a {b=\"c\"} 1\n# EOF\n", om, 1, "invalid sample value"),
        ("a 1 NaN\n# EOF\n", om, 1, "not a finite number"),
        ("a 1 +Inf\n# EOF\n", om, 1, "not a finite number"),
        ("a 1 x\n# EOF\n", om, 1, "invalid timestamp \"x\""),
        ("a 1 1 1\n# EOF\n", om, 1, "expected an exemplar"),
        ("a 1 # {b=\"c\"}\n# EOF\n", om, 1, "exemplar labels"),
        (
            "a 1 # {b=\"c\"} x\n# EOF\n",
            om,
            1,
            "invalid exemplar value",
        ),
        (
            "a 1 # {b=\"c\"} 1 NaN\n# EOF\n",
            om,
            1,
            "exemplar timestamp",
        ),
        ("a 1 # {b=\"c\"} 1 2 3\n# EOF\n", om, 1, "unexpected text"),
        ("a 1 # {b c} 1\n# EOF\n", om, 1, "expected '='"),
        ("a 1 #{b=\"c\"} 1\n# EOF\n", om, 1, "invalid timestamp"),
        ("# comment\n# EOF\n", om, 1, "only"),
        ("#HELP a b\n# EOF\n", om, 1, "only"),
        (
            "# HELP a\n# EOF\n",
            om,
            1,
            "single space after the metric name",
        ),
        (
            "# TYPE a untyped\n# EOF\n",
            om,
            1,
            "invalid metric type \"untyped\"",
        ),
        ("# UNIT a_bytes seconds\n# EOF\n", om, 1, "not a suffix"),
        ("# UNIT seconds seconds\n# EOF\n", om, 1, "not a suffix"),
        ("# UNIT a_xseconds seconds\n# EOF\n", om, 1, "not a suffix"),
        ("a{b=\"1\",b=\"2\"} 1\n# EOF\n", om, 1, "appears twice"),
    ];
    for &(input, format, line, what) in cases {
        let e = err(input, format);
        assert_eq!(e.line, line, "{input:?}: {e}");
        assert!(
            e.message.contains(what),
            "{input:?}: got {e}, want {what:?}"
        );
    }
}

#[test]
fn text_format_leniency_matches_prometheus() {
    let text = Format::PromText;
    // Whitespace everywhere, blank lines, no comma between pairs, value glued to the brace.
    let s = samples(
        "\n  \t\na { b = \"1\" c=\"2\"}3\n\t d\t4\t5\t\n e+1\n",
        text,
    );
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].1.len(), 2);
    assert_eq!(s[0].2, 3.0);
    assert_eq!((s[1].2, s[1].3), (4.0, Some(5)));
    assert_eq!(s[2].2, 1.0);
    // A comment may end the body without a line feed; HELP without text is empty.
    let (lines, _) = dump(b"# HELP a\n# HELP b \n# HELPER x\n#TYPE a foo\n# x", text).unwrap();
    assert_eq!(lines, ["HELP a \"\"", "HELP b \"\""]);
    // HELP keeps \" as written in the text format and any unknown escape everywhere.
    let (lines, _) = dump(b"# HELP a x\\\"y\\tz\\\\n\na{b=\"\\t\\\\n\"} 1\n", text).unwrap();
    assert_eq!(
        lines,
        [
            "HELP a \"x\\\\\\\"y\\\\tz\\\\n\"",
            "a{b=\"\\\\t\\\\n\"} 1.0"
        ]
    );
    // Invalid UTF-8 is fine in a plain comment.
    let mut body = b"# caf\xe9\n#\xff\na 1\n".to_vec();
    assert_eq!(Parser::new().parse(&body, text, |_| {}).unwrap().samples, 1);
    body.extend_from_slice(b"# HELP a caf\xe9\n");
    let e = Parser::new().parse(&body, text, |_| {}).unwrap_err();
    assert_eq!(e.line, 4);
    assert!(e.message.contains("invalid UTF-8"));
    for format in [Format::PromText, Format::OpenMetrics] {
        let e = Parser::new()
            .parse(b"a 1\na{b=\"\xff\"} 1\n", format, |_| {})
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("invalid UTF-8"), "{e}");
    }
}

#[test]
fn timestamps() {
    let s = samples("a 1 1712345678912\nb 1 0\n", Format::PromText);
    assert_eq!((s[0].3, s[1].3), (Some(1712345678912), Some(0)));
    let s = samples(
        "a 1 1712345678.912\nb 1 1712345678\nc 1 -1.5\nd 1 1.0005\ne 1 1e3\n# EOF\n",
        Format::OpenMetrics,
    );
    let ts: Vec<_> = s.iter().map(|x| x.3).collect();
    // 1.0005 * 1000 is 1000.4999...: truncated like Prometheus does.
    assert_eq!(
        ts,
        [
            Some(1712345678912),
            Some(1712345678000),
            Some(-1500),
            Some(1000),
            Some(1_000_000)
        ]
    );
}

#[test]
fn many_labels_duplicate_check() {
    let mut line = String::from("a{");
    for i in 0..40 {
        write!(line, "l{i}=\"{i}\",").unwrap();
    }
    let ok = format!("{line}}} 1\n");
    assert_eq!(samples(&ok, Format::PromText)[0].1.len(), 40);
    let dup = format!("{line}l7=\"x\"}} 1\n");
    assert!(err(&dup, Format::PromText)
        .message
        .contains("\"l7\" appears twice"));
}

#[test]
fn content_type_and_accept_header() {
    assert_eq!(Format::from_content_type(None), Format::PromText);
    assert_eq!(
        Format::from_content_type(Some("text/plain; version=0.0.4; charset=utf-8")),
        Format::PromText
    );
    assert_eq!(
        Format::from_content_type(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type(Some(" Application/OpenMetrics-Text")),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type(Some("application/json")),
        Format::PromText
    );
    assert!(SCRAPE_ACCEPT_HEADER.starts_with("application/openmetrics-text;version=1.0.0,"));
    assert!(SCRAPE_ACCEPT_HEADER.ends_with("*/*;q=0.1"));
}

#[test]
fn reused_parser_gives_the_same_result() {
    let body = std::fs::read(testdata().join("node_exporter.txt")).unwrap();
    let om = std::fs::read(testdata().join("exemplars.om")).unwrap();
    let mut p = Parser::new();
    let run = |p: &mut Parser, b: &[u8], f: Format| {
        let mut v = Vec::new();
        p.parse(b, f, |e| v.push(render(&e))).unwrap();
        v
    };
    let first = run(&mut p, &body, Format::PromText);
    let om_first = run(&mut p, &om, Format::OpenMetrics);
    assert!(p
        .parse(b"a{b=\"\\n\"} x\n", Format::PromText, |_| {})
        .is_err());
    assert_eq!(run(&mut p, &body, Format::PromText), first);
    assert_eq!(run(&mut p, &om, Format::OpenMetrics), om_first);
}

#[test]
fn converts_into_the_crate_error() {
    let e: crate::Error = err("a\n", Format::PromText).into();
    assert_eq!(e.kind(), tocsin_model::ErrorKind::BadData);
    assert!(e
        .to_string()
        .starts_with("exposition body line 1: expected a value"));
}

fn arb_label_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('n'),
            Just(' '),
            Just('é'),
            Just('{'),
            Just('}'),
            Just(','),
            Just('#')
        ],
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn arb_sample() -> impl Strategy<Value = Sample> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,6}",
        proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,4}", arb_label_value(), 0..4),
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            Just(f64::INFINITY)
        ],
        proptest::option::of(0i64..4_000_000_000_000),
    )
        .prop_filter("no __name__", |(_, l, _, _)| !l.contains_key("__name__"))
        .prop_map(|(n, l, v, t)| (n, l.into_iter().collect(), v, t))
}

fn render_body(samples: &[Sample], format: Format) -> String {
    let mut out = String::new();
    for (n, l, v, t) in samples {
        out.push_str(n);
        if !l.is_empty() {
            out.push('{');
            let parts: Vec<String> = l
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            out.push_str(&parts.join(","));
            out.push('}');
        }
        write!(out, " {v:?}").unwrap();
        match (t, format) {
            (Some(t), Format::PromText) => write!(out, " {t}").unwrap(),
            (Some(t), Format::OpenMetrics) => write!(out, " {}.{:03}", t / 1000, t % 1000).unwrap(),
            (None, _) => {}
        }
        out.push('\n');
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

proptest! {
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut p = Parser::new();
        let _ = p.parse(&body, Format::PromText, |_| {});
        let _ = p.parse(&body, Format::OpenMetrics, |_| {});
    }

    #[test]
    fn random_text_never_panics(body in "[a-z_{}=\",# \\\\.0-9\n\t\r+-eEIiNnfF]{0,200}") {
        let mut p = Parser::new();
        let _ = p.parse(body.as_bytes(), Format::PromText, |_| {});
        let _ = p.parse(body.as_bytes(), Format::OpenMetrics, |_| {});
    }

    #[test]
    fn mutated_fixture_never_panics(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        om in any::<bool>(),
    ) {
        let name = if om { "exemplars.om" } else { "node_exporter.txt" };
        let mut body = std::fs::read(testdata().join(name)).unwrap();
        for (at, byte, op) in edits {
            let i = at.index(body.len().max(1)).min(body.len());
            match op {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ if i < body.len() => { body.remove(i); }
                _ => {}
            }
        }
        let format = if om { Format::OpenMetrics } else { Format::PromText };
        let mut p = Parser::new();
        let r = p.parse(&body, format, |_| {});
        if let Err(e) = r {
            prop_assert!(e.line >= 1);
        }
    }

    #[test]
    fn rendered_samples_round_trip(ss in proptest::collection::vec(arb_sample(), 0..10), om in any::<bool>()) {
        let format = if om { Format::OpenMetrics } else { Format::PromText };
        let body = render_body(&ss, format);
        let got = samples(&body, format);
        prop_assert_eq!(got.len(), ss.len());
        for (g, w) in got.iter().zip(&ss) {
            prop_assert_eq!(&g.0, &w.0);
            prop_assert_eq!(&g.1, &w.1);
            prop_assert_eq!(g.2.to_bits(), w.2.to_bits());
            // OpenMetrics seconds are truncated after `* 1000`, like Prometheus, which can lose
            // the last millisecond of a decimal fraction that is not exact in binary.
            match (g.3, w.3, om) {
                (Some(a), Some(b), true) => prop_assert!(b - a == 0 || b - a == 1, "{a} vs {b}"),
                _ => prop_assert_eq!(g.3, w.3),
            }
        }
    }
}
