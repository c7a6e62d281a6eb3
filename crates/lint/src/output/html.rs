//! The HTML report: one self-contained file (inline CSS, no scripts, no external resources),
//! rules grouped by product, failures first within each rule.

use std::fmt::Write as _;

use crate::report::{Outcome, RuleResult};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text with its `code spans` (as rule titles and descriptions write them) set in
/// `<code>`; an unpaired backtick stays as it is.
fn with_code(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return esc(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&esc(p));
            out.push_str("</code>");
        } else {
            out.push_str(&esc(p));
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h2{border-bottom:1px solid #ccc;margin-top:1.5em}\
.rule{margin:.8em 0}.id{font-family:monospace;font-weight:bold}\
.failed{color:#b00020}.ok{color:#1b7f3b}.skipped{color:#8a6d00}\
table{border-collapse:collapse;margin:.3em 0 .3em 1.5em}td{padding:.1em .6em;vertical-align:top}\
.desc{margin-left:1.5em;max-width:60em;color:#444}\
code{font-family:monospace;background:#f2f2f2;padding:0 .2em;border-radius:3px}";

pub fn render(results: &[RuleResult]) -> String {
    let mut out = String::new();
    let failed: usize = results.iter().map(RuleResult::failed).sum();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tocsin lint</title>\
         <style>{STYLE}</style></head><body>\n<h1>tocsin lint</h1>\n<p>{} rules run, {} failed, {failed} findings.</p>\n",
        results.len(),
        results.iter().filter(|r| r.failed() > 0).count(),
    );
    let mut product = None;
    for r in results {
        if product != Some(r.meta.product) {
            product = Some(r.meta.product);
            let _ = writeln!(out, "<h2>{}</h2>", r.meta.product.as_str());
        }
        let status = if r.failed() > 0 {
            "failed"
        } else if r.count(Outcome::Ok) > 0 {
            "ok"
        } else {
            "skipped"
        };
        let _ = writeln!(
            out,
            "<div class=\"rule\" id=\"{}\"><span class=\"{status}\">{}</span> <span class=\"id\">{}</span> {}",
            esc(&r.meta.anchor()),
            status.to_uppercase(),
            esc(r.meta.id),
            with_code(r.meta.title)
        );
        if r.failed() > 0 {
            let _ = writeln!(
                out,
                "<p class=\"desc\">{}</p>",
                with_code(r.meta.description)
            );
        }
        let mut entries: Vec<_> = r.entries.iter().collect();
        entries.sort_by_key(|e| match e.outcome {
            Outcome::Failed => 0,
            Outcome::Skipped => 1,
            Outcome::Ok => 2,
        });
        if !entries.is_empty() {
            out.push_str("<table>\n");
            for e in entries {
                let at = match (&e.resource.file, e.resource.line, e.resource.col) {
                    (Some(f), Some(l), Some(c)) => format!("{f}:{l}:{c}"),
                    (Some(f), Some(l), None) => format!("{f}:{l}"),
                    // A file named as the resource itself is not repeated as its place.
                    (Some(f), None, _) if *f != e.resource.name => f.clone(),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "<tr><td class=\"{0}\">{0}</td><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
                    e.outcome.as_str(),
                    esc(&e.resource.name),
                    esc(&at),
                    esc(&e.reason)
                );
            }
            out.push_str("</table>\n");
        }
        out.push_str("</div>\n");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use crate::report::{Entry, Resource, RuleResult};

    #[test]
    fn escapes_and_is_self_contained() {
        let r = RuleResult {
            meta: crate::registry::ALL[0].meta(),
            entries: vec![Entry {
                resource: Resource::at("alert <X>", "r.yml", 3),
                outcome: crate::Outcome::Failed,
                reason: "a & b".into(),
            }],
        };
        let html = super::render(&[r]);
        assert!(
            html.contains("alert &lt;X&gt;")
                && html.contains("a &amp; b")
                && html.contains("r.yml:3")
        );
        assert!(
            !html.contains("<script") && !html.contains("http://") && !html.contains("https://")
        );
        assert_eq!(
            super::with_code("a `x<y` b `z`"),
            "a <code>x&lt;y</code> b <code>z</code>"
        );
        assert_eq!(super::with_code("odd ` one"), "odd ` one");
    }
}
