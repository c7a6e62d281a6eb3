//! The `exec` kind running real shell scripts: what the program receives (arguments, environment,
//! working directory, the alert on stdin), exit-status classification, spawn failures, and a
//! timeout that must kill the program's whole process group, grandchildren included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tocsin_model::{Alert, Labels};

use super::*;

fn alert() -> Alert {
    let mut a = Alert {
        labels: Labels::from_pairs(&[
            ("alertname", "HighCpu"),
            ("instance_id", "4711"),
            ("zone", "europe-west1-b"),
        ]),
        annotations: Default::default(),
        starts_at: 1_700_000_000_000,
        ends_at: 0,
        generator_url: "http://tocsin/graph".into(),
        updated_at: 0,
        timeout: false,
    };
    a.annotations.insert("value".into(), "0.97".into());
    a
}

fn cx(a: &Alert) -> RenderCx<'_> {
    RenderCx {
        alert: a,
        policy: "delete-vm",
        target: "4711",
        request_id: "5f0c-req",
        now_ms: 1_700_000_060_000,
    }
}

fn exec_cx(timeout_ms: u64) -> ExecCx {
    ExecCx {
        timeout: Duration::from_millis(timeout_ms),
        attempt: 1,
    }
}

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn kind(yaml: &str, base: &Path) -> Result<ExecKind> {
    let cfg: ExecActionConfig = serde_norway::from_str(yaml).unwrap();
    ExecKind::new(&cfg, base, "actions.policies[0].exec")
}

async fn run(k: &ExecKind, timeout_ms: u64) -> Attempt {
    let a = alert();
    let p = k.prepare(&cx(&a)).unwrap();
    k.execute(&p, &exec_cx(timeout_ms)).await
}

#[tokio::test]
async fn args_env_dir_and_stdin_reach_the_program() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().canonicalize().unwrap();
    std::fs::create_dir(base.join("work")).unwrap();
    script(
        &base,
        "act.sh",
        r#"printf '%s\n' "$@" > "$OUT/args"
echo "$VM|$API_TOKEN|$TOCSIN_POLICY|$TOCSIN_TARGET|$TOCSIN_REQUEST_ID" > "$OUT/env"
pwd > "$OUT/pwd"
cat > "$OUT/stdin"
echo "deleted vm $1""#,
    );
    let k = kind(
        &format!(
            r#"
command: ./act.sh
args: ['{{{{ $labels.instance_id }}}}', 'zone={{{{ $labels.zone }}}}', 'two words']
env: {{VM: '{{{{ .Target }}}}', API_TOKEN: t0k, OUT: '{}'}}
dir: work
"#,
            base.display()
        ),
        &base,
    )
    .unwrap();
    let a = alert();
    let p = k.prepare(&cx(&a)).unwrap();
    assert_eq!(
        p.request["command"],
        base.join("act.sh").display().to_string()
    );
    assert_eq!(
        p.request["args"],
        json!(["4711", "zone=europe-west1-b", "two words"])
    );
    assert_eq!(p.request["env"]["API_TOKEN"], "<secret>");
    assert_eq!(p.request["env"]["VM"], "4711");
    assert_eq!(p.request["dir"], base.join("work").display().to_string());
    let got = k.execute(&p, &exec_cx(10_000)).await;
    assert_eq!(
        got,
        Attempt::Done {
            status: Some(0),
            detail: "exit status 0: deleted vm 4711".into(),
            already_done: false
        }
    );
    let read = |f: &str| std::fs::read_to_string(base.join(f)).unwrap();
    assert_eq!(read("args"), "4711\nzone=europe-west1-b\ntwo words\n");
    assert_eq!(read("env"), "4711|t0k|delete-vm|4711|5f0c-req\n");
    assert_eq!(read("pwd").trim(), base.join("work").display().to_string());
    let stdin: serde_json::Value = serde_json::from_str(&read("stdin")).unwrap();
    assert_eq!(
        stdin,
        json!({
            "status": "firing",
            "labels": {"alertname": "HighCpu", "instance_id": "4711", "zone": "europe-west1-b"},
            "annotations": {"value": "0.97"},
            "startsAt": "2023-11-14T22:13:20Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://tocsin/graph",
            "fingerprint": a.fingerprint_hex(),
            "policy": "delete-vm",
            "target": "4711",
            "requestId": "5f0c-req",
        })
    );
    assert_eq!(p.request["stdin"], stdin);
}

