//! Rule groups in Prometheus's rule-file format: loading and validation now; evaluation of
//! recording and alerting rules, templates and `for` state restore come next.

pub mod error;
pub mod file;

pub use error::{Error, Result};
pub use file::{load_file, parse_rule_file, AlertingRule, Rule, RuleFile, RuleGroup};
