//! Stamps the binary with the git revision it was built from and the build date, for
//! `tocsin --version` and `/api/v1/status/buildinfo`. Re-run only when HEAD moves, so ordinary
//! edits do not relink for a new date. `SOURCE_DATE_EPOCH` (reproducible builds) wins over the
//! clock; outside a git checkout (a source tarball) the revision is `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let rev = std::env::var("TOCSIN_GIT_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_default();
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=TOCSIN_GIT_REVISION={rev}");
    println!("cargo:rustc-env=TOCSIN_GIT_BRANCH={branch}");
    println!("cargo:rustc-env=TOCSIN_BUILD_DATE={}", rfc3339(secs));
    println!("cargo:rerun-if-env-changed=TOCSIN_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    for p in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
