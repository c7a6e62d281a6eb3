//! The templates every notification template set starts with: Alertmanager's default names
//! (`__subject`, `slack.default.title`, `pagerduty.default.description`, ...), written for Tocsin
//! so that they render the same text as Alertmanager's defaults. `testdata/tmpl/` holds the
//! expected renderings (produced with `amtool template render` against Alertmanager's own
//! defaults) and `tests.rs` compares.
//!
//! `email.default.html` is ours and simpler than Alertmanager's styled HTML: the same facts
//! (subject, a link back, each alert's labels, annotations and source), not the same markup.
//! HTML fields are rendered with HTML-escaped data (see `TmplData::html_escaped`), so it inserts
//! values as they are.

pub const DEFAULTS: &str = r#"
{{- define "__alertmanager" }}Alertmanager{{ end }}

{{- define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ urlquery .Receiver }}{{ end }}

{{- /* "[FIRING:n] <group label values> (<other common label values>)" */ -}}
{{- define "__subject" -}}
[{{ toUpper .Status }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}]
{{- " " }}{{ join " " .GroupLabels.SortedPairs.Values }}{{ " " }}
{{- with .CommonLabels.Remove .GroupLabels.Names }}({{ join " " .Values }}){{ end -}}
{{- end }}

{{- define "__description" }}{{ end }}

{{- define "__tocsin_kv_lines" }}{{ range .SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}{{ end }}

{{- define "__text_alert_list" }}{{ range . }}Labels:
{{ template "__tocsin_kv_lines" .Labels }}Annotations:
{{ template "__tocsin_kv_lines" .Annotations }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}

{{- define "__text_alert_list_markdown" }}{{ range . }}
Labels:
{{ range .Labels.SortedPairs }}  - {{ .Name }} = {{ .Value }}
{{ end }}
Annotations:
{{ range .Annotations.SortedPairs }}  - {{ .Name }} = {{ .Value }}
{{ end }}
Source: {{ .GeneratorURL }}
{{ end }}{{ end }}

{{- /* Firing then resolved lists, each headed, as the chat integrations send them. */ -}}
{{- define "__tocsin_chat_lists" -}}
{{ "\n" }}
{{- with .Alerts.Firing }}{{ "\n" }}Alerts Firing:{{ "\n" }}{{ template "__text_alert_list" . }}{{ "\n" }}{{ end }}
{{- "\n" }}
{{- with .Alerts.Resolved }}{{ "\n" }}Alerts Resolved:{{ "\n" }}{{ template "__text_alert_list" . }}{{ "\n" }}{{ end }}
{{- "\n" -}}
{{- end }}

{{- define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{- define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{- define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{- define "slack.default.callbackid" }}{{ end }}
{{- define "slack.default.pretext" }}{{ end }}
{{- define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{- define "slack.default.iconemoji" }}{{ end }}
{{- define "slack.default.iconurl" }}{{ end }}
{{- define "slack.default.text" }}{{ end }}
{{- define "slack.default.footer" }}{{ end }}

{{- define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{- define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{- define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{- define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{- define "opsgenie.default.message" }}{{ template "__subject" . }}{{ end }}
{{- define "opsgenie.default.description" -}}
{{ join " " .CommonAnnotations.SortedPairs.Values }}{{ "\n" }}
{{- with .Alerts.Firing }}Alerts Firing:{{ "\n" }}{{ template "__text_alert_list" . }}{{ end }}
{{- "\n" }}
{{- with .Alerts.Resolved }}Alerts Resolved:{{ "\n" }}{{ template "__text_alert_list" . }}{{ end }}
{{- end }}
{{- define "opsgenie.default.source" }}{{ template "__alertmanagerURL" . }}{{ end }}

{{- define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{- define "__tocsin_html_alerts" }}{{ range . }}
<p><strong>Labels</strong><br>
{{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>
{{ end }}
{{- if .Annotations }}<strong>Annotations</strong><br>
{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>
{{ end }}{{ end -}}
<a href="{{ .GeneratorURL }}">Source</a></p>
{{- end }}{{ end }}
{{- define "email.default.html" -}}
<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<title>[{{ toUpper .Status }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}] {{ join " " .GroupLabels.SortedPairs.Values }}</title>
</head>
<body style="font-family: Helvetica, Arial, sans-serif; font-size: 14px;">
<p><a href="{{ .ExternalURL }}/#/alerts?receiver={{ urlquery .Receiver }}">View in {{ template "__alertmanager" . }}</a></p>
<h2>{{ len .Alerts }} alert{{ if ne (len .Alerts) 1 }}s{{ end }} for {{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}</h2>
{{- with .Alerts.Firing }}
<h3>[{{ len . }}] Firing</h3>{{ template "__tocsin_html_alerts" . }}
{{- end }}
{{- with .Alerts.Resolved }}
<h3>[{{ len . }}] Resolved</h3>{{ template "__tocsin_html_alerts" . }}
{{- end }}
</body>
</html>
{{ end }}
{{- define "email.default.text" }}{{ template "__subject" . }}
{{ template "__tocsin_chat_lists" . }}{{ end }}

{{- define "msteams.default.summary" }}{{ template "__subject" . }}{{ end }}
{{- define "msteams.default.title" }}{{ template "__subject" . }}{{ end }}
{{- define "msteams.default.text" }}
{{ with .Alerts.Firing }}
# Alerts Firing:
{{ template "__text_alert_list_markdown" . }}
{{ end }}
{{ with .Alerts.Resolved }}
# Alerts Resolved:
{{ template "__text_alert_list_markdown" . }}
{{ end }}
{{ end }}
{{- define "msteamsv2.default.title" }}{{ template "msteams.default.title" . }}{{ end }}
{{- define "msteamsv2.default.text" }}{{ template "msteams.default.text" . }}{{ end }}

{{- define "telegram.default.message" }}{{ template "__tocsin_chat_lists" . }}{{ end }}

{{- define "discord.default.title" }}{{ template "__subject" . }}{{ end }}
{{- define "discord.default.message" }}{{ template "__tocsin_chat_lists" . }}{{ end }}
"#;
