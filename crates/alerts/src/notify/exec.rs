//! `exec_configs`: runs a program per notification with the webhook version "4" message (the
//! exact bytes the webhook integration would POST) on its standard input.
//!
//! The program runs in the config file's directory; a `command` containing a `/` is resolved
//! against it too, a bare name is looked up in `PATH`. The environment is Tocsin's plus `env`,
//! plus `TOCSIN_RECEIVER`, `TOCSIN_GROUP_KEY` and `TOCSIN_STATUS` (`firing`/`resolved`) so simple
//! scripts need not parse JSON. Standard output is discarded; the first KiB of standard error is
//! kept for the error message.
//!
//! Outcome: exit status 0 is success. Exit status 75 (`EX_TEMPFAIL`, "try again later" in
//! sysexits), death by a signal, and running past `timeout` (the program runs in its own process
//! group, and the whole group is killed) are retried;
//! any other status is a permanent failure, because a script that rejects its input would reject
//! it again. All failures count under reason `other`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tocsin_model::Alert;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::{self, de_duration, yes};
use super::webhook::webhook_message;
use super::{BoxFuture, Notifier, NotifyCx, NotifyError, Reason};

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Exit status that asks for a retry (sysexits' `EX_TEMPFAIL`).
pub const EXIT_TEMPFAIL: i32 = 75;

/// One entry of `exec_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    pub command: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Most alerts in the message; 0 = all, as `webhook_configs`.
    #[serde(default)]
    pub max_alerts: u64,
}

/// A configured program.
pub struct Exec {
    cfg: ExecConfig,
    program: PathBuf,
    dir: PathBuf,
}

impl Exec {
    pub fn new(cfg: &ExecConfig, base_dir: &Path, what: &str) -> crate::Result<Self> {
        if cfg.command.as_os_str().is_empty() {
            return Err(crate::Error::Config(format!("{what}: command must be set")));
        }
        if cfg.timeout.is_zero() {
            return Err(crate::Error::Config(format!(
                "{what}: timeout must be greater than 0"
            )));
        }
        // `Path::new("tocsin.yml").parent()` is the empty path, which `current_dir` refuses.
        // The directory is made absolute too: a relative program path combined with
        // `current_dir` is resolved differently depending on how the OS spawns the child.
        let dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir.to_path_buf()
        };
        let dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(&dir))
                .unwrap_or(dir)
        };
        let bare = cfg.command.components().count() == 1 && !cfg.command.is_absolute();
        let program = if bare {
            cfg.command.clone()
        } else {
            dir.join(&cfg.command)
        };
        Ok(Exec {
            cfg: cfg.clone(),
            program,
            dir,
        })
    }

    /// Says which of program, working directory or `PATH` lookup made the spawn fail: the OS
    /// error alone ("No such file or directory") does not tell them apart.
    fn spawn_error(&self, e: &std::io::Error) -> String {
        let prog = self.program.display();
        let dir = self.dir.display();
        if e.kind() == std::io::ErrorKind::NotFound {
            if !self.dir.is_dir() {
                return format!(
                    "starting {prog}: working directory {dir} (the config file's directory) does not exist: {e}"
                );
            }
            let bare = self.program.components().count() == 1 && !self.program.is_absolute();
            if bare {
                return format!("starting {prog}: command {prog} not found in PATH: {e}");
            }
            if !self.program.exists() {
                return format!(
                    "starting {prog}: program {prog} does not exist (relative commands are resolved against the config file's directory): {e}"
                );
            }
            return format!(
                "starting {prog} in {dir}: {e} (the program exists: check its interpreter line)"
            );
        }
        format!("starting {prog} in {dir}: {e}")
    }

    async fn run(&self, cx: &NotifyCx, alerts: &[Alert]) -> Result<(), NotifyError> {
        let fail = |retryable: bool, message: String| NotifyError {
            retryable,
            reason: Reason::Other,
            message,
        };
        let msg = webhook_message(cx, alerts, self.cfg.max_alerts);
        let input = common::go_json(&msg)?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.cfg.args)
            .envs(&self.cfg.env)
            .env("TOCSIN_RECEIVER", &cx.receiver)
            .env("TOCSIN_GROUP_KEY", &cx.group_key)
            .env("TOCSIN_STATUS", msg.status)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout also ends what the program started.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            // A missing or non-executable program stays so until the config changes.
            fail(false, self.spawn_error(&e))
        })?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let write = async move {
            if let Some(mut s) = stdin {
                // A program that exits without reading its input is not a delivery failure;
                // its exit status decides.
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
        };
        let read = async move {
            let mut kept = Vec::new();
            if let Some(mut s) = stderr {
                let mut buf = [0u8; 4096];
                // Keep reading past the excerpt so the program never blocks on a full pipe.
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if kept.len() < 1024 {
                        kept.extend_from_slice(&buf[..n]);
                    }
                }
            }
            kept
        };
        // Read stderr on its own task: a background grandchild may hold the pipe open after the
        // program itself has exited, and that must not turn success into a timeout.
        let mut reader = tokio::spawn(read);
        let run = async {
            let (_, status) = tokio::join!(write, child.wait());
            status
        };
        let status = match tokio::time::timeout(self.cfg.timeout, run).await {
            Ok(s) => s,
            Err(_) => {
                if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: kill(2) has no memory effects; a negative pid names the group
                    // created at spawn, whose leader we have not reaped yet.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                    }
                }
                let _ = child.kill().await;
                reader.abort();
                return Err(fail(
                    true,
                    format!(
                        "{} killed after running for {:?}",
                        self.program.display(),
                        self.cfg.timeout
                    ),
                ));
            }
        };
        let err = match tokio::time::timeout(Duration::from_millis(200), &mut reader).await {
            Ok(Ok(v)) => v,
            _ => {
                reader.abort();
                Vec::new()
            }
        };
        let status = status.map_err(|e| fail(true, format!("waiting for program: {e}")))?;
        if status.success() {
            return Ok(());
        }
        let err = common::excerpt(&err);
        let with_err = |s: String| {
            if err.is_empty() {
                s
            } else {
                format!("{s}: {err}")
            }
        };
        match status.code() {
            Some(code) => Err(fail(
                code == EXIT_TEMPFAIL,
                with_err(format!(
                    "{} exited with status {code}",
                    self.program.display()
                )),
            )),
            None => Err(fail(
                true,
                with_err(format!(
                    "{} was killed by a signal ({status})",
                    self.program.display()
                )),
            )),
        }
    }
}

impl Notifier for Exec {
    fn integration(&self) -> &'static str {
        "exec"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    fn notify<'a>(
        &'a self,
        cx: &'a NotifyCx,
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.run(cx, alerts))
    }
}
