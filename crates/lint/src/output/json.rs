//! JSON output: one object per rule with its metadata and every entry.

use serde_json::{json, Value};

use crate::report::RuleResult;

pub fn render(results: &[RuleResult]) -> Value {
    let rules: Vec<Value> = results
        .iter()
        .map(|r| {
            let entries: Vec<Value> = r
                .entries
                .iter()
                .map(|e| {
                    json!({
                        "resource": e.resource.name,
                        "file": e.resource.file,
                        "line": e.resource.line,
                        "column": e.resource.col,
                        "status": e.outcome.as_str(),
                        "reason": e.reason,
                    })
                })
                .collect();
            json!({
                "id": r.meta.id,
                "product": r.meta.product.as_str(),
                "class": r.meta.class.as_str(),
                "title": r.meta.title,
                "description": r.meta.description,
                "doc": format!("README.md#{}", r.meta.anchor()),
                "failed": r.failed(),
                "entries": entries,
            })
        })
        .collect();
    json!({ "rules": rules, "exit_code": crate::exit_code(results) })
}
