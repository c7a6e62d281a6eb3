//! Alertmanager's notification templates: the template set (our default definitions plus the
//! files of the config's `templates:` globs), the data templates see ([`TmplData`]) and the
//! functions they call. Receivers render their templated fields with [`NotifyTemplates::render`].
//!
//! As Alertmanager: template files are parsed at load (a parse error is a config error naming
//! the file and line), a missing map key renders as the zero value, and a field's text is parsed
//! into a copy of the set at each rendering so it can call every defined template.

mod data;
mod defaults;
mod funcs;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tocsin_template::{Funcs, MissingKey, Template};

pub use data::{quote_meta, Alerts, Kv, TmplAlert, TmplData};
pub use funcs::{funcs, humanize_duration, title};

/// The template name a field's text is parsed under.
const FIELD_TEMPLATE: &str = "__tocsin_field";

/// A render failure, for the notification error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// The parsed template set of one configuration.
#[derive(Debug, Clone)]
pub struct NotifyTemplates {
    set: Template,
    /// The files the set was read from, for status and tests.
    pub files: Vec<PathBuf>,
}

fn parse_funcs() -> &'static Funcs<'static> {
    static F: OnceLock<Funcs<'static>> = OnceLock::new();
    F.get_or_init(|| funcs(0))
}

fn defaults_set() -> Result<Template, String> {
    Template::parse("default.tmpl", defaults::DEFAULTS, parse_funcs())
        .map(|t| t.with_missing_key(MissingKey::Zero))
        .map_err(|e| format!("built-in default templates: {e}"))
}

impl NotifyTemplates {
    /// Only the default templates (parsed once).
    pub fn defaults() -> Result<Arc<NotifyTemplates>, String> {
        static D: OnceLock<Result<Arc<NotifyTemplates>, String>> = OnceLock::new();
        D.get_or_init(|| {
            defaults_set().map(|set| {
                Arc::new(NotifyTemplates {
                    set,
                    files: Vec::new(),
                })
            })
        })
        .clone()
    }

    /// The defaults plus the files matched by `globs` (relative ones against `base_dir`), in
    /// glob order then name order. Each error is `file:line: message`.
    pub fn load(globs: &[String], base_dir: &Path) -> Result<NotifyTemplates, Vec<String>> {
        let mut set = defaults_set().map_err(|e| vec![e])?;
        let mut errs = Vec::new();
        let mut files = Vec::new();
        for g in globs {
            let pattern = base_dir.join(g);
            match glob_files(&pattern) {
                Ok(found) => files.extend(found),
                Err(e) => errs.push(format!("templates: {g:?}: {e}")),
            }
        }
        for f in &files {
            let text = match std::fs::read_to_string(f) {
                Ok(t) => t,
                Err(e) => {
                    errs.push(format!("{}: reading template file: {e}", f.display()));
                    continue;
                }
            };
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Err(e) = set.parse_more(&name, &text, parse_funcs()) {
                match e {
                    tocsin_template::Error::Parse { line, .. } => {
                        errs.push(format!("{}:{line}: {e}", f.display()))
                    }
                    e => errs.push(format!("{}: {e}", f.display())),
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(NotifyTemplates { set, files })
    }

    /// Checks that a field's text parses, for config validation.
    pub fn check(&self, text: &str) -> Result<(), String> {
        if !text.contains("{{") {
            return Ok(());
        }
        let mut t = self.set.clone();
        t.parse_more(FIELD_TEMPLATE, text, parse_funcs())
            .map_err(|e| e.to_string())
    }

    /// Renders a field's text with `data`; text without an action is returned as is.
    pub fn render(&self, text: &str, data: &TmplData, now_ms: i64) -> Result<String, RenderError> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        let mut t = self.set.clone();
        let f = funcs(now_ms);
        t.parse_more(FIELD_TEMPLATE, text, &f)
            .map_err(|e| RenderError(e.to_string()))?;
        t.execute_template(FIELD_TEMPLATE, &data.value(), &f)
            .map_err(|e| RenderError(e.to_string()))
    }

    /// Names of the templates defined (defaults and files).
    pub fn names(&self) -> Vec<&str> {
        self.set.templates()
    }
}

/// Whether `name` matches a glob pattern of one path component (`*`, `?`, `[...]` as in Go's
/// `filepath.Match`, without escapes).
fn component_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|c| *c == ']') else {
                    return !n.is_empty() && n[0] == '[' && go(&p[1..], &n[1..]);
                };
                let Some(c) = n.first() else { return false };
                let mut class = &p[1..end];
                let negate = class.first() == Some(&'^');
                if negate {
                    class = &class[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[end + 1..], &n[1..])
            }
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Files matching a glob whose wildcards may be in any component, sorted within each directory
/// as Go's `filepath.Glob`. No match is not an error.
fn glob_files(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let comps: Vec<_> = pattern.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for base in &current {
            if !has_magic(&s) {
                let p = base.join(c.as_os_str());
                if last {
                    if p.is_file() {
                        next.push(p);
                    }
                } else {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                base.clone()
            };
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| component_match(&s, n))
                .collect();
            names.sort();
            for n in names {
                let p = base.join(&n);
                if !last || p.is_file() {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    Ok(current)
}
