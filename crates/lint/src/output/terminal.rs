//! Human-readable output, grouped by product, with each failing rule's description.

use std::fmt::Write as _;

use super::View;
use crate::report::{Outcome, RuleResult};

fn paint(on: bool, code: &str, s: &str) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

pub fn render(results: &[RuleResult], view: View) -> String {
    let mut out = String::new();
    let mut product = None;
    for r in results {
        if product != Some(r.meta.product) {
            product = Some(r.meta.product);
            let _ = writeln!(
                out,
                "\n{}",
                paint(view.color, "1", &format!("🔎 {}", r.meta.product.as_str()))
            );
        }
        let failed = r.failed();
        let status = if failed > 0 {
            paint(view.color, "31", "FAIL")
        } else if r.count(Outcome::Ok) > 0 {
            paint(view.color, "32", " OK ")
        } else {
            paint(view.color, "33", "SKIP")
        };
        let _ = writeln!(out, "  [{status}] {}: {}", r.meta.id, r.meta.title);
        for e in &r.entries {
            let show = match e.outcome {
                Outcome::Ok => !view.hide_ok,
                Outcome::Failed => true,
                Outcome::Skipped => view.show_skipped,
            };
            if !show {
                continue;
            }
            let at = match (&e.resource.file, e.resource.line, e.resource.col) {
                (Some(f), Some(l), Some(c)) => format!(" ({f}:{l}:{c})"),
                (Some(f), Some(l), None) => format!(" ({f}:{l})"),
                (Some(f), None, _) if *f != e.resource.name => format!(" ({f})"),
                _ => String::new(),
            };
            let mark = match e.outcome {
                Outcome::Ok => paint(view.color, "32", "ok     "),
                Outcome::Failed => paint(view.color, "31", "failed "),
                Outcome::Skipped => paint(view.color, "33", "skipped"),
            };
            let reason = if e.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", e.reason)
            };
            let _ = writeln!(out, "       - {mark} {}{at}{reason}", e.resource.name);
        }
        if failed > 0 {
            let _ = writeln!(
                out,
                "\n       {}\n",
                wrap(r.meta.description, 90, "       ")
            );
        }
    }
    let failed: usize = results.iter().map(RuleResult::failed).sum();
    let rules_failed = results.iter().filter(|r| r.failed() > 0).count();
    let _ = writeln!(
        out,
        "\nRules run: {}, rules failed: {rules_failed}, findings: {failed}",
        results.len()
    );
    out
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for w in text.split_whitespace() {
        if col > 0 && col + w.len() + 1 > width {
            out.push('\n');
            out.push_str(indent);
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(w);
        col += w.len();
    }
    out
}
