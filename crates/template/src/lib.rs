//! Go's text/template: parsing, execution and the builtin functions, with Go's fmt formatting
//! (`print`, `printf` and how values are shown), so templates written for Prometheus and the
//! Alertmanager render here as they do there. It knows nothing of Prometheus: callers bring
//! their functions and data.
//!
//! ```
//! use tocsin_template::{Funcs, Template, Value};
//!
//! let mut funcs = Funcs::new();
//! funcs.add("twice", |args| Ok(Value::Str(format!("{0}{0}", args[0]))));
//! let t = Template::parse("t", "{{ .name | twice }}!", &funcs).unwrap();
//! let dot = Value::str_map([("name", "ab")]);
//! assert_eq!(t.execute(&dot, &funcs).unwrap(), "abab!");
//! ```

mod builtins;
mod error;
mod exec;
mod gofloat;
pub mod gofmt;
pub mod gotime;
pub mod humanize;
mod lex;
mod parse;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use builtins::{html_escape, js_escape, query_escape};
pub use error::{Error, FuncError};
pub use value::{Elem, Map, Object, Value};

type FuncBox<'a> = Box<dyn Fn(&[Value]) -> Result<Value, FuncError> + Send + Sync + 'a>;

/// Functions a template may call, besides Go's builtins (which they override). Parsing checks
/// names against them, as Go does; execution calls them, so the set given to `execute` may
/// capture per-run context (a query function, an evaluation time).
#[derive(Default)]
pub struct Funcs<'a> {
    map: HashMap<String, FuncBox<'a>>,
}

impl<'a> Funcs<'a> {
    pub fn new() -> Self {
        Funcs::default()
    }

    /// Adds (or replaces) function `name`. It gets the evaluated arguments, the piped value
    /// last; an `Err` stops execution with the function named in the message.
    pub fn add<F>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(&[Value]) -> Result<Value, FuncError> + Send + Sync + 'a,
    {
        self.map.insert(name.into(), Box::new(f));
        self
    }

    /// Whether `name` is callable: one of these functions or a builtin.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name) || builtins::lookup(name).is_some()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&FuncBox<'a>> {
        self.map.get(name)
    }
}

/// What a field of a map with no such key reads as (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// No value: prints `<no value>`.
    #[default]
    Default,
    /// The zero value of the map's element type (`""` for a map of strings), as Prometheus.
    Zero,
    /// An execution error.
    Error,
}

/// A parsed template with the templates it defines (`define`, `block`).
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    trees: HashMap<String, Arc<parse::Tree>>,
    missing_key: MissingKey,
}

impl Template {
    /// Parses `text` as template `name`; functions used must be in `funcs` or builtins.
    pub fn parse(name: &str, text: &str, funcs: &Funcs<'_>) -> Result<Template, Error> {
        let mut t = Template {
            name: name.to_string(),
            trees: HashMap::new(),
            missing_key: MissingKey::Default,
        };
        t.parse_more(name, text, funcs)?;
        Ok(t)
    }

    /// Parses more text into this set (as Go's `ParseFiles`): its templates replace ones of
    /// the same name, unless they are empty.
    pub fn parse_more(&mut self, name: &str, text: &str, funcs: &Funcs<'_>) -> Result<(), Error> {
        let trees = parse::parse(name, text, &|n| funcs.has(n)).map_err(|e| {
            let pos = e.pos.min(text.len());
            let line = 1 + text.as_bytes()[..pos]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            Error::Parse {
                name: name.to_string(),
                line,
                msg: e.msg,
            }
        })?;
        for t in trees {
            if parse::is_empty_tree(&t.root) && self.trees.contains_key(&t.name) {
                continue;
            }
            self.trees.insert(t.name.clone(), Arc::new(t));
        }
        Ok(())
    }

