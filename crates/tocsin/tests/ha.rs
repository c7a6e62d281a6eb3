#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Replicas (`ha:`) end to end, with the harness of `ha_common` (three replicas, PostgreSQL,
//! one webhook receiver):
//!
//! - The sender is killed with -9 while its webhook request is in flight (the receiver holds the
//!   answer), 20 times in a row: another replica takes over, every alert is notified firing and
//!   resolved exactly once (by notification id: a request the killed sender had in flight is
//!   delivered again by the taker-over with the same `Idempotency-Key`), and the takeover times
//!   are printed (median and worst).
//! - A silence, an acknowledgement and a note posted to one replica are on the others within a
//!   second; the silenced alert is notified by nobody; an alert and a heartbeat ping posted to
//!   one replica reach the sender; an action policy runs once while three replicas see its alert.
//! - PostgreSQL stopped: nobody notifies, the replicas say so (`tocsin_ha_database_up 0`,
//!   `TocsinHADatabaseUnreachable`), a silence posted meanwhile is kept (also across a kill -9 of
//!   that replica); PostgreSQL back: the alert that fired meanwhile is notified once and the
//!   silence reaches the other replicas. `fallback: notify` notifies without it.
//! - The sender's sessions cut from PostgreSQL 5 times: handed over, nothing twice.

mod ha_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tocsin_testkit::{client, now_ms, wait_until};

use ha_common::*;

#[test]
fn three_replicas_notify_once_across_twenty_kills_of_the_sender() {
    if !have_postgres() {
        return;
    }
    let mut c = Cluster::start();
    // Answers are held, so a kill right after a request arrives is a kill mid-flush.
    c.hook.set_hold(Some(Duration::from_millis(500)));
    let mut takeovers = Vec::new();
    for i in 0..KILLS {
        let name = format!("K{i}");
        let sender = c.sender();
        c.fire(&name);
        let first = c
            .hook
            .wait_for(Duration::from_secs(30), "the firing notification", |r| {
                !notified(r, &name, "firing").is_empty()
            });
        let sent_at = notified(&first, &name, "firing")[0].at;
        c.kill(sender);
        let killed_at = SystemTime::now();
        let again = c.hook.wait_for(
            Duration::from_secs(30),
            "the taker-over sending what the killed sender had in flight",
            |r| notified(r, &name, "firing").len() >= 2,
        );
        let redelivered = notified(&again, &name, "firing")[1].at;
        takeovers.push(since(redelivered, killed_at));
        assert!(
            since(redelivered, sent_at) > 0.0,
            "the second delivery came after the first"
        );
        c.restart(sender);
        c.resolve(&name);
        c.hook
            .wait_for(Duration::from_secs(30), "the resolve", |r| {
                !notified(r, &name, "resolved").is_empty()
            });
    }
    // Anything sent twice would have arrived by now.
    std::thread::sleep(Duration::from_secs(3));
    let reqs = c.hook.requests();
    let (mut dup, mut lost) = (0usize, 0usize);
    let mut again: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..KILLS {
        let name = format!("K{i}");
        for status in ["firing", "resolved"] {
            let n = notified(&reqs, &name, status);
            let distinct = ids(&n).len();
            if distinct == 0 {
                lost += 1;
            }
            dup += distinct.saturating_sub(1);
            *again.entry(status).or_default() += n.len().saturating_sub(distinct);
        }
    }
    let raw_again = format!(
        "{} firing, {} resolved",
        again.get("firing").unwrap_or(&0),
        again.get("resolved").unwrap_or(&0)
    );
    let worst = takeovers.iter().cloned().fold(0.0, f64::max);
    let med = median(&mut takeovers.clone());
    println!(
        "FIGURE ha takeover after kill -9 of the sender: median {med:.3} s, worst {worst:.3} s \
         over {KILLS} kills; notifications duplicated {dup}, lost {lost}; requests the killed \
         sender had in flight delivered again with the same Idempotency-Key: {raw_again}"
    );
    assert_eq!((dup, lost), (0, 0), "every notification exactly once");
    assert!(
        worst < 5.0,
        "takeover within the takeover time: {takeovers:?}"
    );
}

