//! Templates of action fields (URL, headers, body, command arguments, target key, Compute Engine
//! names): Go text/template, the engine the rules and receivers use, with Alertmanager's
//! template functions. The dot is the alert (`.Labels`, `.Annotations`, `.Status`, `.StartsAt`,
//! `.EndsAt`, `.GeneratorURL`, `.Fingerprint`) plus `.Policy`, `.Target` and `.RequestID`;
//! `$labels`, `$annotations` and `$value` are declared as in rule templates (`$value` is the
//! alert's `value` annotation or label, else its `observed_value`, else empty).
//!
//! A missing label renders as the empty string, as in Prometheus; fields that must not be
//! empty (a URL, an instance name) are checked by the kind after rendering.

use std::sync::OnceLock;

use tocsin_alerts::tmpl::{funcs, TmplAlert};
use tocsin_model::Alert;
use tocsin_template::{Elem, Funcs, Map, MissingKey, Template, Value};

use crate::error::{Error, Result};

const DEFS: &str = "{{$labels := .Labels}}{{$annotations := .Annotations}}{{$value := .Value}}";

/// What one rendering sees besides the alert.
#[derive(Debug, Clone, Copy)]
pub struct RenderCx<'a> {
    pub alert: &'a Alert,
    pub policy: &'a str,
    /// The rendered target key ("" while the target key itself is rendered).
    pub target: &'a str,
    /// The execution's deterministic request id (a UUID).
    pub request_id: &'a str,
    pub now_ms: i64,
}

/// The alert's value as templates see it: the `value` annotation or label, else
/// `observed_value`.
pub fn alert_value(a: &Alert) -> String {
    for k in ["value", "observed_value"] {
        if let Some(v) = a.annotations.get(k) {
            return v.clone();
        }
        if let Some(v) = a.labels.get(k) {
            return v.to_string();
        }
    }
    String::new()
}

fn parse_funcs() -> &'static Funcs<'static> {
    static F: OnceLock<Funcs<'static>> = OnceLock::new();
    F.get_or_init(|| funcs(0))
}

/// One templated field, parsed once at load.
#[derive(Debug, Clone)]
pub struct ActionTemplate {
    /// The field's config path, for error messages.
    field: String,
    text: String,
    /// None when the text has no action: it is used as it is.
    tmpl: Option<Template>,
}

impl ActionTemplate {
    /// Parses `text`; the error names `field` and Go's position in the text.
    pub fn parse(field: &str, text: &str) -> Result<ActionTemplate> {
        let tmpl = if text.contains("{{") {
            let t = Template::parse(field, &format!("{DEFS}{text}"), parse_funcs())
                .map_err(|e| Error::Config(format!("{field}: {e}")))?
                .with_missing_key(MissingKey::Zero);
            Some(t)
        } else {
            None
        };
        Ok(ActionTemplate {
            field: field.to_string(),
            text: text.to_string(),
            tmpl,
        })
    }

    /// The text as configured.
    pub fn source(&self) -> &str {
        &self.text
    }

    /// Whether the text has template actions.
    pub fn is_templated(&self) -> bool {
        self.tmpl.is_some()
    }

    /// Renders for one alert; the error names the field.
    pub fn render(&self, cx: &RenderCx<'_>) -> Result<String> {
        let Some(t) = &self.tmpl else {
            return Ok(self.text.clone());
        };
        let f = funcs(cx.now_ms);
        t.execute(&dot(cx), &f)
            .map_err(|e| Error::Render(format!("{}: {e}", self.field)))
    }
}

fn dot(cx: &RenderCx<'_>) -> Value {
    let a = TmplAlert::new(cx.alert, cx.now_ms);
    let mut m = Map::new(Elem::Any);
    m.insert("Labels", Value::object(a.labels.clone()));
    m.insert("Annotations", Value::object(a.annotations.clone()));
    m.insert("Status", Value::str(a.status));
    m.insert("StartsAt", Value::object(a.starts_at));
    m.insert("EndsAt", Value::object(a.ends_at));
    m.insert("GeneratorURL", Value::str(a.generator_url.as_str()));
    m.insert("Fingerprint", Value::str(a.fingerprint.as_str()));
    m.insert("Value", Value::str(alert_value(cx.alert)));
    m.insert("Policy", Value::str(cx.policy));
    m.insert("Target", Value::str(cx.target));
    m.insert("RequestID", Value::str(cx.request_id));
    Value::map(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tocsin_model::Labels;

    fn alert() -> Alert {
        let mut a = Alert {
            labels: Labels::from_pairs(&[
                ("alertname", "HighCpu"),
                ("instance_id", "1234"),
                ("zone", "europe-west1-b"),
            ]),
            annotations: Default::default(),
            starts_at: 1_700_000_000_000,
            ends_at: 0,
            generator_url: String::new(),
            updated_at: 0,
            timeout: false,
        };
        a.annotations.insert("value".into(), "0.97".into());
        a
    }

    fn cx(a: &Alert) -> RenderCx<'_> {
        RenderCx {
            alert: a,
            policy: "p",
            target: "1234",
            request_id: "r-1",
            now_ms: 1_700_000_001_000,
        }
    }

    #[test]
    fn renders_labels_value_and_execution_fields() {
        let a = alert();
        let t = ActionTemplate::parse(
            "policies[0].http.url",
            "http://x/{{ $labels.zone }}/{{ .Labels.instance_id }}?v={{ $value }}&t={{ .Target }}&r={{ .RequestID }}&m={{ $labels.missing }}",
        )
        .unwrap();
        assert_eq!(
            t.render(&cx(&a)).unwrap(),
            "http://x/europe-west1-b/1234?v=0.97&t=1234&r=r-1&m="
        );
    }

    #[test]
    fn parse_errors_name_the_field() {
        let e = ActionTemplate::parse("policies[2].exec.args[1]", "{{ nosuchfunc }}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("policies[2].exec.args[1]: "), "{e}");
        assert!(e.contains("nosuchfunc"), "{e}");
    }

    #[test]
    fn plain_text_is_kept() {
        let a = alert();
        let t = ActionTemplate::parse("f", "no actions here").unwrap();
        assert!(!t.is_templated());
        assert_eq!(t.render(&cx(&a)).unwrap(), "no actions here");
    }
}
