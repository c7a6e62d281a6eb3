//! The files in `packaging/`: the systemd unit passes `systemd-analyze verify`, keeps its
//! hardening, and its ExecStart (and the container's ENTRYPOINT) are command lines the binary
//! accepts and serves with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn packaging(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn have_systemd_analyze() -> bool {
    if Path::new("/usr/bin/systemd-analyze").exists() {
        return true;
    }
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("systemd-analyze is not installed (scripts/test installs systemd)");
    }
    eprintln!("SKIPPED: systemd-analyze not installed; scripts/test installs it");
    false
}

/// Runs a packaged command line with its paths and listen address made local, and waits until
/// the server it started is ready.
fn serves(args: Vec<String>, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let conf = tmp.path().join("etc");
    std::fs::create_dir_all(&conf).unwrap();
    for f in ["tocsin.yml", "rules.yml"] {
        std::fs::copy(examples.join(f), conf.join(f)).unwrap();
    }
    let state = tmp.path().join("state");
    let addr_file = tmp.path().join("addr");
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            a.replace("${CONFIGURATION_DIRECTORY}", &conf.display().to_string())
                .replace("${STATE_DIRECTORY}", &state.display().to_string())
                .replace("/var/lib/tocsin", &state.display().to_string())
                .replace("0.0.0.0:9090", "127.0.0.1:0")
        })
        .collect();
    let log = std::fs::File::create(tmp.path().join("log")).unwrap();
    let mut child = Command::new(bin())
        .args(&args)
        .arg("--listen-addr-file")
        .arg(&addr_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Err(format!("exited with {st}"));
        }
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if !a.is_empty() {
                let ok = reqwest::blocking::get(format!("http://{a}/-/ready"))
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    break Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            break Err("not ready within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = ready {
        panic!(
            "{what} `{}`: {e}; log:\n{}",
            args.join(" "),
            std::fs::read_to_string(tmp.path().join("log")).unwrap_or_default()
        );
    }
}

#[test]
fn systemd_unit_is_valid_hardened_and_its_exec_start_serves() {
    let unit = packaging("tocsin.service");
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=tocsin",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing from the unit"
        );
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/bin/tocsin "))
        .expect("ExecStart runs /usr/bin/tocsin");
    serves(exec.split(' ').map(String::from).collect(), "ExecStart");

    if !have_systemd_analyze() {
        return;
    }
    // verify wants the executable to exist: point the unit at the one under test.
    let tmp = tempfile::tempdir().unwrap();
    let local: PathBuf = tmp.path().join("tocsin.service");
    std::fs::write(
        &local,
        unit.replace("/usr/bin/tocsin", &bin().display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn container_entrypoint_serves() {
    let cf = packaging("Containerfile");
    let ep = cf
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(ep).expect("ENTRYPOINT in exec (JSON) form");
    assert_eq!(argv[0], "/usr/bin/tocsin");
    serves(argv[1..].to_vec(), "ENTRYPOINT");
}
