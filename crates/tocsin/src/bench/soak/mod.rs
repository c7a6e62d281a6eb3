//! `tocsin bench soak`: the endurance run behind `bench/soak`. It runs the real server under
//! mixed load (remote write, line protocol, scraping of targets it serves itself, queries,
//! recording and alerting rules notifying a webhook it serves itself), kills it with SIGKILL at
//! random moments and restarts it on the same data directory, then checks that every
//! acknowledged sample reads back with its exact value and that every notification due arrived
//! exactly once.

mod ledger;
mod load;
mod notify;
mod server;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};

use load::{now_ms, Cx};
use notify::{Inbox, Lanes};
use server::Server;

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// The server binary (default: this executable).
    #[arg(long)]
    tocsin_bin: Option<PathBuf>,
    /// Work directory (config, data, server log); default: a new directory under /tmp.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Kill-and-restart cycles.
    #[arg(long, default_value_t = 100)]
    cycles: u64,
    /// Stop after this long even if cycles remain (e.g. `30m`); default: no limit.
    #[arg(long, value_parser = crate::parse_duration)]
    duration: Option<Duration>,
    /// Shortest uptime before a kill.
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    min_up: Duration,
    /// Longest uptime before a kill.
    #[arg(long, default_value = "12s", value_parser = crate::parse_duration)]
    max_up: Duration,
    /// Seed of every random choice (kill times, values).
    #[arg(long, default_value_t = 14)]
    seed: u64,
    /// Remote-write lanes (concurrent senders).
    #[arg(long, default_value_t = 4)]
    rw_lanes: usize,
    /// Series per remote-write lane (one sample each per request).
    #[arg(long, default_value_t = 25)]
    rw_series: usize,
    /// Line-protocol writers.
    #[arg(long, default_value_t = 2)]
    lp_writers: usize,
    /// Lines (hosts) per line-protocol request; three fields each.
    #[arg(long, default_value_t = 10)]
    lp_hosts: usize,
    /// Milliseconds between a writer's requests.
    #[arg(long, default_value_t = 200)]
    write_period_ms: u64,
    /// Scrape targets served by the soak.
    #[arg(long, default_value_t = 10)]
    targets: usize,
    /// Series per scrape target.
    #[arg(long, default_value_t = 200)]
    target_series: usize,
    /// Alert lanes (each runs fire/resolve episodes one after another).
    #[arg(long, default_value_t = 4)]
    alert_lanes: usize,
    /// `storage.block_range` of the server: short, so head cuts, compactions and WAL
    /// checkpoints happen (and get killed) during the run.
    #[arg(long, default_value = "2m")]
    block_range: String,
    /// The server's `--maintenance-interval`.
    #[arg(long, default_value = "10s")]
    maintenance_interval: String,
    /// Wait after the final restart before counting notifications, so a delivery repeated
    /// because of the restart (after group_wait) is seen.
    #[arg(long, default_value = "8s", value_parser = crate::parse_duration)]
    settle: Duration,
    /// Keep the work directory (kept anyway when something was lost).
    #[arg(long)]
    keep: bool,
}

const GROUP_WAIT: &str = "1s";
const GROUP_INTERVAL: &str = "2s";
/// Applies only to alerts received without an end: rules always send one, so here it is how long
/// an alert firing before a kill, put back at the start, waits to be re-sent before it resolves.
const RESOLVE_TIMEOUT: &str = "10s";

fn config(a: &SoakArgs, server_addr: &str, hook: &str, targets: &[String]) -> String {
    let targets = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 1s
storage:
  block_range: {block_range}
scrape_configs:
  - job_name: soak-targets
    static_configs:
      - targets: [{targets}]
  - job_name: tocsin
    static_configs:
      - targets: ["{server_addr}"]
rule_files: [rules.yml]
alertmanager:
  global:
    resolve_timeout: {RESOLVE_TIMEOUT}
  route:
    receiver: soak
    group_by: [lane, episode]
    group_wait: {GROUP_WAIT}
    group_interval: {GROUP_INTERVAL}
    repeat_interval: 24h
    routes:
      # The server's own self-monitoring alerts (Watchdog, ...) carry no lane: they go to a
      # receiver without integrations, so the webhook sees only the soak's episodes.
      - matchers: ['lane=""']
        receiver: self-monitoring
  receivers:
    - name: soak
      webhook_configs:
        - url: {hook}
          send_resolved: true
    - name: self-monitoring
"#,
        block_range = a.block_range,
    )
}

const RULES: &str = r#"groups:
  - name: soak-alerts
    interval: 1s
    rules:
      - alert: SoakEpisode
        expr: soak_alert > 0
        annotations:
          summary: "lane {{ $labels.lane }} episode {{ $labels.episode }}"
  - name: soak-recording
    interval: 2s
    rules:
      - record: lane:soak_rw:sum
        expr: sum by (lane) (soak_rw)
      - record: writer:soak_lp_i:rate1m
        expr: sum by (writer) (rate(soak_lp_i[1m]))
      - record: job:up:count
        expr: count by (job) (up)
