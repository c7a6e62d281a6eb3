//! Tests of the line-protocol parser and mapping: unit cases, the `testdata/lineproto` corpus,
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! error cases with line numbers, and a never-panics property.

use super::*;
use proptest::prelude::*;
use tocsin_model::Labels;

/// Decodes `body` and renders every sample as `{labels} value timestamp`, as `tocsin tsdb dump` does.
fn render(body: &str, opts: &Options) -> (Vec<String>, Report) {
    let mut out = Vec::new();
    let mut report = Report::default();
    let mut d = Decoder::new();
    let res: Result<(), ()> = d.decode(body.as_bytes(), opts, &mut report, |pairs, t, v| {
        let l = Labels::try_from_pairs(pairs).map_err(|_| ())?;
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "{pairs:?}");
        out.push(format!("{l} {v} {t}"));
        Ok(())
    });
    assert!(res.is_ok());
    (out, report)
}

fn opts(p: Precision) -> Options {
    Options {
        precision: p,
        now_ms: 1_700_000_000_000,
    }
}

#[test]
fn parses_escapes_and_all_value_kinds() {
    let mut p = Parser::new();
    let line = r#"we\,ather\ x,lo\ c\=1=us\,west,x=a\b temp=82.5,n=-3i,u=7u,ok=T,s="say \"hi\" \\ \n" 1465839830100400200"#;
    let pt = p.parse(line).unwrap().unwrap();
    assert_eq!(pt.measurement(), "we,ather x");
    let tags: Vec<_> = pt.tags().collect();
    assert_eq!(tags, vec![("lo c=1", "us,west"), ("x", r"a\b")]);
    let fields: Vec<_> = pt.fields().collect();
    assert_eq!(
        fields,
        vec![
            ("temp", FieldValue::Float(82.5)),
            ("n", FieldValue::Int(-3)),
            ("u", FieldValue::UInt(7)),
            ("ok", FieldValue::Bool(true)),
            ("s", FieldValue::Str(r#"say "hi" \ \n"#)),
        ]
    );
    assert_eq!(pt.timestamp, Some(1465839830100400200));
}

#[test]
fn strings_may_hold_commas_spaces_and_equals() {
    let mut p = Parser::new();
    let pt = p.parse(r#"m msg="a, b=c d",v=1"#).unwrap().unwrap();
    let fields: Vec<_> = pt.fields().collect();
    assert_eq!(fields[0], ("msg", FieldValue::Str("a, b=c d")));
    assert_eq!(fields[1], ("v", FieldValue::Float(1.0)));
    assert_eq!(pt.timestamp, None);
}

#[test]
fn booleans_in_every_spelling() {
    let mut p = Parser::new();
    for (tok, want) in [
        ("t", true),
        ("T", true),
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("f", false),
        ("F", false),
        ("false", false),
        ("False", false),
        ("FALSE", false),
    ] {
        let line = format!("m b={tok}");
        let pt = p.parse(&line).unwrap().unwrap();
        assert_eq!(
            pt.fields().next().unwrap().1,
            FieldValue::Bool(want),
            "{tok}"
        );
    }
    assert!(p.parse("m b=tRUE").is_err());
}

#[test]
fn blank_lines_comments_and_crlf() {
    let (out, r) = render(
        "# a comment\n\n   \r\ncpu v=1 1000000000\r\n  # indented comment\n",
        &opts(Precision::Nanoseconds),
    );
    assert_eq!(out, vec![r#"{__name__="cpu_v"} 1 1000"#]);
    assert_eq!(r.bad_total, 0);
    assert_eq!(r.points, 1);
}

#[test]
fn precisions_convert_to_milliseconds() {
    for (p, ts, want) in [
        (Precision::Nanoseconds, 1_500_000_123, 1_500),
        (Precision::Microseconds, 1_500_123, 1_500),
        (Precision::Milliseconds, 1_500, 1_500),
        (Precision::Seconds, 2, 2_000),
        (Precision::Minutes, 2, 120_000),
        (Precision::Hours, 1, 3_600_000),
        (Precision::Nanoseconds, -1, -1),
    ] {
        assert_eq!(p.to_ms(ts), Some(want), "{p:?}");
    }
    assert_eq!(Precision::Hours.to_ms(i64::MAX), None);
    assert_eq!(Precision::from_v1("µ"), Some(Precision::Microseconds));
    assert_eq!(Precision::from_v1("m"), Some(Precision::Minutes));
    assert_eq!(Precision::from_v2("m"), None);
    assert_eq!(Precision::from_v2("h"), None);
    assert_eq!(Precision::from_v2(""), Some(Precision::Nanoseconds));
}

#[test]
fn errors_name_the_line() {
    let body = "good v=1 1\nbad\nm,t v=1\nm,t= v=1\nm v=\nm v=abc\nm v=1 12x\nm s=\"open\nm v=1.5i\nm v=1 1 2\nm,__name__=x v=1\nm,a-b=1,a_b=2 v=1\nm v=nan\nm v=1u0\nm v=99999999999999999999i\n, v=1\nm  v=1\n";
    let (out, r) = render(body, &opts(Precision::Nanoseconds));
    assert_eq!(out.len(), 2, "{out:?}");
    let lines: Vec<usize> = r.bad_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        lines,
        vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
        "{:?}",
        r.bad_lines
    );
    let msg = r.bad_lines_message();
    for want in [
        "line 2: missing fields",
        "line 3: tag key \"t\" has no value",
        "line 4: tag \"t\" has an empty value",
        "line 5: field \"v\": empty value",
        "line 6: field \"v\": invalid value \"abc\"",
        "line 7: invalid timestamp \"12x\"",
        "line 8: field \"s\": unterminated string",
        "line 9: field \"v\": invalid integer",
        "line 10: unexpected text after the timestamp",
        "line 11: tag key \"__name__\" is reserved",
        "line 12: duplicate tag key \"a_b\"",
        "line 13: field \"v\": invalid value \"nan\"",
        "line 16: missing measurement",
    ] {
        assert!(msg.contains(want), "missing {want:?} in {msg}");
    }
}

#[test]
fn report_caps_described_lines() {
    let body: String = (0..50).map(|_| "bad\n").collect();
    let (_, r) = render(&body, &opts(Precision::Nanoseconds));
    assert_eq!(r.bad_total, 50);
    assert_eq!(r.bad_lines.len(), MAX_REPORTED_LINES);
    assert!(r.bad_lines_message().ends_with("and 30 more bad lines"));
}

#[test]
fn invalid_utf8_is_one_bad_line() {
    let mut d = Decoder::new();
    let mut r = Report::default();
    let mut n = 0;
    let res: Result<(), ()> = d.decode(
        b"m v=1 1\nm,t=\xff v=1 1\nm v=2 2\n",
        &opts(Precision::Nanoseconds),
        &mut r,
        |_, _, _| {
            n += 1;
            Ok(())
        },
    );
    assert!(res.is_ok());
    assert_eq!(n, 2);
    assert_eq!(r.bad_lines, vec![(2, "not valid UTF-8".to_string())]);
}

#[test]
fn sink_error_stops_decoding() {
    let mut d = Decoder::new();
    let mut r = Report::default();
    let res = d.decode(
        b"m v=1\nm v=2\n",
        &opts(Precision::Nanoseconds),
        &mut r,
        |_, _, _| Err("store down"),
    );
    assert_eq!(res, Err("store down"));
    assert_eq!(r.samples, 1);
}

/// One corpus file: `key: value` headers (`precision`, `api` = v1|v2, `strings`), then
/// `=== input`, `=== samples` (sorted `{labels} value ms`), and optionally `=== errors`
/// (`N: substring of the reason`).
struct Case {
    precision: String,
    api: String,
    strings: Option<u64>,
    input: String,
    samples: Vec<String>,
    errors: Vec<(usize, String)>,
}

fn parse_case(text: &str) -> Case {
    let mut c = Case {
        precision: String::new(),
        api: "v1".into(),
        strings: None,
        input: String::new(),
        samples: Vec::new(),
        errors: Vec::new(),
    };
    let mut section = "";
    for line in text.split_inclusive('\n') {
        if let Some(s) = line.strip_prefix("=== ") {
            section = match s.trim() {
                "input" => "input",
                "samples" => "samples",
                "errors" => "errors",
                other => panic!("unknown section {other}"),
            };
            continue;
        }
        match section {
            "" => {
                let l = line.trim();
                if l.is_empty() {
                    continue;
                }
                let (k, v) = l.split_once(':').unwrap();
                match k.trim() {
                    "precision" => c.precision = v.trim().to_string(),
                    "api" => c.api = v.trim().to_string(),
                    "strings" => c.strings = Some(v.trim().parse().unwrap()),
                    other => panic!("unknown header {other}"),
                }
            }
            "input" => c.input.push_str(line),
            "samples" => {
                if !line.trim().is_empty() {
                    c.samples
                        .push(line.trim_end_matches(['\n', '\r']).to_string());
                }
            }
            _ => {
                if !line.trim().is_empty() {
                    let (n, r) = line.trim().split_once(':').unwrap();
                    c.errors.push((n.parse().unwrap(), r.trim().to_string()));
                }
            }
        }
    }
    c
}

#[test]
fn corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lineproto");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "corpus too small: {files:?}");
    for f in files {
        let name = f.display().to_string();
        let c = parse_case(&std::fs::read_to_string(&f).unwrap());
        let precision = match c.api.as_str() {
            "v1" => Precision::from_v1(&c.precision),
            "v2" => Precision::from_v2(&c.precision),
            other => panic!("{name}: unknown api {other}"),
        }
        .unwrap_or_else(|| panic!("{name}: bad precision"));
        let (mut got, r) = render(&c.input, &opts(precision));
        got.sort();
        let mut want = c.samples.clone();
        want.sort();
        assert_eq!(got, want, "{name}");
        let bad: Vec<usize> = r.bad_lines.iter().map(|(n, _)| *n).collect();
        let want_bad: Vec<usize> = c.errors.iter().map(|(n, _)| *n).collect();
        assert_eq!(bad, want_bad, "{name}: {:?}", r.bad_lines);
        for ((_, got), (_, want)) in r.bad_lines.iter().zip(&c.errors) {
            assert!(
                got.contains(want.as_str()),
                "{name}: {got:?} lacks {want:?}"
            );
        }
        if let Some(s) = c.strings {
            assert_eq!(r.strings_skipped, s, "{name}: strings skipped");
        }
    }
}

proptest! {
    #[test]
    fn never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut d = Decoder::new();
        let mut r = Report::default();
        let _: Result<(), ()> = d.decode(&body, &opts(Precision::Seconds), &mut r, |_, _, _| Ok(()));
    }

    #[test]
    fn never_panics_on_line_protocol_alphabet(body in "[a-c ,=\\\\\"\\n\\r#0-9.eEiu+tTfF-]{0,120}") {
        let mut d = Decoder::new();
        let mut r = Report::default();
        let mut samples = 0u64;
        let _: Result<(), ()> = d.decode(body.as_bytes(), &opts(Precision::Hours), &mut r, |pairs, _, _| {
            samples += 1;
            assert!(Labels::try_from_pairs(pairs).is_ok());
            assert!(pairs.iter().all(|(n, _)| crate::names::is_valid_label_name(n)));
            Ok(())
        });
        prop_assert_eq!(samples, r.samples);
    }
}

/// Rough throughput check; run with `cargo test --release -p tocsin-collect throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let mut body = String::new();
    for i in 0..100_000 {
        body.push_str(&format!(
            "cpu,cpu=cpu{},host=web-{},region=eu\\ west usage_idle=98.{i},usage_system=0.75,usage_user=1{i}i {}\n",
            i % 8,
            i % 50,
            1_700_000_000_000_000_000i64 + i64::from(i) * 1_000_000_000
        ));
    }
    let mut d = Decoder::new();
    let start = std::time::Instant::now();
    let mut n = 0u64;
    for _ in 0..5 {
        let mut r = Report::default();
        let _: Result<(), ()> = d.decode(
            body.as_bytes(),
            &opts(Precision::Nanoseconds),
            &mut r,
            |p, _, _| {
                n += p.len() as u64;
                Ok(())
            },
        );
        assert_eq!(r.bad_total, 0, "{:?}", r.bad_lines);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.1} MB/s, {:.2} M lines/s, {:.2} M samples/s ({n} label pairs)",
        5.0 * body.len() as f64 / secs / 1e6,
        5.0 * 1e5 / secs / 1e6,
        15.0 * 1e5 / secs / 1e6
    );
}