#[test]
fn silences_acks_and_notes_reach_every_replica_and_an_action_runs_once() {
    if !have_postgres() {
        return;
    }
    let c = Cluster::start();
    c.sender();
    // A silence posted to one replica mutes on the others within a second.
    let t0 = Instant::now();
    let (code, v) = post(
        c.srv(1),
        "/api/v2/silences",
        json!({
            "matchers": [{"name": "alertname", "value": "S", "isRegex": false, "isEqual": true}],
            "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms()),
            "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
            "createdBy": "ann",
            "comment": "maintenance"
        }),
    );
    assert_eq!(code, 200, "{v}");
    let id = v["silenceID"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(5),
        "the silence on every replica",
        || {
            (0..N)
                .all(|r| silence_ids(c.srv(r)).contains(&id))
                .then_some(())
        },
    );
    let took = t0.elapsed();
    println!(
        "FIGURE ha silence on every replica after {:.3} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    c.fire("S");
    c.fire("A");
    for r in 0..N {
        wait_until(Duration::from_secs(10), "S suppressed", || {
            (alert_state(c.srv(r), "S").as_deref() == Some("suppressed")).then_some(())
        });
    }
    c.hook.wait_for(Duration::from_secs(10), "A notified", |r| {
        !notified(r, "A", "firing").is_empty()
    });
    // An acknowledgement and a note made on replica 2 are on replica 0.
    let fp = fingerprint("A");
    for r in 0..N {
        wait_until(Duration::from_secs(10), "A known", || {
            alert_state(c.srv(r), "A").map(|_| ())
        });
    }
    let (code, v) = post(
        c.srv(2),
        &format!("/api/v1/alerts/{fp}/ack"),
        json!({"by": "ann", "comment": "on it"}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = post(
        c.srv(2),
        &format!("/api/v1/alerts/{fp}/note"),
        json!({"by": "bob", "text": "looking"}),
    );
    assert!(code == 200 || code == 201, "{code} {v}");
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(5),
        "the ack and note on replica 0",
        || {
            let d: Value = client()
                .get(c.srv(0).url(&format!("/api/v1/alerts/{fp}")))
                .send()
                .ok()?
                .json()
                .ok()?;
            (d["data"]["ack"]["by"] == "ann" && d["data"]["notes"].as_u64().unwrap_or(0) >= 1)
                .then_some(())
        },
    );
    println!(
        "FIGURE ha ack and note on another replica after {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    // An alert a client posts to one replica that does not send reaches the one that does.
    let sender = c.sender();
    let other = (sender + 1) % N;
    let (code, v) = post(
        c.srv(other),
        "/api/v2/alerts",
        json!([alert_json(
            "OnlyOne",
            "x",
            now_ms() - 1000,
            Some(now_ms() + 600_000)
        )]),
    );
    assert_eq!(code, 200, "{v}");
    c.hook
        .wait_for(Duration::from_secs(10), "OnlyOne notified", |r| {
            !notified(r, "OnlyOne", "firing").is_empty()
        });
    // A heartbeat ping received by one replica counts on all.
    let r = client()
        .post(c.srv(other).url("/api/v1/heartbeat/nightly-backup"))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for r in 0..N {
        wait_until(Duration::from_secs(5), "the ping on every replica", || {
            let v: Value = client()
                .get(c.srv(r).url("/api/v1/heartbeats"))
                .send()
                .ok()?
                .json()
                .ok()?;
            v.to_string().contains("nightly-backup").then_some(())
        });
    }
    // An action: three replicas see the alert, the policy's call is made once.
    c.fire("Fix");
    c.hook
        .wait_for(Duration::from_secs(30), "the action's call", |r| {
            r.iter().any(|q| q.path == "/restart/vm-Fix")
        });
    std::thread::sleep(Duration::from_secs(3));
    let calls = c
        .hook
        .requests()
        .iter()
        .filter(|q| q.path == "/restart/vm-Fix")
        .count();
    assert_eq!(calls, 1, "the action ran once");
    assert!(
        notified(&c.hook.requests(), "S", "firing").is_empty(),
        "the silenced alert was notified"
    );
}

#[test]
fn losing_postgres_stops_notifying_and_getting_it_back_catches_up() {
    if !have_postgres() {
        return;
    }
    let mut c = Cluster::start();
    c.sender();
    c.fire("Before");
    c.hook
        .wait_for(Duration::from_secs(30), "Before notified", |r| {
            !notified(r, "Before", "firing").is_empty()
        });
    c.pg.stop();
    c.fire("During");
    for r in 0..N {
        wait_until(Duration::from_secs(20), "tocsin_ha_database_up 0", || {
            (metric(c.srv(r), "tocsin_ha_database_up") == Some(0.0)).then_some(())
        });
    }
    // A silence made while the database is away is taken (and queued).
    let (code, v) = post(
        c.srv(1),
        "/api/v2/silences",
        json!({
            "matchers": [{"name": "alertname", "value": "Later", "isRegex": false, "isEqual": true}],
            "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms()),
            "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
            "createdBy": "ann",
            "comment": "queued"
        }),
    );
    assert_eq!(code, 200, "{v}");
    let id = v["silenceID"].as_str().unwrap().to_string();
    assert!(metric(c.srv(1), "tocsin_ha_ops_queued").unwrap_or(0.0) >= 1.0);
    // The queue is kept in state.db: a crash of that replica while the database is away loses
    // nothing of it.
    c.kill(1);
    c.restart(1);
    assert!(metric(c.srv(1), "tocsin_ha_ops_queued").unwrap_or(0.0) >= 1.0);
    wait_until(
        Duration::from_secs(40),
        "TocsinHADatabaseUnreachable",
        || alert_state(c.srv(0), "TocsinHADatabaseUnreachable").map(|_| ()),
    );
    assert!(
        notified(&c.hook.requests(), "During", "firing").is_empty(),
        "nobody notifies while the database is away (fallback: none)"
    );
    c.pg.start_again();
    c.hook
        .wait_for(Duration::from_secs(30), "During notified once back", |r| {
            !notified(r, "During", "firing").is_empty()
        });
    wait_until(
        Duration::from_secs(10),
        "the queued silence everywhere",
        || {
            (0..N)
                .all(|r| silence_ids(c.srv(r)).contains(&id))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let reqs = c.hook.requests();
    for name in ["Before", "During"] {
        assert_eq!(
            ids(&notified(&reqs, name, "firing")).len(),
            1,
            "{name} notified once"
        );
    }
}

/// `fallback: notify`: with PostgreSQL gone, every replica notifies on its own (duplicates
/// instead of silence), and the replica that sends again once it is back does not repeat what
/// the shared log holds.
#[test]
fn fallback_notify_sends_without_the_database() {
    if !have_postgres() {
        return;
    }
    let mut c = Cluster::start_with("  fallback: notify\n");
    c.sender();
    c.pg.stop();
    for r in 0..N {
        wait_until(Duration::from_secs(20), "tocsin_ha_database_up 0", || {
            (metric(c.srv(r), "tocsin_ha_database_up") == Some(0.0)).then_some(())
        });
    }
    c.fire("Alone");
    let reqs = c
        .hook
        .wait_for(Duration::from_secs(20), "Alone from every replica", |r| {
            notified(r, "Alone", "firing").len() >= N
        });
    // The same news from each: one notification id.
    assert_eq!(ids(&notified(&reqs, "Alone", "firing")).len(), 1);
    c.pg.start_again();
    c.sender();
}

/// The sender's database sessions are cut (`pg_terminate_backend`, as a network cut between it
/// and PostgreSQL would), 5 times: another replica takes over and nothing is notified twice.
#[test]
fn a_sender_cut_from_the_database_hands_over() {
    if !have_postgres() {
        return;
    }
    let c = Cluster::start();
    for i in 0..5 {
        let before = c.sender();
        c.pg.psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'tocsin-r{before}'"
            ),
        );
        let name = format!("Cut{i}");
        c.fire(&name);
        c.hook
            .wait_for(Duration::from_secs(30), "the notification", |r| {
                !notified(r, &name, "firing").is_empty()
            });
    }
    std::thread::sleep(Duration::from_secs(3));
    let reqs = c.hook.requests();
    for i in 0..5 {
        let name = format!("Cut{i}");
        let n = notified(&reqs, &name, "firing");
        assert_eq!(ids(&n).len(), 1, "{name}");
        // Nothing was in flight when the sessions were cut: not even a repeat with the same id.
        assert_eq!(n.len(), 1, "{name}");
    }
}
