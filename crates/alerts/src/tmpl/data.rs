//! The data notification templates see, shaped as Alertmanager's `template.Data`: `.Receiver`,
//! `.Status`, `.Alerts` (with `.Firing`/`.Resolved`), `.GroupLabels`, `.CommonLabels`,
//! `.CommonAnnotations`, `.ExternalURL`, and the `KV` type with `.SortedPairs`, `.Names`,
//! `.Values` and `.Remove`.

use std::collections::BTreeMap;

use tocsin_model::Alert;
use tocsin_template::gotime::Time;
use tocsin_template::{Elem, FuncError, Map, Object, Value};

use crate::notify::webhook::label_map;
use crate::notify::NotifyCx;

/// Go's zero `time.Time` (January 1, year 1), which firing alerts carry as `EndsAt`.
const GO_ZERO_UNIX: i64 = -62_135_596_800;

/// Alertmanager's `KV`: a `map[string]string` with methods.
#[derive(Debug, Clone)]
pub struct Kv(pub BTreeMap<String, String>);

impl Kv {
    fn map(&self) -> Value {
        Value::str_map(self.0.iter().map(|(k, v)| (k.clone(), v.clone())))
    }
}

fn no_args(name: &str, args: &[Value]) -> Result<(), FuncError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(FuncError::Failed(format!(
            "{name} has arguments but cannot be invoked as function"
        )))
    }
}

fn str_list<'a>(items: impl Iterator<Item = &'a String>) -> Value {
    Value::list(items.map(|s| Value::str(s.as_str())).collect())
}

/// The strings of a `[]string` argument (a list of strings, or a lone string).
pub(crate) fn strings_arg(v: &Value) -> Result<Vec<String>, FuncError> {
    match v.underlying() {
        Value::List(l) => l
            .iter()
            .map(|e| e.expect_str().map(str::to_string))
            .collect(),
        Value::Str(s) => Ok(vec![s]),
        Value::Nil => Ok(Vec::new()),
        other => Err(FuncError::wrong_type("[]string", &other)),
    }
}

impl Object for Kv {
    fn type_name(&self) -> String {
        "template.KV".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        let r = match name {
            "SortedPairs" => no_args(name, args).map(|()| {
                Value::object(Pairs(
                    self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                ))
            }),
            "Names" => no_args(name, args).map(|()| str_list(self.0.keys())),
            "Values" => no_args(name, args).map(|()| str_list(self.0.values())),
            "Remove" => match args {
                [keys] => strings_arg(keys).map(|keys| {
                    let mut m = self.0.clone();
                    for k in keys {
                        m.remove(&k);
                    }
                    Value::object(Kv(m))
                }),
                _ => Err(FuncError::ArgCount {
                    want: 1,
                    got: args.len(),
                    at_least: false,
                }),
            },
            _ => return None,
        };
        Some(r)
    }

    fn display(&self) -> String {
        self.map().to_string()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn is_true(&self) -> bool {
        !self.0.is_empty()
    }

    fn underlying(&self) -> Option<Value> {
        Some(self.map())
    }
}

/// `KV.SortedPairs()`: name/value pairs sorted by name, with `.Names` and `.Values`.
#[derive(Debug, Clone)]
pub struct Pairs(pub Vec<(String, String)>);

impl Object for Pairs {
    fn type_name(&self) -> String {
        "template.Pairs".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        let r = match name {
            "Names" => no_args(name, args).map(|()| str_list(self.0.iter().map(|p| &p.0))),
            "Values" => no_args(name, args).map(|()| str_list(self.0.iter().map(|p| &p.1))),
            _ => return None,
        };
        Some(r)
    }

    fn display(&self) -> String {
        let items: Vec<String> = self.0.iter().map(|(k, v)| format!("{{{k} {v}}}")).collect();
        format!("[{}]", items.join(" "))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn is_true(&self) -> bool {
        !self.0.is_empty()
    }

    fn underlying(&self) -> Option<Value> {
        Some(Value::list(
            self.0
                .iter()
                .map(|(k, v)| {
                    let mut m = Map::new(Elem::Str);
                    m.insert("Name", k.as_str());
                    m.insert("Value", v.as_str());
                    Value::map(m)
                })
                .collect(),
        ))
    }
}

/// One alert of `.Alerts`.
#[derive(Debug, Clone)]
pub struct TmplAlert {
    pub status: &'static str,
    pub labels: Kv,
    pub annotations: Kv,
    pub starts_at: Time,
    pub ends_at: Time,
    pub generator_url: String,
    pub fingerprint: String,
}

impl TmplAlert {
    pub fn new(a: &Alert, now_ms: i64) -> TmplAlert {
        let resolved = a.resolved_at(now_ms);
        TmplAlert {
            status: if resolved { "resolved" } else { "firing" },
            labels: Kv(label_map(&a.labels)),
            annotations: Kv(a.annotations.clone()),
            starts_at: Time::from_unix_millis(a.starts_at),
            ends_at: if resolved {
                Time::from_unix_millis(a.ends_at)
            } else {
                Time::from_unix(GO_ZERO_UNIX, 0)
            },
            generator_url: a.generator_url.clone(),
            fingerprint: a.fingerprint_hex(),
        }
    }
}

impl Object for TmplAlert {
    fn type_name(&self) -> String {
        "template.Alert".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        let v = match name {
            "Status" => Value::str(self.status),
            "Labels" => Value::object(self.labels.clone()),
            "Annotations" => Value::object(self.annotations.clone()),
            "StartsAt" => Value::object(self.starts_at),
            "EndsAt" => Value::object(self.ends_at),
            "GeneratorURL" => Value::str(self.generator_url.as_str()),
            "Fingerprint" => Value::str(self.fingerprint.as_str()),
            _ => return None,
        };
        Some(no_args(name, args).map(|()| v))
    }

