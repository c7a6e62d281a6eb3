//! Rules about the built-in alert manager: routes, receivers, inhibit rules.

pub mod bp_101;
pub mod err_001;
pub mod err_002;
pub mod err_003;
pub mod err_004;
pub mod err_005;
pub mod err_101;
pub mod err_102;
pub mod warn_001;
pub mod warn_101;
