//! Prometheus's template environment for alerting rules: the data templates see (`.Labels`,
//! `.ExternalLabels`, `.ExternalURL`, `.Value`, and the `$labels`, `$externalLabels`,
//! `$externalURL`, `$value` variables Prometheus declares), Prometheus's template functions,
//! and the expansion of a rule's labels and annotations from templates parsed once per rule.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use tocsin_model::Labels;
use tocsin_template::gotime::{Duration, Time};
use tocsin_template::{
    gofmt, query_escape, Elem, FuncError, Funcs, Map, MissingKey, Object, Template, Value,
};

use crate::file::AlertingRule;

/// Runs a PromQL instant query at the evaluation time: a vector's samples, or a scalar as one
/// sample without labels.
pub type QueryFn<'a> = &'a (dyn Fn(&str) -> Result<Vec<(Labels, f64)>, String> + Sync);

/// Prometheus puts these before every alert template so the variables exist.
const DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The template name Prometheus gives an alerting rule's labels and annotations.
pub fn alert_template_name(alert: &str) -> String {
    format!("__alert_{alert}")
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    #[error("error parsing template {name}: {source}")]
    Parse {
        name: String,
        source: tocsin_template::Error,
    },
    #[error("error executing template {name}: {source}")]
    Execute {
        name: String,
        source: tocsin_template::Error,
    },
}

/// What one alert's templates see.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    /// The alert sample's labels, metric name included, as Prometheus passes them.
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub value: f64,
    /// Evaluation time (ms): `query` runs at it and `now` returns it.
    pub eval_time_ms: i64,
}

/// Expands one template text (parsing it each time: for one-off use; rules keep
/// [`RuleTemplates`]). A text without `{{` is returned as it is.
pub fn expand(
    name: &str,
    text: &str,
    data: &TemplateData<'_>,
    query: QueryFn<'_>,
) -> Result<String, TemplateError> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let env = Env::new(
        data.external_labels,
        data.external_url,
        data.eval_time_ms,
        query,
    );
    AlertTemplate::new(name, text).expand(&env, &env.dot(data.labels, data.value))
}

/// Parses a template as an alert's label or annotation, for `check rules`; the message is
/// Go's (`template: __alert_X:1: function "x" not defined`).
pub fn check(name: &str, text: &str) -> Result<(), String> {
    if !text.contains("{{") {
        return Ok(());
    }
    parse(name, text).map(|_| ()).map_err(|e| e.to_string())
}

fn parse(name: &str, text: &str) -> Result<Template, tocsin_template::Error> {
    Template::parse(name, &format!("{DEFS}{text}"), parse_funcs())
        .map(|t| t.with_missing_key(MissingKey::Zero))
}

fn no_query(_: &str) -> Result<Vec<(Labels, f64)>, String> {
    Err("queries are not available here".into())
}

/// The function set parsing checks names against.
fn parse_funcs() -> &'static Funcs<'static> {
    static FUNCS: OnceLock<Funcs<'static>> = OnceLock::new();
    FUNCS.get_or_init(|| prometheus_funcs(&no_query, 0, ""))
}

/// What the templates of one evaluation share: the functions bound to the query function
/// and evaluation time, and the external labels and URL.
pub struct Env<'a> {
    funcs: Funcs<'a>,
    external_labels: Value,
    external_url: Value,
}

impl<'a> Env<'a> {
    pub fn new(
        external_labels: &Labels,
        external_url: &str,
        eval_time_ms: i64,
        query: QueryFn<'a>,
    ) -> Env<'a> {
        Env {
            funcs: prometheus_funcs(query, eval_time_ms, external_url),
            external_labels: labels_value(external_labels),
            external_url: Value::str(external_url),
        }
    }

    /// The dot of an alert with these labels and value.
    pub fn dot(&self, labels: &Labels, value: f64) -> Value {
        let mut m = Map::new(Elem::Any);
        m.insert("Labels", labels_value(labels));
        m.insert("ExternalLabels", self.external_labels.clone());
        m.insert("ExternalURL", self.external_url.clone());
        m.insert("Value", value);
        Value::map(m)
    }
}

fn labels_value(l: &Labels) -> Value {
    Value::str_map(l.iter().map(|l| (l.name.clone(), l.value.clone())))
}

/// One label or annotation text, parsed once.
#[derive(Debug, Clone)]
pub struct AlertTemplate {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No `{{`: renders as itself.
    Plain(String),
    Parsed(Template),
    /// Fails to parse: every expansion reports it, as Prometheus (which parses each time).
    Invalid(TemplateError),
}

