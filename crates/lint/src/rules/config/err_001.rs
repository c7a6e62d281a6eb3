//! config/ERR/001: every rule file loads and every expression parses.

use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "config/ERR/001",
    product: Product::Config,
    class: Class::Err,
    title: "Every rule file loads and every rule's expression parses",
    description: "A rule file that does not load is refused by the server at start or reload, and \
        none of its rules are evaluated. Fix the file at the line named (`tocsin check rules FILE` \
        prints the same messages).",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let rf = ctx.rule_files();
        for f in &rf.files {
            match rf.errors.iter().find(|e| &e.file == f) {
                // One failure per message, at the line and column it names, so each is annotated
                // where it is.
                Some(e) => {
                    for m in &e.messages {
                        let d = tocsin_confdiag::Diagnostic::from_line(m);
                        let mut res = Resource::new(f.as_str()).with_file(f);
                        let mut reason = m.clone();
                        if let Some(pos) = d.pos.filter(|_| d.file == *f) {
                            res.line = (pos.line > 0).then_some(pos.line);
                            res.col = (pos.col > 0).then_some(pos.col);
                            // The place is the resource's now; the text need not repeat it.
                            reason = d.message;
                        }
                        report.failed(res, reason);
                    }
                }
                None => report.ok(Resource::new(f.as_str()).with_file(f)),
            }
        }
        // The loader parses expressions too; this catches any the lint parser refuses (depth).
        for r in &rf.rules {
            if let Err(e) = &r.expr {
                report.failed(Resource::at(r.describe(), &r.file, r.line()), e.clone());
            }
        }
    }
}
