//! Rules about remediation action policies (`actions:`).

pub mod sec_001;
