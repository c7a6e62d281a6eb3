//! What the running binary was built from. The binary crate stamps it at build time and sets it
//! once at start; library crates (the buildinfo API, self-metrics) read it here, so only the
//! binary is rebuilt when the revision changes.

use std::sync::OnceLock;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    /// RFC 3339.
    pub date: String,
}

static INFO: OnceLock<BuildInfo> = OnceLock::new();

/// Set once at start; later calls are ignored (tests may start several servers in one process).
pub fn set(info: BuildInfo) {
    let _ = INFO.set(info);
}

/// The stamped info, or the crate version with empty revision and date when nothing was set
/// (library tests).
pub fn get() -> BuildInfo {
    INFO.get().cloned().unwrap_or_else(|| BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    })
}
