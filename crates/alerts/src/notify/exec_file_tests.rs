//! Tests of the exec and file receivers: what a command and a file are given.

use std::time::Duration;

use serde_json::{json, Value};

use super::tests::*;
use super::*;

// ---------------------------------------------------------------- exec

#[tokio::test]
async fn exec_writes_the_webhook_message_to_stdin() -> R {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("stdin.json");
    let yaml = format!(
        "name: team-x
exec_configs:
- command: /bin/sh
  args: ['-c', 'cat > \"$OUT\"; echo \"$TOCSIN_RECEIVER $TOCSIN_STATUS\" > \"$OUT.env\"']
  env: {{OUT: '{}'}}
",
        out.display()
    );
    let n = build_one(&yaml, dir.path());
    assert_eq!(n.integration(), "exec");
    let (a, b) = group();
    let alerts = [a, b];
    n.notify(&cx(), &alerts).await?;
    let got = std::fs::read(&out)?;
    let want = common::go_json(&webhook_message(&cx(), &alerts, 0))?;
    assert_eq!(String::from_utf8(got)?, String::from_utf8(want)?);
    let env = std::fs::read_to_string(dir.path().join("stdin.json.env"))?;
    assert_eq!(env, "team-x firing\n");
    Ok(())
}

#[tokio::test]
async fn exec_exit_status_decides_retry() -> R {
    let dir = tempfile::tempdir()?;
    let run = |script: &str, timeout: &str| {
        let yaml = format!(
            "name: r\nexec_configs:\n- command: /bin/sh\n  args: ['-c', '{script}']\n  timeout: {timeout}\n"
        );
        build_one(&yaml, dir.path())
    };
    let (a, _) = group();
    let alerts = std::slice::from_ref(&a);

    let e = run("cat >/dev/null; echo bad input >&2; exit 1", "5s")
        .notify(&cx(), alerts)
        .await
        .unwrap_err();
    assert_eq!((e.retryable, e.reason), (false, Reason::Other));
    assert!(e.message.contains("status 1: bad input"), "{}", e.message);

    let e = run("exit 75", "5s")
        .notify(&cx(), alerts)
        .await
        .unwrap_err();
    assert!(e.retryable, "{}", e.message);

    let e = run("kill -9 $$", "5s")
        .notify(&cx(), alerts)
        .await
        .unwrap_err();
    assert!(e.retryable && e.message.contains("signal"), "{}", e.message);

    let t = std::time::Instant::now();
    let e = run("exec sleep 30", "200ms")
        .notify(&cx(), alerts)
        .await
        .unwrap_err();
    assert!(e.retryable && e.message.contains("killed"), "{}", e.message);
    assert!(t.elapsed() < Duration::from_secs(10));

    // What the program started goes with it.
    let pidfile = dir.path().join("bg.pid");
    let e = run(
        &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        "300ms",
    )
    .notify(&cx(), alerts)
    .await
    .unwrap_err();
    assert!(e.message.contains("killed"), "{}", e.message);
    let pid = std::fs::read_to_string(&pidfile)?.trim().to_string();
    let gone = || {
        // Gone, or a zombie waiting for a reaper that is not us.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|st| {
                st.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !gone() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gone(),
        "the program's background child {pid} survived the timeout"
    );

    let e = build_one(
        "name: r\nexec_configs:\n- command: ./does-not-exist\n",
        dir.path(),
    )
    .notify(&cx(), alerts)
    .await
    .unwrap_err();
    assert!(!e.retryable, "{}", e.message);

    // A program that ignores its input still succeeds.
    run("exit 0", "5s").notify(&cx(), alerts).await?;
    Ok(())
}

// ---------------------------------------------------------------- file

#[tokio::test]
async fn file_appends_one_line_per_notification() -> R {
    let dir = tempfile::tempdir()?;
    let n = build_one(
        "name: team-x\nfile_configs:\n- path: logs/deep/alerts.jsonl\n  fsync: true\n",
        dir.path(),
    );
    assert_eq!(n.integration(), "file");
    let (a, b) = group();
    n.notify(&cx(), std::slice::from_ref(&a)).await?;
    let mut later = cx();
    later.now_ms += 1_500;
    n.notify(&later, &[a.clone(), b.clone()]).await?;
    let text = std::fs::read_to_string(dir.path().join("logs/deep/alerts.jsonl"))?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(text.ends_with('\n'));
    for (line, (c, alerts)) in lines.iter().zip([
        (cx(), vec![a.clone()]),
        (later.clone(), vec![a.clone(), b.clone()]),
    ]) {
        let got: Value = serde_json::from_str(line)?;
        let mut want = serde_json::to_value(webhook_message(&c, &alerts, 0))?;
        want.as_object_mut()
            .unwrap()
            .insert("time".into(), json!(common::go_time(c.now_ms)));
        assert_eq!(got, want);
    }
    assert!(
        lines[1].ends_with(",\"time\":\"2023-11-14T22:15:01.5Z\"}"),
        "{}",
        lines[1]
    );
    Ok(())
}
