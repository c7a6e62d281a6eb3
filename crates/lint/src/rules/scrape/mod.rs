//! Rules about scrape jobs (`scrape_configs:`) and targets.

pub mod err_001;
pub mod err_101;
pub mod warn_101;
pub mod warn_102;
