//! file_sd tests against a temporary directory: initial read, quick pick-up of changes, removal,
//! broken files, globs, and config validation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use super::*;

/// Writes through a temporary file and a rename, so a poll never sees a half-written file.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Running {
    rx: mpsc::Receiver<Vec<TargetGroup>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(files: Vec<String>, refresh: Duration) -> Running {
    let cfg = FileSdConfig {
        files,
        refresh_interval: refresh,
    };
    cfg.validate().unwrap();
    let (tx, rx) = mpsc::channel(16);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(FileDiscoverer::new(&cfg)).run(tx, stop_rx));
    Running { rx, stop, task }
}

impl Running {
    async fn next(&mut self) -> Vec<TargetGroup> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("no update within 10s")
            .expect("discoverer ended")
    }
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("discoverer did not stop")
            .unwrap();
    }
}

fn by_source(groups: &[TargetGroup]) -> BTreeMap<String, Vec<String>> {
    groups
        .iter()
        .map(|g| {
            let addrs = g.targets.iter().map(|t| t["__address__"].clone()).collect();
            (g.source.clone(), addrs)
        })
        .collect()
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn reads_yaml_and_json_with_filepath_label() {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("a.yml");
    let j = dir.path().join("b.json");
    write(
        &y,
        "- targets: ['h1:9100', 'h2:9100']\n  labels: {env: prod}\n- targets: ['h3:9100']\n",
    );
    write(
        &j,
        r#"[{"targets": ["j1:80"], "labels": {"team": "x"}}, {"targets": []}]"#,
    );
    let mut r = start(
        vec![y.to_string_lossy().into(), j.to_string_lossy().into_owned()],
        HOUR,
    );
    let groups = r.next().await;
    let ys = y.to_string_lossy();
    let js = j.to_string_lossy();
    let m = by_source(&groups);
    assert_eq!(m[&format!("{ys}:0")], ["h1:9100", "h2:9100"]);
    assert_eq!(m[&format!("{ys}:1")], ["h3:9100"]);
    assert_eq!(m[&format!("{js}:0")], ["j1:80"]);
    assert!(m[&format!("{js}:1")].is_empty());
    let g0 = groups
        .iter()
        .find(|g| g.source == format!("{ys}:0"))
        .unwrap();
    assert_eq!(g0.labels["env"], "prod");
    assert_eq!(g0.labels["__meta_filepath"], ys);
    r.shutdown().await;
}

#[tokio::test]
async fn change_is_picked_up_quickly_and_shrinking_empties_sources() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.yaml");
    write(&f, "- targets: ['a:1']\n- targets: ['b:1']\n");
    let mut r = start(vec![f.to_string_lossy().into()], HOUR);
    assert_eq!(r.next().await.len(), 2);

    let t0 = Instant::now();
    write(&f, "- targets: ['a:2', 'c:2']\n");
    let groups = r.next().await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    let s = f.to_string_lossy();
    let m = by_source(&groups);
    assert_eq!(m[&format!("{s}:0")], ["a:2", "c:2"]);
    assert!(
        m[&format!("{s}:1")].is_empty(),
        "the second group must be removed"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn deleted_file_sends_empty_groups() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.json");
    write(&f, r#"[{"targets": ["a:1"]}, {"targets": ["b:1"]}]"#);
    let mut r = start(vec![f.to_string_lossy().into()], HOUR);
    assert_eq!(r.next().await.len(), 2);
    std::fs::remove_file(&f).unwrap();
    let groups = r.next().await;
    let s = f.to_string_lossy();
    assert_eq!(
        groups,
        vec![
            TargetGroup::empty(format!("{s}:0")),
            TargetGroup::empty(format!("{s}:1"))
        ]
    );
    r.shutdown().await;
}

#[tokio::test]
async fn broken_file_keeps_previous_targets() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    let bad = dir.path().join("bad.yml");
    write(&good, "- targets: ['g:1']\n");
    write(&bad, "- targets: ['b:1']\n");
    let glob = dir.path().join("*.yml").to_string_lossy().into_owned();
    let mut r = start(vec![glob], HOUR);
    assert_eq!(r.next().await.len(), 2);

    // Broken YAML, then (after it was seen) a change to the good file: the update must carry
    // the good file's groups and say nothing about the broken file's sources.
    write(&bad, "- targets: ['b:1'\n  labels: [\n");
    tokio::time::sleep(Duration::from_millis(600)).await;
    write(&good, "- targets: ['g:2']\n");
    let bs = bad.to_string_lossy().into_owned();
    loop {
        let groups = r.next().await;
        assert!(
            groups.iter().all(|g| !g.source.starts_with(&bs)),
            "broken file's groups were touched: {groups:?}"
        );
        if by_source(&groups).values().any(|v| v == &["g:2"]) {
            break;
        }
    }

    // Once fixed, its targets are replaced as usual.
    write(&bad, "- targets: ['b:2']\n");
    let groups = r.next().await;
    assert_eq!(by_source(&groups)[&format!("{bs}:0")], ["b:2"]);
    r.shutdown().await;
}

#[tokio::test]
async fn glob_picks_up_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let glob = dir.path().join("*.json").to_string_lossy().into_owned();
    let mut r = start(vec![glob], HOUR);
    assert!(
        r.next().await.is_empty(),
        "first update is sent even when empty"
    );
    let f = dir.path().join("new.json");
    write(&f, r#"[{"targets": ["n:1"], "labels": {"a": "b"}}]"#);
    std::fs::write(dir.path().join("ignored.yml"), "- targets: ['x:1']\n").unwrap();
    let groups = r.next().await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, format!("{}:0", f.to_string_lossy()));
    r.shutdown().await;
}

