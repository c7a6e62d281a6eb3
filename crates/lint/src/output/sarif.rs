//! SARIF 2.1.0 output, so code hosts annotate the rule files in review: one result per failed
//! entry, located at its file and line when known.

use serde_json::{json, Value};

use crate::report::{Outcome, RuleResult};
use crate::rule::Class;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub fn render(results: &[RuleResult]) -> Value {
    let rules: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "id": r.meta.id,
                "shortDescription": { "text": r.meta.title },
                "fullDescription": { "text": r.meta.description },
                "help": { "text": format!("README.md#{}", r.meta.anchor()) },
                "defaultConfiguration": { "level": level(r.meta.class) },
            })
        })
        .collect();
    let mut out = Vec::new();
    for (i, r) in results.iter().enumerate() {
        for e in r.entries.iter().filter(|e| e.outcome == Outcome::Failed) {
            let mut res = json!({
                "ruleId": r.meta.id,
                "ruleIndex": i,
                "level": level(r.meta.class),
                "message": { "text": format!("{}: {}", e.resource.name, e.reason) },
            });
            if let Some(f) = &e.resource.file {
                let mut loc =
                    json!({ "physicalLocation": { "artifactLocation": { "uri": uri(f) } } });
                if let Some(l) = e.resource.line {
                    loc["physicalLocation"]["region"] =
                        json!({ "startLine": l, "startColumn": e.resource.col.unwrap_or(1) });
                }
                res["locations"] = json!([loc]);
            }
            out.push(res);
        }
    }
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "tocsin lint",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "results": out,
        }]
    })
}

fn level(c: Class) -> &'static str {
    match c {
        Class::Err | Class::Sec => "error",
        Class::Warn => "warning",
        Class::Bp => "note",
    }
}

/// A file path as a URI reference: a relative path stays relative (code hosts resolve it against
/// the repository root), an absolute one becomes a `file://` URI; backslashes become slashes and
/// anything outside a path's plain characters is percent-encoded, as RFC 3986 requires.
pub fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut out = String::with_capacity(path.len() + 8);
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri("rules/a.yml"), "rules/a.yml");
        assert_eq!(
            uri("/tmp/my rules/a#1.yml"),
            "file:///tmp/my%20rules/a%231.yml"
        );
        assert_eq!(uri("r\\é.yml"), "r/%C3%A9.yml");
    }
}
