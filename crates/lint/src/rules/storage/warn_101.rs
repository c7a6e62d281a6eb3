//! storage/WARN/101: the data directory's file system is not about to fill (live).

use crate::rules::{answer, dur, need_self_monitoring};
use crate::{Class, Context, LintRule, Product, Report, Resource, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "storage/WARN/101",
    product: Product::Storage,
    class: Class::Warn,
    title: "The data directory's file system is not predicted to fill within 72 hours",
    description: "Tocsin holds acknowledged samples in the head and WAL when blocks cannot be \
        written, but a full disk still stops ingestion. This extrapolates the free space of the \
        data directory's file system over the last 6 hours (`predict_linear` on the \
        self-monitoring series `tocsin_storage_filesystem_avail_bytes`). Shorten retention \
        (`storage.retention_time` / `retention_size`), drop unneeded series with relabelling, or \
        grow the disk. The horizon is `lint.disk_fill_within` (72h by default).",
};

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(server) = need_self_monitoring(ctx, report) else {
            return;
        };
        let Some(fill) = answer(&server.disk_fill, "disk", report) else {
            return;
        };
        let within = dur(ctx.inputs.settings.disk_fill_within.0);
        for s in fill {
            let path = s.labels.get("path").cloned().unwrap_or_default();
            report.failed(
                Resource::new(format!("file system of {path}")),
                format!("at the rate of the last 6h it fills within {within}"),
            );
        }
        if fill.is_empty() {
            report.ok(Resource::new("data directory"));
        }
    }
}
