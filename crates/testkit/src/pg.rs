//! A throwaway PostgreSQL cluster for tests: Debian's `postgresql` binaries (`initdb`, `pg_ctl`)
//! on a temp directory, listening on 127.0.0.1 at a free port with password (SCRAM) auth for a
//! `tocsin` superuser, stopped and removed when dropped. As root (CI), the server runs as the
//! `postgres` user the Debian package creates, since PostgreSQL refuses to run as root. A test
//! can stop and start it again to exercise a database outage.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The superuser's name and password.
pub const USER: &str = "tocsin";
pub const PASSWORD: &str = "tocsin-test-password";

pub struct PgCluster {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    sockets: PathBuf,
    bin: PathBuf,
    port: u16,
    running: bool,
}

/// The newest installed PostgreSQL's binary directory.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|e| {
            panic!("/usr/lib/postgresql: {e}: install Debian's postgresql (scripts/test does)")
        })
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no initdb under /usr/lib/postgresql/*/bin"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program args...`, as the `postgres` user when we are root.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(p: &Path) {
    if !is_root() {
        return;
    }
    run(
        {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(p);
            c
        },
        "chown postgres",
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

impl PgCluster {
    /// Creates and starts a cluster; panics with the tool's output when that fails.
    pub fn start() -> PgCluster {
        let bin = bin_dir();
        let tmp = tempfile::Builder::new()
            .prefix("tocsin-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        // The postgres user must reach the directory.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        let data = tmp.path().join("data");
        let sockets = tmp.path().join("sockets");
        let log = tmp.path().join("postgres.log");
        let pwfile = tmp.path().join("pwfile");
        std::fs::create_dir(&sockets).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(&pwfile, PASSWORD).unwrap_or_else(|e| panic!("pwfile: {e}"));
        std::fs::write(&log, "").unwrap_or_else(|e| panic!("log: {e}"));
        chown_postgres(tmp.path());
        let mut c = pg_command(&bin.join("initdb"));
        c.arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=scram-sha-256", "--pwfile"])
            .arg(&pwfile)
            .args(["--no-sync", "--encoding=UTF8", "--locale=C"]);
        run(c, "initdb");
        let mut pg = PgCluster {
            _tmp: tmp,
            data,
            log,
            sockets,
            bin,
            port: free_port(),
            running: false,
        };
        pg.start_again();
        pg
    }

    /// Starts the (stopped) cluster on its port again.
    pub fn start_again(&mut self) {
        let mut c = pg_command(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.sockets.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        run(c, "pg_ctl start");
        self.running = true;
    }

    /// Stops the cluster at once (`-m immediate`: like a crash, no checkpoint).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let mut c = pg_command(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "60", "stop"]);
        run(c, "pg_ctl stop");
        self.running = false;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `db` without the password (give it from a file, as `ha:` does).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Writes the password to `dir/pg-password` and returns the path.
    pub fn password_file(&self, dir: &Path) -> PathBuf {
        let p = dir.join("pg-password");
        std::fs::write(&p, PASSWORD).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// Runs SQL with `psql` against `db`, returning its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap_or_else(|e| panic!("psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server's log so far, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let mut c = pg_command(&self.bin.join("pg_ctl"));
            c.arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
            let _ = c.output();
        }
        // Give the postmaster a moment to let go of its files before the directory goes.
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_answers_stops_and_starts_again() {
        if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_none()
            && !Path::new("/usr/lib/postgresql").exists()
        {
            eprintln!("skipped: no PostgreSQL installed (scripts/test installs it)");
            return;
        }
        let mut pg = PgCluster::start();
        assert_eq!(pg.psql("postgres", "SELECT 1 + 1"), "2");
        pg.psql("postgres", "CREATE DATABASE t");
        pg.psql("t", "CREATE TABLE x (v int); INSERT INTO x VALUES (7)");
        pg.stop();
        pg.start_again();
        assert_eq!(pg.psql("t", "SELECT v FROM x"), "7", "{}", pg.log_text());
    }
}