#[test]
fn timestamp_in_the_wrong_precision_got_no_hint() {
    let now = 1_800_000_000_000;
    // Seconds read as the default nanoseconds: 1970.
    let t = Precision::Nanoseconds.to_ms(1_800_000_000).unwrap();
    assert_eq!(
        precision_hint(t, Precision::Nanoseconds, now).as_deref(),
        Some("looks like seconds: did you mean precision=s?")
    );
    // Nanoseconds read as seconds: overflow is caught earlier; milliseconds read as seconds.
    let t = Precision::Seconds.to_ms(1_800_000_000_000).unwrap();
    assert_eq!(
        precision_hint(t, Precision::Seconds, now).as_deref(),
        Some("looks like milliseconds: did you mean precision=ms?")
    );
    let t = Precision::Milliseconds
        .to_ms(1_800_000_000_000_000_000)
        .unwrap();
    assert_eq!(
        precision_hint(t, Precision::Milliseconds, now).as_deref(),
        Some("looks like nanoseconds: did you mean precision=ns?")
    );
    // A plausible time, or one plausible in no unit, gets no hint.
    assert_eq!(
        precision_hint(now - 1000, Precision::Milliseconds, now),
        None
    );
    assert_eq!(precision_hint(5, Precision::Milliseconds, now), None);
}
