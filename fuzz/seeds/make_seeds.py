#!/usr/bin/env python3
"""Writes the starting corpora of the fuzz targets into fuzz/corpus/<target>/ from the repo's
testdata and small hand-written inputs. Run once (or after adding seeds); `scripts/fuzz --cmin`
then minimizes. Targets whose first byte picks a mode get each seed once per mode byte."""
import glob, hashlib, os, struct, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


# `make_seeds.py TARGET...` writes only those targets' seeds.
ONLY = set(sys.argv[1:])


def put(target, data):
    if ONLY and target not in ONLY:
        return
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def files(pattern):
    for p in sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True)):
        with open(p, "rb") as f:
            data = f.read()
        if len(data) <= 64 * 1024:
            yield data


# --- protobuf, by hand (remote write 1.0 WriteRequest)
def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def label(n, v):
    return field(1, 2, field(1, 2, n.encode()) + field(2, 2, v.encode()))


def sample(v, t):
    return field(2, 2, field(1, 1, struct.pack("<d", v)) + field(2, 0, varint(t)))


def series(labels, samples):
    body = b"".join(label(n, v) for n, v in labels) + b"".join(sample(v, t) for v, t in samples)
    return field(1, 2, body)


T = 1767225600000
rw = [
    series([("__name__", "up"), ("job", "api")], [(1.0, T), (0.0, T + 15000)]),
    series([("__name__", "http_requests_total"), ("code", "200"), ("instance", "a:1")],
           [(float(i), T + i * 1000) for i in range(5)])
    + series([("__name__", "temp"), ("sensor", "x")], [(float("nan"), T), (-3.5, T + 1)]),
    series([("__name__", "bad name"), ("a", "b")], [(1.0, T)]),
    series([("__name__", "dup"), ("a", "1"), ("a", "2")], [(1.0, T)]),
    series([("b", "1"), ("a", "2")], [(1.0, T)]),
    # metadata (field 3) and an exemplar inside a series (field 3 of TimeSeries)
    field(3, 2, field(1, 0, varint(1)) + field(2, 2, b"x_total") + field(4, 2, b"help"))
    + field(1, 2, label("__name__", "x_total")[0:0] + field(1, 2, field(1, 2, b"__name__") + field(2, 2, b"x_total"))
            + field(3, 2, field(1, 2, field(1, 2, b"trace_id") + field(2, 2, b"abc")) + field(2, 1, struct.pack("<d", 1.0)) + field(3, 0, varint(T)))),
    # a native histogram (field 4 of TimeSeries)
    field(1, 2, field(1, 2, field(1, 2, b"__name__") + field(2, 2, b"h")) + field(4, 2, field(1, 0, varint(3)) + field(2, 1, struct.pack("<d", 1.5)) + field(15, 0, varint(T)))),
    b"",
]
for m in rw:
    put("remote_write", b"\x01" + m)

# --- line protocol
for data in files("crates/collect/testdata/lineproto/*.txt"):
    for mode in (0, 3):
        put("lineproto", bytes([mode]) + data)
for s in [
    "cpu,host=a usage_idle=99.5,usage_user=0.5 1767225600000000000\n",
    "weather,location=us\\ midwest temperature=82i,ok=true,msg=\"hi \\\"there\\\"\" 1767225600\n",
    "m v=1\nm v=2 -1\n# comment\n\nm,a=1,a=2 v=3\n",
]:
    for mode in range(6):
        put("lineproto", bytes([mode]) + s.encode())

# --- exposition formats
for data in files("crates/collect/testdata/expfmt/*.txt"):
    put("expfmt_prom", data)
for data in files("crates/collect/testdata/expfmt/*.om"):
    put("expfmt_om", data)
put("expfmt_prom", '# HELP x_total A counter.\n# TYPE x_total counter\nx_total{a="1",b="x\\"y\\n"} 3 1767225600000\nh_bucket{le="+Inf"} 2\nh_sum 1e-3\nh_count 2\nu NaN\n')
put("expfmt_om", '# TYPE x counter\n# UNIT x seconds\n# HELP x h\nx_total{a="1"} 3 1767225600.5 # {trace_id="a"} 1 1767225600\nx_created 1767225600\n# TYPE s stateset\ns{s="a"} 1\n# TYPE i info\ni_info{v="1"} 1\n# TYPE g gaugehistogram\ng_gcount 1\ng_bucket{le="+Inf"} 1\n# EOF\n')