#[tokio::test]
async fn refresh_interval_resends() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.yml");
    write(&f, "- targets: ['a:1']\n");
    let mut r = start(vec![f.to_string_lossy().into()], Duration::from_millis(200));
    assert_eq!(r.next().await.len(), 1);
    assert_eq!(r.next().await.len(), 1);
    r.shutdown().await;
}

#[test]
fn parse_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.json");
    std::fs::write(&f, r#"[{"targets": ["a:1"], "lables": {}}]"#).unwrap();
    let e = read_file(&f).unwrap_err().to_string();
    assert!(e.contains("x.json") && e.contains("lables"), "{e}");
    std::fs::write(&f, r#"[{"targets": ["a:1"], "labels": {"a-b": "c"}}]"#).unwrap();
    let e = read_file(&f).unwrap_err().to_string();
    assert!(e.contains("x.json") && e.contains("a-b"), "{e}");
}

#[test]
fn config_parsing_and_validation() {
    let c: FileSdConfig = serde_norway::from_str("files: ['/etc/t/*.json']").unwrap();
    assert_eq!(c.refresh_interval, Duration::from_secs(300));
    c.validate().unwrap();
    let c: FileSdConfig =
        serde_norway::from_str("files: ['t/a.yml']\nrefresh_interval: 30s").unwrap();
    assert_eq!(c.refresh_interval, Duration::from_secs(30));
    for bad in [
        "files: []",
        "files: ['/etc/*/t.json']",
        "files: ['/etc/t.txt']",
        "files: ['/etc/t.json']\nrefresh_interval: 0s",
    ] {
        let c: FileSdConfig = serde_norway::from_str(bad).unwrap();
        assert!(c.validate().is_err(), "{bad}");
    }
    assert!(serde_norway::from_str::<FileSdConfig>("files: []\nfoo: 1").is_err());
    let mut c: FileSdConfig = serde_norway::from_str("files: ['t/a.yml', '/abs/b.yml']").unwrap();
    c.set_directory(Path::new("/etc/tocsin"));
    assert_eq!(c.files, ["/etc/tocsin/t/a.yml", "/abs/b.yml"]);
}

#[test]
fn glob_translation() {
    let re = glob_regex("t-[a-c]?.*.json").unwrap();
    assert!(re.is_match("t-b1.x.json"));
    assert!(!re.is_match("t-d1.x.json"));
    assert!(!re.is_match("t-b.json"));
    let re = glob_regex("[!x]*.yml").unwrap();
    assert!(re.is_match("a.yml"));
    assert!(!re.is_match("xa.yml"));
    assert!(glob_regex("[.yml").unwrap().is_match("[.yml"));
}
