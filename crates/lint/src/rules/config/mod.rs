//! Rules about the configuration files themselves.

pub mod err_001;
pub mod sec_001;
// offline (lint-offline branch)
pub mod err_002;
