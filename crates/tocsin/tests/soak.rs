//! A short `tocsin bench soak` (the engine of `bench/soak`): two kill -9 cycles under mixed load,
//! then every acknowledged sample and every notification due must be there, exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn two_kill_cycles_lose_no_acknowledged_sample_and_no_notification() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("soak");
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args([
            "bench",
            "soak",
            "--cycles",
            "2",
            "--min-up",
            "1s",
            "--max-up",
            "2s",
            "--alert-lanes",
            "1",
            "--targets",
            "2",
            "--target-series",
            "20",
            "--settle",
            "3s",
            "--work-dir",
        ])
        .arg(&work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(work.join("server.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\nserver log tail:\n{}",
        log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    let figure = |name: &str| -> u64 {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in:\n{stdout}"))
    };
    assert!(figure("acknowledged samples") > 1000, "{stdout}");
    assert_eq!(
        figure("recovered"),
        figure("acknowledged samples"),
        "{stdout}"
    );
    assert_eq!(figure("lost"), 0, "{stdout}");
    assert_eq!(figure("notifications lost"), 0, "{stdout}");
    assert_eq!(figure("notifications duplicated"), 0, "{stdout}");
    assert!(figure("notifications delivered") >= 2, "{stdout}");
}
