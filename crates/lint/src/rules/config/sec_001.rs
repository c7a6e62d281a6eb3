//! config/SEC/001: secrets are read from files (`*_file`), not written in the configuration.

use serde_norway::Value;

use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "config/SEC/001",
    product: Product::Config,
    class: Class::Sec,
    title: "Secrets are read from `*_file` settings, not written inline",
    description: "A password, token or key written in the configuration ends up wherever the \
        file goes: version control, backups, `/api/v1/status/config`, support bundles. Every \
        setting named here has a `*_file` twin (`password_file`, `bearer_token_file`, \
        `credentials_file`, `routing_key_file`...) that reads the secret from a file readable \
        only by the server; use it.",
};

/// Settings holding a secret, each of which has a `<name>_file` twin.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "bearer_token",
    "credentials",
    "client_secret",
    "api_key",
    "routing_key",
    "service_key",
    "bot_token",
    "auth_password",
    "auth_secret",
];

/// (path, key) of every non-empty inline secret in `v`, in document order.
pub fn inline_secrets(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                let Some(k) = k.as_str() else { continue };
                let p = if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                };
                if SECRET_KEYS.contains(&k) && val.as_str().is_some_and(|s| !s.is_empty()) {
                    out.push((p, k.to_string()));
                } else {
                    inline_secrets(val, &p, out);
                }
            }
        }
        Value::Sequence(s) => {
            for (i, val) in s.iter().enumerate() {
                inline_secrets(val, &format!("{path}[{i}]"), out);
            }
        }
        Value::Tagged(t) => inline_secrets(&t.value, path, out),
        _ => {}
    }
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        for f in ctx.config_files() {
            let tree = match &f.tree {
                Ok(t) => t,
                Err(e) => {
                    report.skipped(Resource::new(f.file.as_str()).with_file(&f.file), e.clone());
                    continue;
                }
            };
            let mut found = Vec::new();
            inline_secrets(tree, "", &mut found);
            if found.is_empty() {
                report.ok(Resource::new(f.file.as_str()).with_file(&f.file));
            }
            let mut seen: std::collections::BTreeMap<&str, usize> = Default::default();
            for (path, key) in &found {
                let n = seen.entry(key.as_str()).or_default();
                let line = f.line_of_key(key, *n);
                *n += 1;
                report.failed(
                    Resource::at(path.as_str(), &f.file, line),
                    format!("{key} written inline; use {key}_file"),
                );
            }
        }
    }
}
