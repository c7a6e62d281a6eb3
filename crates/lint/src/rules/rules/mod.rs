//! Rules about recording and alerting rules.

pub mod bp_001;
pub mod err_001;
pub mod err_002;
pub mod err_101;
pub mod err_102;
pub mod warn_001;
pub mod warn_002;
pub mod warn_003;
pub mod warn_004;
pub mod warn_005;
pub mod warn_101;
pub mod warn_102;
pub mod warn_103;
