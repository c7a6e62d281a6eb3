//! `tocsin actions list|show|approve|deny|reset|policies`: the remediation actions API of a
//! running server (`/api/v1/actions...`), printed as tables for a person or, with `-o json`, as
//! the API's `data` verbatim. Credentials are given as files so they stay out of `ps` and shell
//! history; a server error exits non-zero with the server's message.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

#[derive(Subcommand)]
pub enum ActionsCmd {
    /// Executions, newest first.
    List(ListArgs),
    /// One execution with its audit trail.
    Show(IdArgs),
    /// Run an execution that waits for approval.
    Approve(DecideArgs),
    /// Drop an execution that waits for approval.
    Deny(DecideArgs),
    /// Clear a tripped policy, so that its actions run again.
    Reset(ResetArgs),
    /// Every policy with its mode, tripped state and guard counters.
    Policies(OutArgs),
    /// Replay the stored alert history through a config's policies: what would have run, when,
    /// and what the guards would have stopped.
    Backtest(crate::backtest_cmd::BacktestArgs),
}

#[derive(Args)]
pub struct Conn {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9090", env = "TOCSIN_SERVER")]
    server: String,
    /// Basic-auth user (with --password-file).
    #[arg(long, requires = "password_file", conflicts_with = "bearer_token_file")]
    user: Option<String>,
    /// File holding the basic-auth password.
    #[arg(long, requires = "user")]
    password_file: Option<PathBuf>,
    /// File holding a bearer token.
    #[arg(long)]
    bearer_token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an https server.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Args)]
pub struct OutArgs {
    #[command(flatten)]
    conn: Conn,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    out: OutArgs,
    #[arg(long)]
    policy: Option<String>,
    /// e.g. succeeded, failed, suppressed, pending_approval, dry_run.
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long)]
    target: Option<String>,
    /// Created at or after: RFC 3339 or Unix seconds.
    #[arg(long, allow_hyphen_values = true)]
    start: Option<String>,
    /// Created at or before: RFC 3339 or Unix seconds.
    #[arg(long, allow_hyphen_values = true)]
    end: Option<String>,
    /// Most executions to show (the server allows up to 10000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(Args)]
pub struct IdArgs {
    #[command(flatten)]
    out: OutArgs,
    /// The execution's id.
    id: i64,
}

#[derive(Args)]
pub struct DecideArgs {
    #[command(flatten)]
    out: OutArgs,
    /// The execution's id.
    id: i64,
    /// Why, for the audit.
    #[arg(long, default_value = "")]
    comment: String,
}

#[derive(Args)]
pub struct ResetArgs {
    #[command(flatten)]
    out: OutArgs,
    /// The policy's name.
    policy: String,
}

/// A configured connection to the server.
struct Client {
    base: String,
    http: reqwest::Client,
    auth: Auth,
}

enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

fn read_secret(p: &PathBuf) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

impl Client {
    fn new(c: &Conn) -> anyhow::Result<Client> {
        let mut b = reqwest::Client::builder();
        if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{}: not a PEM certificate", ca.display()))?,
            );
        }
        let auth = match (&c.user, &c.password_file, &c.bearer_token_file) {
            (Some(u), Some(p), _) => Auth::Basic(u.clone(), read_secret(p)?),
            (_, _, Some(t)) => Auth::Bearer(read_secret(t)?),
            _ => Auth::None,
        };
        Ok(Client {
            base: c.server.trim_end_matches('/').to_string(),
            http: b.build()?,
            auth,
        })
    }

    /// The `data` of a success envelope, or the server's error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        form: Option<&[(&str, String)]>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut r = self.http.request(method, &url).query(query);
        if let Some(f) = form {
            r = r.form(f);
        }
        r = match &self.auth {
            Auth::None => r,
            Auth::Basic(u, p) => r.basic_auth(u, Some(p)),
            Auth::Bearer(t) => r.bearer_auth(t),
        };
        let resp = r
            .send()
            .await
            .with_context(|| format!("requesting {url}"))?;
        let status = resp.status();
        let body = resp.text().await.context("reading the response")?;
        let v: Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(_) => bail!("{url}: HTTP {status}: {}", body.trim()),
        };
        if v["status"] != "success" {
            bail!(
                "{}: {}",
                v["errorType"].as_str().unwrap_or("error"),
                v["error"].as_str().unwrap_or(body.trim())
            );
        }
        Ok(v["data"].clone())
    }
}