# --- JSON push
push = [
    '{"timeSeries":[{"metric":{"type":"custom.googleapis.com/queue/depth","labels":{"queue":"a"}},"resource":{"type":"global","labels":{"project_id":"p"}},"metricKind":"GAUGE","valueType":"DOUBLE","points":[{"interval":{"endTime":"2026-01-01T00:00:00Z"},"value":{"doubleValue":1.5}}]}]}',
    '{"timeSeries":[{"metric":{"type":"custom.googleapis.com/jobs_total"},"metricKind":"CUMULATIVE","valueType":"INT64","points":[{"interval":{"startTime":"2025-12-31T23:00:00Z","endTime":"2026-01-01T00:00:00.123456789+01:00"},"value":{"int64Value":"42"}}]}]}',
    '{"timeSeries":[{"metric":{"type":"x"},"points":[{"interval":{"endTime":"bad"},"value":{"boolValue":true}}]}]}',
    '{}',
]
for p in push:
    put("jsonpush", b"\x00" + p.encode())
    put("jsonpush", b"\x01" + p.encode())

# --- Graphite
put("graphite", "servers.web1.cpu.user 12.5 1767225600\napp.shop.checkout.latency 0.25\nfoo.count 3 -1\n")
put("graphite", "disk.used;host=a;dc=eu 10 1767225600.5\nbad..path 1\nnovalue\n")

# --- Alertmanager alerts and silences
put("am_alerts", '[{"labels":{"alertname":"Down","instance":"web-1"},"annotations":{"summary":"x"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00.5+02:00","generatorURL":"http://x/graph"}]')
put("am_alerts", '[{"labels":{"alertname":"A"}},{"labels":{"1bad":"x"}},{"labels":{}}]')
put("am_alerts", '[{"labels":{"a":"b"},"startsAt":"0001-01-01T00:00:00Z","endsAt":""}]')
put("am_silences", '{"matchers":[{"name":"alertname","value":"Down","isRegex":false,"isEqual":true},{"name":"instance","value":"web-.*","isRegex":true}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-02T00:00:00Z","createdBy":"me","comment":"maintenance"}')
put("am_silences", '{"id":"abc","matchers":[{"name":"job","value":"(a|b","isRegex":true,"isEqual":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2025-01-01T00:00:00Z","createdBy":"","comment":""}')

# --- server config, rule files
for data in files("crates/server/testdata/config/*.yml"):
    put("config", data)
for data in files("crates/server/src/default.yml"):
    put("config", data)
put("config", "global:\n  scrape_interval: 15s\nalertmanager:\n  route:\n    receiver: x\n    group_by: [alertname]\n    routes:\n      - matchers: ['severity=~\"page|crit\"']\n        receiver: x\n  receivers:\n    - name: x\n      webhook_configs:\n        - url: http://127.0.0.1:1/\n  inhibit_rules:\n    - source_matchers: [a=b]\n      target_matchers: [c=d]\n      equal: [instance]\n")
for data in files("crates/server/testdata/config/*.rules"):
    put("rules", data)
for data in files("crates/rules/testdata/unittest/rules/*.yml"):
    put("rules", data)

