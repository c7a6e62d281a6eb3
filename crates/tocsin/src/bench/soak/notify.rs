//! Alert lanes and the webhook receiver. Each lane runs episodes one after another: it sets
//! `soak_alert{lane, episode} = 1` (the rule `soak_alert > 0` fires), holds it until the firing
//! notification has arrived, sets it to 0 and holds that until the resolved notification has
//! arrived. Routing groups by `lane` and `episode`, so every group holds exactly one alert for
//! its whole life and is due exactly one firing and one resolved delivery; with
//! `repeat_interval` longer than the run, any further delivery of a group in a state it was
//! already delivered in is a duplicate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tocsin_collect::remote_write::WriteRequestBuilder;

use super::ledger::series_key;
use super::load::{now_ms, Cx, REMOTE_WRITE_HEADERS};

/// One webhook delivery, reduced to what the accounting needs.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub lane: String,
    pub episode: String,
    /// The payload's `status`: `firing` or `resolved`.
    pub status: String,
    /// Statuses of the alerts in it (one per group here).
    pub alerts: Vec<String>,
    pub at_ms: i64,
}

#[derive(Default)]
pub struct Inbox {
    /// Every delivery's body is appended here, one line each, when set.
    pub journal: Option<std::path::PathBuf>,
    pub deliveries: Mutex<Vec<Delivery>>,
    /// Bodies that were not a webhook payload of a lane's group.
    pub malformed: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inbox {
    pub fn count(&self, lane: &str, episode: &str, status: &str) -> usize {
        lock(&self.deliveries)
            .iter()
            .filter(|d| d.lane == lane && d.episode == episode && d.status == status)
            .count()
    }
    pub fn malformed_count(&self) -> usize {
        lock(&self.malformed).len()
    }
    pub fn all(&self) -> Vec<Delivery> {
        lock(&self.deliveries).clone()
    }
}

async fn hook(State(inbox): State<Arc<Inbox>>, body: axum::body::Bytes) -> &'static str {
    if let Some(p) = &inbox.journal {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{} {}", now_ms(), String::from_utf8_lossy(&body));
        }
    }
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            lock(&inbox.malformed).push(format!("not JSON ({e})"));
            return "";
        }
    };
    let gl = &v["groupLabels"];
    let (Some(lane), Some(episode), Some(status)) = (
        gl["lane"].as_str(),
        gl["episode"].as_str(),
        v["status"].as_str(),
    ) else {
        lock(&inbox.malformed).push(v.to_string());
        return "";
    };
    let alerts = v["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["status"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    lock(&inbox.deliveries).push(Delivery {
        lane: lane.into(),
        episode: episode.into(),
        status: status.into(),
        alerts,
        at_ms: now_ms(),
    });
    ""
}

/// Serves the webhook on a loopback port; returns its URL.
pub async fn serve_webhook(inbox: Arc<Inbox>) -> anyhow::Result<String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let app = Router::new().route("/hook", post(hook)).with_state(inbox);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(format!("http://{addr}/hook"))
}

/// What one episode saw, for the accounting.
#[derive(Debug, Clone)]
pub struct Episode {
    pub lane: String,
    pub episode: String,
    /// The alert was seen firing in `/api/v1/alerts` or its firing notification arrived.
    pub fired: bool,
    /// The value 0 was acknowledged after the alert fired.
    pub switched_off: bool,
    /// The firing (resolved) phase ended by timeout, not by the notification's arrival.
    pub firing_timed_out: bool,
    pub resolved_timed_out: bool,
    /// From the first 1 sent to the firing notification's arrival (or the timeout), and from
    /// the first 0 sent to the resolved one's.
    pub firing_wait_ms: u64,
    pub resolved_wait_ms: u64,
}

pub struct Lanes {
    pub episodes: Mutex<Vec<Episode>>,
    /// Set when the run is over: lanes finish the episode they are in and start no new one.
    pub drain: AtomicBool,
    /// Each lane's phase changes, one line each, for lining up slow phases with the kills.
    pub journal: Option<std::path::PathBuf>,
}

impl Lanes {
    fn note(&self, line: String) {
        if let Some(p) = &self.journal {
            use std::io::Write as _;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = writeln!(f, "{} {line}", now_ms());
            }
        }
    }
}

/// The finished episodes, taken once the lanes are done.
pub fn take_episodes(lanes: &Lanes) -> Vec<Episode> {
    std::mem::take(&mut *lock(&lanes.episodes))
}

