//! `GET /api/alerts` and `/api/alerts/count` parameters as Alerta's clients send them: field
//! filters (`resource=web`, repeated = any of them, `resource!=web` = none of them, a value
//! starting with `~` = a case-insensitive regex), `id` (full or a prefix, as the CLI's short
//! 8-character ids), `q` (a subset of Alerta's Lucene syntax: `field:value` and
//! `field:"quoted value"` terms and bare words, all joined by AND), `from-date`/`to-date` (on
//! `lastReceiveTime`), `sort-by` (repeatable) with `reverse`, and `page`/`page-size`. Filters
//! apply to the alert as Alerta's JSON shows it, so they mean what they mean in Alerta.
//! Anything else is refused with a 400 naming it.

use regex::Regex;
use serde_json::Value;

use super::view::severity_rank;

/// Fields a filter or a `q` term may name (besides `attributes.K` / `_.K`).
const FIELDS: [&str; 15] = [
    "id",
    "resource",
    "event",
    "environment",
    "severity",
    "status",
    "service",
    "group",
    "value",
    "text",
    "tags",
    "origin",
    "type",
    "customer",
    "correlate",
];

/// Fields `sort-by` may name.
const SORT_FIELDS: [&str; 17] = [
    "lastReceiveTime",
    "createTime",
    "receiveTime",
    "updateTime",
    "severity",
    "status",
    "resource",
    "event",
    "environment",
    "group",
    "value",
    "text",
    "origin",
    "type",
    "customer",
    "duplicateCount",
    "id",
];

/// Parameters taken and not filters.
const OTHER_PARAMS: [&str; 10] = [
    "q",
    "page",
    "page-size",
    "sort-by",
    "reverse",
    "from-date",
    "to-date",
    "show-raw-data",
    "show-history",
    "group-by",
];

pub const DEFAULT_PAGE_SIZE: usize = 1000;
pub const MAX_PAGE_SIZE: usize = 10_000;

#[derive(Debug, Clone)]
enum Test {
    Equal(String),
    Regex(Regex),
    /// Bare words of `q`: a case-insensitive substring of one of the text fields.
    Contains(String),
}

#[derive(Debug, Clone)]
struct Cond {
    /// Empty for a bare word.
    field: String,
    negate: bool,
    /// Any of them.
    tests: Vec<Test>,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    conds: Vec<Cond>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    sort: Vec<String>,
    reverse: bool,
    pub page: usize,
    pub page_size: usize,
}

fn check_field(f: &str, at: &str) -> Result<(), String> {
    if FIELDS.contains(&f) {
        return Ok(());
    }
    if let Some(k) = f
        .strip_prefix("attributes.")
        .or_else(|| f.strip_prefix("_."))
    {
        if !k.is_empty() {
            return Ok(());
        }
    }
    Err(format!(
        "{at}: unknown field {f:?}; filters can name {}, attributes.NAME or _.NAME",
        FIELDS.join(", ")
    ))
}

fn test_of(v: &str, at: &str) -> Result<Test, String> {
    match v.strip_prefix('~') {
        Some(re) => Regex::new(&format!("(?i){re}"))
            .map(Test::Regex)
            .map_err(|e| format!("{at}: invalid regex: {e}")),
        None => Ok(Test::Equal(v.to_string())),
    }
}

fn parse_time(v: &str, at: &str) -> Result<i64, String> {
    tocsin_model::time::parse_rfc3339_ms(v)
        .ok_or_else(|| format!("{at}: {v:?} is not an ISO 8601 time like 2024-01-01T00:00:00.000Z"))
}

fn parse_count(v: &str, at: &str, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{at}: {v:?} must be a whole number from 1 to {max}"
        )),
    }
}

