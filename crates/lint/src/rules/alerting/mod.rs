//! Rules about the built-in alert manager: routes, receivers, inhibit rules.

pub mod err_001;
pub mod warn_001;
