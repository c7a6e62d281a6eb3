//! Rules about scrape jobs and targets.

pub mod err_101;
pub mod warn_101;
pub mod warn_102;
