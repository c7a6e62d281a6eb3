//! Rules about the built-in alert manager: routes, receivers, inhibit rules.

pub mod err_001;
pub mod warn_001;
// offline (lint-offline branch)
pub mod err_002;
pub mod err_003;
pub mod err_004;
pub mod err_005;
