//! config/ERR/002: the configuration loads as the server loads it.

use crate::queries::config_load::ConfigLoad;
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "config/ERR/002",
    product: Product::Config,
    class: Class::Err,
    title: "The configuration loads as the server loads it",
    description: "The server's own loader refuses this configuration: `tocsin serve` will not \
        start with it, and a reload keeps the previous configuration. Each problem is reported \
        at its file:line:col (the same messages as `tocsin check config`). Lint still runs every \
        rule that can work on what parsed (rule files, settings read from the file as written); \
        rules that need the loaded configuration (the routing tree, action policies) are \
        skipped until it loads.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        match ctx.config_load() {
            ConfigLoad::NotChecked => report.skipped(
                "configuration",
                "lint was handed configuration pieces without the server's loader's verdict",
            ),
            ConfigLoad::Loaded { file } => report.ok(Resource::new(file.as_str()).with_file(file)),
            ConfigLoad::Refused { file, problems } => {
                // Rule files' own problems are config/ERR/001's, each at its place; here each
                // such file counts once, as a reason the server refuses the whole.
                let rule_files = &ctx.rule_files().files;
                let mut in_rule_files: std::collections::BTreeMap<&str, usize> = Default::default();
                for p in problems.iter().filter(|p| rule_files.contains(&p.file)) {
                    *in_rule_files.entry(p.file.as_str()).or_default() += 1;
                }
                for (f, n) in in_rule_files {
                    report.failed(
                        Resource::new(f).with_file(f),
                        format!("refused by the server: the rule file does not load ({n} problem(s), see config/ERR/001)"),
                    );
                }
                for p in problems.iter().filter(|p| !rule_files.contains(&p.file)) {
                    // Messages read back from another checker's lines carry their path in front.
                    let (name, message) = match p.message.split_once(": ") {
                        Some((path, rest)) if p.path.is_empty() && is_path(path) => (path, rest),
                        _ if p.path.is_empty() => (p.file.as_str(), p.message.as_str()),
                        _ => (p.path.as_str(), p.message.as_str()),
                    };
                    let mut res = Resource::new(name).with_file(if p.file.is_empty() {
                        file
                    } else {
                        &p.file
                    });
                    if let Some(pos) = p.pos {
                        res.line = (pos.line > 0).then_some(pos.line);
                        res.col = (pos.col > 0).then_some(pos.col);
                    }
                    report.failed(res, format!("refused by the server: {message}"));
                }
            }
        }
    }
}

/// Whether `s` reads as a setting's path (`alertmanager.route.routes[0]`), not prose.
fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
}
