#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Alerta compatibility with the real `alerta` command-line tool from PyPI (scripts/test puts it
//! in `target/alerta-venv`; `TOCSIN_ALERTA_CLI` names another): it sends, queries, acknowledges,
//! closes and sends heartbeats against Tocsin, and Tocsin's own API sees the result: the alert
//! in `/api/v2/alerts` with the mapped labels, its acknowledgement in `/api/v1/alerts/{fp}`,
//! closed alerts resolved, a late heartbeat as a `HeartbeatMissing` alert (also after a
//! restart). With a web configuration the CLI's API key (`Authorization: Key`)
//! is a bearer token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tocsin_testkit::{client, get_json, wait_until, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// The CLI, or `None` (after saying so loudly) when it is not installed and not required.
fn cli() -> Option<PathBuf> {
    let path = match std::env::var_os("TOCSIN_ALERTA_CLI") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/alerta-venv/bin/alerta"),
    };
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!(
            "{} is not installed (scripts/test installs it)",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: the alerta CLI is not at {}; scripts/test installs it \
         (python3 -m venv target/alerta-venv && target/alerta-venv/bin/pip install alerta)",
        path.display()
    );
    None
}

struct Alerta {
    cli: PathBuf,
    endpoint: String,
    home: tempfile::TempDir,
    key: Option<String>,
}

impl Alerta {
    fn new(cli: PathBuf, srv: &TestServer) -> Alerta {
        Alerta {
            cli,
            endpoint: srv.url("/api"),
            home: tempfile::tempdir().unwrap(),
            key: None,
        }
    }

    /// Runs `alerta ARGS`: exit success, stdout, stderr.
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut c = Command::new(&self.cli);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("ALERTA_ENDPOINT", &self.endpoint)
            .env("ALERTA_CONF_FILE", self.home.path().join("none.conf"))
            .env("LC_ALL", "C.UTF-8");
        if let Some(k) = &self.key {
            c.env("ALERTA_API_KEY", k);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "alerta {args:?} failed:\n{out}\n{err}");
        out
    }

    fn query_json(&self, filter: &str) -> Vec<Value> {
        let out = self.ok(&["--json", "query", "-f", filter]);
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}"))
            .as_array()
            .cloned()
            .unwrap()
    }
}

/// Tocsin's own view: active alerts with `alertname`.
fn active(srv: &TestServer, alertname: &str) -> Vec<Value> {
    get_json(
        srv,
        &format!("/api/v2/alerts?filter=alertname%3D%22{alertname}%22"),
    )
    .as_array()
    .cloned()
    .unwrap_or_default()
}

#[test]
fn the_alerta_cli_sends_queries_acks_closes_and_heartbeats() {
    let Some(cli) = cli() else { return };
    let srv = TestServer::start(bin(), &[]);
    let a = Alerta::new(cli, &srv);

    let out = a.ok(&["version"]);
    assert!(out.contains("alerta tocsin"), "{out}");

    // send
    let out = a.ok(&[
        "send",
        "-r",
        "web01",
        "-e",
        "NodeDown",
        "-E",
        "Production",
        "-s",
        "major",
        "-S",
        "Web",
        "-g",
        "Infra",
        "-v",
        "100%",
        "-t",
        "web01 is down",
        "-T",
        "dc1",
        "-A",
        "region=EU",
        "-O",
        "tocsin-test",
        "--type",
        "exceptionAlert",
        "--timeout",
        "3600",
    ]);
    let id = out.split_whitespace().next().unwrap().to_string();
    assert_eq!(id.len(), 36, "{out}");
    assert!(out.contains("-> major"), "{out}");

    let v = active(&srv, "NodeDown");
    assert_eq!(v.len(), 1, "{v:?}");
    for (k, want) in [
        ("alertname", "NodeDown"),
        ("resource", "web01"),
        ("environment", "Production"),
        ("severity", "major"),
        ("service", "Web"),
        ("group", "Infra"),
        ("alerta_id", id.as_str()),
    ] {
        assert_eq!(v[0]["labels"][k], want, "label {k}: {}", v[0]);
    }
    for (k, want) in [
        ("summary", "web01 is down"),
        ("value", "100%"),
        ("origin", "tocsin-test"),
        ("tags", "dc1"),
        ("attribute_region", "EU"),
        ("timeout", "3600"),
    ] {
        assert_eq!(v[0]["annotations"][k], want, "annotation {k}: {}", v[0]);
    }

    // A duplicate counts, the id stays.
    let out = a.ok(&[
        "send",
        "-r",
        "web01",
        "-e",
        "NodeDown",
        "-E",
        "Production",
        "-s",
        "major",
        "-S",
        "Web",
        "-g",
        "Infra",
        "--timeout",
        "3600",
    ]);
    assert!(
        out.starts_with(&id) && out.contains("1 duplicates"),
        "{out}"
    );

    // query, as JSON and as the table (which parses every alert)
    let q = a.query_json("resource=web01");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["id"], id.as_str());
    assert_eq!(q[0]["status"], "open");
    let table = a.ok(&["query"]);
    assert!(
        table.contains("web01") && table.contains(&id[..8]),
        "{table}"
    );
    let table = a.ok(&["query", "-q", "resource:web01 AND severity:major"]);
    assert!(table.contains(&id[..8]), "{table}");

    // ack: the alert manager's acknowledgement, seen in Tocsin's own API; unack takes it back.
    a.ok(&["ack", "-i", &id, "--text", "looking"]);
    assert_eq!(a.query_json("resource=web01")[0]["status"], "ack");
    let fp = active(&srv, "NodeDown")[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = get_json(&srv, &format!("/api/v1/alerts/{fp}"));
    assert_eq!(detail["data"]["ack"]["comment"], "looking", "{detail}");
    a.ok(&["unack", "-i", &id]);
    assert_eq!(a.query_json("resource=web01")[0]["status"], "open");
    let detail = get_json(&srv, &format!("/api/v1/alerts/{fp}"));
    assert!(detail["data"]["ack"].is_null(), "{detail}");
    a.ok(&["shelve", "-i", &id]);
    assert_eq!(a.query_json("resource=web01")[0]["status"], "shelved");
    a.ok(&["unshelve", "-i", &id]);
    a.ok(&["ack", "-i", &id]);

    // close (by the short id the CLI prints) resolves the alert in the alert manager.
    a.ok(&["close", "-i", &id[..8]]);
    assert!(active(&srv, "NodeDown").is_empty());
    let q = a.query_json("resource=web01");
    assert_eq!(q[0]["status"], "closed", "{q:?}");

    // A correlated clear resolves what the first event fired.
    a.ok(&[
        "send",
        "-r",
        "db01",
        "-e",
        "DbDown",
        "-E",
        "Production",
        "-s",
        "critical",
        "-C",
        "DbDown",
        "-C",
        "DbUp",
    ]);
    assert_eq!(active(&srv, "DbDown").len(), 1);
    a.ok(&[
        "send",
        "-r",
        "db01",
        "-e",
        "DbUp",
        "-E",
        "Production",
        "-s",
        "normal",
        "-C",
        "DbDown",
        "-C",
        "DbUp",
    ]);
    assert!(active(&srv, "DbDown").is_empty());
    assert!(active(&srv, "DbUp").is_empty());

    // heartbeat: late after its timeout, it fires HeartbeatMissing with its severity.
    let out = a.ok(&[
        "heartbeat",
        "-O",
        "cron/host1",
        "--timeout",
        "2",
        "-s",
        "critical",
        "-E",
        "Production",
        "-T",
        "nightly",
    ]);
    assert_eq!(out.trim().len(), 36, "{out}");
    let list = a.ok(&["heartbeats"]);
    assert!(
        list.contains("cron/host1") && list.contains("nightly"),
        "{list}"
    );
    let missing = wait_until(Duration::from_secs(20), "HeartbeatMissing", || {
        active(&srv, "HeartbeatMissing").into_iter().next()
    });
    assert_eq!(missing["labels"]["heartbeat"], "cron_host1");
    assert_eq!(missing["labels"]["severity"], "critical");
    assert_eq!(missing["labels"]["environment"], "Production");
    let list = a.ok(&["--json", "heartbeats"]);
    assert!(list.contains("\"expired\""), "{list}");
    // The next heartbeat resolves it.
    a.ok(&["heartbeat", "-O", "cron/host1", "--timeout", "60"]);
    wait_until(Duration::from_secs(20), "HeartbeatMissing resolved", || {
        active(&srv, "HeartbeatMissing").is_empty().then_some(())
    });
}

