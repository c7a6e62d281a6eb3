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
                    loc["physicalLocation"]["region"] = json!({ "startLine": l });
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
            "tool": { "driver": { "name": "tocsin lint", "rules": rules } },
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

/// A relative path stays relative (code hosts resolve it against the repository); backslashes
/// become slashes as URIs require.
fn uri(path: &str) -> String {
    path.replace('\\', "/")
}
