//! Every lint rule, in the order they run and are reported.

use crate::rule::LintRule;
use crate::rules::{actions, alerting, config, rules, scrape};

/// All rules. A new rule module is listed here once.
pub static ALL: &[&dyn LintRule] = &[
    &config::err_001::Rule,
    &config::sec_001::Rule,
    // offline (lint-offline branch)
    &config::err_002::Rule,
    &scrape::err_001::Rule,
    &rules::err_001::Rule,
    &rules::err_002::Rule,
    &rules::warn_001::Rule,
    &rules::warn_002::Rule,
    &rules::warn_003::Rule,
    &rules::warn_004::Rule,
    &rules::bp_001::Rule,
    // offline (lint-offline branch)
    &rules::warn_005::Rule,
    &alerting::err_001::Rule,
    &alerting::warn_001::Rule,
    // offline (lint-offline branch)
    &alerting::err_002::Rule,
    &alerting::err_003::Rule,
    &alerting::err_004::Rule,
    &alerting::err_005::Rule,
    &actions::sec_001::Rule,
];

/// The rule with this id.
pub fn by_id(id: &str) -> Option<&'static dyn LintRule> {
    ALL.iter().copied().find(|r| r.meta().id == id)
}
