//! Checking a whole tocsin.yml: every problem of every section, and of the files it names (rule
//! files, certificates, the alert manager's receivers), collected as positioned diagnostics.
//! Server start, reload and `tocsin check config` all load through here, so they refuse the same
//! files with the same list.

use std::path::Path;
use std::time::Duration;

use tocsin_collect::scrape::ScrapeManager;
use tocsin_confdiag::{Diagnostic, Doc};

use crate::config::{Config, Problems};

/// `a.b[1].c: message` (as other checkers phrase it) split into path and message.
fn split_path(msg: &str) -> (String, String) {
    match msg.split_once(": ") {
        Some((p, m)) if !p.is_empty() && !p.contains(' ') => (p.to_string(), m.to_string()),
        _ => (String::new(), msg.to_string()),
    }
}

/// Checks that need only the text. Fills `cfg.am` from the `alertmanager:` section.
pub(crate) fn sections(cfg: &mut Config, doc: &Doc, out: &mut Vec<Diagnostic>) {
    let mut p = Problems::new();
    cfg.storage.options(&mut p);
    cfg.storage.max_future_checked(&mut p);
    cfg.query.settings(cfg.global.evaluation_interval.0, &mut p);
    cfg.limits.silences_checked(&mut p);
    cfg.web.settings_checked(&mut p);
    if let Err(e) = cfg.self_monitoring.validate() {
        p.push(split_path(&e));
    }
    if let Some(l) = &cfg.lint {
        for e in l.validate() {
            let (f, m) = split_path(&e);
            p.push((format!("lint.{f}"), m));
        }
    }
    for (f, m) in cfg.global.unsupported() {
        out.push(doc.at_key(&format!("global.{f}"), m));
    }
    let (_, errs) = ScrapeManager::validate_all(&cfg.global, &cfg.scrape_configs);
    for e in errs {
        let path = if e.field.is_empty() {
            format!("scrape_configs[{}]", e.index)
        } else {
            format!("scrape_configs[{}].{}", e.index, e.field)
        };
        p.push((path, e.message));
    }
    p.extend(tocsin_remote::config::problems(cfg.remote_write()));
    cfg.alerting.problems(&mut p);
    p.extend(tocsin_collect::remote_read::config::problems(
        &cfg.remote_read,
    ));
    p.extend(cfg.actions.problems());
    cfg.pubsub_push.problems(&mut p);
    if let Err(e) = tocsin_alerts::heartbeat::Heartbeats::new().configure(&cfg.heartbeats, 0) {
        p.push(split_path(&e.to_string()));
    }
    if let Some(g) = &cfg.graphite {
        if let Err(m) = g.validate() {
            let (path, m) = split_path(&m);
            p.push((
                if path.is_empty() {
                    "graphite".into()
                } else {
                    path
                },
                m,
            ));
        }
    }
    for (path, m) in p {
        // A setting refused as a whole is pointed at by its key, a bad value at the value.
        out.push(if m.contains("not implemented yet") {
            doc.at_key(&path, m)
        } else {
            doc.at(&path, m)
        });
    }
    match crate::alerting::alertmanager_config(doc.get("alertmanager"), &cfg.source, doc.file()) {
        Ok(am) => cfg.am = am,
        Err(e) => out.extend(e.lines().map(Diagnostic::from_line)),
    }
}

