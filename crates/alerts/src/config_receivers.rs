//! The load-time half of receivers: the `templates:` files and the integrations' `global:`
//! defaults become one `ReceiverCtx` shared by every receiver, and each receiver's templated
//! integrations are built once so that bad values, unreadable `*_file` secrets and templates
//! that fail to parse are configuration errors rather than failed notifications.

use std::path::Path;
use std::sync::Arc;

use crate::config::AmConfig;
use crate::notify::{NotifyGlobals, ReceiverConfig, ReceiverCtx};
use crate::tmpl::NotifyTemplates;

/// Alertmanager integrations Tocsin does not implement: configuring one is an error.
pub const UNSUPPORTED_KINDS: &[&str] = &[
    "sns_configs",
    "victorops_configs",
    "wechat_configs",
    "pushover_configs",
    "webex_configs",
    "jira_configs",
    "rocketchat_configs",
    "mattermost_configs",
    "incidentio_configs",
];

/// The directory relative paths of a config file resolve against.
pub fn base_dir_of(file: &str) -> &Path {
    match Path::new(file).parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Loads the templates and global defaults and attaches them to every receiver. Errors are
/// complete messages (template files carry their own file and line).
pub fn attach_ctx(cfg: &mut AmConfig, base_dir: &Path) -> Vec<String> {
    let mut errs = Vec::new();
    let templates = match NotifyTemplates::load(&cfg.templates, base_dir) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            errs.extend(e.into_iter().map(|e| format!("templates: {e}")));
            match NotifyTemplates::defaults() {
                Ok(t) => t,
                Err(e) => {
                    errs.push(e);
                    return errs;
                }
            }
        }
    };
    let globals = match NotifyGlobals::from_fields(&cfg.global.other) {
        Ok(g) => g,
        Err(e) => {
            errs.push(e);
            NotifyGlobals::default()
        }
    };
    let ctx = Arc::new(ReceiverCtx {
        templates,
        globals: Arc::new(globals),
        http_config: cfg.global.http_config.clone(),
        base_dir: base_dir.to_path_buf(),
    });
    for r in &mut cfg.receivers {
        r.ctx = Some(ctx.clone());
    }
    errs
}

/// The problems of one receiver: integrations we do not implement, and whatever building its
/// templated integrations refuses.
pub fn receiver_errors(r: &ReceiverConfig) -> Vec<String> {
    let mut errs: Vec<String> = r
        .unsupported
        .keys()
        .map(|k| {
            if UNSUPPORTED_KINDS.contains(&k.as_str()) {
                format!(
                    "receiver {:?}: {k} is not supported by Tocsin; remove it or use another integration",
                    r.name
                )
            } else {
                format!("receiver {:?}: unknown field {k:?}", r.name)
            }
        })
        .collect();
    if let Some(ctx) = &r.ctx {
        if let Err(e) = crate::notify::build_templated(r, ctx.clone()) {
            errs.push(e.to_string());
        }
    }
    errs
}
