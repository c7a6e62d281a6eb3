//! The lint rules, one module per rule under its product. Adding a rule: write
//! `rules/<product>/<class>_<nnn>.rs`, list it in its product's `mod.rs` and in
//! [`crate::registry::ALL`], add `testdata/<id with dashes>/{ok,fail}/` and a README entry.

pub mod actions;
pub mod alerting;
pub mod config;
pub mod estate;
// The product is called `rules` (ids `rules/...`), like its directory.
#[allow(clippy::module_inception)]
pub mod rules;
pub mod scrape;
pub mod storage;

use crate::live::LiveError;
use crate::queries::{live_rules::LiveRules, live_server::LiveServer};
use crate::{Context, Report, Resource};

/// Why a live rule did not look at anything: there is no live source.
pub const NO_LIVE: &str = "live rule: give --server URL or --data-dir DIR";

/// The live data about rule selectors, or a skip saying it needs a live source.
pub(crate) fn need_live_rules<'a>(ctx: &'a Context, report: &mut Report) -> Option<&'a LiveRules> {
    let r = ctx.live_rules();
    if r.is_none() {
        report.skipped(Resource::new("live data"), NO_LIVE);
    }
    r
}

/// The server's own answers, or a skip saying it needs a live source.
pub(crate) fn need_live_server<'a>(
    ctx: &'a Context,
    report: &mut Report,
) -> Option<&'a LiveServer> {
    let r = ctx.live_server();
    if r.is_none() {
        report.skipped(Resource::new("live data"), NO_LIVE);
    }
    r
}

/// One of the server's answers; on an error (e.g. a Prometheus without the endpoint) the rule
/// is skipped naming what could not be asked.
pub(crate) fn answer<'a, T>(
    a: &'a Option<Result<T, LiveError>>,
    what: &str,
    report: &mut Report,
) -> Option<&'a T> {
    match a {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            report.skipped(
                Resource::new(what),
                format!("the server could not say: {e}"),
            );
            None
        }
        None => {
            report.skipped(Resource::new(what), NO_LIVE);
            None
        }
    }
}

/// The server's answers when it writes self-monitoring series; else a skip saying so, since
/// "no failures" would only mean "no data".
pub(crate) fn need_self_monitoring<'a>(
    ctx: &'a Context,
    report: &mut Report,
) -> Option<&'a LiveServer> {
    let server = need_live_server(ctx, report)?;
    let has = answer(&server.self_monitored, "self-monitoring", report)?;
    if has.is_empty() {
        report.skipped(
            Resource::new("self-monitoring"),
            "the server has no self-monitoring series (job=\"tocsin_self\"): not a Tocsin, or \
             self_monitoring.enabled is false",
        );
        return None;
    }
    Some(server)
}

/// `1h30m`-style duration.
pub(crate) fn dur(ms: i64) -> String {
    tocsin_model::duration::format_duration_ms(ms)
}
