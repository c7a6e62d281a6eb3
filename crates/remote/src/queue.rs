//! One remote's queue: the WAL reader that names samples by their series (external labels and
//! `write_relabel_configs` applied once per series), routes them to shards by series, scales the
//! shards with the backlog, and saves the settled WAL position.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin_collect::relabel::RelabelConfig;
use tocsin_model::Labels;
use tocsin_tsdb::wal::{self, Record, RefSeries, WalPosition, WalTailer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::metrics::raise;
use crate::position;
use crate::shard::{self, Pending, ShardCx};

/// How often the reader looks for new WAL data once it has caught up.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the number of shards is reconsidered, and the settled position saved.
const RESHARD_INTERVAL: Duration = Duration::from_secs(10);
const SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// How often a new WAL checkpoint is looked for, to forget series the head dropped.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// A series as the reader knows it: its labels as sent (`None`: dropped by relabelling) and the
/// WAL segment that declared it.
type SeriesMap = HashMap<u64, (Option<Labels>, u64)>;

/// Forgets the series a checkpoint no longer holds (the head dropped them, so no sample will
/// name them again). Only series declared in segments the checkpoint covers are candidates; the
/// caller has read past the checkpoint, so none of their samples is still ahead of it.
pub fn gc_series(
    map: &mut SeriesMap,
    checkpoint: u64,
    live: &std::collections::HashSet<u64>,
) -> usize {
    let before = map.len();
    map.retain(|r, (_, seg)| *seg > checkpoint || live.contains(r));
    before - map.len()
}
/// How long shards may keep sending at shutdown before what they hold is abandoned (it is read
/// again from the WAL at the next start).
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

pub struct QueueSettings {
    pub name: String,
    pub url: String,
    pub wal_dir: PathBuf,
    /// `<data>/remote/<hash>`.
    pub dir: PathBuf,
    pub external_labels: Labels,
    pub relabel: Vec<RelabelConfig>,
    pub capacity: usize,
    pub min_shards: usize,
    pub max_shards: usize,
    pub shard: Arc<ShardCx>,
}

/// The running queue as its owner holds it.
pub struct QueueHandle {
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

/// Labels of a series as sent: external labels added where the series lacks them, then
/// relabelled; `None` when relabelling drops it.
pub fn series_labels(l: &Labels, external: &Labels, relabel: &[RelabelConfig]) -> Option<Labels> {
    let mut b = l.builder();
    for e in external.iter() {
        if l.get(&e.name).is_none() {
            b.set(&e.name, &e.value);
        }
    }
    if !relabel.is_empty() && !tocsin_collect::relabel::process(&mut b, relabel) {
        return None;
    }
    let out = b.build();
    (!out.is_empty()).then_some(out)
}

struct Shards {
    senders: Vec<mpsc::Sender<Pending>>,
    tasks: Vec<JoinHandle<()>>,
    hard_tx: watch::Sender<bool>,
}

fn start_shards(n: usize, capacity: usize, cx: &Arc<ShardCx>) -> Shards {
    let (hard_tx, hard_rx) = watch::channel(false);
    let mut senders = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel(capacity);
        senders.push(tx);
        tasks.push(tokio::spawn(shard::run(cx.clone(), rx, hard_rx.clone())));
    }
    cx.metrics.shards.store(n as u64, Ordering::Relaxed);
    Shards {
        senders,
        tasks,
        hard_tx,
    }
}

/// Closes the shards' queues and waits for them to send what they hold; after `deadline`
/// whatever is still unsent is abandoned.
async fn stop_shards(s: Shards, deadline: Option<Duration>) {
    drop(s.senders);
    let mut tasks = s.tasks;
    let all = async {
        for t in tasks.iter_mut() {
            let _ = t.await;
        }
    };
    match deadline {
        None => all.await,
        Some(d) => {
            if tokio::time::timeout(d, all).await.is_err() {
                let _ = s.hard_tx.send(true);
                for t in tasks {
                    let _ = t.await;
                }
            }
        }
    }
}

/// Prometheus-like shard calculation: the time one sample takes to send, times the rate samples
/// come in plus a share of the backlog (5% per second of it), kept within 30% of the current count
/// to avoid flapping, and within [min, max].
#[derive(Debug, Default)]
pub struct ShardCalc {
    in_rate: Option<f64>,
    last_in: u64,
    last_out: u64,
    last_secs: f64,
}

impl ShardCalc {
    /// `delay_s`: how far the highest sent timestamp trails the highest read one.
    pub fn desired(
        &mut self,
        elapsed_s: f64,
        samples_in: u64,
        samples_out: u64,
        send_secs: f64,
        delay_s: f64,
        current: usize,
    ) -> f64 {
        let din = samples_in.saturating_sub(self.last_in) as f64;
        let dout = samples_out.saturating_sub(self.last_out) as f64;
        let dsecs = (send_secs - self.last_secs).max(0.0);
        self.last_in = samples_in;
        self.last_out = samples_out;
        self.last_secs = send_secs;
        let rate = din / elapsed_s.max(1e-3);
        // Exponentially weighted, as Prometheus smooths its rates.
        let in_rate = match self.in_rate {
            None => rate,
            Some(prev) => prev * 0.8 + rate * 0.2,
        };
        self.in_rate = Some(in_rate);
        if dout <= 0.0 {
            return current as f64;
        }
        let per_sample = dsecs / dout;
        let backlog = delay_s.max(0.0) * in_rate;
        per_sample * (in_rate + 0.05 * backlog)
    }
}

/// Applies tolerance and bounds to a desired shard count.
pub fn next_shards(desired: f64, current: usize, min: usize, max: usize) -> usize {
    let lo = current as f64 * 0.7;
    let hi = current as f64 * 1.3;
    if desired >= lo && desired <= hi {
        return current;
    }
    (desired.ceil() as usize).clamp(min.max(1), max.max(1))
}

/// The queue's main loop; returns after `stop` and a final save of the settled position.
pub async fn run(
    s: QueueSettings,
    mut stop: watch::Receiver<bool>,
    predecessor: Option<JoinHandle<()>>,
) {
    // The queue this one replaces (a changed config) must have saved its position first.
    if let Some(p) = predecessor {
        let _ = p.await;
    }
    let m = s.shard.metrics.clone();
    let name = s.name.clone();
    let saved = match position::load(&s.dir) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(remote = %name, error = %e, "unreadable remote-write position; starting at the end of the WAL");
            None
        }
    };
    let wal_dir = s.wal_dir.clone();
    let ext = s.external_labels.clone();
    let relabel = s.relabel.clone();
    let init = tokio::task::spawn_blocking(move || {
        let until = match saved {
            Some(p) => p,
            None => wal::end_position(&wal_dir)?,
        };
        let mut map: SeriesMap = HashMap::new();
        // Declared "at the start position": conservative for the first collection.
        let at = wal::series_before(&wal_dir, until, |ss: Vec<RefSeries>| {
            for x in ss {
                map.insert(
                    x.r,
                    (series_labels(&x.labels, &ext, &relabel), until.segment),
                );
            }
        })?;
        Ok::<_, tocsin_tsdb::Error>((at, map))
    })
    .await;
    let (start, mut series) = match init {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::error!(remote = %name, error = %e, "remote write cannot read the WAL; the queue is not started");
            return;
        }
        Err(e) => {
            tracing::error!(remote = %name, error = %e, "remote write start-up failed");
            return;
        }
    };
    tracing::info!(remote = %name, url = %s.url, position = %start, resumed = saved.is_some(), "remote write queue started");
    if saved.is_none() {
        if let Err(e) = position::save(&s.dir, start, &name) {
            tracing::error!(remote = %name, error = %e, "saving the remote-write position failed");
        }
    }
    let tracker = s.shard.tracker.clone();
    tracker.reset(start);
    let mut tailer = Some(WalTailer::new(&s.wal_dir, start));
    let mut n_shards = s.min_shards.max(1);
    let mut shards = start_shards(n_shards, s.capacity, &s.shard);
    m.set_desired(n_shards as f64);
    let mut calc = ShardCalc::default();
    let mut last_reshard = Instant::now();
    let mut last_save = Instant::now();
    let mut saved_pos = start;
    let mut last_gc = Instant::now();
    let mut gc_done: Option<u64> = None;
    let save = |force: bool, saved_pos: &mut WalPosition, last_save: &mut Instant| {
        let p = tracker.settled();
        if p != *saved_pos && (force || last_save.elapsed() >= SAVE_INTERVAL) {
            match position::save(&s.dir, p, &name) {
                Ok(()) => *saved_pos = p,
                Err(e) => {
                    tracing::error!(remote = %name, error = %e, "saving the remote-write position failed")
                }
            }
            *last_save = Instant::now();
        }
    };
    'outer: loop {
        if *stop.borrow() {
            break;
        }
        let Some(mut t) = tailer.take() else { break };
        let polled = tokio::task::spawn_blocking(move || {
            let r = t.poll(16);
            (t, r)
        })
        .await;
        let batch = match polled {
            Ok((t, r)) => {
                tailer = Some(t);
                match r {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(remote = %name, error = %e, "reading the WAL failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.wait_for(|s| *s) => break,
                        }
                        continue;
                    }
                }
            }
            Err(e) => {
                tracing::error!(remote = %name, error = %e, "WAL reader task failed");
                break;
            }
        };
        for sk in &batch.skipped {
            m.wal_skips.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(remote = %name, from = %sk.from, to = %sk.to, reason = %sk.reason, "remote write skipped part of the WAL; samples in it are not sent");
        }
        for (rec, end) in batch.records {
            match rec {
                Record::Series(ss) => {
                    for x in ss {
                        let l = series_labels(&x.labels, &s.external_labels, &s.relabel);
                        series.insert(x.r, (l, end.segment));
                    }
                    tracker.push(end, 0);
                }
                Record::Tombstones(_) => {
                    tracker.push(end, 0);
                }
                Record::Samples(xs) => {
                    let mut out: Vec<Pending> = Vec::with_capacity(xs.len());
                    let mut dropped = 0u64;
                    let mut max_t = i64::MIN;
                    for x in xs {
                        max_t = max_t.max(x.t);
                        match series.get(&x.r) {
                            Some((Some(l), _)) => out.push(Pending {
                                r: x.r,
                                labels: l.clone(),
                                t: x.t,
                                v: x.v,
                                ticket: 0,
                            }),
                            _ => dropped += 1,
                        }
                    }
                    raise(&m.highest_read_ms, max_t);
                    m.samples_dropped.fetch_add(dropped, Ordering::Relaxed);
                    m.samples_in.fetch_add(out.len() as u64, Ordering::Relaxed);
                    m.samples_pending
                        .fetch_add(out.len() as i64, Ordering::Relaxed);
                    let ticket = tracker.push(end, out.len());
                    let n = shards.senders.len() as u64;
                    for mut p in out {
                        p.ticket = ticket;
                        let i = (xxhash_rust::xxh3::xxh3_64(&p.r.to_le_bytes()) % n) as usize;
                        tokio::select! {
                            r = shards.senders[i].send(p) => {
                                if r.is_err() {
                                    break 'outer;
                                }
                            }
                            _ = stop.wait_for(|s| *s) => break 'outer,
                        }
                    }
                }
            }
        }
        save(false, &mut saved_pos, &mut last_save);
        if last_gc.elapsed() >= GC_INTERVAL {
            last_gc = Instant::now();
            let dir = s.wal_dir.clone();
            let read_to = tailer.as_ref().map_or(0, |t| t.position().segment);
            let live = tokio::task::spawn_blocking(move || {
                let Some(c) = wal::latest_checkpoint(&dir)? else {
                    return Ok(None);
                };
                if c >= read_to {
                    return Ok(None);
                }
                let mut live = std::collections::HashSet::new();
                wal::checkpoint_series(&dir, c, &mut |ss| {
                    live.extend(ss.into_iter().map(|x| x.r))
                })?;
                Ok::<_, tocsin_tsdb::Error>(Some((c, live)))
            })
            .await;
            if let Ok(Ok(Some((c, live)))) = live {
                if gc_done != Some(c) {
                    let n = gc_series(&mut series, c, &live);
                    gc_done = Some(c);
                    tracing::debug!(remote = %name, checkpoint = c, forgotten = n, known = series.len(), "remote write forgot series the head dropped");
                }
            }
        }
        if last_reshard.elapsed() >= RESHARD_INTERVAL {
            let el = last_reshard.elapsed().as_secs_f64();
            last_reshard = Instant::now();
            let hr = m.highest_read_ms.load(Ordering::Relaxed);
            let hs = m.highest_sent_ms.load(Ordering::Relaxed);
            let delay = if hr == i64::MIN || hs == i64::MIN {
                0.0
            } else {
                (hr - hs) as f64 / 1000.0
            };
            let d = calc.desired(
                el,
                m.samples_in.load(Ordering::Relaxed),
                m.samples_sent.load(Ordering::Relaxed),
                m.batch_seconds(),
                delay,
                n_shards,
            );
            m.set_desired(d);
            let next = next_shards(d, n_shards, s.min_shards, s.max_shards);
            if next != n_shards {
                tracing::info!(remote = %name, from = n_shards, to = next, desired = d, "remote write resharding");
                // The old shards finish what they hold first, so a series' samples stay in
                // order across the change of routing.
                stop_shards(shards, None).await;
                n_shards = next;
                shards = start_shards(n_shards, s.capacity, &s.shard);
            }
        }
        if batch.caught_up {
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
    stop_shards(shards, Some(FLUSH_DEADLINE)).await;
    m.shards.store(0, Ordering::Relaxed);
    save(true, &mut saved_pos, &mut last_save);
    tracing::info!(remote = %name, position = %tracker.settled(), "remote write queue stopped");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn shards_follow_the_backlog_within_bounds() {
        // 10 ms per sample sent and 1000 samples/s coming in: 10 shards, without backlog.
        let mut c = ShardCalc::default();
        let d = c.desired(10.0, 10_000, 1_000, 10.0, 0.0, 1);
        assert!((d - 10.0).abs() < 1e-9, "{d}");
        assert_eq!(next_shards(d, 1, 1, 50), 10);
        assert_eq!(next_shards(d, 1, 1, 4), 4);
        // Within 30% of the current count: no change.
        assert_eq!(next_shards(11.0, 10, 1, 50), 10);
        // A backlog of 100 s raises the count.
        let d2 = c.desired(10.0, 20_000, 2_000, 20.0, 100.0, 10);
        assert!(d2 > d * 5.0, "{d2}");
        // Nothing sent in the interval (an outage): keep the count.
        let d3 = c.desired(10.0, 30_000, 2_000, 20.0, 100.0, 7);
        assert_eq!(d3, 7.0);
        // Idle: down to the minimum.
        assert_eq!(next_shards(0.01, 10, 2, 50), 2);
    }

    #[test]
    fn series_the_checkpoint_dropped_are_forgotten_and_later_ones_kept() {
        let mut m: SeriesMap = HashMap::new();
        m.insert(1, (None, 3)); // declared before the checkpoint, still live
        m.insert(2, (None, 4)); // declared before, gone from the checkpoint
        m.insert(3, (None, 9)); // declared after the checkpoint
        let live: std::collections::HashSet<u64> = [1].into_iter().collect();
        assert_eq!(gc_series(&mut m, 5, &live), 1);
        assert!(m.contains_key(&1) && !m.contains_key(&2) && m.contains_key(&3));
    }

    #[test]
    fn external_labels_are_added_and_relabelling_applies() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let ext = Labels::from_pairs(&[("region", "eu"), ("job", "ext")]);
        let out = series_labels(&l, &ext, &[]).unwrap();
        assert_eq!(out.get("region"), Some("eu"));
        assert_eq!(out.get("job"), Some("a"));
        let drop: Vec<RelabelConfig> =
            serde_norway::from_str("- source_labels: [__name__]\n  regex: up\n  action: drop\n")
                .unwrap();
        assert!(series_labels(&l, &ext, &drop).is_none());
    }
}