pub fn run(cmd: ActionsCmd) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let ActionsCmd::Backtest(a) = cmd {
        rt.block_on(crate::backtest_cmd::run(a))?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    rt.block_on(run_async(cmd))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run_async(cmd: ActionsCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let (out, data, show): (&OutArgs, Value, fn(&Value) -> String) = match &cmd {
        ActionsCmd::List(a) => {
            let mut q = vec![("limit", a.limit.to_string())];
            for (k, v) in [
                ("policy", &a.policy),
                ("outcome", &a.outcome),
                ("target", &a.target),
                ("start", &a.start),
                ("end", &a.end),
            ] {
                if let Some(v) = v {
                    q.push((k, v.clone()));
                }
            }
            let c = Client::new(&a.out.conn)?;
            (
                &a.out,
                c.call(Method::GET, "/api/v1/actions", &q, None).await?,
                list_table,
            )
        }
        ActionsCmd::Show(a) => {
            let c = Client::new(&a.out.conn)?;
            let path = format!("/api/v1/actions/{}", a.id);
            (
                &a.out,
                c.call(Method::GET, &path, &[], None).await?,
                show_one,
            )
        }
        ActionsCmd::Approve(a) | ActionsCmd::Deny(a) => {
            let verb = if matches!(cmd, ActionsCmd::Approve(_)) {
                "approve"
            } else {
                "deny"
            };
            let c = Client::new(&a.out.conn)?;
            let path = format!("/api/v1/actions/{}/{verb}", a.id);
            let form = [("comment", a.comment.clone())];
            (
                &a.out,
                c.call(Method::POST, &path, &[], Some(&form)).await?,
                decided,
            )
        }
        ActionsCmd::Reset(a) => {
            let c = Client::new(&a.out.conn)?;
            let path = format!("/api/v1/actions/policies/{}/reset", url_segment(&a.policy));
            (
                &a.out,
                c.call(Method::POST, &path, &[], Some(&[])).await?,
                policy_reset,
            )
        }
        ActionsCmd::Policies(a) => {
            let c = Client::new(&a.conn)?;
            (
                a,
                c.call(Method::GET, "/api/v1/actions/policies", &[], None)
                    .await?,
                policies_table,
            )
        }
        ActionsCmd::Backtest(_) => anyhow::bail!("backtest runs on its own (see run)"),
    };
    match out.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&data)?),
        Output::Table => print!("{}", show(&data)),
    }
    Ok(())
}

/// A policy name as one path segment.
fn url_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A field as a table cell: strings bare, times (`*_at` in ms) in RFC 3339, null as `-`.
fn cell(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if key.ends_with("_at") || matches!(key, "at" | "since" | "time") => n
            .as_i64()
            .map(tocsin_model::time::format_rfc3339_millis)
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell; the last column is not padded.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<width$}  ", width = w[i]);
            }
        }
        out.push('\n');
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn short(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn list_table(data: &Value) -> String {
    let rows: Vec<Vec<String>> = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                cell(e, "id"),
                cell(e, "created_at"),
                cell(e, "policy"),
                cell(e, "target"),
                cell(e, "mode"),
                cell(e, "outcome"),
                cell(e, "guard"),
                short(cell(e, "detail"), 60),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no executions\n".into();
    }
    table(
        &[
            "ID", "CREATED", "POLICY", "TARGET", "MODE", "OUTCOME", "GUARD", "DETAIL",
        ],
        &rows,
    )
}

fn show_one(e: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(m) = e {
        for k in m.keys() {
            if matches!(k.as_str(), "events" | "request" | "labels" | "alert_labels") {
                continue;
            }
            let _ = writeln!(out, "{k}: {}", cell(e, k));
        }
        for key in ["labels", "alert_labels"] {
            if let Some(Value::Object(l)) = m.get(key) {
                let pairs: Vec<String> = l
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(&v.to_string())))
                    .collect();
                let _ = writeln!(out, "{key}: {{{}}}", pairs.join(", "));
            }
        }
        if let Some(r) = m.get("request").filter(|r| !r.is_null()) {
            let pretty = serde_json::to_string_pretty(r).unwrap_or_default();
            let _ = writeln!(out, "request:\n{}", indent(&pretty));
        }
        if let Some(Value::Array(ev)) = m.get("events") {
            let _ = writeln!(out, "events:");
            for ev in ev {
                out.push_str(&event_line(ev));
            }
        }
    }
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// One audit event: its time and type first, then its other fields as `key=value`.
fn event_line(ev: &Value) -> String {
    let Value::Object(m) = ev else {
        return format!("  {ev}\n");
    };
    let time_key = ["at", "time", "created_at"]
        .into_iter()
        .find(|k| m.contains_key(*k));
    let type_key = ["event", "type", "kind"]
        .into_iter()
        .find(|k| m.contains_key(*k));
    let mut line = String::from(" ");
    for k in [time_key, type_key].into_iter().flatten() {
        line.push(' ');
        line.push_str(&cell(ev, k));
    }
    for k in m.keys() {
        if Some(k.as_str()) == time_key || Some(k.as_str()) == type_key {
            continue;
        }
        let _ = write!(line, " {k}={}", cell(ev, k));
    }
    line.push('\n');
    line
}

