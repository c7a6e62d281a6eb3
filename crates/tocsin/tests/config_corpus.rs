//! The config corpus (`crates/server/testdata/config`): every `*.bad.yml` is refused by both
//! `tocsin check config` and `tocsin server` with exactly the lines its `# expect:` header lists
//! (`{file}` is the config's path, `{dir}` its directory), and every `*.good.yml` passes both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn corpus(suffix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/testdata/config");
    let dir = dir.canonicalize().unwrap();
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {suffix} files in {}", dir.display());
    v
}

fn expected(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap().display().to_string();
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|l| {
            l.replace("{file}", &file.display().to_string())
                .replace("{dir}", &dir)
        })
        .collect()
}

/// `tocsin check config`: exit code and the lines after `FAILED:`.
fn check(file: &Path) -> (i32, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "config"])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = text
        .lines()
        .skip_while(|l| *l != "  FAILED:")
        .skip(1)
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), lines, text)
}

/// `tocsin server` on the file: it must exit by itself (a refused config); returns its exit code
/// and the error it printed (the lines from `error: ` on, without that prefix).
fn server_refuses(file: &Path) -> (i32, Vec<String>) {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["server", "--listen", "127.0.0.1:0", "--config"])
        .arg(file)
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "{}: the server started instead of refusing it",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let lines = err
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
        .collect();
    (status.code().unwrap_or(-1), lines)
}

#[test]
fn bad_configs_are_refused_by_check_and_server_with_the_same_lines() {
    for file in corpus(".bad.yml") {
        let want = expected(&file);
        assert!(!want.is_empty(), "{}: no # expect: lines", file.display());
        let (code, got, text) = check(&file);
        assert_eq!(code, 1, "{}: {text}", file.display());
        assert_eq!(got, want, "check config of {}", file.display());
        let (code, got) = server_refuses(&file);
        assert_ne!(code, 0, "{}", file.display());
        assert_eq!(got, want, "server start with {}", file.display());
    }
}

#[test]
fn good_configs_pass_check_and_start_the_server() {
    for file in corpus(".good.yml") {
        let (code, _, text) = check(&file);
        assert_eq!(code, 0, "{}: {text}", file.display());
        let mut srv = tocsin_testkit::TestServer::start(
            Path::new(env!("CARGO_BIN_EXE_tocsin")),
            &["--config", file.to_str().unwrap()],
        );
        let r = tocsin_testkit::client()
            .get(srv.url("/-/ready"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{}", file.display());
        srv.stop();
    }
}
