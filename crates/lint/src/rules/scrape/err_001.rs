//! scrape/ERR/001: no scrape job's timeout exceeds its interval.

use serde_norway::Value;
use tocsin_model::duration::parse_duration_ms;

use crate::queries::positions::{resource, Positions};
use crate::rules::rules::warn_001::ms;
use crate::{Class, Context, LintRule, Product, Report, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "scrape/ERR/001",
    product: Product::Scrape,
    class: Class::Err,
    title: "No scrape job's `scrape_timeout` exceeds its `scrape_interval`",
    description: "A scrape must finish before the next one starts, so its timeout may not exceed \
        its interval (the job's own, else `global.scrape_interval`). The server refuses a job \
        whose `scrape_timeout` is longer (config/ERR/002), as Prometheus does. A \
        `global.scrape_timeout` above `global.scrape_interval` is accepted but never applies as \
        written: each job inheriting it is cut to its interval (Prometheus refuses it). Lower \
        the timeout or lengthen the interval. Read from the file as written, so the job is \
        named even when the server refuses the configuration.",
};

/// A duration setting of `v`, or the default; Err with the text when it does not parse.
fn duration(v: Option<&Value>, default: i64) -> Result<i64, String> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => parse_duration_ms(s).map_err(|e| format!("{s:?}: {e}")),
        Some(other) => Err(format!("{other:?} is not a duration")),
    }
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let Some(f) = ctx.config_files().first() else {
            report.skipped("scrape_configs", "no configuration file given");
            return;
        };
        let tree = match &f.tree {
            Ok(t) => t,
            Err(e) => {
                report.skipped("scrape_configs", format!("{}: not YAML: {e}", f.file));
                return;
            }
        };
        let pos = Positions::new(ctx.config_files());
        let global = tree.get("global");
        let gi = duration(global.and_then(|g| g.get("scrape_interval")), 60_000);
        let gt = duration(global.and_then(|g| g.get("scrape_timeout")), 10_000);
        let (Ok(gi), Ok(gt)) = (gi, gt) else {
            report.skipped(
                resource("global", pos.config("global")),
                "a global scrape duration does not parse (config/ERR/002)",
            );
            return;
        };
        if global.and_then(|g| g.get("scrape_timeout")).is_some() {
            let res = resource("global", pos.config("global.scrape_timeout"));
            if gt > gi {
                report.failed(
                    res,
                    format!(
                        "global scrape_timeout {} exceeds global scrape_interval {}: never applies as written",
                        ms(gt),
                        ms(gi)
                    ),
                );
            } else {
                report.ok(res);
            }
        }
        let Some(Value::Sequence(jobs)) = tree.get("scrape_configs") else {
            return;
        };
        for (i, job) in jobs.iter().enumerate() {
            let name = job
                .get("job_name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("scrape_configs[{i}]"), |n| format!("job {n}"));
            let path = format!("scrape_configs[{i}]");
            let interval = duration(job.get("scrape_interval"), gi);
            let timeout = job.get("scrape_timeout");
            let at = if timeout.is_some() {
                format!("{path}.scrape_timeout")
            } else {
                path.clone()
            };
            let res = resource(name, pos.config(&at));
            let (interval, own) = match (interval, duration(timeout, 0)) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => {
                    report.skipped(
                        res,
                        format!("a duration does not parse: {e} (config/ERR/002)"),
                    );
                    continue;
                }
            };
            let from = if job.get("scrape_interval").is_some() {
                "its scrape_interval"
            } else {
                "global.scrape_interval"
            };
            if timeout.is_some() && own > interval {
                report.failed(
                    res,
                    format!("scrape_timeout {} exceeds {from} {}", ms(own), ms(interval)),
                );
            } else {
                report.ok(res);
            }
        }
    }
}