/// Checks of what the file names, relative to `base` (the config file's directory). Glob
/// patterns of `rule_files` that match nothing are warnings, as in Prometheus.
pub(crate) fn files(
    cfg: &Config,
    doc: &Doc,
    base: &Path,
    out: &mut Vec<Diagnostic>,
    warnings: &mut Vec<String>,
) {
    for (i, pat) in cfg.rule_files.iter().enumerate() {
        let full = base.join(pat);
        let literal = !pat.contains(['*', '?', '[']);
        if literal {
            if !full.exists() {
                out.push(doc.at(
                    &format!("rule_files[{i}]"),
                    format!("rule file {pat:?} does not exist"),
                ));
            }
            continue;
        }
        match crate::alerting::rule_file_paths(std::slice::from_ref(pat), base) {
            Ok(v) if v.is_empty() => {
                warnings.push(format!("rule_files[{i}]: {pat:?} matches no file"))
            }
            Ok(_) => {}
            Err(e) => out.push(doc.at(&format!("rule_files[{i}]"), e)),
        }
    }
    if let Ok(paths) = crate::alerting::rule_file_paths(&cfg.rule_files, base) {
        for path in paths.into_iter().filter(|p| p.is_file()) {
            if let Err(e) = tocsin_rules::load_file(&path) {
                out.extend(e.messages().iter().map(|l| Diagnostic::from_line(l)));
            }
        }
    }
    // Clients are built as the scrape manager would, so unreadable certificate or password files
    // are found now (only for jobs that are otherwise valid, to say each problem once).
    let (resolved, errs) = ScrapeManager::validate_all(&cfg.global, &cfg.scrape_configs);
    for (i, r) in resolved.iter().enumerate() {
        if errs.iter().any(|e| e.index == i) {
            continue;
        }
        if let Err(e) = r.cfg.http.build_client(
            base,
            Duration::from_millis(r.timeout_ms.max(1) as u64),
            r.cfg.enable_compression,
        ) {
            out.push(doc.at(&format!("scrape_configs[{i}]"), e.to_string()));
        }
    }
    // Remote-write clients are built as the queues build them (credential and certificate files).
    if tocsin_remote::config::problems(cfg.remote_write()).is_empty() {
        for (i, c) in cfg.remote_write().iter().enumerate() {
            if let Err(e) = tocsin_remote::endpoint(c, base) {
                out.push(doc.at(&format!("remote_write[{i}]"), e));
            }
        }
    }
    // Remote-read clients are built as the server builds them (credential and TLS files).
    if tocsin_collect::remote_read::config::problems(&cfg.remote_read).is_empty() {
        for (i, r) in cfg.remote_read.iter().enumerate() {
            let timeout = Duration::from_millis(r.remote_timeout.0.max(1) as u64);
            if let Err(e) = r.http.build_client(base, timeout, false) {
                out.push(doc.at(&format!("remote_read[{i}]"), e.to_string()));
            }
        }
    }
    // The replica settings, with the password file read as the server reads it at start.
    if let Some(h) = &cfg.ha {
        for (f, m) in h.clone().validate(base) {
            out.push(doc.at(&f, m));
        }
    }
    // The push verifier's key file is read as the server reads it at start and reload.
    let mut p = Problems::new();
    cfg.pubsub_push.problems(&mut p);
    if p.is_empty() {
        if let Err(e) = cfg.pubsub_push.verifier(base) {
            let (path, m) = split_path(&e);
            out.push(doc.at(&path, m));
        }
    }
    let mut p = Problems::new();
    cfg.alerting.problems(&mut p);
    if p.is_empty() {
        if let Err(e) = crate::am_targets::prepare(&cfg.alerting, base) {
            let (path, m) = split_path(&e);
            out.push(doc.at(&path, m));
        }
    }
    // Receivers are built as the alert manager builds them at start (URLs, credential files).
    // With `alertmanager: {file: am.yml}` the messages name that file.
    let am_file = doc
        .get("alertmanager")
        .and_then(|v| v.as_mapping())
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get("file"))
        .and_then(|f| f.as_str())
        .map(|f| base.join(f).display().to_string());
    let at = |path: String, msg: String| match &am_file {
        None => doc.at(&format!("alertmanager.{path}"), msg),
        Some(f) => Diagnostic::new(f, None, &path, msg),
    };
    for (i, r) in cfg.am.receivers.iter().enumerate() {
        let base = cfg.am.base_dir.as_deref().unwrap_or(base);
        // Action integrations are the server's (built with the actions engine); the alert
        // manager's own builder checks the rest.
        let mut own = r.clone();
        own.action_configs.clear();
        if let Err(e) = tocsin_alerts::notify::build_receiver(&own, base) {
            out.push(at(format!("receivers[{i}]"), e.to_string()));
        }
        for (j, a) in r.action_configs.iter().enumerate() {
            if cfg.actions.policy(&a.policy).is_none() {
                let known = cfg
                    .actions
                    .policies
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>();
                let hint = match tocsin_confdiag::did_you_mean(&a.policy, &known) {
                    Some(s) => format!("; did you mean {s:?}?"),
                    None if known.is_empty() => "; the actions: section defines none".into(),
                    None => String::new(),
                };
                out.push(at(
                    format!("receivers[{i}].action_configs[{j}].policy"),
                    format!("no action policy named {:?}{hint}", a.policy),
                ));
            }
        }
    }
    // Kinds are built as the engine builds them (templates, clients, credential files).
    for (path, m) in cfg.actions.kind_problems(base) {
        out.push(doc.at(&path, m));
    }
}