# --- templates
tmpls = [
    '{{ $labels.instance }} of {{ $externalLabels.cluster }} is at {{ $value | humanizePercentage }}',
    '{{ range query "up" }}{{ .Labels.instance }}={{ .Value }} {{ end }}{{ with query "error" }}{{ end }}',
    '{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" "a" }}{{ printf "%5.2f|%q|%v" 3.14159 "s" $value }}',
    '{{ humanize 1234567 }} {{ humanize1024 1048576 }} {{ humanizeDuration 3661 }} {{ humanizeTimestamp 1767225600 }} {{ title "a b" }} {{ reReplaceAll "(a)" "$1x" "aaa" }} {{ toUpper "x" }} {{ match "a.*" "abc" }} {{ pathPrefix }} {{ externalURL }} {{ stripPort "h:1" }}',
    '{{ if and (gt $value 0.1) (lt $value 1.0) }}mid{{ else if eq $value 0.0 }}zero{{ else }}other{{ end }}{{ len $labels }} {{ index $labels "alertname" }}',
    '{{ .Status }} {{ .Receiver }} {{ range .Alerts.Firing }}{{ .Labels.instance }} {{ .Annotations.summary }} {{ .StartsAt }}{{ end }}{{ .CommonLabels.SortedPairs.Names }}',
    '{{ template "slack.default.title" . }}\n{{ template "__text_alert_list" .Alerts }}{{ .ExternalURL }} {{ .GroupLabels.Values | join "," }} {{ toJson .CommonLabels }}',
    '{{ range $i, $a := .Alerts }}{{ $i }}:{{ $a.Status }}{{ $a.Labels.Remove (stringSlice "instance") }}{{ end }}{{ safeHtml "<b>" }}{{ reReplaceAll "x" "y" .Receiver | trimSpace }}{{ date "2006-01-02" (tz "UTC" now) }}',
    '{{- /* comment */ -}} {{ $x := 1 }}{{ $x = 2 }}{{ $x }} {{ slice "abcdef" 1 3 }} {{ print nil }} {{ html "<a>" }} {{ js "\'" }} {{ urlquery "a b" }} {{ not true }} {{ or 0 "" "x" }}',
]
for t in tmpls:
    for mode in (0, 1, 3):
        put("template", bytes([mode]) + t.encode())

# --- Pub/Sub push of a Cloud Monitoring incident: mode 0 the envelope as sent, mode 1 the
# decoded notification (the target wraps it)
import base64, json
incidents = [
    {"version": "1.2", "incident": {"incident_id": "0.mtdi83m6w8ao", "scoping_project_id": "fleet-prod",
        "scoping_project_number": 286919713412, "url": "https://console.cloud.google.com/monitoring/alerting/incidents/0.mtdi83m6w8ao",
        "started_at": 1767225000, "ended_at": None, "state": "open",
        "summary": "CPU utilization for fleet-prod vm-17 is above the threshold of 0.950 with a value of 0.991.",
        "apigee_url": "https://apigee.google.com", "observed_value": "0.991", "threshold_value": "0.95",
        "resource": {"type": "gce_instance", "labels": {"project_id": "fleet-prod", "instance_id": "4721895234567", "zone": "europe-west1-b"}},
        "resource_type_display_name": "VM Instance", "resource_id": "", "resource_display_name": "vm-17", "resource_name": "fleet-prod vm-17",
        "metric": {"type": "compute.googleapis.com/instance/cpu/utilization", "displayName": "CPU utilization", "labels": {"instance_name": "vm-17"}},
        "metadata": {"system_labels": {"state": "ACTIVE"}, "user_labels": {"team": "fleet"}},
        "policy_name": "VM CPU above 95%", "policy_user_labels": {"action": "delete_vm", "cloud.region": "eu"},
        "condition_name": "CPU above 95% for 5m",
        "condition": {"name": "projects/fleet-prod/alertPolicies/1098/conditions/1099", "displayName": "CPU above 95% for 5m",
            "conditionThreshold": {"filter": "metric.type = \"compute.googleapis.com/instance/cpu/utilization\"",
                "aggregations": [{"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MEAN"}],
                "comparison": "COMPARISON_GT", "thresholdValue": 0.95, "duration": "300s", "trigger": {"count": 1}}},
        "documentation": {"content": "Delete ${resource.label.instance_id}", "mime_type": "text/markdown", "subject": "VM hot"},
        "severity": "CRITICAL"}},
    {"version": "1.2", "incident": {"incident_id": "0.abc", "state": "closed", "policy_name": "Absent antivirus",
        "started_at": 1767225000, "ended_at": 1767225300, "condition_name": "antivirus absent",
        "condition": {"name": "projects/p/alertPolicies/1/conditions/2", "displayName": "antivirus absent", "conditionAbsent": {"filter": "x", "duration": "180s"}},
        "resource": {"type": "gce_instance", "labels": {"instance_id": "1", "zone": "z"}}, "metric": {"labels": {}}}},
    {"version": "test", "incident": {"incident_id": "12345", "started_at": 0, "ended_at": 0, "state": "OPEN",
        "policy_name": "Test", "severity": "No severity", "resource": {"type": "example_resource", "labels": {"example": "label"}}}},
    {"version": "1.2", "incident": {"incident_id": "i", "state": "Closed", "policy_name": "P", "started_at": "1767225000",
        "metric": {"labels": {"1st": 1, "a.b": True, "z": None}}}},
]
for inc in incidents:
    raw = json.dumps(inc)
    put("pubsub_push", b"\x01" + raw.encode())
    data = base64.b64encode(raw.encode()).decode()
    env = {"message": {"attributes": {"incident_id": inc["incident"]["incident_id"]}, "data": data,
        "messageId": "8123456789", "message_id": "8123456789",
        "publishTime": "2026-01-01T00:00:00.123Z", "publish_time": "2026-01-01T00:00:00.123Z"},
        "subscription": "projects/fleet-prod/subscriptions/tocsin", "deliveryAttempt": 1}
    put("pubsub_push", b"\x00" + json.dumps(env).encode())