/// Splits `q` into words, keeping `"quoted parts"` (with `\"` escapes) inside one word.
fn words(q: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err("q: ends inside an escape".into()),
            },
            '"' => {
                quoted = !quoted;
                cur.push('"');
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("q: unterminated quote".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_q(q: &str) -> Result<Vec<Cond>, String> {
    let unsupported = |w: &str| {
        format!(
            "q: {w:?} is not supported; Tocsin takes field:value terms, field:\"quoted value\" \
             and bare words, all joined by AND (or use field=value parameters)"
        )
    };
    let mut out = Vec::new();
    for w in words(q)? {
        if w == "AND" || w == "&&" {
            continue;
        }
        if matches!(w.as_str(), "OR" | "NOT" | "||" | "!")
            || w.starts_with(['(', '-', '+'])
            || w.ends_with(')')
            || (!w.contains('"') && w.contains(['*', '?']))
        {
            return Err(unsupported(&w));
        }
        let (field, value) = match w.split_once(':') {
            Some((f, v)) if !f.starts_with('"') => (f, unquote(v)),
            _ => ("", unquote(&w)),
        };
        if field.is_empty() {
            out.push(Cond {
                field: String::new(),
                negate: false,
                tests: vec![Test::Contains(value.to_lowercase())],
            });
        } else {
            check_field(field, "q")?;
            out.push(Cond {
                field: field.to_string(),
                negate: false,
                tests: vec![Test::Equal(value.to_string())],
            });
        }
    }
    Ok(out)
}

impl Query {
    /// Parses the query string's pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Query, String> {
        let mut q = Query {
            conds: Vec::new(),
            from_ms: None,
            to_ms: None,
            sort: Vec::new(),
            reverse: false,
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        };
        // Filters of one field (and sense) are OR-ed: gather them first.
        let mut filters: Vec<Cond> = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "q" => q.conds.extend(parse_q(v)?),
                "page" => q.page = parse_count(v, "page", usize::MAX)?,
                "page-size" => q.page_size = parse_count(v, "page-size", MAX_PAGE_SIZE)?,
                "sort-by" => {
                    if !SORT_FIELDS.contains(&v.as_str()) {
                        return Err(format!(
                            "sort-by: {v:?} is not one of {}",
                            SORT_FIELDS.join(", ")
                        ));
                    }
                    q.sort.push(v.clone());
                }
                "reverse" => {
                    q.reverse = match v.to_ascii_lowercase().as_str() {
                        "" | "1" | "true" | "yes" => true,
                        "0" | "false" | "no" => false,
                        _ => return Err(format!("reverse: {v:?} is not a boolean")),
                    }
                }
                "from-date" => q.from_ms = Some(parse_time(v, "from-date")?),
                "to-date" => q.to_ms = Some(parse_time(v, "to-date")?),
                k if OTHER_PARAMS.contains(&k) => {}
                k => {
                    let (field, negate) = match k.strip_suffix('!') {
                        Some(f) => (f, true),
                        None => (k, false),
                    };
                    check_field(field, &format!("parameter {k:?}"))?;
                    let t = test_of(v, k)?;
                    match filters
                        .iter_mut()
                        .find(|c| c.field == field && c.negate == negate)
                    {
                        Some(c) => c.tests.push(t),
                        None => filters.push(Cond {
                            field: field.to_string(),
                            negate,
                            tests: vec![t],
                        }),
                    }
                }
            }
        }
        q.conds.extend(filters);
        Ok(q)
    }

    /// Whether the alert (as Alerta's JSON) passes every condition.
    pub fn admits(&self, a: &Value) -> bool {
        let last = a
            .get("lastReceiveTime")
            .and_then(Value::as_str)
            .and_then(tocsin_model::time::parse_rfc3339_ms)
            .unwrap_or(0);
        if self.from_ms.is_some_and(|f| last <= f) || self.to_ms.is_some_and(|t| last > t) {
            return false;
        }
        self.conds.iter().all(|c| cond_admits(c, a))
    }

    /// Sorts alerts (as JSON) as `sort-by` and `reverse` say; by default the most recently
    /// received first, as Alerta lists them.
    pub fn sort(&self, alerts: &mut [Value]) {
        let keys: Vec<&str> = if self.sort.is_empty() {
            vec!["lastReceiveTime"]
        } else {
            self.sort.iter().map(String::as_str).collect()
        };
        alerts.sort_by(|a, b| {
            let mut ord = std::cmp::Ordering::Equal;
            for k in &keys {
                ord = ord.then_with(|| compare(k, a, b));
            }
            if self.reverse {
                ord.reverse()
            } else {
                ord
            }
        });
    }
}

fn compare(key: &str, a: &Value, b: &Value) -> std::cmp::Ordering {
    let s = |v: &Value| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    match key {
        "severity" => severity_rank(&s(a)).cmp(&severity_rank(&s(b))),
        // Newest and most duplicated first.
        "lastReceiveTime" | "createTime" | "receiveTime" | "updateTime" => s(b).cmp(&s(a)),
        "duplicateCount" => {
            let n = |v: &Value| v.get(key).and_then(Value::as_u64).unwrap_or(0);
            n(b).cmp(&n(a))
        }
        _ => s(a).cmp(&s(b)),
    }
}

