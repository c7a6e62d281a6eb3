//! Tests of loading and validating the alert manager's configuration.

use super::*;

const EXAMPLE: &str = r#"
global:
  smtp_smarthost: 'localhost:25'
  smtp_from: 'alertmanager@example.org'
  resolve_timeout: 2m
  http_config:
    follow_redirects: true
templates:
  - '/etc/alertmanager/template/*.tmpl'
route:
  receiver: 'default-receiver'
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  group_by: [cluster, alertname]
  routes:
  - receiver: 'database-pager'
    group_wait: 10s
    matchers:
    - service=~"mysql|cassandra"
  - receiver: 'frontend-pager'
    group_by: [product, environment]
    matchers:
    - team="frontend"
  - receiver: 'dev-pager'
    matchers:
      - service="inhouse-service"
    mute_time_intervals:
      - offhours
      - holidays
    continue: true
  - receiver: 'on-call-pager'
    matchers:
      - service="inhouse-service"
    active_time_intervals:
      - offhours
      - holidays
receivers:
- name: 'default-receiver'
- name: 'database-pager'
  webhook_configs:
  - url: 'http://127.0.0.1:5001/'
- name: 'frontend-pager'
- name: 'dev-pager'
- name: 'on-call-pager'
  slack_configs:
  - channel: '#x'
    api_url: 'http://127.0.0.1:1/slack'
inhibit_rules:
- source_matchers: [ severity="critical" ]
  target_matchers: [ severity="warning" ]
  equal: [ alertname, cluster, service ]
- source_match:
    severity: 'critical'
  target_match_re:
    severity: 'warn.*'
time_intervals:
- name: offhours
  time_intervals:
  - times:
    - start_time: '20:00'
      end_time: '23:00'
    weekdays: ['monday:friday']
    location: 'Europe/Berlin'
- name: holidays
  time_intervals:
  - months: ['december']
    days_of_month: ['24:26']
"#;

#[test]
fn the_docs_example_loads() {
    let c = AmConfig::parse(EXAMPLE, "am.yml").unwrap();
    assert_eq!(c.resolve_timeout_ms(), 120_000);
    let r = c.route.as_ref().unwrap();
    assert_eq!(r.routes.len(), 4);
    assert_eq!(r.routes[0].group_wait, Some(AmDuration(10_000)));
    assert!(r.routes[2].continue_);
    assert_eq!(c.receivers.len(), 5);
    assert_eq!(c.inhibit_rules[0].source().unwrap().len(), 1);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.receivers[4].slack_configs.len(), 1);
    assert!(c.time_intervals().unwrap().contains_name("holidays"));
    assert!(c.global.http_config.is_some());
    assert_eq!(c.source, EXAMPLE);
}

#[test]
fn defaults() {
    let c = AmConfig::parse("route:\n  receiver: r\nreceivers:\n- name: r\n", "a.yml").unwrap();
    assert_eq!(c.resolve_timeout_ms(), 300_000);
    let d = AmConfig::default();
    assert_eq!(d.route.unwrap().receiver, "default");
    assert_eq!(d.receivers[0].name, "default");
    let m = AmConfig::parse(MINIMAL_CONFIG, "x").unwrap();
    assert_eq!(m.receivers.len(), 1);
}

