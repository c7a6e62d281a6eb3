//! `tocsin actions backtest`: replays the alert history kept in a data directory's state.db
//! through the routes and action policies of a config, and prints what each policy would have
//! done and what its guards would have stopped (see `tocsin_actions::backtest`). Fleet sizes and
//! target ages are asked of a running server's query API (`--server`) at each decision time.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use tocsin_actions::backtest::{summary, Backtest, Decision};
use tocsin_alerts::state::StateDb;
use tocsin_alerts::store::{AlertStore, HistoryQuery};
use tocsin_model::Labels;

#[derive(Args)]
pub struct BacktestArgs {
    /// tocsin.yml with the `actions:` policies and the `alertmanager:` routes to try.
    #[arg(long)]
    config: PathBuf,
    /// Data directory whose state.db holds the alert history (and silences).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Start of the replay: RFC 3339, unix seconds, or `now-7d`.
    #[arg(long)]
    from: String,
    /// End of the replay (same forms); default now.
    #[arg(long, default_value = "now")]
    to: String,
    /// A server to ask for fleet sizes and target ages (guards max_fraction and min_age).
    #[arg(long)]
    server: Option<String>,
    /// Bearer token file for --server.
    #[arg(long)]
    bearer_token_file: Option<PathBuf>,
    /// Output: `table` or `json`.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339, unix seconds, `now`, or `now-<duration>`.
pub fn parse_time(s: &str, now: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(d) = s.strip_prefix("now-") {
        let ms = tocsin_model::duration::parse_duration_ms(d)
            .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
        return Ok(now - ms);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0) as i64);
    }
    tocsin_model::time::parse_rfc3339_ms(s)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a time (RFC 3339, unix seconds, now, now-7d)"))
}

/// Instant queries against a server's `/api/v1/query`.
struct RemoteQuery {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    rt: tokio::runtime::Handle,
}

impl tocsin_actions::Query for RemoteQuery {
    fn instant(&self, expr: &str, at_ms: i64) -> Result<Vec<(Labels, f64)>, String> {
        let mut req = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[
                ("query", expr.to_string()),
                ("time", format!("{:.3}", at_ms as f64 / 1000.0)),
            ]);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let body: serde_json::Value = self
            .rt
            .block_on(async {
                let r = req.send().await?;
                r.json::<serde_json::Value>().await
            })
            .map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(body["error"].as_str().unwrap_or("query failed").to_string());
        }
        let data = &body["data"];
        let num = |v: &serde_json::Value| -> f64 {
            v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
        };
        match data["resultType"].as_str() {
            Some("scalar") => Ok(vec![(Labels::empty(), num(&data["result"][1]))]),
            Some("vector") => Ok(data["result"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            let pairs: Vec<(String, String)> = s["metric"]
                                .as_object()
                                .map(|m| {
                                    m.iter()
                                        .map(|(k, v)| {
                                            (k.clone(), v.as_str().unwrap_or("").to_string())
                                        })
                                        .collect()
                                })
                                .unwrap_or_default();
                            let refs: Vec<(&str, &str)> = pairs
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str()))
                                .collect();
                            (Labels::from_pairs(&refs), num(&s["value"][1]))
                        })
                        .collect()
                })
                .unwrap_or_default()),
            other => Err(format!(
                "the expression gave a {other:?}, not a vector or scalar"
            )),
        }
    }
}

pub async fn run(a: BacktestArgs) -> anyhow::Result<()> {
    let now = now_ms();
    let from = parse_time(&a.from, now).context("--from")?;
    let to = parse_time(&a.to, now).context("--to")?;
    if from >= to {
        bail!("--from must be before --to");
    }
    let cfg = tocsin_server::Config::load_file(&a.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if cfg.actions.policies.is_empty() {
        bail!(
            "{}: no policies in the actions: section",
            a.config.display()
        );
    }
    let path = a.data_dir.join("state.db");
    if !path.exists() {
        bail!(
            "{}: no state.db here (is --data-dir the server's data directory?)",
            path.display()
        );
    }
    let db = StateDb::open(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = AlertStore::new(Some(db.clone()), 300_000).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Alerts that started up to a day before the window may be decided within it.
    let history = store
        .history_query(&HistoryQuery {
            start_ms: from - 86_400_000,
            end_ms: to,
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock: Arc<dyn tocsin_model::Clock> = Arc::new(tocsin_model::SystemClock);
    let silences = tocsin_alerts::silence::Silences::new(Some(db), clock)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = match &a.bearer_token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let remote = a.server.as_ref().map(|u| RemoteQuery {
        client: reqwest::Client::new(),
        url: u.trim_end_matches('/').to_string(),
        token,
        rt: tokio::runtime::Handle::current(),
    });
    let am = cfg.am.clone();
    let actions = cfg.actions.clone();
    let decisions: Vec<Decision> = tokio::task::spawn_blocking(move || {
        Backtest {
            am: &am,
            actions: &actions,
            silences: Some(&silences),
            query: remote.as_ref().map(|r| r as &dyn tocsin_actions::Query),
            from_ms: from,
            to_ms: to,
        }
        .run(&history)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "decisions": decisions,
                "summary": summary(&decisions)
                    .into_iter()
                    .map(|(p, c)| (p, c.into_iter().collect::<std::collections::BTreeMap<_, _>>()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            }))?
        );
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<18} {:<24} {:<22} REASON",
        "TIME", "POLICY", "ALERT", "TARGET", "DECISION"
    );
    for d in &decisions {
        let what = if d.guard.is_empty() {
            d.outcome.clone()
        } else {
            format!("{} ({})", d.outcome, d.guard)
        };
        println!(
            "{:<24} {:<20} {:<18} {:<24} {:<22} {}",
            tocsin_model::time::format_rfc3339_ms(d.at_ms),
            d.policy,
            d.alertname,
            d.target,
            what,
            d.reason
        );
    }
    println!();
    for (p, counts) in summary(&decisions) {
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("{p}: {}", parts.join(", "));
    }
    if decisions.is_empty() {
        println!("no alert in the history reached an action policy between --from and --to");
    }
    Ok(())
}
