//! Tests of the JSON push mapping: names, labels, values, times, and error paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn one(series: &str) -> Decoded {
    decode(format!(r#"{{"timeSeries":[{series}]}}"#).as_bytes()).unwrap()
}

#[test]
fn maps_a_cloud_monitoring_series() {
    let d = one(
        r#"{"metric":{"type":"custom.googleapis.com/vm/stuck_seconds","labels":{"job":"backup","app-name":"x"}},
            "resource":{"type":"gce_instance","labels":{"instance_id":"123","zone":"europe-west1-b"}},
            "metricKind":"GAUGE","valueType":"DOUBLE",
            "points":[{"interval":{"startTime":"2024-05-01T12:00:00Z","endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1.5}}]}"#,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let s = &d.series[0];
    let labels: Vec<(&str, &str)> = s.pairs();
    assert_eq!(
        labels,
        vec![
            ("__name__", "vm_stuck_seconds"),
            ("app_name", "x"),
            ("instance_id", "123"),
            ("job", "backup"),
            ("resource_type", "gce_instance"),
            ("zone", "europe-west1-b"),
        ]
    );
    assert_eq!(s.samples, vec![(1_714_564_800_000, 1.5)]);
}

#[test]
fn int64_as_string_or_number_and_bool() {
    let d = one(
        r#"{"metric":{"type":"jobs_done"},"valueType":"INT64","metricKind":"CUMULATIVE","points":[
            {"interval":{"endTime":"2024-05-01T12:00:01.250Z"},"value":{"int64Value":"42"}},
            {"interval":{"endTime":"2024-05-01T12:00:00+02:00"},"value":{"int64Value":7}}]}"#,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(
        d.series[0].samples,
        vec![(1_714_557_600_000, 7.0), (1_714_564_801_250, 42.0)]
    );
    assert_eq!(
        d.series[0].labels,
        vec![("__name__".into(), "jobs_done".into())]
    );
    let d = one(
        r#"{"metric":{"type":"example.com/up"},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"boolValue":false}}]}"#,
    );
    assert_eq!(d.series[0].samples, vec![(1_714_564_800_000, 0.0)]);
    assert_eq!(d.series[0].labels[0].1, "up");
}

#[test]
fn metric_names() {
    assert_eq!(
        metric_name("custom.googleapis.com/vm/stuck_seconds"),
        "vm_stuck_seconds"
    );
    assert_eq!(
        metric_name("compute.googleapis.com/instance/cpu/utilization"),
        "instance_cpu_utilization"
    );
    assert_eq!(metric_name("plain_name"), "plain_name");
    assert_eq!(metric_name("a/b.c"), "a_b_c");
    assert_eq!(metric_name("9lives"), "_9lives");
}

#[test]
fn errors_name_the_json_path_and_good_series_stay() {
    let body = r#"{"timeSeries":[
        {"metric":{"type":"ok"},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]},
        {"metric":{"type":"x"},"points":[{"interval":{"endTime":"yesterday"},"value":{"doubleValue":1}}]},
        {"metric":{"type":"x"},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"int64Value":"4x"}}]},
        {"metric":{"type":"x","labels":{"zone":"a"}},"resource":{"type":"r","labels":{"zone":"b"}},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]},
        {"metric":{"type":"x"},"valueType":"BOOL","points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]},
        {"metric":{"type":"x"},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"stringValue":"s"}}]},
        {"metric":{},"points":[]},
        {"metric":{"type":"x"},"points":[]},
        {"metric":{"type":"x"},"metricKind":"SUMMARY","points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]},
        {"metric":{"type":"x","labels":{"n":3}},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]},
        {"metric":{"type":"x"},"points":[{"interval":{},"value":{"doubleValue":1}}]},
        {"metric":{"type":"x","labels":{"__name__":"y"}},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]},
        "nope"
    ]}"#;
    let d = decode(body.as_bytes()).unwrap();
    assert_eq!(d.series.len(), 1);
    assert_eq!(d.errors_total, 12);
    let want = [
        "timeSeries[1].points[0].interval.endTime: \"yesterday\" is not an RFC 3339 time",
        "timeSeries[2].points[0].value.int64Value: must be a 64-bit integer",
        "timeSeries[3].resource.labels.zone: label \"zone\" is also set by timeSeries[3].metric.labels.zone",
        "timeSeries[4].points[0].value.doubleValue: does not match valueType BOOL",
        "timeSeries[5].points[0].value.stringValue: stringValue is not supported",
        "timeSeries[6].metric.type: missing",
        "timeSeries[7].points: no points",
        "timeSeries[8].metricKind: \"SUMMARY\" is not one of",
        "timeSeries[9].metric.labels.n: must be a string",
        "timeSeries[10].points[0].interval.endTime: missing",
        "timeSeries[11].metric.labels.__name__: label name \"__name__\" is not allowed",
        "timeSeries[12]: must be an object",
    ];
    for (got, want) in d.errors.iter().zip(want) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
}

#[test]
fn whole_body_errors() {
    for (body, want) in [
        ("{", "JSON push body"),
        ("{}", "missing field timeSeries"),
        (r#"{"timeSeries":{}}"#, "must be an array"),
    ] {
        let e = decode(body.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn error_list_is_capped() {
    let series: Vec<String> = (0..30).map(|_| "1".to_string()).collect();
    let d = decode(format!(r#"{{"timeSeries":[{}]}}"#, series.join(",")).as_bytes()).unwrap();
    assert_eq!(d.errors.len(), MAX_REPORTED_SERIES);
    assert!(d.errors_message().ends_with("and 10 more bad time series"));
}

#[test]
fn rfc3339() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500));
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00.123456789Z"), Some(123));
    assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1_000));
    assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
    for bad in [
        "",
        "2024-05-01",
        "2024-05-01T12:00:00",
        "2024-13-01T00:00:00Z",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00Zx",
        "2024-05-01T12:00:00+0200",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn proto_field_names_in_snake_case_are_accepted() {
    let d = decode(
        br#"{"time_series":[{"metric":{"type":"custom.googleapis.com/q","labels":{"queue_name":"a"}},
            "metric_kind":"GAUGE","value_type":"INT64",
            "points":[{"interval":{"start_time":"2024-05-01T12:00:00Z","end_time":"2024-05-01T12:00:00Z"},"value":{"int64_value":"3"}}]}]}"#,
    )
    .unwrap();
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(
        d.series[0].pairs(),
        vec![("__name__", "q"), ("queue_name", "a")]
    );
    assert_eq!(d.series[0].samples, vec![(1_714_564_800_000, 3.0)]);
    let d =
        one(r#"{"metric":{"type":"q"},"valueType":"DOUBLE","value_type":"DOUBLE","points":[]}"#);
    assert_eq!(
        d.errors,
        vec!["timeSeries[0].valueType: given twice, as valueType and as value_type"]
    );
}

#[test]
fn project_from_the_path_fills_project_id() {
    let body = br#"{"timeSeries":[
        {"metric":{"type":"a"},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]},
        {"metric":{"type":"b"},"resource":{"type":"global","labels":{"project_id":"other"}},"points":[{"interval":{"endTime":"2024-05-01T12:00:00Z"},"value":{"doubleValue":1}}]}]}"#;
    let d = decode_for_project(body, Some("p1")).unwrap();
    assert_eq!(
        d.series[0].pairs(),
        vec![("__name__", "a"), ("project_id", "p1")]
    );
    assert!(d.series[1].pairs().contains(&("project_id", "other")));
}
