//! The `exec` action: a command with templated arguments, the alert as JSON on stdin; success is
//! exit status 0; the timeout kills the whole process group.
//!
//! The program runs through `tocsin_alerts::process` (shared with the `exec` receiver): in its
//! own process group, in `dir` (default: the config file's directory), a `command` containing a
//! `/` resolved against the config file's directory and a bare name looked up in `PATH`.
//! Outcome: exit 0 is done; exit 75 (`EX_TEMPFAIL`), death by a signal and running past the
//! timeout (the whole group is killed) are retryable; any other status is not, because a
//! script that refused its input would refuse it again; a program that cannot be started is a
//! configuration error, not retried.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tocsin_alerts::notify::webhook::WebhookAlert;
use tocsin_alerts::process::{Keep, Outcome, Program, EXIT_TEMPFAIL};

use super::{Attempt, BoxFuture, ExecCx, Kind, Prepared};
use crate::error::{Error, Result};
use crate::template::{ActionTemplate, RenderCx};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecActionConfig {
    /// The program: an absolute path, a path relative to the config file, or a name looked up
    /// in `PATH`. Templated.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (values templated).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory; default the config file's directory.
    #[serde(default)]
    pub dir: Option<String>,
    /// Running the command twice is harmless, so an execution a crash interrupted is run
    /// again at start-up.
    #[serde(default)]
    pub idempotent: bool,
}

/// How much of the program's output the audit keeps.
const OUTPUT_TAIL: usize = 200;

/// What the program reads on standard input: the alert as the webhook message shows it, plus
/// the execution's policy, target and request id.
#[derive(Debug, Clone, Serialize)]
pub struct StdinAlert {
    #[serde(flatten)]
    pub alert: WebhookAlert,
    pub policy: String,
    pub target: String,
    #[serde(rename = "requestId")]
    pub request_id: String,
}

/// What `prepare` hands to `execute`.
struct Payload {
    program: Program,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
}

pub struct ExecKind {
    what: String,
    base_dir: PathBuf,
    dir: PathBuf,
    command: ActionTemplate,
    args: Vec<ActionTemplate>,
    env: Vec<(String, ActionTemplate)>,
    idempotent: bool,
}

impl ExecKind {
    pub fn new(cfg: &ExecActionConfig, base_dir: &Path, what: &str) -> Result<ExecKind> {
        if cfg.command.trim().is_empty() {
            return Err(Error::Config(format!("{what}.command: must be set")));
        }
        let command = ActionTemplate::parse(&format!("{what}.command"), &cfg.command)?;
        let args = cfg
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| ActionTemplate::parse(&format!("{what}.args[{i}]"), a))
            .collect::<Result<Vec<_>>>()?;
        let mut env = Vec::new();
        for (k, v) in &cfg.env {
            let f = format!("{what}.env.{k}");
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(Error::Config(format!(
                    "{f}: {k:?} is not a valid environment variable name"
                )));
            }
            env.push((k.clone(), ActionTemplate::parse(&f, v)?));
        }
        let dir = match &cfg.dir {
            Some(d) if d.trim().is_empty() => {
                return Err(Error::Config(format!("{what}.dir: must not be empty")))
            }
            Some(d) => base_dir.join(d),
            None => base_dir.to_path_buf(),
        };
        Ok(ExecKind {
            what: what.to_string(),
            base_dir: base_dir.to_path_buf(),
            dir,
            command,
            args,
            env,
            idempotent: cfg.idempotent,
        })
    }

    async fn run(&self, p: &Payload, cx: &ExecCx) -> Attempt {
        let prog = p.program.program.display();
        let out = p
            .program
            .run(
                &p.args,
                &p.env,
                p.stdin.clone(),
                cx.timeout,
                Keep::Tail(OUTPUT_TAIL),
                Keep::Tail(OUTPUT_TAIL),
            )
            .await;
        let fail = |retryable: bool, status: Option<i64>, message: String| Attempt::Failed {
            retryable,
            status,
            message,
            retry_after: None,
        };
        let (status, stdout, stderr) = match out {
            Outcome::Exited {
                status,
                stdout,
                stderr,
            } => (status, stdout, stderr),
            Outcome::SpawnFailed(m) => return fail(false, None, m),
            Outcome::WaitFailed(m) => return fail(true, None, m),
            Outcome::TimedOut => {
                return fail(
                    true,
                    None,
                    format!(
                        "{prog} killed (with its process group) after the timeout of {:?}",
                        cx.timeout
                    ),
                )
            }
        };
        let output = excerpt(&stdout, &stderr);
        let with_output = |s: String| {
            if output.is_empty() {
                s
            } else {
                format!("{s}: {output}")
            }
        };
        match status.code() {
            Some(0) => Attempt::Done {
                status: Some(0),
                detail: with_output("exit status 0".into()),
                already_done: false,
            },
            Some(code) => fail(
                code == EXIT_TEMPFAIL,
                Some(i64::from(code)),
                with_output(format!("{prog} exited with status {code}")),
            ),
            None => fail(
                true,
                None,
                with_output(format!("{prog} was killed by a signal ({status})")),
            ),
        }
    }
}