fn decided(e: &Value) -> String {
    format!(
        "execution {}: {}\n",
        cell(e, "id"),
        match cell(e, "outcome").as_str() {
            "-" => cell(e, "status"),
            o => o.to_string(),
        }
    )
}

fn policy_reset(p: &Value) -> String {
    format!("policy {} reset\n", cell(p, "name"))
}

fn policies_table(data: &Value) -> String {
    let rows: Vec<Vec<String>> = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let tripped = match &p["tripped"] {
                Value::Null | Value::Bool(false) => "no".to_string(),
                t => {
                    let mut s = format!("by {}", cell(t, "guard"));
                    if !t["since"].is_null() {
                        let _ = write!(s, " since {}", cell(t, "since"));
                    }
                    if !t["reset_at"].is_null() {
                        let _ = write!(s, " until {}", cell(t, "reset_at"));
                    }
                    if !t["reason"].is_null() {
                        let _ = write!(s, ": {}", cell(t, "reason"));
                    }
                    s
                }
            };
            let counters = match &p["counters"] {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::Null => "-".into(),
                v => v.to_string(),
            };
            vec![
                cell(p, "name"),
                cell(p, "kind"),
                cell(p, "mode"),
                tripped,
                counters,
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no policies\n".into();
    }
    table(&["NAME", "KIND", "MODE", "TRIPPED", "COUNTERS"], &rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_is_a_table_with_times_and_dashes() {
        let t = list_table(&json!([
            {"id": 12, "created_at": 1_767_225_600_000i64, "policy": "delete-vm", "target": "vm-1",
             "mode": "auto", "outcome": "succeeded", "guard": null, "detail": "HTTP 200 OK"},
            {"id": 3, "created_at": 1_767_225_600_500i64, "policy": "p", "target": "",
             "mode": "dry_run", "outcome": "suppressed", "guard": "max_fraction", "detail": ""},
        ]));
        assert_eq!(
            t,
            "ID  CREATED                   POLICY     TARGET  MODE     OUTCOME     GUARD         DETAIL\n\
             12  2026-01-01T00:00:00.000Z  delete-vm  vm-1    auto     succeeded   -             HTTP 200 OK\n\
             3   2026-01-01T00:00:00.500Z  p          -       dry_run  suppressed  max_fraction  -\n"
        );
        assert_eq!(list_table(&json!([])), "no executions\n");
    }

    #[test]
    fn show_prints_fields_request_and_events() {
        let s = show_one(&json!({
            "id": 7, "policy": "p", "labels": {"instance_id": "4711"},
            "request": {"method": "POST"},
            "events": [{"at": 1_767_225_600_000i64, "event": "approved", "who": "alice"}],
        }));
        assert!(s.contains("id: 7\n"), "{s}");
        assert!(s.contains("labels: {instance_id=4711}\n"), "{s}");
        assert!(
            s.contains("request:\n  {\n    \"method\": \"POST\"\n  }\n"),
            "{s}"
        );
        assert!(
            s.contains("events:\n  2026-01-01T00:00:00.000Z approved who=alice\n"),
            "{s}"
        );
    }

    #[test]
    fn policies_show_tripped_state_and_counters() {
        let t = policies_table(&json!([
            {"name": "a", "kind": "http", "mode": "auto", "tripped": null, "counters": {"rate": 2}},
            {"name": "b", "kind": "exec", "mode": "approve",
             "tripped": {"guard": "rate", "reason": "5 in 1m", "since": 1_767_225_600_000i64}},
        ]));
        assert!(t.contains("a     http  auto     no"), "{t}");
        assert!(t.contains("rate=2"), "{t}");
        assert!(
            t.contains("by rate since 2026-01-01T00:00:00.000Z: 5 in 1m"),
            "{t}"
        );
    }

    #[test]
    fn policy_names_are_escaped_in_paths() {
        assert_eq!(url_segment("delete vm/x"), "delete%20vm%2Fx");
        assert_eq!(url_segment("ok-name_1.2"), "ok-name_1.2");
    }
}
