//! `file_sd_configs`: target groups read from JSON or YAML files named by paths whose last element
//! may be a glob. Files are re-read every `refresh_interval` and, between those, whenever a cheap
//! poll of the matching files' metadata (every 250 ms by default) shows a file appeared,
//! disappeared or changed. Polling rather than inotify: no extra dependency, no lost events on
//! editors' rename dances or symlink swaps (Kubernetes ConfigMaps), and a stat of a handful of
//! files four times a second costs nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::{
    at_least_1ms, de_duration, removed_groups, to_target_groups, BoxFuture, Discoverer, RawGroup,
    TargetGroup,
};
use crate::error::Error;

/// The label naming the file a target came from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

/// One `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths of target files; `*`, `?` and `[...]` may appear in the last element only.
    pub files: Vec<String>,
    #[serde(default = "default_refresh", deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
}

fn default_refresh() -> Duration {
    Duration::from_secs(5 * 60)
}

impl FileSdConfig {
    /// Prometheus's rules: at least one path; each ends in `.json`, `.yml` or `.yaml`; a `*` only
    /// in the last path element; a non-zero refresh interval.
    pub fn validate(&self) -> Result<(), String> {
        if self.files.is_empty() {
            return Err("file_sd_configs: 'files' must contain at least one path".into());
        }
        for f in &self.files {
            let (dir, last) = split_last(f);
            let ext_ok = [".json", ".yml", ".yaml"]
                .iter()
                .any(|e| last.to_ascii_lowercase().ends_with(e));
            if dir.contains(['*', '?', '[']) || !ext_ok || last.matches('*').count() > 1 {
                return Err(format!(
                    "file_sd_configs: path {f:?} is not valid for file discovery (it must end in \
                     .json, .yml or .yaml, with at most one '*' and only in the last element)"
                ));
            }
        }
        if self.refresh_interval.is_zero() {
            return Err("file_sd_configs: 'refresh_interval' must be greater than zero".into());
        }
        Ok(())
    }

    /// Makes relative paths relative to `dir` (the directory of the configuration file), as
    /// Prometheus resolves them.
    pub fn set_directory(&mut self, dir: &Path) {
        for f in &mut self.files {
            if Path::new(f.as_str()).is_relative() {
                *f = dir.join(f.as_str()).to_string_lossy().into_owned();
            }
        }
    }
}

/// Watches the files of one `FileSdConfig`.
#[derive(Debug, Clone)]
pub struct FileDiscoverer {
    patterns: Arc<[String]>,
    refresh: Duration,
    poll: Duration,
}

impl FileDiscoverer {
    pub fn new(cfg: &FileSdConfig) -> Self {
        Self {
            patterns: cfg.files.clone().into(),
            refresh: cfg.refresh_interval,
            poll: Duration::from_millis(250),
        }
    }

    /// How often to look for changed files between full refreshes.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }
}

/// What identifies one version of a file without reading it. The inode catches a file replaced
/// by rename with the same size within the same timestamp tick.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileSig {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

/// Targets per file of every running file discoverer, keyed by discoverer, for the
/// `tocsin_sd_file_targets` gauge (an empty file is how a broken generator shows). A discoverer
/// removes its entries when it stops, so a job removed by a reload leaves no stale gauge.
static TARGET_COUNTS: parking_lot::Mutex<BTreeMap<(u64, PathBuf), usize>> =
    parking_lot::Mutex::new(BTreeMap::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Targets in each file any file discoverer read, as of its last good read.
pub fn file_sd_target_counts() -> BTreeMap<String, usize> {
    TARGET_COUNTS
        .lock()
        .iter()
        .map(|((_, p), n)| (p.display().to_string(), *n))
        .collect()
}

/// This discoverer's entries of [`TARGET_COUNTS`], dropped with it.
struct Published(u64);

impl Published {
    fn set(&self, targets: &BTreeMap<PathBuf, usize>) {
        let mut g = TARGET_COUNTS.lock();
        g.retain(|(id, _), _| *id != self.0);
        for (p, n) in targets {
            g.insert((self.0, p.clone()), *n);
        }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        TARGET_COUNTS.lock().retain(|(id, _), _| *id != self.0);
    }
}

#[derive(Debug, Default)]
struct State {
    /// Matching files and their signatures as of the last refresh.
    sigs: BTreeMap<PathBuf, FileSig>,
    /// How many groups each file last contributed, so that vanished ones can be emptied.
    counts: BTreeMap<PathBuf, usize>,
    /// How many targets each file listed at its last good read.
    targets: BTreeMap<PathBuf, usize>,
}

impl Discoverer for FileDiscoverer {
    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<Vec<TargetGroup>>,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture<()> {
        Box::pin(async move {
            let mut refresh = tokio::time::interval(at_least_1ms(self.refresh));
            refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut poll = tokio::time::interval(at_least_1ms(self.poll));
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut state = State::default();
            let published = Published(NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            let mut first = true;
            loop {
                let full = tokio::select! {
                    biased;
                    _ = super::stopped(&mut stop) => return,
                    _ = refresh.tick() => true,
                    _ = poll.tick() => false,
                };
                let patterns = Arc::clone(&self.patterns);
                let work = tokio::task::spawn_blocking(move || {
                    let sigs = scan(&patterns);
                    if !full && sigs == state.sigs {
                        return (state, None);
                    }
                    let update = refresh_files(sigs, &mut state);
                    (state, Some(update))
                });
                let update;
                (state, update) = match work.await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("file_sd: refresh of {:?} failed: {e}", self.patterns);
                        return;
                    }
                };
                let Some(update) = update else { continue };
                published.set(&state.targets);
                // The first update goes out even when empty, so the receiver knows discovery
                // has run; after that an empty update carries no news.
                if (first || !update.is_empty()) && tx.send(update).await.is_err() {
                    return;
                }
                first = false;
            }
        })
    }
}