/// The last bytes of the output: standard error when there is any (that is where programs
/// explain themselves), else standard output.
fn excerpt(stdout: &[u8], stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    let err = err.trim();
    if !err.is_empty() {
        return err.to_string();
    }
    String::from_utf8_lossy(stdout).trim().to_string()
}

impl Kind for ExecKind {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn prepare(&self, cx: &RenderCx<'_>) -> Result<Prepared> {
        let command = self.command.render(cx)?;
        if command.trim().is_empty() {
            return Err(Error::Render(format!(
                "{}.command: rendered to an empty string",
                self.what
            )));
        }
        let program = Program::new(Path::new(command.trim()), &self.base_dir, &self.dir);
        let args = self
            .args
            .iter()
            .map(|a| a.render(cx))
            .collect::<Result<Vec<_>>>()?;
        let mut env = Vec::with_capacity(self.env.len() + 4);
        for (k, t) in &self.env {
            env.push((k.clone(), t.render(cx)?));
        }
        env.push(("TOCSIN_POLICY".into(), cx.policy.to_string()));
        env.push(("TOCSIN_TARGET".into(), cx.target.to_string()));
        env.push(("TOCSIN_REQUEST_ID".into(), cx.request_id.to_string()));
        let input = StdinAlert {
            alert: WebhookAlert::new(cx.alert, cx.now_ms),
            policy: cx.policy.to_string(),
            target: cx.target.to_string(),
            request_id: cx.request_id.to_string(),
        };
        let stdin = serde_json::to_vec(&input)
            .map_err(|e| Error::Internal(format!("{}: encoding stdin: {e}", self.what)))?;
        let shown_env: serde_json::Map<String, serde_json::Value> = env
            .iter()
            .map(|(k, v)| {
                let v = if super::http::secret_name(k) {
                    "<secret>".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), serde_json::Value::String(v))
            })
            .collect();
        let request = json!({
            "command": program.program.display().to_string(),
            "args": args,
            "env": shown_env,
            "dir": program.dir.display().to_string(),
            "stdin": serde_json::to_value(&input)
                .map_err(|e| Error::Internal(format!("{}: encoding stdin: {e}", self.what)))?,
        });
        Ok(Prepared {
            request,
            payload: Box::new(Payload {
                program,
                args,
                env,
                stdin,
            }),
        })
    }

    fn execute<'a>(&'a self, p: &'a Prepared, cx: &'a ExecCx) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            match p.payload.downcast_ref::<Payload>() {
                Some(pl) => self.run(pl, cx).await,
                None => Attempt::Failed {
                    retryable: false,
                    status: None,
                    message: format!("{}: the prepared request is not an exec one", self.what),
                    retry_after: None,
                },
            }
        })
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