/// Sends `soak_alert{lane, episode} = value`; records it in the ledger when acknowledged.
async fn set_switch(cx: &Cx, lane: &str, episode: &str, value: f64, last_t: &mut i64) -> bool {
    let t = now_ms().max(*last_t + 1);
    *last_t = t;
    let mut b = WriteRequestBuilder::new();
    b.add_series(
        [
            ("__name__", "soak_alert"),
            ("episode", episode),
            ("lane", lane),
        ],
        &[(t, value)],
    );
    let ok = cx
        .post(
            "/api/v1/write",
            "application/x-protobuf",
            REMOTE_WRITE_HEADERS,
            b.finish(),
            &cx.remote_write,
        )
        .await;
    if ok {
        cx.ledger.ack([(
            series_key("soak_alert", &[("episode", episode), ("lane", lane)]),
            t,
            value,
        )]);
    }
    ok
}

/// Whether `/api/v1/alerts` lists this episode's alert as firing.
async fn seen_firing(cx: &Cx, lane: &str, episode: &str) -> bool {
    let Ok(r) = cx
        .client
        .get(format!("{}/api/v1/alerts", cx.base))
        .send()
        .await
    else {
        return false;
    };
    let Ok(b) = r.bytes().await else { return false };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
        return false;
    };
    v["data"]["alerts"].as_array().is_some_and(|a| {
        a.iter().any(|x| {
            x["labels"]["lane"] == lane
                && x["labels"]["episode"] == episode
                && x["state"] == "firing"
        })
    })
}