impl AlertTemplate {
    pub fn new(name: &str, text: &str) -> AlertTemplate {
        let kind = if !text.contains("{{") {
            Kind::Plain(text.to_string())
        } else {
            match parse(name, text) {
                Ok(t) => Kind::Parsed(t),
                Err(source) => Kind::Invalid(TemplateError::Parse {
                    name: name.to_string(),
                    source,
                }),
            }
        };
        AlertTemplate {
            name: name.to_string(),
            kind,
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self.kind, Kind::Plain(_))
    }

    pub fn expand(&self, env: &Env<'_>, dot: &Value) -> Result<String, TemplateError> {
        match &self.kind {
            Kind::Plain(s) => Ok(s.clone()),
            Kind::Invalid(e) => Err(e.clone()),
            Kind::Parsed(t) => {
                t.execute(dot, &env.funcs)
                    .map_err(|source| TemplateError::Execute {
                        name: self.name.clone(),
                        source,
                    })
            }
        }
    }
}

/// An alerting rule's label and annotation templates, parsed once and kept by the evaluator.
#[derive(Debug, Clone)]
pub struct RuleTemplates {
    alert: String,
    labels: Vec<(String, AlertTemplate)>,
    annotations: Vec<(String, AlertTemplate)>,
}

impl RuleTemplates {
    /// `labels` are the rule's labels with the group's merged in.
    pub fn new(
        alert: &str,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> RuleTemplates {
        let name = alert_template_name(alert);
        let compile = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| (k.clone(), AlertTemplate::new(&name, v)))
                .collect()
        };
        RuleTemplates {
            alert: alert.to_string(),
            labels: compile(labels),
            annotations: compile(annotations),
        }
    }

    /// Whether no text has an action, so expansions need no data.
    pub fn is_plain(&self) -> bool {
        self.labels
            .iter()
            .chain(&self.annotations)
            .all(|(_, t)| t.is_plain())
    }

    /// The expanded labels, in name order; an empty result removes the label.
    pub fn expand_labels(&self, env: &Env<'_>, dot: &Value) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(k, t)| (k.clone(), self.expand_or_report(t, env, dot)))
            .collect()
    }

    pub fn expand_annotations(&self, env: &Env<'_>, dot: &Value) -> BTreeMap<String, String> {
        self.annotations
            .iter()
            .map(|(k, t)| (k.clone(), self.expand_or_report(t, env, dot)))
            .collect()
    }

    /// As Prometheus: a failed expansion becomes an error text in place of the value, and a
    /// warning.
    fn expand_or_report(&self, t: &AlertTemplate, env: &Env<'_>, dot: &Value) -> String {
        match t.expand(env, dot) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(alert = %self.alert, err = %e, data = %dot, "Expanding alert template failed");
                format!("<error expanding template: {e}>")
            }
        }
    }
}

/// A group's template context: external labels and URL, and each alerting rule's templates,
/// parsed at the rule's first evaluation.
#[derive(Debug, Clone, Default)]
pub struct GroupTemplates {
    pub external_labels: Labels,
    pub external_url: String,
    rules: Vec<Option<Arc<RuleTemplates>>>,
}

impl GroupTemplates {
    pub fn new(external_labels: Labels, external_url: String) -> GroupTemplates {
        GroupTemplates {
            external_labels,
            external_url,
            rules: Vec::new(),
        }
    }

    /// The templates of alerting rule `i` of the group (whose labels are `group_labels`).
    pub fn rule(
        &mut self,
        i: usize,
        group_labels: &BTreeMap<String, String>,
        rule: &AlertingRule,
    ) -> Arc<RuleTemplates> {
        if self.rules.len() <= i {
            self.rules.resize(i + 1, None);
        }
        self.rules[i]
            .get_or_insert_with(|| {
                let mut labels = group_labels.clone();
                labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                Arc::new(RuleTemplates::new(&rule.alert, &labels, &rule.annotations))
            })
            .clone()
    }
}

/// A query result sample as Prometheus hands it to templates (`*template.sample`).
#[derive(Debug)]
struct Sample {
    labels: Value,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> String {
        match &self.labels {
            Value::Map(m) => m
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        }
    }
}

impl Object for Sample {
    fn type_name(&self) -> String {
        "*template.sample".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        let v = match name {
            "Labels" => self.labels.clone(),
            "Value" => Value::Float(self.value),
            _ => return None,
        };
        if !args.is_empty() {
            return Some(Err(FuncError::Failed(format!(
                "{name} has arguments but cannot be invoked as function"
            ))));
        }
        Some(Ok(v))
    }

