//! The server under test as a child process: started on a fixed port and data directory, waited
//! for on `/-/ready`, killed with SIGKILL and started again on the same directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

pub struct Server {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub addr: String,
    pub log: PathBuf,
    pub maintenance_interval: String,
    child: Option<Child>,
    /// How many times the process was started.
    pub starts: u64,
}

impl Server {
    pub fn new(
        bin: PathBuf,
        config: PathBuf,
        data_dir: PathBuf,
        addr: String,
        log: PathBuf,
        maintenance_interval: String,
    ) -> Server {
        Server {
            bin,
            config,
            data_dir,
            addr,
            log,
            maintenance_interval,
            child: None,
            starts: 0,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts the process and waits until `/-/ready` answers 200; returns how long that took.
    /// A start that exits at once (the port still held by the killed process's last moments) is
    /// retried a few times.
    pub async fn start(&mut self, client: &reqwest::Client) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let logf = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .with_context(|| format!("opening {}", self.log.display()))?;
            let child = Command::new(&self.bin)
                .arg("server")
                .arg("--config")
                .arg(&self.config)
                .arg("--listen")
                .arg(&self.addr)
                .arg("--data-dir")
                .arg(&self.data_dir)
                .arg("--maintenance-interval")
                .arg(&self.maintenance_interval)
                .stdout(Stdio::null())
                .stderr(logf)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("spawning {}", self.bin.display()))?;
            self.child = Some(child);
            self.starts += 1;
            match self.wait_ready(client, Duration::from_secs(300)).await {
                Ok(()) => return Ok(t0.elapsed()),
                Err(e) if attempts < 5 && self.exited() => {
                    eprintln!("[soak] server exited during start-up ({e:#}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(self.url("/-/ready")).send().await {
                if r.status().as_u16() == 200 {
                    return Ok(());
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!(
                        "server exited with {st} before it was ready (log: {})",
                        self.log.display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "server not ready after {timeout:?} (log: {})",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL and reap: nothing gets a chance to flush.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill().context("SIGKILL")?;
            c.wait().await.context("waiting for the killed server")?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean exit (at the very end).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(Duration::from_secs(60), c.wait())
                .await
                .is_err()
            {
                c.start_kill()?;
                c.wait().await?;
            }
        }
        Ok(())
    }
}