pub async fn lane(
    cx: Arc<Cx>,
    inbox: Arc<Inbox>,
    lanes: Arc<Lanes>,
    lane: usize,
    tick: Duration,
    phase_timeout: Duration,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let lane = lane.to_string();
    let mut last_t = 0i64;
    let mut n = 0u64;
    while !lanes.drain.load(Ordering::Relaxed) {
        let episode = n.to_string();
        n += 1;
        let mut ep = Episode {
            lane: lane.clone(),
            episode: episode.clone(),
            fired: false,
            switched_off: false,
            firing_timed_out: false,
            resolved_timed_out: false,
            firing_wait_ms: 0,
            resolved_wait_ms: 0,
        };
        lanes.note(format!("lane {lane} episode {episode} on"));
        // On until the firing notification arrives; the value is re-sent every tick so it never
        // goes stale, and across restarts.
        let t0 = Instant::now();
        loop {
            set_switch(&cx, &lane, &episode, 1.0, &mut last_t).await;
            if !ep.fired && seen_firing(&cx, &lane, &episode).await {
                ep.fired = true;
            }
            if inbox.count(&lane, &episode, "firing") > 0 {
                ep.fired = true;
                break;
            }
            if t0.elapsed() > phase_timeout {
                ep.firing_timed_out = true;
                break;
            }
            tokio::time::sleep(tick).await;
        }
        ep.firing_wait_ms = t0.elapsed().as_millis() as u64;
        lanes.note(format!(
            "lane {lane} episode {episode} off (firing after {} ms, timed out {})",
            ep.firing_wait_ms, ep.firing_timed_out
        ));
        // Off until the resolved notification arrives.
        let t0 = Instant::now();
        loop {
            if set_switch(&cx, &lane, &episode, 0.0, &mut last_t).await {
                ep.switched_off = true;
            }
            if ep.switched_off && inbox.count(&lane, &episode, "resolved") > 0 {
                break;
            }
            if t0.elapsed() > phase_timeout {
                ep.resolved_timed_out = true;
                break;
            }
            tokio::time::sleep(tick).await;
        }
        ep.resolved_wait_ms = t0.elapsed().as_millis() as u64;
        lanes.note(format!(
            "lane {lane} episode {episode} done (resolved after {} ms, timed out {})",
            ep.resolved_wait_ms, ep.resolved_timed_out
        ));
        lock(&lanes.episodes).push(ep);
        // A pause of random length, so lanes drift apart and kills land at every phase.
        let pause = rng.gen_range(0..=tick.as_millis() as u64 * 4);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// The notification figures.
#[derive(Debug, Default, Clone)]
pub struct NotifyVerdict {
    pub episodes: u64,
    pub never_fired: u64,
    pub expected_firing: u64,
    pub expected_resolved: u64,
    pub delivered_firing: u64,
    pub delivered_resolved: u64,
    pub lost_firing: u64,
    pub lost_resolved: u64,
    pub duplicate_firing: u64,
    pub duplicate_resolved: u64,
    /// Deliveries for a group no lane ran, or with alerts whose status disagrees with the
    /// payload's.
    pub unexpected: u64,
    pub examples: Vec<String>,
}

impl NotifyVerdict {
    pub fn delivered(&self) -> u64 {
        self.delivered_firing + self.delivered_resolved
    }
    pub fn lost(&self) -> u64 {
        self.lost_firing + self.lost_resolved
    }
    pub fn duplicated(&self) -> u64 {
        self.duplicate_firing + self.duplicate_resolved
    }
}

/// Compares the deliveries with the episodes. `kills` are the SIGKILL times (ms), to say for
/// each duplicate how long after the first delivery the server was killed.
pub fn account(episodes: &[Episode], deliveries: &[Delivery], kills: &[i64]) -> NotifyVerdict {
    let mut v = NotifyVerdict::default();
    let mut by_group: HashMap<(&str, &str), Vec<&Delivery>> = HashMap::new();
    for d in deliveries {
        by_group
            .entry((d.lane.as_str(), d.episode.as_str()))
            .or_default()
            .push(d);
        if d.alerts.iter().any(|s| *s != d.status) {
            v.unexpected += 1;
            v.examples.push(format!(
                "lane {} episode {}: payload {} with alerts {:?}",
                d.lane, d.episode, d.status, d.alerts
            ));
        }
    }
    let mut known = std::collections::HashSet::new();
    for ep in episodes {
        v.episodes += 1;
        known.insert((ep.lane.as_str(), ep.episode.as_str()));
        let ds = by_group
            .get(&(ep.lane.as_str(), ep.episode.as_str()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if !ep.fired {
            v.never_fired += 1;
            if !ds.is_empty() {
                v.unexpected += ds.len() as u64;
            }
            continue;
        }
        v.expected_firing += 1;
        for status in ["firing", "resolved"] {
            let mine: Vec<&&Delivery> = ds.iter().filter(|d| d.status == status).collect();
            let firing = status == "firing";
            let n = mine.len() as u64;
            if firing {
                v.delivered_firing += n;
                v.duplicate_firing += n.saturating_sub(1);
            } else {
                v.delivered_resolved += n;
                v.duplicate_resolved += n.saturating_sub(1);
            }
            if mine.is_empty() && (firing || ep.switched_off) {
                if firing {
                    v.lost_firing += 1;
                } else {
                    v.lost_resolved += 1;
                }
                if v.examples.len() < 20 {
                    v.examples.push(format!(
                        "lane {} episode {}: no {status} delivery (timed out: firing {}, resolved {})",
                        ep.lane, ep.episode, ep.firing_timed_out, ep.resolved_timed_out
                    ));
                }
            }
            for d in mine.iter().skip(1) {
                if v.examples.len() < 20 {
                    let first = mine[0].at_ms;
                    let kill = kills
                        .iter()
                        .find(|k| **k >= first && **k <= d.at_ms)
                        .map(|k| format!("{} ms", k - first))
                        .unwrap_or_else(|| "none".into());
                    v.examples.push(format!(
                        "lane {} episode {}: {status} delivered again {} ms after the first; first kill after the first delivery: {kill}",
                        ep.lane, ep.episode, d.at_ms - first
                    ));
                }
            }
        }
        if ep.switched_off {
            v.expected_resolved += 1;
        }
    }
    for d in deliveries {
        if !known.contains(&(d.lane.as_str(), d.episode.as_str())) {
            v.unexpected += 1;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(e: &str, fired: bool) -> Episode {
        Episode {
            lane: "0".into(),
            episode: e.into(),
            fired,
            switched_off: true,
            firing_timed_out: false,
            resolved_timed_out: false,
            firing_wait_ms: 0,
            resolved_wait_ms: 0,
        }
    }
    fn d(e: &str, status: &str, at_ms: i64) -> Delivery {
        Delivery {
            lane: "0".into(),
            episode: e.into(),
            status: status.into(),
            alerts: vec![status.into()],
            at_ms,
        }
    }

    #[test]
    fn a_second_delivery_in_the_same_state_is_a_duplicate_and_a_missing_one_is_lost() {
        let eps = [ep("0", true), ep("1", true), ep("2", false)];
        let ds = [
            d("0", "firing", 10),
            d("0", "resolved", 20),
            d("1", "firing", 30),
            d("1", "firing", 50),
        ];
        let v = account(&eps, &ds, &[40]);
        assert_eq!(v.episodes, 3);
        assert_eq!(v.never_fired, 1);
        assert_eq!((v.expected_firing, v.expected_resolved), (2, 2));
        assert_eq!((v.delivered_firing, v.delivered_resolved), (3, 1));
        assert_eq!((v.lost_firing, v.lost_resolved), (0, 1));
        assert_eq!((v.duplicate_firing, v.duplicate_resolved), (1, 0));
        assert_eq!(v.unexpected, 0);
        assert!(
            v.examples.iter().any(|e| e.contains("10 ms")),
            "{:?}",
            v.examples
        );
    }
}