/// Reads every file in `sigs` and returns the update: all groups of the files that parsed, empty
/// groups for sources that shrank or vanished. A file that fails keeps its earlier groups (they
/// are neither resent nor removed) and is reported.
fn refresh_files(sigs: BTreeMap<PathBuf, FileSig>, state: &mut State) -> Vec<TargetGroup> {
    let mut update = Vec::new();
    let mut counts = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for path in sigs.keys() {
        let name = path.to_string_lossy();
        let before = state.counts.get(path).copied().unwrap_or(0);
        match read_file(path) {
            Ok(groups) => {
                counts.insert(path.clone(), groups.len());
                targets.insert(path.clone(), groups.iter().map(|g| g.targets.len()).sum());
                let n = groups.len();
                update.extend(groups);
                update.extend(removed_groups(&name, n, before));
            }
            Err(e) => {
                tracing::error!("file_sd: {e}; keeping the targets it had before");
                if before > 0 {
                    counts.insert(path.clone(), before);
                }
                if let Some(n) = state.targets.get(path) {
                    targets.insert(path.clone(), *n);
                }
            }
        }
    }
    for (path, &before) in &state.counts {
        if !counts.contains_key(path) && !sigs.contains_key(path) {
            update.extend(removed_groups(&path.to_string_lossy(), 0, before));
        }
    }
    state.counts = counts;
    state.targets = targets;
    state.sigs = sigs;
    update
}

/// Parses one target file by its extension.
fn read_file(path: &Path) -> Result<Vec<TargetGroup>, Error> {
    let name = path.to_string_lossy();
    let err = |reason: String| Error::TargetFile {
        path: name.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let raw: Vec<RawGroup> = match ext.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| err(e.to_string()))?,
        "yml" | "yaml" => {
            // An empty YAML document is an empty list, as Prometheus reads it.
            if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_norway::from_str(&text).map_err(|e| err(e.to_string()))?
            }
        }
        other => return Err(err(format!("unsupported file extension {other:?}"))),
    };
    to_target_groups(raw, &name, (FILEPATH_LABEL, name.as_ref())).map_err(err)
}

/// The regular files matching `patterns` now, with their signatures. Unreadable directories and
/// files that vanish mid-scan are simply not matched.
fn scan(patterns: &[String]) -> BTreeMap<PathBuf, FileSig> {
    let mut out = BTreeMap::new();
    for p in patterns {
        for path in expand_glob(p) {
            if let Ok(md) = std::fs::metadata(&path) {
                if md.is_file() {
                    out.insert(path, sig(&md));
                }
            }
        }
    }
    out
}

fn sig(md: &std::fs::Metadata) -> FileSig {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(md);
    #[cfg(not(unix))]
    let ino = 0;
    FileSig {
        modified: md.modified().ok(),
        len: md.len(),
        ino,
    }
}

/// Splits a path pattern into its directory part (with the trailing `/`, possibly empty) and its
/// last element.
fn split_last(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => ("", p),
    }
}

/// The paths matching `pattern`, whose wildcards may only be in the last element.
fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let (dir, last) = split_last(pattern);
    if !last.contains(['*', '?', '[']) {
        return vec![PathBuf::from(pattern)];
    }
    let Some(re) = glob_regex(last) else {
        return Vec::new();
    };
    let dir_path = if dir.is_empty() { "." } else { dir };
    let Ok(entries) = std::fs::read_dir(dir_path) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            re.is_match(&name)
                .then(|| PathBuf::from(format!("{dir}{name}")))
        })
        .collect();
    out.sort();
    out
}

/// Translates one glob element (`*`, `?`, `[...]`, `[^...]`) to an anchored regex. An unclosed
/// `[` matches a literal `[`.
fn glob_regex(elem: &str) -> Option<regex::Regex> {
    let mut re = String::from("^");
    let chars: Vec<char> = elem.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => match chars[i + 1..].iter().position(|&c| c == ']') {
                Some(len) if len > 0 => {
                    let body: String = chars[i + 1..i + 1 + len].iter().collect();
                    let (neg, body) = match body.strip_prefix(['^', '!']) {
                        Some(b) => ("^", b.to_string()),
                        None => ("", body),
                    };
                    re.push('[');
                    re.push_str(neg);
                    for c in body.chars() {
                        if c == '-' {
                            re.push('-');
                        } else {
                            re.push_str(&regex::escape(&c.to_string()));
                        }
                    }
                    re.push(']');
                    i += len + 1;
                }
                _ => re.push_str(r"\["),
            },
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

#[cfg(test)]
mod tests;
