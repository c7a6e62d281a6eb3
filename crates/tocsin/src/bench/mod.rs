//! Benchmark tooling shared by `tocsin tsdb bench` and the `rw_load` example: a deterministic
//! node-exporter-shaped fleet generator and a remote-write load client.

// Each user of this module (the CLI, the example) uses a different part of it.
#![allow(dead_code)]

pub mod fleet;
pub mod http;
pub mod lineproto;
pub mod query;
pub mod remote;
pub mod soak;
pub mod targets;
pub mod vm_fleet;
