//! The lint rules, one module per rule under its product. Adding a rule: write
//! `rules/<product>/<class>_<nnn>.rs`, list it in its product's `mod.rs` and in
//! [`crate::registry::ALL`], add `testdata/<id with dashes>/{ok,fail}/` and a README entry.

pub mod actions;
pub mod alerting;
pub mod config;
// The product is called `rules` (ids `rules/...`), like its directory.
#[allow(clippy::module_inception)]
pub mod rules;
// offline (lint-offline branch)
pub mod scrape;
