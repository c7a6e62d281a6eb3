//! Running an external program for the `exec` receiver and the `exec` remediation action: where
//! the program and its working directory are (relative to the config file), feeding it standard
//! input, keeping an excerpt of what it prints, and the timeout that kills its whole process
//! group (the program runs in a group of its own, so what it started dies with it).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Exit status that asks for a retry (sysexits' `EX_TEMPFAIL`).
pub const EXIT_TEMPFAIL: i32 = 75;

/// Which part of an output stream to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Discard it (the stream goes to /dev/null).
    Nothing,
    /// The first `n` bytes.
    Head(usize),
    /// The last `n` bytes.
    Tail(usize),
}

/// What running the program ended with.
#[derive(Debug)]
pub enum Outcome {
    /// It ended by itself (an exit status or a signal), with the kept output.
    Exited {
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// It ran past the timeout; its process group was killed.
    TimedOut,
    /// It could not be started; the message says which of program, directory or `PATH` failed.
    SpawnFailed(String),
    /// Waiting for it failed (an OS error).
    WaitFailed(String),
}

/// A program and the directory it runs in, both absolute unless the program is a bare name
/// looked up in `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub program: PathBuf,
    pub dir: PathBuf,
}

/// `p` made absolute: `Path::new("tocsin.yml").parent()` is the empty path, which `current_dir`
/// refuses, and a relative program path combined with `current_dir` is resolved differently
/// depending on how the OS spawns the child.
pub fn absolute_dir(p: &Path) -> PathBuf {
    let dir = if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    };
    if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&dir))
            .unwrap_or(dir)
    }
}

impl Program {
    /// `command` containing a `/` is resolved against `base_dir` (the config file's directory),
    /// a bare name is looked up in `PATH`; the program runs in `dir`.
    pub fn new(command: &Path, base_dir: &Path, dir: &Path) -> Program {
        let base = absolute_dir(base_dir);
        let bare = command.components().count() == 1 && !command.is_absolute();
        let program = if bare {
            command.to_path_buf()
        } else {
            // `./fix.sh` is shown (and run) as `<dir>/fix.sh`.
            let clean: PathBuf = command
                .components()
                .filter(|c| *c != std::path::Component::CurDir)
                .collect();
            base.join(clean)
        };
        Program {
            program,
            dir: absolute_dir(dir),
        }
    }

    /// Says which of program, working directory or `PATH` lookup made the spawn fail: the OS
    /// error alone ("No such file or directory") does not tell them apart.
    pub fn spawn_error(&self, e: &std::io::Error) -> String {
        let prog = self.program.display();
        let dir = self.dir.display();
        if e.kind() == std::io::ErrorKind::NotFound {
            if !self.dir.is_dir() {
                return format!("starting {prog}: working directory {dir} does not exist: {e}");
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

    /// Runs the program with `args` and extra `env`, writes `input` to its standard input, and
    /// waits at most `timeout`.
    pub async fn run(
        &self,
        args: &[String],
        env: &[(String, String)],
        input: Vec<u8>,
        timeout: Duration,
        stdout: Keep,
        stderr: Keep,
    ) -> Outcome {
        let pipe = |k: Keep| {
            if k == Keep::Nothing {
                Stdio::null()
            } else {
                Stdio::piped()
            }
        };
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(pipe(stdout))
            .stderr(pipe(stderr))
            // Its own process group, so a timeout also ends what the program started.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::SpawnFailed(self.spawn_error(&e)),
        };
        let stdin = child.stdin.take();
        let write = async move {
            if let Some(mut s) = stdin {
                // A program that exits without reading its input is not a failure; its exit
                // status decides.
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
        };
        // Readers run on their own tasks: a background grandchild may hold a pipe open after the
        // program itself has exited, and that must not turn success into a timeout.
        let mut out_reader = tokio::spawn(read_kept(child.stdout.take(), stdout));
        let mut err_reader = tokio::spawn(read_kept(child.stderr.take(), stderr));
        let run = async {
            let (_, status) = tokio::join!(write, child.wait());
            status
        };
        let status = match tokio::time::timeout(timeout, run).await {
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
                out_reader.abort();
                err_reader.abort();
                return Outcome::TimedOut;
            }
        };
        let grace = Duration::from_millis(200);
        let collect = async |r: &mut tokio::task::JoinHandle<Vec<u8>>| {
            match tokio::time::timeout(grace, &mut *r).await {
                Ok(Ok(v)) => v,
                _ => {
                    r.abort();
                    Vec::new()
                }
            }
        };
        let stdout = collect(&mut out_reader).await;
        let stderr = collect(&mut err_reader).await;
        match status {
            Ok(status) => Outcome::Exited {
                status,
                stdout,
                stderr,
            },
            Err(e) => Outcome::WaitFailed(format!("waiting for {}: {e}", self.program.display())),
        }
    }
}

/// Reads `s` to its end (so the program never blocks on a full pipe), keeping what `keep` says.
async fn read_kept<R: AsyncRead + Unpin>(s: Option<R>, keep: Keep) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut s) = s else {
        return kept;
    };
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        match keep {
            Keep::Nothing => {}
            Keep::Head(max) => {
                if kept.len() < max {
                    kept.extend_from_slice(&buf[..n.min(max - kept.len())]);
                }
            }
            Keep::Tail(max) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > max {
                    kept.drain(..kept.len() - max);
                }
            }
        }
    }
    kept
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sh() -> Program {
        Program::new(Path::new("/bin/sh"), Path::new("/"), Path::new("/"))
    }

    #[tokio::test]
    async fn keeps_head_or_tail_of_each_stream() {
        let args = vec![
            "-c".to_string(),
            "printf 0123456789; printf abcdefghij >&2".to_string(),
        ];
        let o = sh()
            .run(
                &args,
                &[],
                Vec::new(),
                Duration::from_secs(10),
                Keep::Tail(4),
                Keep::Head(3),
            )
            .await;
        match o {
            Outcome::Exited {
                status,
                stdout,
                stderr,
            } => {
                assert!(status.success());
                assert_eq!(stdout, b"6789");
                assert_eq!(stderr, b"abc");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relative_commands_resolve_against_the_base_dir() {
        let p = Program::new(Path::new("bin/fix"), Path::new("/etc/tocsin"), Path::new("/tmp"));
        assert_eq!(p.program, PathBuf::from("/etc/tocsin/bin/fix"));
        let p = Program::new(Path::new("./fix"), Path::new("/etc/tocsin"), Path::new("/tmp"));
        assert_eq!(p.program, PathBuf::from("/etc/tocsin/fix"));
        assert_eq!(p.dir, PathBuf::from("/tmp"));
        let p = Program::new(Path::new("fix"), Path::new("/etc/tocsin"), Path::new("/tmp"));
        assert_eq!(p.program, PathBuf::from("fix"));
    }
}
