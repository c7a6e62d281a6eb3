//! Whether the configuration loads as the server loads it: the caller (the `tocsin lint` binary,
//! which has the server's loader) hands lint the loader's verdict, every problem with its
//! file:line:col. When the server refuses the configuration, rules that need the loaded
//! configuration (the routing tree, action policies) are skipped, and the rest run on what parsed.

use tocsin_confdiag::Diagnostic;

/// The loader's verdict.
#[derive(Debug, Clone, Default)]
pub enum ConfigLoad {
    /// The caller did not run the server's loader (lint used as a library on pieces).
    #[default]
    NotChecked,
    /// It loaded; the file that was loaded.
    Loaded { file: String },
    /// The server refuses it, for these reasons (each located when the loader knew where).
    Refused {
        file: String,
        problems: Vec<Diagnostic>,
    },
}

impl ConfigLoad {
    pub fn refused(&self) -> bool {
        matches!(self, ConfigLoad::Refused { .. })
    }
}
