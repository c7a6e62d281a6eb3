//! Every lint rule, in the order they run and are reported: grouped by product (the terminal
//! and HTML outputs group consecutive rules of a product), live rules (1xx) after offline ones.

use crate::rule::LintRule;
use crate::rules::{actions, alerting, config, estate, rules, scrape, storage};

/// All rules. A new rule module is listed here once.
pub static ALL: &[&dyn LintRule] = &[
    // config
    &config::err_001::Rule,
    &config::err_002::Rule,
    &config::sec_001::Rule,
    // scrape
    &scrape::err_001::Rule,
    &scrape::err_101::Rule,
    &scrape::warn_101::Rule,
    &scrape::warn_102::Rule,
    // rules
    &rules::err_001::Rule,
    &rules::err_002::Rule,
    &rules::warn_001::Rule,
    &rules::warn_002::Rule,
    &rules::warn_003::Rule,
    &rules::warn_004::Rule,
    &rules::warn_005::Rule,
    &rules::bp_001::Rule,
    &rules::err_101::Rule,
    &rules::err_102::Rule,
    &rules::warn_101::Rule,
    &rules::warn_102::Rule,
    &rules::warn_103::Rule,
    // alerting
    &alerting::err_001::Rule,
    &alerting::err_002::Rule,
    &alerting::err_003::Rule,
    &alerting::err_004::Rule,
    &alerting::err_005::Rule,
    &alerting::warn_001::Rule,
    &alerting::err_101::Rule,
    &alerting::err_102::Rule,
    &alerting::warn_101::Rule,
    &alerting::bp_101::Rule,
    // actions
    &actions::sec_001::Rule,
    // storage
    &storage::warn_101::Rule,
    &storage::warn_102::Rule,
    &storage::warn_103::Rule,
    // estate
    &estate::warn_101::Rule,
];

/// The rule with this id.
pub fn by_id(id: &str) -> Option<&'static dyn LintRule> {
    ALL.iter().copied().find(|r| r.meta().id == id)
}