#[tokio::test]
async fn exit_status_decides_retry() {
    let d = tempfile::tempdir().unwrap();
    let k = kind(
        "command: /bin/sh\nargs: ['-c', 'echo \"$0 says no\" >&2; exit $0', '{{ .Labels.code }}']\n",
        d.path(),
    )
    .unwrap();
    let run_with = |code: &str| {
        let mut a = alert();
        a.labels = Labels::from_pairs(&[("code", code)]);
        a
    };
    for (code, retryable) in [("75", true), ("3", false)] {
        let a = run_with(code);
        let p = k.prepare(&cx(&a)).unwrap();
        match k.execute(&p, &exec_cx(10_000)).await {
            Attempt::Failed {
                retryable: r,
                status,
                message,
                ..
            } => {
                assert_eq!(r, retryable, "{code}: {message}");
                assert_eq!(status, Some(code.parse().unwrap()));
                assert_eq!(
                    message,
                    format!("/bin/sh exited with status {code}: {code} says no")
                );
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}

/// Whether `pid` is gone (or a zombie waiting for init to reap it).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test]
async fn timeout_kills_the_process_group_with_its_grandchild() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path();
    script(
        base,
        "hang.sh",
        "sleep 300 &\necho $! > grandchild.pid\nwait",
    );
    let k = kind("command: ./hang.sh\n", base).unwrap();
    let t = Instant::now();
    match run(&k, 700).await {
        Attempt::Failed {
            retryable,
            status,
            message,
            ..
        } => {
            assert!(retryable);
            assert_eq!(status, None);
            assert!(message.contains("after the timeout of 700ms"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let pid: i32 = std::fs::read_to_string(base.join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "grandchild {pid} still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_missing_program_is_not_retried_and_names_the_path() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().canonicalize().unwrap();
    let k = kind("command: ./bin/no-such-fix\n", &base).unwrap();
    match run(&k, 5_000).await {
        Attempt::Failed {
            retryable, message, ..
        } => {
            assert!(!retryable);
            let path = base.join("bin/no-such-fix").display().to_string();
            assert!(
                message.contains(&format!("program {path} does not exist")),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_errors_name_the_field() {
    let base = Path::new("/tmp");
    for (yaml, want) in [
        (
            "command: ''\n",
            "actions.policies[0].exec.command: must be set",
        ),
        (
            "command: '{{ nosuch }}'\n",
            "actions.policies[0].exec.command: ",
        ),
        (
            "command: x\nargs: [a, '{{ .X ']\n",
            "actions.policies[0].exec.args[1]: ",
        ),
        (
            "command: x\nenv: {'A=B': v}\n",
            "actions.policies[0].exec.env.A=B: ",
        ),
        (
            "command: x\nenv: {A: '{{ end }}'}\n",
            "actions.policies[0].exec.env.A: ",
        ),
        ("command: x\ndir: ''\n", "actions.policies[0].exec.dir: "),
    ] {
        let e = match kind(yaml, base) {
            Ok(_) => panic!("{yaml}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with(want), "{yaml}: {e}");
    }
    assert!(serde_norway::from_str::<ExecActionConfig>("command: x\ntimeout: 5s\n").is_err());
}

#[test]
fn command_rendering_empty_is_a_render_error_and_idempotent_is_read() {
    let base = Path::new("/tmp");
    let k = kind("command: '{{ .Labels.nosuch }}'\n", base).unwrap();
    let a = alert();
    let e = k.prepare(&cx(&a)).unwrap_err();
    assert!(matches!(e, Error::Render(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("actions.policies[0].exec.command: "),
        "{e}"
    );
    assert!(kind("command: x\nidempotent: true\n", base)
        .unwrap()
        .idempotent());
    assert!(!kind("command: x\n", base).unwrap().idempotent());
}
