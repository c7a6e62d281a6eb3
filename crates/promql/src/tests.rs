//! Smoke tests of the evaluator over an in-memory store; the conformance corpus is the real test.
#![allow(clippy::unwrap_used, clippy::panic)]

use tocsin_model::Labels;
use tocsin_storage::{Appendable, MemoryStore};

use crate::{Engine, Value};

fn store() -> MemoryStore {
    let s = MemoryStore::new();
    let mut app = s.appender();
    for i in 0..=20i64 {
        for (inst, mult) in [("a", 1.0), ("b", 2.0)] {
            let l = Labels::from_pairs(&[
                ("__name__", "http_requests_total"),
                ("instance", inst),
                ("job", "api"),
            ]);
            app.append(&l, i * 15_000, i as f64 * 10.0 * mult, &Default::default())
                .unwrap();
        }
    }
    app.commit().unwrap();
    s
}

fn instant(q: &str, t: i64) -> Value {
    Engine::default().instant(&store(), q, t).unwrap().value
}

fn scalar_of(v: &Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(v) => {
            let mut o: Vec<_> = v.iter().map(|s| (s.labels.to_string(), s.v)).collect();
            o.sort_by(|a, b| a.0.cmp(&b.0));
            o
        }
        Value::Scalar { v, .. } => vec![(String::new(), *v)],
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn selector_and_rate() {
    let v = instant("http_requests_total", 300_000);
    assert_eq!(scalar_of(&v).len(), 2);
    let v = instant("sum(rate(http_requests_total[1m]))", 300_000);
    let got = scalar_of(&v);
    assert!((got[0].1 - 2.0).abs() < 1e-9, "{got:?}");
    let v = instant(
        "http_requests_total / on(job) group_left sum by (job)(http_requests_total)",
        300_000,
    );
    assert_eq!(scalar_of(&v).len(), 2);
}

#[test]
fn range_query_is_sorted_matrix() {
    let out = Engine::default()
        .range(&store(), "http_requests_total * 2", 0, 300_000, 60_000)
        .unwrap();
    let Value::Matrix(m) = out.value else {
        panic!()
    };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].samples.len(), 6);
    assert!(m[0].labels < m[1].labels);
}

#[test]
fn too_many_samples_is_a_clear_error() {
    let engine = Engine::new(crate::EngineOptions {
        max_samples: 10,
        ..Default::default()
    });
    let err = engine
        .range(&store(), "http_requests_total", 0, 300_000, 15_000)
        .unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
    assert_eq!(err.kind(), tocsin_model::ErrorKind::Execution);
}

#[test]
fn timeout_is_reported() {
    let engine = Engine::new(crate::EngineOptions {
        timeout: std::time::Duration::ZERO,
        ..Default::default()
    });
    let err = engine
        .instant(&store(), "sum(http_requests_total)", 300_000)
        .unwrap_err();
    assert_eq!(err.kind(), tocsin_model::ErrorKind::Timeout);
}
