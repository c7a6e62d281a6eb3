//! Tests of rule templates: data, functions and Prometheus's outputs.

use super::*;

fn no_samples(_: &str) -> Result<Vec<(Labels, f64)>, String> {
    Ok(vec![])
}

fn two_samples(q: &str) -> Result<Vec<(Labels, f64)>, String> {
    if q == "bad" {
        return Err("parse error".into());
    }
    Ok(vec![
        (
            Labels::from_pairs(&[("__name__", "metric"), ("instance", "b")]),
            21.0,
        ),
        (
            Labels::from_pairs(&[("__name__", "metric"), ("instance", "a")]),
            11.0,
        ),
    ])
}

fn run_with(text: &str, value: f64, query: QueryFn<'_>) -> String {
    let labels = Labels::from_pairs(&[
        ("__name__", "up"),
        ("instance", "host.example.com:9100"),
        ("job", "node"),
    ]);
    let ext = Labels::from_pairs(&[("cluster", "eu1")]);
    let data = TemplateData {
        labels: &labels,
        external_labels: &ext,
        external_url: "http://testhost:9090/path/prefix",
        value,
        eval_time_ms: 1_234_567_890_000,
    };
    match expand("__alert_Test", text, &data, query) {
        Ok(s) => s,
        Err(e) => format!("ERR: {e}"),
    }
}

fn run(text: &str) -> String {
    run_with(text, 0.1234, &two_samples)
}

#[test]
fn prometheus_functions() {
    let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("{{ $labels.instance }} is at {{ $value | humanizePercentage }}", "host.example.com:9100 is at 12.34%"),
            ("{{ .Labels.job }} {{ .Value }} {{ $externalLabels.cluster }} {{ $externalURL }}", "node 0.1234 eu1 http://testhost:9090/path/prefix"),
            ("{{ $labels.nosuch }}|{{ $externalLabels.nosuch }}|", "||"),
            ("{{ $labels.__name__ }}", "up"),
            ("{{ humanize 1234567 }} {{ humanize 0.00012 }} {{ humanize 0 }} {{ humanize 1 }} {{ humanize .12 }} {{ humanize \"2048\" }}", "1.235M 120u 0 1 120m 2.048k"),
            ("{{ humanize1024 1048576 }} {{ humanize1024 .12 }} {{ humanize1024 0 }} {{ humanize1024 1536 }}", "1Mi 0.12 0 1.5ki"),
            ("{{ humanizeDuration 3661 }} {{ humanizeDuration 0.5 }} {{ humanizeDuration 0 }} {{ humanizeDuration 899.99 }} {{ humanizeDuration -187445 }}", "1h 1m 1s 500ms 0s 14m 59s -2d 4h 4m 5s"),
            ("{{ humanizeDuration .1 }} {{ humanizeDuration .0001 }} {{ humanizeDuration .12345 }} {{ humanizeDuration 60.5 }} {{ humanizeDuration 1.2345 }} {{ humanizeDuration 12.345 }} {{ humanizeDuration \"86400\" }}", "100ms 100us 123.5ms 1m 0s 1.234s 12.35s 1d 0h 0m 0s"),
            ("{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}", "-22.22%:0%:12.35%:123.5%"),
            ("{{ 1435065584.128 | humanizeTimestamp }}", "2015-06-23 13:19:44.128 +0000 UTC"),
            ("{{ humanizeTimestamp 1234567890 }} {{ humanizeTimestamp -1 }} {{ humanizeTimestamp \"NaN\" }} {{ humanizeTimestamp \"+Inf\" }}", "2009-02-13 23:31:30 +0000 UTC 1969-12-31 23:59:59 +0000 UTC NaN +Inf"),
            ("{{ humanize \"one\" }}", "ERR: error executing template __alert_Test: template: __alert_Test:1:115: executing \"__alert_Test\" at <humanize \"one\">: error calling humanize: strconv.ParseFloat: parsing \"one\": invalid syntax"),
            ("{{ toTime 1234567890 }} {{ (toTime 1234567890).Unix }} {{ (toTime 1234567890).Format \"2006-01-02\" }}", "2009-02-13 23:31:30 +0000 UTC 1234567890 2009-02-13"),
            ("{{ toDuration 3661 }} {{ (toDuration 90).Seconds }} {{ toDuration 0.5 | humanizeDuration }}", "1h1m1s 90 500ms"),
            ("{{ now }} {{ now | humanizeTimestamp }}", "1.23456789e+09 2009-02-13 23:31:30 +0000 UTC"),
            ("{{ \"aa bb CC\" | title }} {{ \"aa bb CC\" | toUpper }} {{ \"aA bB CC\" | toLower }}", "Aa Bb CC AA BB CC aa bb cc"),
            ("{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}", "true false"),
            ("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }} {{ reReplaceAll \"localhost:(.*)\" \"my.domain:$1\" \"localhost:3000\" }}", "xa my.domain:3000"),
            ("{{ reReplaceAll \"(\" \"\" \"x\" }}", "ERR: error executing template __alert_Test: template: __alert_Test:1:115: executing \"__alert_Test\" at <reReplaceAll \"(\" \"\" \"x\">: error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: unclosed group: `(`"),
            ("{{ match \"[\" \"x\" }}", "ERR: error executing template __alert_Test: template: __alert_Test:1:115: executing \"__alert_Test\" at <match \"[\" \"x\">: error calling match: error parsing regexp: unclosed character class: `[`"),
            ("{{ graphLink \"up\" }} {{ tableLink \"rate(x[5m]) > 1\" }}", "/graph?g0.expr=up&g0.tab=0 /graph?g0.expr=rate%28x%5B5m%5D%29+%3E+1&g0.tab=1"),
            ("{{ pathPrefix }} {{ externalURL }}", "/path/prefix http://testhost:9090/path/prefix"),
            ("{{ \"<b>\" | safeHtml }}", "<b>"),
            ("{{ parseDuration \"1h30m\" }} {{ parseDuration \"-5m\" }} {{ parseDuration \"250ms\" }}", "5400 -300 0.25"),
            ("{{ $labels.instance | stripPort }} {{ stripPort \"[::1]:80\" }} {{ stripPort \"nohost\" }}", "host.example.com ::1 nohost"),
            ("{{ $labels.instance | stripDomain }} {{ stripDomain \"10.0.0.1:80\" }} {{ stripDomain \"a.b\" }} {{ stripDomain \"[::1]:80\" }}", "host:9100 10.0.0.1:80 a [::1]:80"),
            ("{{ define \"x\" }}{{ .arg0 }} {{ .arg1 }}{{ end }}{{ template \"x\" (args 1 \"2\") }}", "1 2"),
            ("{{ query \"metric\" | first | value }}", "21"),
            ("{{ query \"metric\" | first | label \"instance\" }}|{{ query \"metric\" | first | label \"nosuch\" }}|", "b||"),
            ("{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}|{{ $x.Labels.instance }}", "|b"),
            ("{{ range query \"metric\" | sortByLabel \"instance\" }}{{ .Labels.instance }}:{{ .Value }}: {{ end }}", "a:11: b:21: "),
            ("{{ with query \"metric\" }}{{ . | first | value | humanize }}{{ end }}", "21"),
            ("{{ query \"metric\" | first }}", "&{map[__name__:metric instance:b] 21}"),
            ("{{ query \"bad\" }}", "ERR: error executing template __alert_Test: template: __alert_Test:1:115: executing \"__alert_Test\" at <query \"bad\">: error calling query: parse error"),
            ("{{ (query \"metric\" | first).banana }}", "ERR: error executing template __alert_Test: template: __alert_Test:1:115: executing \"__alert_Test\" at <(query \"metric\" | first).banana>: can't evaluate field banana in type *template.sample"),
            ("{{ if gt $value 0.1 }}big{{ end }}", "big"),
            ("{{ nosuch }}", "ERR: error parsing template __alert_Test: template: __alert_Test:1: function \"nosuch\" not defined"),
        ];
    for (text, want) in cases {
        assert_eq!(&run(text), want, "template {text:?}");
    }
    assert_eq!(
            run_with("{{ query \"missing\" | first }}", 0.0, &no_samples),
            "ERR: error executing template __alert_Test: template: __alert_Test:1:133: executing \"__alert_Test\" at <first>: error calling first: first() called on vector with no elements"
        );
}