put("pubsub_push", b'\x00{"message":{"message_id":"1","data":"e30"}}')
put("pubsub_push", b'\x00{"message":{"messageId":"1","data":"%%"},"subscription":1}')

# --- Alerta intake: alerts (first byte even) and heartbeats (odd), as the alerta CLI, Kapacitor's
# .alerta() handler and hand-written payloads send them.
alerta_alerts = [
    {"id": None, "resource": "web01", "event": "NodeDown", "environment": "Production", "severity": "major",
     "correlate": ["NodeDown", "NodeUp"], "service": ["Web"], "group": "Infra", "value": "100%",
     "text": "web01 is down", "tags": ["dc1", "os:linux"], "attributes": {"region": "EU"}, "origin": "alerta/host1",
     "type": "exceptionAlert", "createTime": "2026-01-01T00:00:00.000Z", "timeout": 3600, "rawData": None, "customer": None},
    {"resource": "cpu-host", "event": "cpu_high", "environment": "Development", "severity": "critical", "service": ["kapacitor"],
     "group": "cpu", "value": 98.5, "text": "cpu high", "tags": [], "origin": "kapacitor", "type": "kapacitorAlert",
     "timeout": 0, "status": "open", "attributes": {"n": 1, "ok": True, "nested": {"a": [1]}}},
    {"resource": "db01", "event": "DbUp", "severity": "normal", "correlate": ["DbDown", "DbUp"]},
    {"resource": "r", "event": "e", "status": "closed", "severity": "CRITICAL", "service": "one", "id": "my-id.1"},
    {"resource": "r", "event": "e", "tags": ["a,b"]},
    {"resource": "", "event": "e"},
]
for a in alerta_alerts:
    put("alerta", b"\x00" + json.dumps(a).encode())
alerta_heartbeats = [
    {"origin": "alerta/host1", "tags": ["nightly"], "attributes": {"environment": "Production", "severity": "critical",
     "service": ["DB"], "group": "Ops"}, "timeout": 120, "createTime": "2026-01-01T00:00:00.000Z", "customer": None},
    {"origin": "cron job \u00e9/1", "timeout": "60"},
    {"origin": "x", "timeout": 0},
]
for h in alerta_heartbeats:
    put("alerta", b"\x01" + json.dumps(h).encode())
put("alerta", b"\x00[]")
put("alerta", b"\x01{")

# --- PromQL
with open(os.path.join(ROOT, "crates/promql/testdata/differential/queries.txt")) as f:
    qs = [l.strip() for l in f if l.strip() and not l.startswith("#")]
qs += [
    'rate(http_requests_total[5m])', 'histogram_quantile(0.9, sum by (le) (rate(lat_seconds_bucket[5m])))',
    'sum without (instance) (temp) / on(job) group_left count by (job) (up)', 'max_over_time(temp[10m:30s] offset 5m)',
    'label_replace(up, "x", "$1", "job", "(.*)")', 'predict_linear(temp[30m], 3600)', 'temp @ end()', 'topk(2, temp) or vector(1)',
    'absent_over_time(gone[5m])', 'quantile_over_time(0.5, temp[1h])', 'sort_desc(-temp ^ 2 % 3)', 'count_values("v", up)',
]
for i, q in enumerate(qs):
    put("promql", bytes([i % 4]) + q.encode())
print("seeded", {t: len(os.listdir(os.path.join(CORPUS, t))) for t in sorted(os.listdir(CORPUS))})