    /// Sets what missing map keys read as.
    pub fn with_missing_key(mut self, mk: MissingKey) -> Self {
        self.missing_key = mk;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of all templates in the set, sorted.
    pub fn templates(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.trees.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Runs the template with `dot` as `.` and `$`.
    pub fn execute(&self, dot: &Value, funcs: &Funcs<'_>) -> Result<String, Error> {
        self.execute_template(&self.name, dot, funcs)
    }

    /// Runs the template `name` of the set.
    pub fn execute_template(
        &self,
        name: &str,
        dot: &Value,
        funcs: &Funcs<'_>,
    ) -> Result<String, Error> {
        let tree = self.trees.get(name).ok_or_else(|| {
            Error::Template(format!(
                "no template {} associated with template {}",
                gofmt::quote(name),
                gofmt::quote(&self.name)
            ))
        })?;
        exec::execute(self, tree, dot, funcs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn data() -> Value {
        let mut m = Map::new(Elem::Any);
        m.insert(
            "Labels",
            Value::str_map([("instance", "host:9100"), ("job", "node")]),
        );
        m.insert("Value", 0.1234);
        m.insert("Int", 7);
        m.insert("Empty", "");
        m.insert(
            "List",
            Value::list(vec![Value::str("a"), Value::str("b"), Value::str("c")]),
        );
        m.insert("Nums", Value::list(vec![Value::Int(3), Value::Int(1)]));
        m.insert("Ints", Value::str_map([("b", "2"), ("a", "1"), ("c", "3")]));
        m.insert("Nested", {
            let mut n = Map::new(Elem::Any);
            n.insert("Inner", Value::str_map([("k", "v")]));
            Value::map(n)
        });
        Value::map(m)
    }

    fn funcs() -> Funcs<'static> {
        let mut f = Funcs::new();
        f.add("upper", |a| {
            Ok(Value::Str(a[0].expect_str()?.to_uppercase()))
        });
        f.add("fail", |_| Err("boom".into()));
        f.add("pair", |a| Ok(Value::Str(format!("{}-{}", a[0], a[1]))));
        f
    }

    fn render_with(text: &str, mk: MissingKey) -> Result<String, Error> {
        let f = funcs();
        Template::parse("t", text, &f)?
            .with_missing_key(mk)
            .execute(&data(), &f)
    }

    fn render(text: &str) -> String {
        match render_with(text, MissingKey::Zero) {
            Ok(s) => s,
            Err(e) => format!("ERR: {e}"),
        }
    }

    #[test]
    fn renders_like_go() {
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("", ""),
            ("{{ 1 }}", "1"),
            ("{{ 1.5 }} {{ 1e3 }} {{ 0x10 }} {{ 'a' }} {{ -2 }}", "1.5 1000 16 97 -2"),
            ("{{ \"a\\tb\" }}|{{ `raw\\n` }}", "a\tb|raw\\n"),
            ("{{ true }} {{ false }}", "true false"),
            ("{{ .Labels.instance }}", "host:9100"),
            ("{{ .Labels.nosuch }}|", "|"),
            ("{{ .Nosuch }}|", "<no value>|"),
            ("{{ .Nested.Inner.k }}", "v"),
            ("{{ .Value }}", "0.1234"),
            ("{{ . .Nested.Inner.k}}", "ERR: template: t:1:3: executing \"t\" at <.>: can't give argument to non-function ."),
            // Trim markers.
            ("a  {{- 1 -}}  b", "a1b"),
            ("a \n {{- 1 }} \n b", "a1 \n b"),
            ("{{ 1 -}}\n\n  x", "1x"),
            ("a {{- /* comment */ -}} b", "ab"),
            ("a{{/* c */}}b", "ab"),
            ("{{- 3 }}", "3"),
            ("{{ -3 }}", "-3"),
            // Variables.
            ("{{ $x := 1 }}{{ $x }}", "1"),
            ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
            ("{{ $.Int }}", "7"),
            ("{{ $x := .Labels }}{{ $x.job }}", "node"),
            ("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}", "21"),
            ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
            ("{{ if $v := .Int }}{{ $v }}{{ else }}{{ $v }}{{ end }}", "7"),
            ("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}", "ERR: template: t:1: undefined variable \"$y\""),
            ("{{ range $i, $v := .List }}{{ $i }}={{ $v }} {{ end }}", "0=a 1=b 2=c "),
            ("{{ range $v := .List }}{{ $v }}{{ end }}", "abc"),
            ("{{ $v := 0 }}{{ range .List }}{{ $v = . }}{{ end }}{{ $v }}", "c"),
            ("{{ range .List }}{{ $.Int }}{{ . }}{{ end }}", "7a7b7c"),
            // Conditionals.
            ("{{ if .Int }}yes{{ else }}no{{ end }}", "yes"),
            ("{{ if .Empty }}yes{{ else }}no{{ end }}", "no"),
            ("{{ if eq .Int 1 }}one{{ else if eq .Int 7 }}seven{{ else }}other{{ end }}", "seven"),
            ("{{ if eq .Int 1 }}one{{ else if eq .Int 2 }}two{{ else }}other{{ end }}", "other"),
            ("{{ if not .Nosuch }}missing{{ end }}", "missing"),
            ("{{ with .Labels }}{{ .job }}{{ end }}", "node"),
            ("{{ with .Empty }}x{{ else }}empty{{ end }}", "empty"),
            ("{{ with .Empty }}x{{ else with .Int }}{{ . }}{{ end }}", "7"),
            ("{{ with $x := .Int }}{{ $x }}{{ . }}{{ end }}", "77"),
            // Range.
            ("{{ range .Ints }}{{ . }}{{ end }}", "123"),
            ("{{ range $k, $v := .Ints }}{{ $k }}{{ $v }},{{ end }}", "a1,b2,c3,"),
            ("{{ range .Nosuch }}x{{ else }}none{{ end }}", "none"),
            ("{{ range .Nums }}{{ . }}{{ else }}none{{ end }}", "31"),
            ("{{ range 3 }}{{ . }}{{ end }}", "012"),
            ("{{ range .List }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}", "a"),
            ("{{ range .List }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}", "ac"),
            ("{{ break }}", "ERR: template: t:1: {{break}} outside {{range}}"),
            ("{{ range .Int }}{{ end }}x", "x"),
            // Templates.
            ("{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .Int }}", "[7]"),
            ("{{ define \"a\" }}a{{ template \"b\" . }}{{ end }}{{ define \"b\" }}b{{ .Int }}{{ end }}{{ template \"a\" . }}", "ab7"),
            ("{{ template \"x\" }}{{ define \"x\" }}{{ . }}{{ end }}", "<no value>"),
            ("{{ block \"blk\" .Int }}<{{ . }}>{{ end }}", "<7>"),
            ("{{ $x := 1 }}{{ define \"x\" }}{{ $x }}{{ end }}", "ERR: template: t:1: undefined variable \"$x\""),
            ("{{ template \"nope\" }}", "ERR: template: t:1:3: executing \"t\" at <{{template \"nope\"}}>: template \"nope\" not defined"),
            ("{{ define \"x\" }}a{{ end }}{{ define \"x\" }}b{{ end }}", "ERR: template: t:1: template: multiple definition of template \"x\""),
            // Pipelines and functions.
            ("{{ \"a\" | upper }}", "A"),
            ("{{ \"a\" | pair \"b\" }}", "b-a"),
            ("{{ .Labels.job | printf \"%s!\" | upper }}", "NODE!"),
            ("{{ upper (printf \"%d-%s\" 1 \"x\") }}", "1-X"),
            ("{{ (pair 1 2) }}", "1-2"),
            ("{{ (.Labels).job }}", "node"),
            ("{{ nope 1 }}", "ERR: template: t:1: function \"nope\" not defined"),
            ("{{ fail 1 }}", "ERR: template: t:1:3: executing \"t\" at <fail 1>: error calling fail: boom"),
            ("{{ 1 | 2 }}", "ERR: template: t:1: non executable command in pipeline stage 2"),
            ("{{ }}", "ERR: template: t:1: missing value for command"),
            ("{{ nil }}", "ERR: template: t:1:3: executing \"t\" at <nil>: nil is not a command"),
            ("{{", "ERR: template: t:1: unexpected unclosed action in command"),
            ("{{ if true }}x", "ERR: template: t:1: unexpected EOF"),
            ("{{ end }}", "ERR: template: t:1: unexpected {{end}}"),
            ("line1\n{{ .Labels.job.x }}", "ERR: template: t:2:3: executing \"t\" at <.Labels.job.x>: can't evaluate field x in type string"),
            ("{{ .Labels.job 1 }}", "ERR: template: t:1:3: executing \"t\" at <.Labels.job>: job is not a method but has arguments"),
            ("{{ upper 1 }}", "ERR: template: t:1:3: executing \"t\" at <upper 1>: wrong type for value; expected string; got int"),
            // Builtins.
            ("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 3 4 }}", "0 2  3"),
            ("{{ and false (fail) }} {{ or true (fail) }}", "false true"),
            ("{{ 0 | and 1 }}", "0"),
            ("{{ not 0 }} {{ not .List }}", "true false"),
            ("{{ len .List }} {{ len \"héllo\" }} {{ len .Ints }}", "3 6 3"),
            ("{{ index .List 1 }} {{ index .Labels \"job\" }}|{{ index .Labels \"x\" }}|", "b node||"),
            ("{{ index .Nested \"Inner\" \"k\" }}", "v"),
            ("{{ index .List 5 }}", "ERR: template: t:1:3: executing \"t\" at <index .List 5>: error calling index: index out of range: 5"),
            ("{{ slice .List 1 }} {{ slice .List 1 2 }} {{ slice \"hello\" 1 3 }}", "[b c] [b] el"),
            ("{{ print 1 2 \"a\" 3 }}|{{ println 1 \"a\" }}|", "1 2a3|1 a\n|"),
            ("{{ printf \"%5.2f|%-4d|%q\" .Value 3 \"x\" }}", " 0.12|3   |\"x\""),
            ("{{ printf \"%d\" .Value }}", "%!d(float64=0.1234)"),
            ("{{ html \"<a&b>\" }} {{ js \"it's\" }} {{ urlquery \"a b&c\" }}", "&lt;a&amp;b&gt; it\\'s a+b%26c"),
            ("{{ eq 1 1 }} {{ eq 1 2 3 1 }} {{ ne \"a\" \"b\" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt 1.5 2.5 }} {{ ge \"b\" \"a\" }}", "true true true true true false true"),
            ("{{ eq .Value 0 }}", "ERR: template: t:1:3: executing \"t\" at <eq .Value 0>: error calling eq: incompatible types for comparison"),
            ("{{ gt .Value 0.1 }}", "true"),
            ("{{ eq .Nosuch \"x\" }}", "false"),
            ("{{ .List }} {{ .Ints }} {{ .Nums }}", "[a b c] map[a:1 b:2 c:3] [3 1]"),
            // Combinations rule files use.
            ("{{ range $i, $e := .List }}{{ if $i }}, {{ end }}{{ $e }}{{ end }}", "a, b, c"),
            ("{{- range .List }}\n  - {{ . }}\n{{- end }}", "\n  - a\n  - b\n  - c"),
            ("{{ with .Labels }}{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}{{ end }}", "instance=host:9100;job=node;"),
            ("{{ \"x\" | printf \"%s-%s\" \"y\" }}", "y-x"),
            ("a{{/*\nmulti\n*/}}b", "ab"),
            ("{{ if and .Int (eq .Labels.job \"node\") }}ok{{ end }}", "ok"),
            ("{{ $x := \"a\" }}{{ range .List }}{{ $x }}{{ end }}", "aaa"),
            ("{{ .Int\n}}", "7"),
            ("{{ print (len .List) }}", "3"),
            ("{{ printf \"%v|%v|\" .Nosuch .Labels.nosuch }}", "<nil>||"),
            ("{{ range $k, $v := .Nested }}{{ $k }}:{{ $v.k }}{{ end }}", "Inner:v"),
        ];
        for (text, want) in cases {
            assert_eq!(&render(text), want, "template {text:?}");
        }
    }

    #[test]
    fn missing_key_modes() {
        assert_eq!(
            render_with("{{ .Labels.x }}", MissingKey::Default).unwrap(),
            "<no value>"
        );
        assert_eq!(
            render_with("{{ .Labels.x }}", MissingKey::Zero).unwrap(),
            ""
        );
        let e = render_with("{{ .Labels.x }}", MissingKey::Error).unwrap_err();
        assert!(
            e.to_string().ends_with("map has no entry for key \"x\""),
            "{e}"
        );
    }

    #[test]
    fn errors_name_template_line_and_column() {
        let f = funcs();
        let t = Template::parse("__alert_X", "a\nbb {{ fail }}", &f).unwrap();
        let e = t.execute(&Value::Nil, &f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: __alert_X:2:6: executing \"__alert_X\" at <fail>: error calling fail: boom"
        );
        let e = Template::parse("n", "x\n\n{{ nope }}", &f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: n:3: function \"nope\" not defined"
        );
        // An error inside a defined template names it, with the location in the source text.
        let t = Template::parse(
            "m",
            "{{define \"d\"}}\n{{ fail }}{{end}}{{template \"d\"}}",
            &f,
        )
        .unwrap();
        let e = t.execute(&Value::Nil, &f).unwrap_err().to_string();
        assert!(
            e.starts_with("template: m:2:3: executing \"d\" at <fail>"),
            "{e}"
        );
    }

    #[test]
    fn recursion_is_bounded() {
        let f = funcs();
        let t = Template::parse(
            "r",
            "{{define \"x\"}}{{template \"x\"}}{{end}}{{template \"x\"}}",
            &f,
        )
        .unwrap();
        let e = t.execute(&Value::Nil, &f).unwrap_err().to_string();
        assert!(e.contains("exceeded maximum template depth"), "{e}");
    }

    #[test]
    fn functions_capture_context_and_objects_have_methods() {
        #[derive(Debug)]
        struct Point(i64, i64);
        impl Object for Point {
            fn type_name(&self) -> String {
                "*main.Point".into()
            }
            fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
                match name {
                    "X" => Some(Ok(Value::Int(self.0))),
                    "Add" => Some(match args {
                        [Value::Int(d)] => Ok(Value::Int(self.0 + self.1 + d)),
                        _ => Err(FuncError::ArgCount {
                            want: 1,
                            got: args.len(),
                            at_least: false,
                        }),
                    }),
                    _ => None,
                }
            }
            fn display(&self) -> String {
                format!("({}, {})", self.0, self.1)
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
        let base = String::from("ctx");
        let mut f = Funcs::new();
        f.add("ctx", |_| Ok(Value::str(base.as_str())));
        f.add("pt", |_| Ok(Value::object(Point(1, 2))));
        let t = Template::parse(
            "o",
            "{{ ctx }} {{ pt }} {{ (pt).X }} {{ (pt).Add 10 }} {{ 5 | (pt).Add }} {{ $p := pt }}{{ $p.X }}",
            &f,
        )
        .unwrap();
        assert_eq!(t.execute(&Value::Nil, &f).unwrap(), "ctx (1, 2) 1 13 8 1");
        let t = Template::parse("o", "{{ (pt).Y }}", &f).unwrap();
        let e = t.execute(&Value::Nil, &f).unwrap_err().to_string();
        assert!(
            e.ends_with("can't evaluate field Y in type *main.Point"),
            "{e}"
        );
    }

    #[test]
    fn objects_with_an_underlying_list_or_map_range_index_and_look_up_keys() {
        #[derive(Debug)]
        struct Kv;
        impl Object for Kv {
            fn type_name(&self) -> String {
                "template.KV".into()
            }
            fn field(&self, name: &str, _: &[Value]) -> Option<Result<Value, FuncError>> {
                (name == "Names").then(|| Ok(Value::list(vec![Value::str("a"), Value::str("b")])))
            }
            fn display(&self) -> String {
                "kv".into()
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn underlying(&self) -> Option<Value> {
                Some(Value::str_map([("a", "1"), ("b", "2")]))
            }
        }
        let f = Funcs::new();
        let mut m = Map::new(Elem::Any);
        m.insert("KV", Value::object(Kv));
        let dot = Value::map(m);
        let t = Template::parse(
            "u",
            "{{ range $k, $v := .KV }}{{ $k }}={{ $v }} {{ end }}{{ len .KV }} {{ index .KV \"b\" }} {{ .KV.a }} {{ .KV.Names }} {{ .KV.zz }}|",
            &f,
        )
        .unwrap()
        .with_missing_key(MissingKey::Zero);
        assert_eq!(t.execute(&dot, &f).unwrap(), "a=1 b=2 2 2 1 [a b] |");
    }

    #[test]
    fn parse_more_adds_definitions() {
        let f = funcs();
        let mut t = Template::parse("main", "{{ template \"lib\" . }}", &f).unwrap();
        t.parse_more("lib.tmpl", "{{ define \"lib\" }}L{{ .Int }}{{ end }}", &f)
            .unwrap();
        assert_eq!(t.execute(&data(), &f).unwrap(), "L7");
        assert_eq!(t.templates(), vec!["lib", "lib.tmpl", "main"]);
    }
}