#[test]
fn the_cli_api_key_is_a_bearer_token_of_the_web_configuration() {
    let Some(cli) = cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alerta.key"), "alerta-key-1\n").unwrap();
    std::fs::write(dir.path().join("reader.key"), "reader-key-1\n").unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "bearer_tokens:\n  - name: alerta\n    token_file: alerta.key\n    roles: [read, alert]\n  - name: reader\n    token_file: reader.key\n    roles: [read]\n",
    )
    .unwrap();
    let srv = TestServer::start(bin(), &["--web.config.file", web.to_str().unwrap()]);
    let mut a = Alerta::new(cli, &srv);

    // No key: the client still reads /api/config, then the send is refused.
    let (ok, out, err) = a.run(&["send", "-r", "r1", "-e", "E1", "-s", "minor"]);
    assert!(!ok, "{out}{err}");
    // A key with the read role only: queries work, sends are forbidden.
    a.key = Some("reader-key-1".into());
    a.ok(&["query"]);
    let (ok, out, err) = a.run(&["send", "-r", "r1", "-e", "E1", "-s", "minor"]);
    assert!(!ok, "{out}{err}");
    a.key = Some("alerta-key-1".into());
    let out = a.ok(&["send", "-r", "r1", "-e", "E1", "-s", "minor"]);
    assert_eq!(out.split_whitespace().next().unwrap().len(), 36, "{out}");
    assert_eq!(a.query_json("resource=r1").len(), 1);
    // X-API-Key, as some Alerta integrations send it, works as well.
    let r = client()
        .get(srv.url("/api/alerts?resource=r1"))
        .header("X-API-Key", "alerta-key-1")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// A heartbeat's timeout from `alerta heartbeat` survives a restart: the sender dies with the
/// old process, and the new one still raises `HeartbeatMissing`, with the heartbeat's severity.
#[test]
fn an_alerta_heartbeat_still_alerts_after_a_restart() {
    let Some(cli) = cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = TestServer::start_on(bin(), &data, &[]);
    let a = Alerta::new(cli.clone(), &srv);
    a.ok(&[
        "heartbeat",
        "-O",
        "backup/db1",
        "--timeout",
        "3",
        "-s",
        "minor",
    ]);
    assert!(active(&srv, "HeartbeatMissing").is_empty());
    srv.stop();
    let srv = TestServer::start_on(bin(), &data, &[]);
    let missing = wait_until(
        Duration::from_secs(20),
        "HeartbeatMissing after restart",
        || active(&srv, "HeartbeatMissing").into_iter().next(),
    );
    assert_eq!(missing["labels"]["heartbeat"], "backup_db1");
    assert_eq!(missing["labels"]["severity"], "minor");
    let a = Alerta::new(cli, &srv);
    let list = a.ok(&["--json", "heartbeats"]);
    assert!(
        list.contains("\"expired\"") && list.contains("\"timeout\": 3"),
        "{list}"
    );
}
