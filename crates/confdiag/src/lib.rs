//! Configuration diagnostics shared by every YAML file Tocsin reads (tocsin.yml and its sections,
//! rule files): where each node is in the text, deserializing while collecting every error
//! instead of stopping at the first, and messages shaped `file:line:col: path: message` with a
//! "did you mean" for misspelt fields.

mod diag;
mod doc;
mod pos;
mod suggest;

pub use diag::{Diagnostic, Diagnostics};
pub use doc::Doc;
pub use pos::{Pos, PosIndex};
pub use suggest::{did_you_mean, edit_distance};
