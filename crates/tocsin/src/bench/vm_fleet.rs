//! `tocsin bench fleet`: a simulated fleet of Compute Engine VMs for the reactive-fleet example
//! (`examples/reactive-fleet`). Every interval each live VM pushes, as Cloud Monitoring's
//! `CreateTimeSeries` JSON to Tocsin's `POST /v3/projects/{project}/timeSeries`, its
//! `uptime_total`, `cpu_utilization` and one `processes_running{process}` per running
//! process, labelled `project_id`, `zone`, `instance_id` (resource labels of `gce_instance`)
//! and `instance_name`. Chosen VMs misbehave: CPU pegged at 99 %, antivirus not running, or an
//! unauthorized-access count pushed as a custom metric.
//!
//! A VM deleted at the Compute API stops reporting, as a real one does: with `--compute-url`
//! the simulator lists each zone's instances (`instances.list`) every round and silences the
//! VMs that are no longer there. The simulator never deletes anything itself.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

#[derive(clap::Args, Debug, Clone)]
pub struct FleetArgs {
    /// Tocsin's base URL, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    url: String,
    /// The project every VM belongs to (also the project in the push path).
    #[arg(long, default_value = "fleet-demo")]
    project: String,
    /// Zones, comma separated; VM i lives in zone i mod the number of zones.
    #[arg(long, default_value = "europe-west1-b,europe-west1-c,us-central1-a")]
    zones: String,
    /// Number of VMs; VM i is named vm-NNNNN (i zero-padded to 5 digits).
    #[arg(long, default_value_t = 500)]
    vms: usize,
    /// How often each VM reports, e.g. 1s, 10s, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_dur)]
    interval: Duration,
    /// VMs (indexes like 0-9,15) whose CPU is pegged at 99 %.
    #[arg(long, default_value = "")]
    cpu_high: String,
    /// VMs whose antivirus process is not running.
    #[arg(long, default_value = "")]
    no_antivirus: String,
    /// VMs that report unauthorized access attempts.
    #[arg(long, default_value = "")]
    unauthorized: String,
    /// VMs that booted when the simulator started (the others have been up for an hour).
    #[arg(long, default_value = "")]
    young: String,
    /// Base URL of Compute Engine (https://compute.googleapis.com, or a fake); without it no
    /// VM ever stops reporting.
    #[arg(long)]
    compute_url: Option<String>,
    /// Bearer token for the Compute API calls (e.g. `gcloud auth print-access-token`).
    #[arg(long, env = "TOCSIN_FLEET_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    /// Stop after this many rounds (default: run until interrupted).
    #[arg(long)]
    rounds: Option<u64>,
    /// VMs per push request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    let ms = tocsin_model::duration::parse_duration_ms(s).map_err(|e| e.to_string())?;
    if ms <= 0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// `0-9,15,20-21` as a set of indexes below `n`.
pub fn parse_indexes(flag: &str, s: &str, n: usize) -> anyhow::Result<HashSet<usize>> {
    let mut out = HashSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (a, b): (usize, usize) = (
            a.parse()
                .with_context(|| format!("--{flag}: {part:?} is not an index or a range"))?,
            b.parse()
                .with_context(|| format!("--{flag}: {part:?} is not an index or a range"))?,
        );
        if a > b || b >= n {
            bail!("--{flag}: {part:?} is outside 0-{}", n.saturating_sub(1));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// One simulated VM.
#[derive(Debug, Clone)]
pub struct Vm {
    pub name: String,
    pub id: String,
    pub zone: String,
    /// Seconds it had been up when the simulator started.
    pub up_at_start: f64,
    pub cpu_high: bool,
    pub antivirus: bool,
    pub unauthorized: bool,
    pub alive: bool,
}

/// The name of VM `i`.
pub fn vm_name(i: usize) -> String {
    format!("vm-{i:05}")
}

/// The numeric instance id of VM `i` (Compute Engine ids are 19-digit numbers).
pub fn vm_id(i: usize) -> String {
    format!("{}", 4_000_000_000_000_000_000u64 + i as u64)
}

fn fleet(a: &FleetArgs) -> anyhow::Result<Vec<Vm>> {
    let zones: Vec<&str> = a
        .zones
        .split(',')
        .map(str::trim)
        .filter(|z| !z.is_empty())
        .collect();
    if zones.is_empty() {
        bail!("--zones: at least one zone is needed");
    }
    if a.vms == 0 || a.batch == 0 {
        bail!("--vms and --batch must be at least 1");
    }
    let cpu = parse_indexes("cpu-high", &a.cpu_high, a.vms)?;
    let av = parse_indexes("no-antivirus", &a.no_antivirus, a.vms)?;
    let ua = parse_indexes("unauthorized", &a.unauthorized, a.vms)?;
    let young = parse_indexes("young", &a.young, a.vms)?;
    Ok((0..a.vms)
        .map(|i| Vm {
            name: vm_name(i),
            id: vm_id(i),
            zone: zones[i % zones.len()].to_string(),
            up_at_start: if young.contains(&i) {
                0.0
            } else {
                3600.0 + i as f64
            },
            cpu_high: cpu.contains(&i),
            antivirus: !av.contains(&i),
            unauthorized: ua.contains(&i),
            alive: true,
        })
        .collect())
}

fn series(
    vm: &Vm,
    project: &str,
    metric: &str,
    labels: Value,
    kind: &str,
    value: Value,
    end: &str,
) -> Value {
    let mut ml = labels;
    ml["instance_name"] = json!(vm.name);
    json!({
        "metric": {"type": format!("custom.googleapis.com/{metric}"), "labels": ml},
        "resource": {"type": "gce_instance", "labels": {
            "project_id": project, "zone": vm.zone, "instance_id": vm.id}},
        "metricKind": kind,
        "points": [{"interval": {"endTime": end}, "value": value}],
    })
}

/// The time series one VM reports at `now_ms`, `up` seconds after its boot.
pub fn vm_series(vm: &Vm, project: &str, up: f64, now_ms: i64, round: u64) -> Vec<Value> {
    let end = tocsin_model::time::format_rfc3339_ms(now_ms);
    // Healthy CPU wanders between 5 % and 65 %, deterministically.
    let calm = 0.05
        + ((vm.id.len() as u64 * 7 + round * 13 + vm.name.as_bytes()[7] as u64) % 60) as f64
            / 100.0;
    let cpu = if vm.cpu_high { 0.99 } else { calm };
    let mut out = vec![
        series(
            vm,
            project,
            "uptime_total",
            json!({}),
            "CUMULATIVE",
            json!({"doubleValue": up}),
            &end,
        ),
        series(
            vm,
            project,
            "cpu_utilization",
            json!({}),
            "GAUGE",
            json!({"doubleValue": cpu}),
            &end,
        ),
        series(
            vm,
            project,
            "processes_running",
            json!({"process": "sshd"}),
            "GAUGE",
            json!({"int64Value": "1"}),
            &end,
        ),
    ];
    if vm.antivirus {
        out.push(series(
            vm,
            project,
            "processes_running",
            json!({"process": "antivirus"}),
            "GAUGE",
            json!({"int64Value": "1"}),
            &end,
        ));
    }
    if vm.unauthorized {
        out.push(series(
            vm,
            project,
            "security/unauthorized_access",
            json!({}),
            "GAUGE",
            json!({"int64Value": "3"}),
            &end,
        ));
    }
    out
}

/// Names of the instances that exist in `zone` per `instances.list` (all pages).
async fn list_zone(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    project: &str,
    zone: &str,
) -> anyhow::Result<HashSet<String>> {
    let mut names = HashSet::new();
    let mut page: Option<String> = None;
    loop {
        let mut req = http.get(format!(
            "{}/compute/v1/projects/{project}/zones/{zone}/instances",
            base.trim_end_matches('/')
        ));
        req = req.query(&[("maxResults", "500")]);
        if let Some(p) = &page {
            req = req.query(&[("pageToken", p.as_str())]);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.context("instances.list")?;
        let status = r.status();
        let body: Value = r.json().await.context("instances.list: body")?;
        if !status.is_success() {
            bail!("instances.list {project}/{zone}: {status}: {body}");
        }
        for it in body["items"].as_array().into_iter().flatten() {
            if let Some(n) = it["name"].as_str() {
                names.insert(n.to_string());
            }
        }
        match body["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => page = Some(t.to_string()),
            _ => return Ok(names),
        }
    }
}

pub fn run(a: FleetArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: FleetArgs) -> anyhow::Result<()> {
    let mut vms = fleet(&a)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()?;
    let push_url = format!(
        "{}/v3/projects/{}/timeSeries",
        a.url.trim_end_matches('/'),
        a.project
    );
    let zones: Vec<String> = {
        let mut z: Vec<String> = vms.iter().map(|v| v.zone.clone()).collect();
        z.sort();
        z.dedup();
        z
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(a.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    loop {
        tick.tick().await;
        if a.rounds.is_some_and(|r| round >= r) {
            return Ok(());
        }
        if let Some(base) = &a.compute_url {
            let mut existing = HashSet::new();
            let mut ok = true;
            for z in &zones {
                match list_zone(&http, base, a.access_token.as_deref(), &a.project, z).await {
                    Ok(n) => existing.extend(n.into_iter().map(|n| (z.clone(), n))),
                    Err(e) => {
                        // A failed listing kills no one: the next round asks again.
                        eprintln!("fleet: {e:#}");
                        ok = false;
                    }
                }
            }
            if ok {
                for vm in vms.iter_mut().filter(|v| v.alive) {
                    if !existing.contains(&(vm.zone.clone(), vm.name.clone())) {
                        vm.alive = false;
                        eprintln!(
                            "fleet: {} ({}) is gone; it stops reporting",
                            vm.name, vm.zone
                        );
                    }
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let up = started.elapsed().as_secs_f64();
        let live: Vec<&Vm> = vms.iter().filter(|v| v.alive).collect();
        let mut sends = Vec::new();
        for chunk in live.chunks(a.batch) {
            let ts: Vec<Value> = chunk
                .iter()
                .flat_map(|vm| vm_series(vm, &a.project, vm.up_at_start + up, now, round))
                .collect();
            let body = json!({"timeSeries": ts}).to_string();
            let req = http
                .post(&push_url)
                .header("Content-Type", "application/json")
                .body(body);
            sends.push(tokio::spawn(async move {
                let r = req.send().await?;
                let status = r.status();
                if !status.is_success() {
                    let t = r.text().await.unwrap_or_default();
                    bail!("push: {status}: {t}");
                }
                Ok(())
            }));
        }
        for s in sends {
            match s.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("fleet: {e:#}"),
                Err(e) => eprintln!("fleet: push task: {e}"),
            }
        }
        round += 1;
        eprintln!("fleet: round {round}: {} VMs reporting", live.len());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn index_lists() {
        let s = parse_indexes("x", "0-2, 7,9-9", 10).unwrap();
        let mut v: Vec<usize> = s.into_iter().collect();
        v.sort();
        assert_eq!(v, vec![0, 1, 2, 7, 9]);
        assert!(parse_indexes("x", "5-3", 10).is_err());
        assert!(parse_indexes("x", "10", 10)
            .unwrap_err()
            .to_string()
            .contains("outside 0-9"));
        assert!(parse_indexes("x", "a", 10).is_err());
        assert!(parse_indexes("x", "", 10).unwrap().is_empty());
    }

    #[test]
    fn a_vm_reports_what_its_faults_say() {
        let mut vm = Vm {
            name: vm_name(3),
            id: vm_id(3),
            zone: "z".into(),
            up_at_start: 0.0,
            cpu_high: true,
            antivirus: false,
            unauthorized: true,
            alive: true,
        };
        let s = vm_series(&vm, "p", 12.0, 0, 0);
        let types: Vec<&str> = s
            .iter()
            .map(|t| t["metric"]["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "custom.googleapis.com/uptime_total",
                "custom.googleapis.com/cpu_utilization",
                "custom.googleapis.com/processes_running",
                "custom.googleapis.com/security/unauthorized_access"
            ]
        );
        assert_eq!(s[1]["points"][0]["value"]["doubleValue"], 0.99);
        assert_eq!(
            s[0]["resource"]["labels"]["instance_id"],
            "4000000000000000003"
        );
        assert_eq!(s[0]["metric"]["labels"]["instance_name"], "vm-00003");
        vm.antivirus = true;
        vm.cpu_high = false;
        let s = vm_series(&vm, "p", 12.0, 0, 0);
        assert!(s[1]["points"][0]["value"]["doubleValue"].as_f64().unwrap() < 0.95);
        assert!(s
            .iter()
            .any(|t| t["metric"]["labels"]["process"] == "antivirus"));
    }
}
