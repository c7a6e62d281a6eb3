//! scrape/ERR/101: every file `file_sd_configs` reads lists targets (live).

use crate::rules::{answer, need_self_monitoring};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "scrape/ERR/101",
    product: Product::Scrape,
    class: Class::Err,
    title: "Every file read by `file_sd_configs` lists at least one target",
    description: "A target file that lists no targets is how a broken generator shows (an \
        inventory script that failed half-way, a template that rendered nothing): every target \
        it used to list silently stops being scraped and their alerts resolve. The counts come \
        from the server's `tocsin_sd_file_targets` as of each file's last good read. Fix the \
        generator, or remove the file from the glob if it is meant to be empty.",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_self_monitoring(ctx, report) else {
            return;
        };
        let Some(files) = answer(&server.file_sd, "file_sd", report) else {
            return;
        };
        for s in files {
            let file = s.labels.get("file").cloned().unwrap_or_default();
            let res = Resource::new(format!("file_sd {file}")).with_file(&file);
            if s.value == 0.0 {
                report.failed(res, "the file lists no targets");
            } else {
                report.ok(res);
            }
        }
    }
}