#[test]
fn humanizers_match_prometheus() {
    assert_eq!(humanize(f64::INFINITY), "+Inf");
    assert_eq!(humanize(f64::NEG_INFINITY), "-Inf");
    assert_eq!(humanize(f64::NAN), "NaN");
    assert_eq!(humanize_1024(f64::NAN), "NaN");
    assert_eq!(humanize_duration(f64::INFINITY), "+Inf");
    assert_eq!(humanize_duration(1234567.0), "14d 6h 56m 7s");
    assert_eq!(humanize_duration(-1.0), "-1s");
    assert_eq!(humanize(-1234.0), "-1.234k");
    assert_eq!(humanize(1e30), "1e+06Y");
    assert_eq!(
        humanize_timestamp(9_223_372_036.0).unwrap(),
        "2262-04-11 23:47:16 +0000 UTC"
    );
    assert!(humanize_timestamp(9.3e18).is_err());
}

#[test]
fn check_reports_parse_errors() {
    assert_eq!(check("__alert_A", "no actions"), Ok(()));
    assert_eq!(check("__alert_A", "{{ $labels.x | humanize }}"), Ok(()));
    assert_eq!(
        check("__alert_A", "{{ nosuch }}"),
        Err("template: __alert_A:1: function \"nosuch\" not defined".into())
    );
    assert!(check("__alert_A", "{{ if }}").is_err());
}

#[test]
fn titles() {
    assert_eq!(title("hello world-wide web"), "Hello World-Wide Web");
    assert_eq!(title("don't stop"), "Don't Stop");
    assert_eq!(title("foo.bar baz_qux"), "Foo.bar Baz_qux");
}