    fn display(&self) -> String {
        format!(
            "{{{} {} {} {} {} {} {}}}",
            self.status,
            self.labels.display(),
            self.annotations.display(),
            Value::object(self.starts_at),
            Value::object(self.ends_at),
            self.generator_url,
            self.fingerprint
        )
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// `.Alerts`: a list with `.Firing` and `.Resolved`.
#[derive(Debug, Clone)]
pub struct Alerts(pub Vec<TmplAlert>);

impl Object for Alerts {
    fn type_name(&self) -> String {
        "template.Alerts".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        let want = match name {
            "Firing" => "firing",
            "Resolved" => "resolved",
            _ => return None,
        };
        Some(no_args(name, args).map(|()| {
            Value::object(Alerts(
                self.0
                    .iter()
                    .filter(|a| a.status == want)
                    .cloned()
                    .collect(),
            ))
        }))
    }

    fn display(&self) -> String {
        let items: Vec<String> = self.0.iter().map(Object::display).collect();
        format!("[{}]", items.join(" "))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn is_true(&self) -> bool {
        !self.0.is_empty()
    }

    fn underlying(&self) -> Option<Value> {
        Some(Value::list(
            self.0.iter().cloned().map(Value::object).collect(),
        ))
    }
}

/// Go's `regexp.QuoteMeta`, which Alertmanager applies to `.Receiver`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Pairs present with the same value in every map.
fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    let mut c = (*first).clone();
    for m in rest {
        c.retain(|k, v| m.get(k) == Some(v));
    }
    c
}

/// The template data of one notification.
#[derive(Debug, Clone)]
pub struct TmplData {
    pub receiver: String,
    pub status: &'static str,
    pub alerts: Alerts,
    pub group_labels: Kv,
    pub common_labels: Kv,
    pub common_annotations: Kv,
    pub external_url: String,
}

impl TmplData {
    pub fn new(cx: &NotifyCx, alerts: &[Alert]) -> TmplData {
        let list: Vec<TmplAlert> = alerts
            .iter()
            .map(|a| TmplAlert::new(a, cx.now_ms))
            .collect();
        let firing = list.iter().any(|a| a.status == "firing");
        let labels: Vec<&BTreeMap<String, String>> = list.iter().map(|a| &a.labels.0).collect();
        let annotations: Vec<&BTreeMap<String, String>> =
            list.iter().map(|a| &a.annotations.0).collect();
        TmplData {
            receiver: quote_meta(&cx.receiver),
            status: if firing { "firing" } else { "resolved" },
            group_labels: Kv(label_map(&cx.group_labels)),
            common_labels: Kv(common(&labels)),
            common_annotations: Kv(common(&annotations)),
            external_url: cx.external_url.clone(),
            alerts: Alerts(list),
        }
    }

    /// The same data with every string HTML-escaped, for fields rendered as HTML (email `html`,
    /// Telegram with `parse_mode: HTML`): Alertmanager renders those with Go's html/template,
    /// which escapes what the data inserts; escaping the data gives the same protection.
    pub fn html_escaped(&self) -> TmplData {
        let e = tocsin_template::html_escape;
        let kv = |k: &Kv| Kv(k.0.iter().map(|(a, b)| (e(a), e(b))).collect());
        TmplData {
            receiver: e(&self.receiver),
            status: self.status,
            alerts: Alerts(
                self.alerts
                    .0
                    .iter()
                    .map(|a| TmplAlert {
                        status: a.status,
                        labels: kv(&a.labels),
                        annotations: kv(&a.annotations),
                        starts_at: a.starts_at,
                        ends_at: a.ends_at,
                        generator_url: e(&a.generator_url),
                        fingerprint: a.fingerprint.clone(),
                    })
                    .collect(),
            ),
            group_labels: kv(&self.group_labels),
            common_labels: kv(&self.common_labels),
            common_annotations: kv(&self.common_annotations),
            external_url: e(&self.external_url),
        }
    }

    /// The dot of a template run.
    pub fn value(&self) -> Value {
        let mut m = Map::new(Elem::Any);
        m.insert("Receiver", self.receiver.as_str());
        m.insert("Status", self.status);
        m.insert("Alerts", Value::object(self.alerts.clone()));
        m.insert("GroupLabels", Value::object(self.group_labels.clone()));
        m.insert("CommonLabels", Value::object(self.common_labels.clone()));
        m.insert(
            "CommonAnnotations",
            Value::object(self.common_annotations.clone()),
        );
        m.insert("ExternalURL", self.external_url.as_str());
        Value::map(m)
    }
}
