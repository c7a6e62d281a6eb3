//! Rules about the configuration files themselves.

pub mod err_001;
