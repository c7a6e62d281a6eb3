//! Test helpers: `TestServer` runs the real `tocsin` binary on 127.0.0.1 with port 0 and a temp data
//! directory, waits on `/-/ready`, and stops it when dropped.

pub mod expo;
pub mod fake_gcp;
pub mod gce_inventory;
pub mod loopback;
pub mod oidc;
pub mod pg;
pub mod smtp;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Flags that turn on the admin API (delete series, snapshot, clean tombstones) and the lifecycle
/// endpoints (`/-/reload`, `/-/quit`), which a server refuses by default; pass them in `extra`.
pub const ADMIN_FLAGS: [&str; 2] = ["--web.enable-admin-api", "--web.enable-lifecycle"];
/// How a test reaches a server that serves TLS (`--web.config.file` with `tls_server_config`):
/// the CA that signed the server's certificate and, for mutual TLS, a client identity (PEM
/// certificate followed by its key).
#[derive(Clone, Default)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    pub identity_pem: Option<Vec<u8>>,
}

impl ClientTls {
    /// A blocking client trusting only the CA (and presenting the identity, if any).
    pub fn client(&self) -> reqwest::blocking::Client {
        let ca = reqwest::Certificate::from_pem(&self.ca_pem)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        let mut b = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(30))
            .no_proxy();
        if let Some(id) = &self.identity_pem {
            b = b.identity(
                reqwest::Identity::from_pem(id).unwrap_or_else(|e| panic!("identity: {e}")),
            );
        }
        b.build().unwrap_or_else(|e| panic!("https client: {e}"))
    }
}

pub struct TestServer {
    child: Option<Child>,
    /// Set when the server serves TLS: URLs are https and `client()` trusts this CA.
    pub tls: Option<ClientTls>,
    pub addr: String,
    pub data_dir: PathBuf,
    bin: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    log: PathBuf,
}

impl TestServer {
    /// Starts `bin server` on a fresh temp data directory.
    pub fn start(bin: &Path, extra: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let dir = tmp.path().join("data");
        let mut s = Self::start_on(bin, &dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts `bin server` on a fresh temp data directory with `yaml` as its `--config` file
    /// (written beside the data directory).
    pub fn start_with_config(bin: &Path, yaml: &str, extra: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let cfg = tmp.path().join("tocsin.yml");
        std::fs::write(&cfg, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", cfg.display()));
        let cfg_s = cfg.display().to_string();
        let mut args = vec!["--config", cfg_s.as_str()];
        args.extend_from_slice(extra);
        let mut s = Self::start_on(bin, &tmp.path().join("data"), &args);
        s._tmp = Some(tmp);
        s
    }

    /// Starts `bin server` serving TLS (its `extra` arguments name a `--web.config.file` with a
    /// certificate signed by `tls.ca_pem`), on a fresh temp data directory.
    pub fn start_tls(bin: &Path, extra: &[&str], tls: ClientTls) -> TestServer {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut s = Self::spawn(bin, &tmp.path().join("data"), extra);
        s.tls = Some(tls);
        s._tmp = Some(tmp);
        s.wait_ready(Duration::from_secs(60));
        s
    }

    /// A client for this server: plain, or trusting its CA when it serves TLS.
    pub fn client(&self) -> reqwest::blocking::Client {
        match &self.tls {
            Some(t) => t.client(),
            None => client(),
        }
    }

    /// Starts `bin server` on a given data directory (to restart on the same data).
    pub fn start_on(bin: &Path, data_dir: &Path, extra: &[&str]) -> TestServer {
        let mut s = Self::spawn(bin, data_dir, extra);
        s.wait_ready(Duration::from_secs(60));
        s
    }

    /// Starts `bin server` with `cwd` as its working directory (for relative `--config` paths).
    pub fn start_in(bin: &Path, cwd: &Path, data_dir: &Path, extra: &[&str]) -> TestServer {
        let mut s = Self::spawn_with(bin, data_dir, extra, Some(cwd));
        s.wait_ready(Duration::from_secs(60));
        s
    }

    /// Spawns without waiting for readiness; `addr` is known once the server is listening.
    pub fn spawn(bin: &Path, data_dir: &Path, extra: &[&str]) -> TestServer {
        Self::spawn_with(bin, data_dir, extra, None)
    }

    fn spawn_with(bin: &Path, data_dir: &Path, extra: &[&str], cwd: Option<&Path>) -> TestServer {
        let addr_file = data_dir.with_extension(format!("addr-{}", std::process::id()));
        let _ = std::fs::remove_file(&addr_file);
        let log = data_dir.with_extension("log");
        let logf = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let mut cmd = Command::new(bin);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let child = cmd
            .arg("server")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen-addr-file")
            .arg(&addr_file)
            // Tests see only the series they wrote unless they ask for self-monitoring.
            .args(
                (!extra.iter().any(|a| a.starts_with("--self-monitoring")))
                    .then_some("--self-monitoring=false"),
            )
            .args(extra)
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let mut s = TestServer {
            child: Some(child),
            tls: None,
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            bin: bin.to_path_buf(),
            _tmp: None,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                if !a.is_empty() {
                    s.addr = a;
                    break;
                }
            }
            if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("server exited early with {st}; log:\n{}", s.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start listening; log:\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        s
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Polls `/-/ready` until it answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let client = self.client();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(self.url("/-/ready")).send() {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("server exited with {st}; log:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "server not ready in time; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Sends a signal and waits for the process to exit; returns its exit code (None if killed).
    pub fn stop_with(&mut self, sig: i32) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let st = child.wait().ok()?;
        st.code()
    }

    /// Waits for the process to exit on its own (after `/-/quit`, say); returns its exit code, or
    /// None if it was killed by a signal. Panics if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().ok().flatten() {
                return st.code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server still running after {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal without waiting (SIGHUP, say).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGTERM, waiting for a clean exit.
    pub fn stop(&mut self) -> Option<i32> {
        self.stop_with(libc::SIGTERM)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        self.stop_with(libc::SIGKILL);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A blocking HTTP client for tests.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("http client: {e}"))
}

/// Sends a snappy-compressed remote write 1.0 body to `/api/v1/write` with the headers Prometheus
/// sends; returns the status and the response text.
pub fn remote_write(srv: &TestServer, body: Vec<u8>) -> (u16, String) {
    let r = client()
        .post(srv.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .unwrap_or_else(|e| panic!("remote write: {e}"));
    let code = r.status().as_u16();
    (code, r.text().unwrap_or_default())
}

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs `bin tsdb dump --data-dir DIR ARGS...` and returns its lines; panics with the command's
/// stderr if it fails.
pub fn dump_lines(bin: &Path, dir: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new(bin)
        .args(["tsdb", "dump", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {} tsdb dump: {e}", bin.display()));
    assert!(
        out.status.success(),
        "dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// GET `path` and parse its JSON body, asserting a 200.
pub fn get_json(srv: &TestServer, path: &str) -> serde_json::Value {
    let r = client()
        .get(srv.url(path))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status().as_u16(), 200, "{path}");
    let text = r.text().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

/// Polls `f` until it returns `Some`, failing the test after `timeout` with `what`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
