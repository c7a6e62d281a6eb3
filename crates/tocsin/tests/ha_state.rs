#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Replicas (`ha:`), what they keep and share besides notifications, with the harness of
//! `ha_common`: a single node's state migrated into PostgreSQL (`tocsin state migrate`), a
//! replica filling the gap of its downtime from its peer's `/api/v1/read`, and action guards
//! counting across a takeover of the sender.

mod ha_common;

use std::time::Duration;

use serde_json::{json, Value};
use tocsin_testkit::pg::PgCluster;
use tocsin_testkit::webhook::WebhookCollector;
use tocsin_testkit::{client, now_ms, wait_until, TestServer};

use ha_common::*;

#[test]
fn a_single_node_state_migrates_into_postgres() {
    if !have_postgres() {
        return;
    }
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE tocsin");
    let hook = WebhookCollector::start();
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.password_file(dir.path());
    // The single node: the replica config without its `ha:` section.
    let full = config(&pg, &pw, &hook.url(""), 0);
    let single: String = {
        let mut out = Vec::new();
        let mut skipping = false;
        for l in full.lines() {
            if l.starts_with("ha:") {
                skipping = true;
                continue;
            }
            if skipping && l.starts_with("  ") {
                continue;
            }
            skipping = false;
            out.push(l);
        }
        out.join("\n")
    };
    let single_cfg = dir.path().join("single.yml");
    std::fs::write(&single_cfg, &single).unwrap();
    let data = dir.path().join("r0");
    let args = ["--config", single_cfg.to_str().unwrap()];
    let mut srv = TestServer::start_on(&bin(), &data, &args);
    let start = now_ms() - 1000;
    // A single node's alerts carry no replica label (nor do those its replicas keep).
    let post_m = |s: &TestServer| {
        let mut a = alert_json("M", "r0", start, None);
        a["labels"].as_object_mut().unwrap().remove("replica");
        let body = vec![a];
        let r = client()
            .post(s.url("/api/v2/alerts"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    };
    post_m(&srv);
    hook.wait_for(Duration::from_secs(30), "M notified", |r| {
        !notified(r, "M", "firing").is_empty()
    });
    let (code, v) = post(
        &srv,
        "/api/v2/silences",
        json!({
            "matchers": [{"name": "alertname", "value": "Quiet", "isRegex": false, "isEqual": true}],
            "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms()),
            "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
            "createdBy": "ann",
            "comment": "before replicas"
        }),
    );
    assert_eq!(code, 200, "{v}");
    let silence = v["silenceID"].as_str().unwrap().to_string();
    let fp = fingerprint("M");
    let (code, v) = post(
        &srv,
        &format!("/api/v1/alerts/{fp}/note"),
        json!({"by": "bob", "text": "moved"}),
    );
    assert!(code == 200 || code == 201, "{code} {v}");
    srv.stop();

    let ha_cfg = dir.path().join("r0.yml");
    std::fs::write(&ha_cfg, &full).unwrap();
    let migrate = |expect_ok: bool| {
        let out = std::process::Command::new(bin())
            .args(["state", "migrate", "--to", "postgres", "--config"])
            .arg(&ha_cfg)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), expect_ok, "{text}");
        text
    };
    let said = migrate(true);
    assert!(
        said.contains("1 silences") && said.contains("1 notes"),
        "{said}"
    );
    // Twice would mix two states: refused.
    assert!(migrate(false).contains("already holds shared alert state"));

    // The migrated node and a fresh replica: the silence and the note are on both, and M,
    // notified before, is not notified again.
    let r0 = TestServer::start_on(&bin(), &data, &["--config", ha_cfg.to_str().unwrap()]);
    std::fs::write(
        dir.path().join("r1.yml"),
        config(&pg, &pw, &hook.url(""), 1),
    )
    .unwrap();
    let r1_cfg = dir.path().join("r1.yml");
    let r1 = TestServer::start_on(
        &bin(),
        &dir.path().join("r1"),
        &["--config", r1_cfg.to_str().unwrap()],
    );
    post_m(&r0);
    post_m(&r1);
    wait_until(
        Duration::from_secs(10),
        "the silence on the new replica",
        || silence_ids(&r1).contains(&silence).then_some(()),
    );
    wait_until(
        Duration::from_secs(10),
        "the note on the new replica",
        || {
            let d: Value = client()
                .get(r1.url(&format!("/api/v1/alerts/{fp}")))
                .send()
                .ok()?
                .json()
                .ok()?;
            (d["data"]["notes"].as_u64() == Some(1)).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        notified(&hook.requests(), "M", "firing").len(),
        1,
        "M was notified before the migration and not again"
    );
}

/// `count_over_time(peer_metric[21m])` on `s` at `t`, and the series' labels.
fn count_over(s: &TestServer, t: i64) -> (f64, Value) {
    let r: Value = client()
        .post(s.url("/api/v1/query"))
        .form(&[
            ("query", "count_over_time(peer_metric[21m])".to_string()),
            ("time", format!("{}", t as f64 / 1000.0)),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let res = r["data"]["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(res.len(), 1, "one series, the replicas' copies merged: {r}");
    (
        res[0]["value"][1].as_str().unwrap().parse().unwrap(),
        res[0]["metric"].clone(),
    )
}

#[test]
fn a_replica_fills_its_gaps_from_its_peer() {
    use tocsin_collect::remote_write::WriteRequestBuilder;
    if !have_postgres() {
        return;
    }
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE tocsin");
    let hook = WebhookCollector::start();
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.password_file(dir.path());
    let a_cfg = dir.path().join("a.yml");
    std::fs::write(&a_cfg, config(&pg, &pw, &hook.url(""), 0)).unwrap();
    let a = TestServer::start_on(
        &bin(),
        &dir.path().join("a"),
        &["--config", a_cfg.to_str().unwrap()],
    );
    let b_cfg = dir.path().join("b.yml");
    std::fs::write(
        &b_cfg,
        format!(
            "{}remote_read:\n  - url: http://{}/api/v1/read\n    name: peer\n    read_recent: true\n",
            config(&pg, &pw, &hook.url(""), 1),
            a.addr
        ),
    )
    .unwrap();
    let b = TestServer::start_on(
        &bin(),
        &dir.path().join("b"),
        &["--config", b_cfg.to_str().unwrap()],
    );
    // 20 minutes every 15 s; replica b was down for 5 of them.
    let end = now_ms() / 15_000 * 15_000;
    let all: Vec<(i64, f64)> = (0..80)
        .map(|i| (end - (80 - i) * 15_000, i as f64))
        .collect();
    let holed: Vec<(i64, f64)> = all
        .iter()
        .copied()
        .filter(|(t, _)| *t < end - 12 * 60_000 || *t >= end - 7 * 60_000)
        .collect();
    for (srv, samples) in [(&a, &all), (&b, &holed)] {
        let mut w = WriteRequestBuilder::new();
        w.add_series([("__name__", "peer_metric"), ("job", "x")], samples);
        let (code, text) = tocsin_testkit::remote_write(srv, w.finish());
        assert!((200..300).contains(&code), "{code} {text}");
    }
    let (n_a, _) = count_over(&a, end);
    assert_eq!(n_a, 80.0);
    let (n_b, labels) = count_over(&b, end);
    assert_eq!(n_b, 80.0, "b's hole filled from a: {labels}");
    assert!(labels.get("replica").is_none(), "{labels}");
}

/// A policy's guards count what every replica ran: the sender runs an action (rate limit one
/// an hour) and is killed; the replica taking over refuses a second action of that policy.
#[test]
fn action_guards_count_across_a_takeover() {
    if !have_postgres() {
        return;
    }
    let mut c = Cluster::start();
    let first = c.sender();
    c.fire("Fix");
    c.hook
        .wait_for(Duration::from_secs(30), "the first action's call", |r| {
            r.iter().any(|q| q.path == "/restart/vm-Fix")
        });
    c.kill(first);
    let second = c.sender();
    assert_ne!(first, second);
    c.fire("Fix2");
    // Routed to the policy by a route of its own.
    let got = wait_until(Duration::from_secs(30), "the second action decided", || {
        let v: Value = client()
            .get(c.srv(second).url("/api/v1/actions"))
            .send()
            .ok()?
            .json()
            .ok()?;
        let rows = v["data"].as_array()?.clone();
        rows.into_iter()
            .find(|r| r["target"] == "vm-Fix2" && r["outcome"] != "matched")
    });
    assert_eq!(got["outcome"], "suppressed", "{got}");
    assert_eq!(got["guard"], "rate", "{got}");
    assert!(
        !c.hook
            .requests()
            .iter()
            .any(|q| q.path == "/restart/vm-Fix2"),
        "the rate limit held across the takeover"
    );
}

/// The alert history is one for all replicas: an alert fires under one sender and resolves
/// under the next (the first killed with -9): one row, closed, on every replica's history API.
#[test]
fn the_alert_history_is_shared_across_a_takeover() {
    if !have_postgres() {
        return;
    }
    let mut c = Cluster::start();
    let first = c.sender();
    c.fire("Hist");
    c.hook
        .wait_for(Duration::from_secs(30), "Hist notified", |r| {
            !notified(r, "Hist", "firing").is_empty()
        });
    c.kill(first);
    c.sender();
    c.resolve("Hist");
    c.hook
        .wait_for(Duration::from_secs(30), "Hist resolved", |r| {
            !notified(r, "Hist", "resolved").is_empty()
        });
    c.restart(first);
    wait_until(
        Duration::from_secs(10),
        "one closed row in the shared history",
        || {
            let out = c.pg.psql(
            "tocsin",
            "SELECT count(*), min(ends_at) FROM tocsin_ha_history WHERE labels LIKE '%\"Hist\"%'",
        );
            (out.starts_with("1|") && !out.ends_with("|0")).then_some(())
        },
    );
    for r in 0..N {
        let v: Value = client()
            .get(
                c.srv(r)
                    .url("/api/v1/alerts/history?filter=%7Balertname%3D%22Hist%22%7D"),
            )
            .send()
            .unwrap()
            .json()
            .unwrap();
        let rows = v["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "replica r{r}: {v}");
        assert!(rows[0]["endsAt"].is_string(), "replica r{r}: {v}");
    }
}

/// The action journal is one for all replicas: an execution the sender queued for approval is
/// listed by every replica under one id, approved on another replica, and run by its owner;
/// its outcome is then on every replica.
#[test]
fn an_approval_on_any_replica_runs_the_senders_action() {
    if !have_postgres() {
        return;
    }
    let c = Cluster::start();
    let sender = c.sender();
    let other = (sender + 1) % N;
    c.fire("Ask");
    let list = |r: usize| -> Option<Vec<Value>> {
        let v: Value = client()
            .get(c.srv(r).url("/api/v1/actions"))
            .send()
            .ok()?
            .json()
            .ok()?;
        v["data"].as_array().cloned()
    };
    let pending = wait_until(
        Duration::from_secs(30),
        "the execution on another replica",
        || {
            list(other)?
                .into_iter()
                .find(|x| x["target"] == "vm-Ask" && x["outcome"] == "pending_approval")
        },
    );
    let id = pending["id"].as_i64().unwrap();
    assert_eq!(pending["replica"], format!("r{sender}"), "{pending}");
    for r in 0..N {
        wait_until(Duration::from_secs(10), "listed on every replica", || {
            list(r)?
                .iter()
                .any(|x| x["id"].as_i64() == Some(id))
                .then_some(())
        });
    }
    let (code, v) = post(
        c.srv(other),
        &format!("/api/v1/actions/{id}/approve"),
        json!({"comment": "go ahead"}),
    );
    assert_eq!(code, 200, "{v}");
    c.hook
        .wait_for(Duration::from_secs(30), "the approved call", |r| {
            r.iter().any(|q| q.path == "/approved/vm-Ask")
        });
    wait_until(
        Duration::from_secs(10),
        "the outcome on the other replica",
        || {
            let v: Value = client()
                .get(c.srv(other).url(&format!("/api/v1/actions/{id}")))
                .send()
                .ok()?
                .json()
                .ok()?;
            (v["data"]["outcome"] == "succeeded").then_some(())
        },
    );
    assert_eq!(
        c.hook
            .requests()
            .iter()
            .filter(|q| q.path == "/approved/vm-Ask")
            .count(),
        1
    );
}