/// The field's values as text: one for a string, each element for a list.
fn field_values(a: &Value, field: &str) -> Vec<String> {
    let v = match field
        .strip_prefix("attributes.")
        .or_else(|| field.strip_prefix("_."))
    {
        Some(k) => a.get("attributes").and_then(|m| m.get(k)),
        None => a.get(field),
    };
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::Null) | None => vec![String::new()],
        Some(other) => vec![other.to_string()],
    }
}

/// Fields a bare word of `q` searches.
const TEXT_FIELDS: [&str; 7] = [
    "resource",
    "event",
    "environment",
    "group",
    "value",
    "text",
    "origin",
];

fn cond_admits(c: &Cond, a: &Value) -> bool {
    let hit = if c.field.is_empty() {
        c.tests.iter().any(|t| match t {
            Test::Contains(w) => TEXT_FIELDS.iter().any(|f| {
                field_values(a, f)
                    .iter()
                    .any(|v| v.to_lowercase().contains(w.as_str()))
            }),
            _ => false,
        })
    } else {
        let values = field_values(a, &c.field);
        c.tests.iter().any(|t| {
            values.iter().any(|v| match t {
                // Short ids, as the CLI prints them, find their alert.
                Test::Equal(x) if c.field == "id" => !x.is_empty() && v.starts_with(x.as_str()),
                Test::Equal(x) => v == x,
                Test::Regex(re) => re.is_match(v),
                Test::Contains(w) => v.to_lowercase().contains(w.as_str()),
            })
        })
    };
    hit != c.negate
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Result<Query, String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Query::parse(&v)
    }

    fn alert(resource: &str, severity: &str, last: &str) -> Value {
        json!({"id": format!("abcdef12-{resource}"), "resource": resource, "event": "NodeDown",
               "severity": severity, "status": "open", "service": ["web", "db"],
               "text": "Disk FULL on host", "attributes": {"region": "EU"},
               "lastReceiveTime": last, "duplicateCount": 0})
    }

    #[test]
    fn filters_combine_as_in_alerta() {
        let a = alert("web01", "major", "2026-01-01T00:00:00.000Z");
        let b = alert("db01", "minor", "2026-01-01T00:00:01.000Z");
        let t = |pairs: &[(&str, &str)]| {
            let q = q(pairs).unwrap();
            (q.admits(&a), q.admits(&b))
        };
        assert_eq!(t(&[("resource", "web01")]), (true, false));
        assert_eq!(
            t(&[("resource", "web01"), ("resource", "db01")]),
            (true, true)
        );
        assert_eq!(t(&[("resource!", "web01")]), (false, true));
        assert_eq!(t(&[("resource", "~^WEB")]), (true, false));
        assert_eq!(t(&[("service", "db")]), (true, true));
        assert_eq!(t(&[("attributes.region", "EU")]), (true, true));
        assert_eq!(t(&[("_.region", "US")]), (false, false));
        assert_eq!(t(&[("id", "abcdef12")]), (true, true));
        assert_eq!(
            t(&[("q", "severity:\"major\" AND resource:web01")]),
            (true, false)
        );
        assert_eq!(t(&[("q", "disk")]), (true, true));
        assert_eq!(
            t(&[("from-date", "2026-01-01T00:00:00.500Z")]),
            (false, true)
        );
        let mut v = vec![a.clone(), b.clone()];
        q(&[]).unwrap().sort(&mut v);
        assert_eq!(v[0]["resource"], "db01", "newest first");
        q(&[("sort-by", "severity")]).unwrap().sort(&mut v);
        assert_eq!(v[0]["resource"], "web01", "most severe first");
    }

    #[test]
    fn unsupported_queries_are_refused_by_name() {
        let e = q(&[("hostname", "x")]).unwrap_err();
        assert!(e.contains("\"hostname\""), "{e}");
        let e = q(&[("q", "resource:b OR event:d")]).unwrap_err();
        assert!(e.starts_with("q: \"OR\""), "{e}");
        let e = q(&[("q", "foo:bar")]).unwrap_err();
        assert!(e.contains("unknown field \"foo\""), "{e}");
        let e = q(&[("page-size", "0")]).unwrap_err();
        assert!(e.starts_with("page-size"), "{e}");
        let e = q(&[("sort-by", "nope")]).unwrap_err();
        assert!(e.starts_with("sort-by"), "{e}");
        let e = q(&[("resource", "~(")]).unwrap_err();
        assert!(e.starts_with("resource: invalid regex"), "{e}");
        let e = q(&[("q", "text:\"open")]).unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
    }
}
