//! What a lint rule is: its metadata (id, product, class, title, description, README anchor)
//! and the trait every rule module implements.

use crate::context::Context;
use crate::report::Report;

/// The part of the estate a rule looks at; the first segment of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Product {
    Config,
    Scrape,
    Rules,
    Alerting,
    Actions,
    Storage,
    Estate,
}

impl Product {
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Config => "config",
            Product::Scrape => "scrape",
            Product::Rules => "rules",
            Product::Alerting => "alerting",
            Product::Actions => "actions",
            Product::Storage => "storage",
            Product::Estate => "estate",
        }
    }
}

/// How bad a failure is. `Err` and `Sec` failures make `tocsin lint` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Certain breakage.
    Err,
    /// A likely mistake.
    Warn,
    /// Best practice.
    Bp,
    /// Security.
    Sec,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Err => "ERR",
            Class::Warn => "WARN",
            Class::Bp => "BP",
            Class::Sec => "SEC",
        }
    }
}

/// A rule's fixed description.
#[derive(Debug)]
pub struct RuleMeta {
    /// `<product>/<CLASS>/<nnn>`, e.g. `rules/ERR/001`.
    pub id: &'static str,
    pub product: Product,
    pub class: Class,
    /// One line stating the desired state ("every alert reaches a receiver that sends somewhere").
    pub title: &'static str,
    /// Why it matters and how to fix it; printed when the rule fails.
    pub description: &'static str,
}

impl RuleMeta {
    /// The README anchor of the rule's entry: the id with slashes as dashes, lower case
    /// (GitHub's heading anchors, for a heading that is exactly the id).
    pub fn anchor(&self) -> String {
        self.id.replace('/', "").to_lowercase()
    }
}

/// One lint rule: one module under `rules/<product>/`.
pub trait LintRule: Sync {
    fn meta(&self) -> &'static RuleMeta;
    /// Records ok / failed / skipped for each resource it looks at. It reads only the context's
    /// query modules (cached, prefetched), never files or a server.
    fn run(&self, ctx: &Context, report: &mut Report);
    /// Whether the rule needs the configuration as the server loads it (the routing tree, action
    /// policies). When the server refuses the configuration (config/ERR/002) such a rule is
    /// skipped with that reason instead of run on partial pieces.
    fn needs_loaded_config(&self) -> bool {
        false
    }
}
