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
use std::time::Duration;

use serde::Deserialize;
use tocsin_model::Alert;

use crate::process::{Keep, Outcome, Program};

use super::common::{self, de_duration, yes};
use super::webhook::webhook_message;
use super::{BoxFuture, Notifier, NotifyCx, NotifyError, Reason};

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

pub use crate::process::EXIT_TEMPFAIL;

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
    program: Program,
    env: Vec<(String, String)>,
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
        Ok(Exec {
            cfg: cfg.clone(),
            program: Program::new(&cfg.command, base_dir, base_dir),
            env: cfg
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    async fn run(&self, cx: &NotifyCx, alerts: &[Alert]) -> Result<(), NotifyError> {
        let fail = |retryable: bool, message: String| NotifyError {
            retryable,
            reason: Reason::Other,
            message,
        };
        let msg = webhook_message(cx, alerts, self.cfg.max_alerts);
        let input = common::go_json(&msg)?;
        let mut env = self.env.clone();
        env.push(("TOCSIN_RECEIVER".into(), cx.receiver.clone()));
        env.push(("TOCSIN_GROUP_KEY".into(), cx.group_key.clone()));
        env.push(("TOCSIN_STATUS".into(), msg.status.to_string()));
        let prog = self.program.program.display();
        let out = self
            .program
            .run(
                &self.cfg.args,
                &env,
                input,
                self.cfg.timeout,
                Keep::Nothing,
                Keep::Head(1024),
            )
            .await;
        let (status, err) = match out {
            Outcome::Exited { status, stderr, .. } => (status, stderr),
            // A missing or non-executable program stays so until the config changes.
            Outcome::SpawnFailed(m) => return Err(fail(false, m)),
            Outcome::WaitFailed(m) => return Err(fail(true, m)),
            Outcome::TimedOut => {
                return Err(fail(
                    true,
                    format!("{prog} killed after running for {:?}", self.cfg.timeout),
                ))
            }
        };
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
                with_err(format!("{prog} exited with status {code}")),
            )),
            None => Err(fail(
                true,
                with_err(format!("{prog} was killed by a signal ({status})")),
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