    fn display(&self) -> String {
        format!("&{{{} {}}}", self.labels, Value::Float(self.value))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn sample_arg(v: &Value) -> Result<&Sample, FuncError> {
    v.downcast::<Sample>()
        .ok_or_else(|| FuncError::wrong_type("*template.sample", v))
}

fn samples_arg(v: &Value) -> Result<&[Value], FuncError> {
    match v {
        Value::List(l) => Ok(l),
        other => Err(FuncError::wrong_type("template.queryResult", other)),
    }
}

/// Prometheus's `convertToFloat`: numbers, numeric strings and durations.
fn to_float(v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => s.parse::<f64>().map_err(|_| {
            FuncError::Failed(format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                gofmt::quote(s)
            ))
        }),
        other => match other.downcast::<Duration>() {
            Some(d) => Ok(d.as_secs_f64()),
            None => Err(FuncError::Failed(format!(
                "can't convert {} to float",
                other.type_name()
            ))),
        },
    }
}

pub use tocsin_template::humanize::{
    g4, humanize, humanize_1024, humanize_duration, humanize_percentage,
};

/// Prometheus's float-to-time: seconds to an instant, truncated to milliseconds.
fn float_to_time(v: f64) -> Result<Time, FuncError> {
    if !v.is_finite() {
        return Err("value is NaN or Inf".into());
    }
    let ns = v * 1e9;
    // i64's range as floats: 2^63 itself is already out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&ns) {
        return Err(FuncError::Failed(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            Value::Float(v)
        )));
    }
    Ok(Time::from_unix_millis(ns as i64 / 1_000_000))
}

pub fn humanize_timestamp(v: f64) -> Result<String, String> {
    if !v.is_finite() {
        return Ok(g4(v));
    }
    float_to_time(v)
        .map(|t| t.display())
        .map_err(|e| e.to_string())
}

/// Go's `net.SplitHostPort`.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k) = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub fn strip_port(hp: &str) -> String {
    split_host_port(hp).map_or(hp, |(h, _)| h).to_string()
}

pub fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or(host);
    if port.is_empty() {
        host.to_string()
    } else {
        join_host_port(host, port)
    }
}

/// Title case as Prometheus's `title` (Unicode word breaks, no lowering): the first letter
/// of each word upper-cased, where `'`, `.` and `:` between letters do not break a word.
pub fn title(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for (i, &c) in chars.iter().enumerate() {
        let word_char = c.is_alphanumeric() || c == '_';
        let joins = matches!(c, '\'' | '.' | ':' | '’' | '·')
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if word_char && !in_word {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => out.push(u),
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
        in_word = word_char || (joins && in_word);
    }
    out
}

/// Go's `strings.ToUpper`/`ToLower`: per character, keeping characters whose case mapping
/// is not a single character.
fn map_case(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 {
                m.pop().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// Go's `regexp` quoting of a pattern in messages.
fn quote_pattern(p: &str) -> String {
    if p.contains(['`', '\n', '\r']) {
        gofmt::quote(p)
    } else {
        format!("`{p}`")
    }
}

/// Compiles `pattern`; the error reads as Go's `error parsing regexp: ...`.
fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| {
        let text = e.to_string();
        let reason = text
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        format!("error parsing regexp: {reason}: {}", quote_pattern(pattern))
    })
}

/// Prometheus's `parseDuration`: a Prometheus duration in seconds, possibly negative.
fn parse_duration(d: &str) -> Result<f64, FuncError> {
    let (neg, body) = match d.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, d),
    };
    let ms = tocsin_model::duration::parse_duration_ms(body).map_err(FuncError::Failed)?;
    let s = ms as f64 / 1000.0;
    Ok(if neg { -s } else { s })
}

fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let Some(slash) = rest.find('/') else {
        return "";
    };
    let path = &rest[slash..];
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// Prometheus's template functions, bound to a query function, the evaluation time (ms)
/// and the external URL.
pub fn prometheus_funcs<'a>(
    query: QueryFn<'a>,
    eval_time_ms: i64,
    external_url: &str,
) -> Funcs<'a> {
    let mut f = Funcs::new();
    let str_fn = |f: &mut Funcs<'a>, name: &str, g: fn(&str) -> String| {
        f.add(name, move |a: &[Value]| {
            FuncError::check_args(a, 1)?;
            Ok(Value::Str(g(a[0].expect_str()?)))
        });
    };
    let num_fn = |f: &mut Funcs<'a>, name: &str, g: fn(f64) -> String| {
        f.add(name, move |a: &[Value]| {
            FuncError::check_args(a, 1)?;
            Ok(Value::Str(g(to_float(&a[0])?)))
        });
    };
    f.add("query", move |a| {
        FuncError::check_args(a, 1)?;
        let samples = query(a[0].expect_str()?)?;
        Ok(Value::list(
            samples
                .into_iter()
                .map(|(l, v)| {
                    Value::object(Sample {
                        labels: labels_value(&l),
                        value: v,
                    })
                })
                .collect(),
        ))
    });
    f.add("first", |a| {
        FuncError::check_args(a, 1)?;
        samples_arg(&a[0])?
            .first()
            .cloned()
            .ok_or_else(|| "first() called on vector with no elements".into())
    });
    f.add("label", |a| {
        FuncError::check_args(a, 2)?;
        let name = a[0].expect_str()?;
        Ok(Value::Str(sample_arg(&a[1])?.label(name)))
    });
    f.add("value", |a| {
        FuncError::check_args(a, 1)?;
        Ok(Value::Float(sample_arg(&a[0])?.value))
    });
    f.add("strvalue", |a| {
        FuncError::check_args(a, 1)?;
        Ok(Value::Str(sample_arg(&a[0])?.label("__value__")))
    });
    f.add("sortByLabel", |a| {
        FuncError::check_args(a, 2)?;
        let name = a[0].expect_str()?;
        let mut keyed = Vec::new();
        for v in samples_arg(&a[1])? {
            keyed.push((sample_arg(v)?.label(name), v.clone()));
        }
        keyed.sort_by(|x, y| x.0.cmp(&y.0));
        Ok(Value::list(keyed.into_iter().map(|(_, v)| v).collect()))
    });
    f.add("args", |a| {
        let mut m = Map::new(Elem::Any);
        for (i, v) in a.iter().enumerate() {
            m.insert(format!("arg{i}"), v.clone());
        }
        Ok(Value::map(m))
    });
    f.add("reReplaceAll", |a| {
        FuncError::check_args(a, 3)?;
        let (pat, repl, text) = (a[0].expect_str()?, a[1].expect_str()?, a[2].expect_str()?);
        // Prometheus compiles with MustCompile, whose panic names the pattern.
        let re = compile_regex(pat)
            .map_err(|e| format!("regexp: Compile({}): {e}", quote_pattern(pat)))?;
        Ok(Value::Str(re.replace_all(text, repl).into_owned()))
    });
    f.add("match", |a| {
        FuncError::check_args(a, 2)?;
        let (pat, text) = (a[0].expect_str()?, a[1].expect_str()?);
        Ok(Value::Bool(compile_regex(pat)?.is_match(text)))
    });
    str_fn(&mut f, "safeHtml", |s| s.to_string());
    str_fn(&mut f, "title", title);
    str_fn(&mut f, "toUpper", |s| map_case(s, true));
    str_fn(&mut f, "toLower", |s| map_case(s, false));
    str_fn(&mut f, "graphLink", |s| {
        format!("/graph?g0.expr={}&g0.tab=0", query_escape(s))
    });
    str_fn(&mut f, "tableLink", |s| {
        format!("/graph?g0.expr={}&g0.tab=1", query_escape(s))
    });
    str_fn(&mut f, "stripPort", strip_port);
    str_fn(&mut f, "stripDomain", strip_domain);
    num_fn(&mut f, "humanize", humanize);
    num_fn(&mut f, "humanize1024", humanize_1024);
    num_fn(&mut f, "humanizeDuration", humanize_duration);
    num_fn(&mut f, "humanizePercentage", humanize_percentage);
    f.add("humanizeTimestamp", |a| {
        FuncError::check_args(a, 1)?;
        Ok(Value::Str(humanize_timestamp(to_float(&a[0])?)?))
    });
    f.add("toTime", |a| {
        FuncError::check_args(a, 1)?;
        Ok(Value::object(float_to_time(to_float(&a[0])?)?))
    });
    f.add("toDuration", |a| {
        FuncError::check_args(a, 1)?;
        let v = to_float(&a[0])?;
        if !v.is_finite() {
            return Err("value is NaN or Inf".into());
        }
        Ok(Value::object(Duration::from_secs_f64(v)))
    });
    f.add("now", move |a| {
        FuncError::check_args(a, 0)?;
        Ok(Value::Float(eval_time_ms as f64 / 1000.0))
    });
    let url = external_url.to_string();
    let path = url_path(external_url).to_string();
    f.add("pathPrefix", move |a| {
        FuncError::check_args(a, 0)?;
        Ok(Value::str(path.as_str()))
    });
    f.add("externalURL", move |a| {
        FuncError::check_args(a, 0)?;
        Ok(Value::str(url.as_str()))
    });
    f.add("parseDuration", |a| {
        FuncError::check_args(a, 1)?;
        Ok(Value::Float(parse_duration(a[0].expect_str()?)?))
    });
    f
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
