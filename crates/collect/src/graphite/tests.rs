//! Tests of the Graphite parser, mapping rules, batch appends and the TCP listener.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use tocsin_storage::{MemoryStore, Queryable, SelectHints};

const NOW: i64 = 1_700_000_000_000;

fn rule(m: &str, name: &str, labels: &[(&str, &str)]) -> MappingRule {
    MappingRule {
        pattern: m.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn dump(store: &MemoryStore) -> Vec<String> {
    let q = store.querier(i64::MIN, i64::MAX).unwrap();
    let mut out = Vec::new();
    for s in q.select(&SelectHints::default(), &[]).unwrap() {
        let (l, samples) = s.unwrap().collect_samples();
        for x in samples {
            out.push(format!("{l} {} {}", x.v, x.t));
        }
    }
    out
}

#[test]
fn parses_plain_and_tagged_lines() {
    let l = parse_line("servers.web1.cpu.user 12.5 1700000000", NOW)
        .unwrap()
        .unwrap();
    assert_eq!(
        (l.path, l.value, l.t_ms),
        ("servers.web1.cpu.user", 12.5, NOW)
    );
    let l = parse_line("a.b 1 -1", 5).unwrap().unwrap();
    assert_eq!(l.t_ms, 5);
    let l = parse_line("a.b\t2\r", 5).unwrap().unwrap();
    assert_eq!((l.value, l.t_ms), (2.0, 5));
    let l = parse_line("disk.used;host=a;dc=x 3 1700000000.25", 0)
        .unwrap()
        .unwrap();
    assert_eq!(l.tags, vec![("host", "a"), ("dc", "x")]);
    assert_eq!(l.t_ms, 1_700_000_000_250);
    assert_eq!(parse_line("   ", 0), Ok(None));
}

#[test]
fn parse_errors() {
    for (line, want) in [
        ("a.b", "has no value"),
        ("a.b x 1", "is not a number"),
        ("a.b 1 soon", "timestamp"),
        ("a.b 1 2 3", "too many fields"),
        ("a..b 1", "empty component"),
        ("a.b;host 1", "not name=value"),
        ("a.b;=x 1", "not name=value"),
        (";a=b 1", "empty metric path"),
        ("a 1 1e300", "out of range"),
    ] {
        let e = parse_line(line, 0).unwrap_err();
        assert!(e.contains(want), "{line}: {e}");
    }
}

#[test]
fn first_matching_rule_wins_and_unmatched_paths_are_sanitized() {
    let m = Mapper::new(&[
        rule("servers.*.cpu.*", "server_cpu_${2}", &[("host", "${1}")]),
        rule(
            "servers.*.*.*",
            "server_${2}_${3}",
            &[("host", "${1}"), ("src", "generic")],
        ),
    ])
    .unwrap();
    let map = |line: &str| {
        let l = parse_line(line, 0).unwrap().unwrap();
        m.labels(&l).unwrap()
    };
    let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        map("servers.web1.cpu.user 1"),
        s(&[("__name__", "server_cpu_user"), ("host", "web1")])
    );
    assert_eq!(
        map("servers.web1.mem.free 1"),
        s(&[
            ("__name__", "server_mem_free"),
            ("host", "web1"),
            ("src", "generic")
        ])
    );
    // Too many components for either rule; `-` is invalid in names.
    assert_eq!(
        map("servers.web-1.cpu.user.x 1"),
        s(&[("__name__", "servers_web_1_cpu_user_x")])
    );
    // Tags become labels; a rule's label replaces a tag of the same name.
    assert_eq!(
        map("servers.web1.cpu.idle;host=other;dc=eu-1;bad-name=v 1"),
        s(&[
            ("__name__", "server_cpu_idle"),
            ("bad_name", "v"),
            ("dc", "eu-1"),
            ("host", "web1")
        ])
    );
    let l = parse_line("x;__name__=y 1", 0).unwrap().unwrap();
    assert!(m.labels(&l).unwrap_err().contains("reserved"));
}

#[test]
fn config_errors_name_the_field() {
    for (r, want) in [
        (
            rule("a.*", "x_${2}", &[]),
            "graphite.mappings[0].name: ${2} refers",
        ),
        (
            rule("a.b*", "x", &[]),
            "graphite.mappings[0].match: '*' must be a whole",
        ),
        (rule("a..b", "x", &[]), "empty component"),
        (
            rule("a.*", "", &[]),
            "graphite.mappings[0].name: must not be empty",
        ),
        (
            rule("a.*", "x", &[("bad-name", "v")]),
            "graphite.mappings[0].labels",
        ),
        (rule("a.*", "x", &[("l", "${1")]), "unclosed"),
        (rule("a.*", "x_${x}", &[]), "not a capture number"),
    ] {
        let e = Mapper::new(&[r]).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    let cfg: GraphiteConfig = serde_norway_free_parse();
    assert_eq!(cfg.mappings.len(), 1);
    assert!(cfg.validate().is_ok());
}

/// The config shape as YAML users write it, parsed through serde_json to avoid a YAML dependency.
fn serde_norway_free_parse() -> GraphiteConfig {
    serde_json::from_str(
        r#"{"listen":"127.0.0.1:2003","mappings":[{"match":"servers.*.cpu.*","name":"server_cpu_${2}","labels":{"host":"${1}"}}]}"#,
    )
    .unwrap()
}

#[test]
fn unknown_config_fields_are_refused() {
    let e = serde_json::from_str::<GraphiteConfig>(r#"{"listen":"x","bogus":1}"#).unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}

#[test]
fn batch_appends_good_lines_and_skips_bad_ones() {
    let store = MemoryStore::new();
    let m = Mapper::new(&[]).unwrap();
    let st = append_batch(
        &store,
        &m,
        b"a.b 1 100\nnot-a-line\na.b 2 200\n\n",
        1,
        "test",
        NOW,
    );
    assert_eq!(st.samples, 2);
    assert_eq!(st.bad_lines, 1);
    let st = append_batch(&store, &m, b"a.b 0 50\n", 5, "test", NOW);
    assert_eq!(st.rejected, 1, "out of order sample refused");
    assert_eq!(
        dump(&store),
        vec![
            r#"{__name__="a_b"} 1 100000"#.to_string(),
            r#"{__name__="a_b"} 2 200000"#.to_string()
        ]
    );
}

#[tokio::test]
async fn serves_many_connections_and_stops() {
    use tokio::io::AsyncWriteExt;
    let store = MemoryStore::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = Arc::new(GraphiteConfig {
        listen: addr.to_string(),
        mappings: vec![rule("servers.*.cpu", "cpu", &[("host", "${1}")])],
    });
    let (tx, rx) = watch::channel(false);
    let app: Arc<dyn Appendable> = Arc::new(store.clone());
    let server = tokio::spawn(serve(listener, cfg, app, rx));
    let mut clients = Vec::new();
    for c in 0..4 {
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut body = String::new();
            for i in 0..2500 {
                body.push_str(&format!("servers.h{c}.cpu {i} {}\n", 1_000 + i));
            }
            // The last line has no newline: end of stream ends it.
            body.push_str("servers.x.cpu 7 5000");
            for chunk in body.as_bytes().chunks(777) {
                s.write_all(chunk).await.unwrap();
            }
            s.shutdown().await.unwrap();
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    // Wait until everything is in, then stop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = dump(&store).len();
        if n == 4 * 2500 + 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {n} samples");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tx.send(true).unwrap();
    server.await.unwrap().unwrap();
    let all = dump(&store);
    assert!(all.contains(&r#"{__name__="cpu", host="h3"} 2499 3499000"#.to_string()));
    assert!(all.contains(&r#"{__name__="cpu", host="x"} 7 5000000"#.to_string()));
}
