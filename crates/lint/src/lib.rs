//! `tocsin lint`: a diagnostics linter for the configuration, the rule files and (next) the live
//! estate, built like gcpdiag. Each lint rule is one small module under `rules/<product>/`
//! declaring its id, class, title and description ([`rule::RuleMeta`]) and checking one thing
//! against a [`context::Context`]; rules never read files or a server themselves. The shared
//! query modules in `queries/` do, caching for the run, and [`context::Context::prefetch`] runs
//! them in parallel before the rules run in registry order ([`run`]). Results go to a
//! [`report::Report`] of ok / failed / skipped per resource, rendered by `output/`.
//!
//! The crate takes already-loaded configuration pieces (the binary loads `tocsin.yml` with the
//! server's own parser, as `tocsin check config` does) so what lint sees is what the server runs.

pub mod context;
pub mod live;
pub mod matcher_logic;
pub mod output;
pub mod promql_labels;
pub mod promql_selectors;
pub mod queries;
pub mod registry;
pub mod report;
pub mod rule;
pub mod rules;
pub mod select;
pub mod settings;

pub use context::{Context, Inputs};
pub use report::{Entry, Outcome, Report, Resource, RuleResult};
pub use rule::{Class, LintRule, Product, RuleMeta};

/// Runs `rules` (already selected) in order after prefetching every query module.
pub fn run(ctx: &Context, rules: &[&'static dyn LintRule]) -> Vec<RuleResult> {
    ctx.prefetch();
    let today = queries::suppress::today_utc();
    rules
        .iter()
        .map(|r| {
            let mut rep = Report::default();
            if let (true, queries::config_load::ConfigLoad::Refused { file, .. }) =
                (r.needs_loaded_config(), ctx.config_load())
            {
                rep.skipped(
                    Resource::new(file.as_str()).with_file(file),
                    "the server refuses the configuration (config/ERR/002); this rule needs it loaded",
                );
            } else {
                r.run(ctx, &mut rep);
            }
            let mut entries = rep.into_entries();
            // A finding located by line only gets the column its line's content starts at.
            for e in entries.iter_mut().filter(|e| e.resource.col.is_none()) {
                if let (Some(f), Some(l)) = (&e.resource.file, e.resource.line) {
                    e.resource.col = ctx.source_texts().column(f, l);
                }
            }
            for e in entries.iter_mut().filter(|e| e.outcome == Outcome::Failed) {
                let (Some(file), Some(line)) = (&e.resource.file, e.resource.line) else {
                    continue;
                };
                match ctx.suppressions().verdict(r.meta().id, file, line, today) {
                    queries::suppress::Verdict::Suppressed(why) => {
                        e.outcome = Outcome::Skipped;
                        e.reason = format!("{} ({why})", e.reason);
                    }
                    // A comment that does not parse suppresses nothing, and says so.
                    queries::suppress::Verdict::Malformed(why) => {
                        e.reason = format!("{} (comment not applied: {why})", e.reason);
                    }
                    queries::suppress::Verdict::None => {}
                }
            }
            RuleResult {
                meta: r.meta(),
                entries,
            }
        })
        .collect()
}

/// The process exit code for a finished run: 1 when an `ERR` or `SEC` rule failed, else 0.
pub fn exit_code(results: &[RuleResult]) -> u8 {
    let bad = results.iter().any(|r| {
        matches!(r.meta.class, Class::Err | Class::Sec)
            && r.entries.iter().any(|e| e.outcome == Outcome::Failed)
    });
    u8::from(bad)
}
