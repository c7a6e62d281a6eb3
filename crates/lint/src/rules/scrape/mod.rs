//! Rules about scrape jobs (`scrape_configs:`).

// offline (lint-offline branch)
pub mod err_001;