"#;

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub fn run(a: SoakArgs) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(soak(a))
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("[soak] {msg}");
}

async fn soak(a: SoakArgs) -> anyhow::Result<std::process::ExitCode> {
    let bin = match &a.tocsin_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding this executable")?,
    };
    let work = match &a.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("tocsin-soak-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()?;

    let inbox = Arc::new(Inbox {
        journal: Some(work.join("deliveries.jsonl")),
        ..Default::default()
    });
    let hook = notify::serve_webhook(inbox.clone()).await?;
    let targets = crate::bench::targets::serve(a.targets, a.target_series).await?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    std::fs::write(work.join("tocsin.yml"), config(&a, &addr, &hook, &targets))?;
    std::fs::write(work.join("rules.yml"), RULES)?;
    let mut srv = Server::new(
        bin.clone(),
        work.join("tocsin.yml"),
        work.join("data"),
        addr.clone(),
        work.join("server.log"),
        a.maintenance_interval.clone(),
    );
    log(format!(
        "work dir {}, server {} on {addr}, {} cycles, uptime {:?}..{:?}",
        work.display(),
        bin.display(),
        a.cycles,
        a.min_up,
        a.max_up
    ));
    let first_ready = srv.start(&client).await?;
    let start_ms = now_ms();

    let cx = Arc::new(Cx {
        client: client.clone(),
        base: srv.url(""),
        ledger: Default::default(),
        stop: AtomicBool::new(false),
        remote_write: Default::default(),
        line_protocol: Default::default(),
        queries: Default::default(),
        first_refusal: Default::default(),
    });
    let lanes = Arc::new(Lanes {
        episodes: Default::default(),
        drain: AtomicBool::new(false),
        journal: Some(work.join("lanes.log")),
    });
    let period = Duration::from_millis(a.write_period_ms);
    let mut writers = Vec::new();
    for l in 0..a.rw_lanes {
        writers.push(tokio::spawn(load::remote_write_lane(
            cx.clone(),
            l,
            a.rw_series,
            period,
            a.seed * 1000 + l as u64,
        )));
    }
    for w in 0..a.lp_writers {
        writers.push(tokio::spawn(load::line_protocol_writer(
            cx.clone(),
            w,
            a.lp_hosts,
            period,
            a.seed * 2000 + w as u64,
        )));
    }
    writers.push(tokio::spawn(load::query_loop(
        cx.clone(),
        Duration::from_millis(300),
    )));
    let phase_timeout = Duration::from_secs(120);
    let mut lane_tasks = Vec::new();
    for l in 0..a.alert_lanes {
        lane_tasks.push(tokio::spawn(notify::lane(
            cx.clone(),
            inbox.clone(),
            lanes.clone(),
            l,
            Duration::from_millis(500),
            phase_timeout,
            a.seed * 3000 + l as u64,
        )));
    }

    // The kill cycles.
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let t_run = Instant::now();
    let mut kills = Vec::new();
    let mut restarts = Vec::new();
    let mut cycles = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    while cycles < a.cycles && a.duration.is_none_or(|d| t_run.elapsed() < d) {
        let up_ms = rng.gen_range(
            a.min_up.as_millis() as u64..=a.max_up.as_millis().max(a.min_up.as_millis()) as u64,
        );
        tokio::time::sleep(Duration::from_millis(up_ms)).await;
        srv.kill9().await?;
        kills.push(now_ms());
        cycles += 1;
        match srv.start(&client).await {
            Ok(d) => restarts.push(d),
            Err(e) => {
                failure = Some(e.context(format!("restart after kill {cycles}")));
                break;
            }
        }
        if cycles.is_multiple_of(10) {
            let (rw_ok, _, _) = cx.remote_write.get();
            log(format!(
                "cycle {cycles}: {} samples acknowledged, {rw_ok} remote writes, {} notifications, last restart {:?}",
                cx.ledger.count(),
                inbox.all().len(),
                restarts.last().copied().unwrap_or_default()
            ));
        }
    }
    if let Some(e) = failure {
        cx.stop.store(true, Ordering::Relaxed);
        lanes.drain.store(true, Ordering::Relaxed);
        print_log_tail(&srv.log);
        return Err(e);
    }

    // Let the lanes finish their episodes with the server up, then stop the load.
    log("cycles done; draining the alert lanes");
    lanes.drain.store(true, Ordering::Relaxed);
    for t in lane_tasks {
        let _ = tokio::time::timeout(phase_timeout * 3, t).await;
    }
    cx.stop.store(true, Ordering::Relaxed);
    for t in writers {
        let _ = t.await;
    }
    let end_ms = now_ms();
    // A last kill and restart: everything is read from what the restart recovers. The wait
    // after it gives a restart-induced re-send (group_wait, then a group_interval) time to show.
    srv.kill9().await?;
    kills.push(now_ms());
    let last_ready = srv.start(&client).await?;
    tokio::time::sleep(a.settle).await;

    let verdict = cx
        .ledger
        .verify(
            &client,
            &srv.url(""),
            "{__name__=~\"soak_rw|soak_lp_.+|soak_alert\"}",
            start_ms,
            end_ms + 1000,
        )
        .await?;
    let episodes = notify::take_episodes(&lanes);
    let nv = notify::account(&episodes, &inbox.all(), &kills);
    srv.stop().await?;

    let panics = std::fs::read_to_string(&srv.log)
        .map(|s| s.lines().filter(|l| l.contains("panicked")).count())
        .unwrap_or(0);
    let mut sorted = restarts.clone();
    sorted.sort();
    let pct = |p: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or_else(|| "-".into())
    };
    let (rw_ok, rw_failed, rw_refused) = cx.remote_write.get();
    let (lp_ok, lp_failed, lp_refused) = cx.line_protocol.get();
    let (q_ok, q_failed, q_refused) = cx.queries.get();
    println!("soak: {} ({})", bin.display(), work.display());
    println!(
        "run time                 {:.0} s",
        t_run.elapsed().as_secs_f64()
    );
    println!("kill -9 cycles           {cycles} (+1 before the read-back)");
    println!(
        "time to ready            first {:.2} s, after kills median {}, p90 {}, max {}, after the last kill {:.2} s",
        first_ready.as_secs_f64(),
        pct(0.5),
        pct(0.9),
        pct(1.0),
        last_ready.as_secs_f64()
    );
    println!("remote-write requests    {rw_ok} acknowledged, {rw_failed} unanswered, {rw_refused} refused");
    println!("line-protocol requests   {lp_ok} acknowledged, {lp_failed} unanswered, {lp_refused} refused");
    println!(
        "queries                  {q_ok} answered, {q_failed} unanswered, {q_refused} refused"
    );
    if let Ok(g) = cx.first_refusal.lock() {
        if let Some(r) = g.as_ref() {
            println!(
                "first refusal            {}",
                r.chars().take(200).collect::<String>()
            );
        }
    }
    println!("acknowledged samples     {}", verdict.acked);
    println!("recovered                {}", verdict.recovered);
    println!("lost                     {}", verdict.lost);
    println!("wrong value              {}", verdict.wrong_value);
    println!(
        "alert episodes           {} ({} never seen firing)",
        nv.episodes, nv.never_fired
    );
    println!(
        "notifications expected   {} ({} firing, {} resolved)",
        nv.expected_firing + nv.expected_resolved,
        nv.expected_firing,
        nv.expected_resolved
    );
    println!(
        "notifications delivered  {} ({} firing, {} resolved)",
        nv.delivered(),
        nv.delivered_firing,
        nv.delivered_resolved
    );
    println!(
        "notifications lost       {} ({} firing, {} resolved)",
        nv.lost(),
        nv.lost_firing,
        nv.lost_resolved
    );
    println!(
        "notifications duplicated {} ({} firing, {} resolved)",
        nv.duplicated(),
        nv.duplicate_firing,
        nv.duplicate_resolved
    );
    let malformed = inbox.malformed_count();
    println!(
        "unexpected deliveries    {} (+{malformed} bodies not a lane's webhook payload)",
        nv.unexpected
    );
    let waits = |f: fn(&notify::Episode) -> u64| {
        let mut w: Vec<u64> = episodes.iter().filter(|e| e.fired).map(f).collect();
        w.sort_unstable();
        let at = |p: f64| {
            w.get(((w.len() as f64 - 1.0) * p).round() as usize)
                .map_or_else(|| "-".into(), |v| format!("{:.1} s", *v as f64 / 1000.0))
        };
        format!("median {}, p90 {}, max {}", at(0.5), at(0.9), at(1.0))
    };
    println!(
        "firing notified after    {} (from the first 1 sent); {} phases timed out",
        waits(|e| e.firing_wait_ms),
        episodes.iter().filter(|e| e.firing_timed_out).count()
    );
    println!(
        "resolve notified after   {} (from the first 0 sent); {} phases timed out",
        waits(|e| e.resolved_wait_ms),
        episodes.iter().filter(|e| e.resolved_timed_out).count()
    );
    println!("server panics in log     {panics}");
    for e in verdict.examples.iter().chain(nv.examples.iter()) {
        println!("  {e}");
    }
    let bad = verdict.lost > 0
        || verdict.wrong_value > 0
        || nv.lost() > 0
        || nv.duplicated() > 0
        || nv.unexpected > 0
        || malformed > 0
        || panics > 0;
    if bad || a.keep || a.work_dir.is_some() {
        println!("kept {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(if bad {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn print_log_tail(log: &std::path::Path) {
    if let Ok(s) = std::fs::read_to_string(log) {
        let lines: Vec<&str> = s.lines().collect();
        for l in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("  | {l}");
        }
    }
}