#[test]
fn unknown_fields_name_file_and_line() {
    let e = AmConfig::parse(
        "route:\n  receiver: r\n  group_wiat: 1m\nreceivers:\n- name: r\n",
        "a.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("a.yml:3:") && e.contains("group_wiat"), "{e}");
    let e = AmConfig::parse("route:\n  receiver: r\n  group_wait: 5x\n", "a.yml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("a.yml:3:"), "{e}");
}

#[test]
fn every_semantic_error_is_reported_with_its_line() {
    let text = r#"route:
  receiver: nobody
  matchers: ['a="b"']
  routes:
  - receiver: r
    group_by: ['...', 'x']
  - receiver: r
    routes:
    - receiver: ghost
      group_interval: 0s
      mute_time_intervals: [never]
    - matchers: ['a=~"("']
receivers:
- name: r
- name: r
- name: ''
time_intervals:
- name: t
  time_intervals:
  - times:
    - start_time: '10:00'
      end_time: '09:00'
- name: t
inhibit_rules:
- source_matchers: ['foo']
  equal: ['0x']
"#;
    let e = AmConfig::parse(text, "am.yml").unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    let expect = [
            "am.yml:15:3: receivers[1]: notification config name \"r\" is not unique",
            "am.yml:16:3: receivers[2]: missing name in receiver",
            "am.yml:20:5: time_intervals[0].time_intervals[0]: time interval \"t\": times: start time 10:00 cannot be equal or greater than end time 09:00",
            "am.yml:23:3: time_intervals[1]: time interval \"t\" is not unique",
            "am.yml:1:1: route: root route must not have any matchers",
            "am.yml:1:1: route: undefined receiver \"nobody\" used in route",
            "am.yml:5:5: route.routes[0]: cannot have wildcard group_by (`...`) and other labels at the same time",
            "am.yml:9:7: route.routes[1].routes[0]: undefined receiver \"ghost\" used in route",
            "am.yml:9:7: route.routes[1].routes[0]: group_interval cannot be zero",
            "am.yml:9:7: route.routes[1].routes[0]: undefined time interval \"never\" used in route",
            "am.yml:12:7: route.routes[1].routes[1]: invalid matcher",
            "am.yml:25:3: inhibit_rules[0]: source: invalid matcher",
            "am.yml:25:3: inhibit_rules[0]: equal: invalid label name \"0x\"",
        ];
    for x in expect {
        assert!(
            lines.iter().any(|l| l.starts_with(x)),
            "missing {x:?} in\n{e}"
        );
    }
    assert_eq!(lines.len(), expect.len(), "{e}");
}

#[test]
fn root_route_rules() {
    let e = AmConfig::parse("receivers:\n- name: r\n", "a.yml")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "a.yml:1:1: route: no route provided");
    let e = AmConfig::parse(
        "route:\n  group_by: [a]\n  mute_time_intervals: [x]\ntime_intervals:\n- name: x\n",
        "a.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("root route must specify a default receiver"),
        "{e}"
    );
    assert!(
        e.contains("root route must not have any mute time intervals"),
        "{e}"
    );
}

#[test]
fn scalars_and_match_maps() {
    let c = AmConfig::parse(
            "route:\n  receiver: r\n  routes:\n  - match: {severity: 1, on: true}\n    match_re: {x: 'a|b'}\nreceivers:\n- name: r\n",
            "a.yml",
        )
        .unwrap();
    let r = &c.route.unwrap().routes[0];
    let ms = compile_matchers(&r.match_, &r.match_re, &r.matchers).unwrap();
    let s: Vec<String> = ms.iter().map(crate::matchers::matcher_string).collect();
    assert_eq!(s, [r#"on="true""#, r#"severity="1""#, r#"x=~"a|b""#]);
}

#[test]
fn list_lines_follow_nesting() {
    let text = "route:\n  receiver: a\n  routes:\n  - receiver: b\n    routes:\n      - receiver: c\n      - receiver: d\n  - receiver: e\nreceivers:\n- name: a\n";
    assert_eq!(list_item_lines(text, "routes", false), [4, 6, 7, 8]);
    assert_eq!(list_item_lines(text, "receivers", true), [10]);
}

#[test]
fn notify_acked_is_inherited_and_a_bad_value_names_its_line() {
    let cfg = AmConfig::parse(
        "route:\n  receiver: r\n  notify_acked: true\n  routes:\n  - receiver: r\n  - receiver: r\n    notify_acked: false\nreceivers:\n- name: r\n",
        "a.yml",
    )
    .unwrap();
    let t = crate::route::RouteTree::from_config(&cfg).unwrap();
    let got: Vec<bool> = t.iter().map(|r| r.notify_acked).collect();
    assert_eq!(got, [true, true, false]);
    let cfg = AmConfig::parse("route:\n  receiver: r\nreceivers:\n- name: r\n", "a.yml").unwrap();
    let t = crate::route::RouteTree::from_config(&cfg).unwrap();
    assert!(!t.root().notify_acked, "false by default");
    let e = AmConfig::parse(
        "route:\n  receiver: r\n  notify_acked: sometimes\nreceivers:\n- name: r\n",
        "a.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("a.yml:3:") && e.contains("bool"), "{e}");
}
