//! One configuration problem with its place, and the list of all problems of a load.

use std::fmt;

use crate::Pos;

/// A problem in a file: where (line and column when known), which field (a dotted path such as
/// `scrape_configs[1].scrape_interval`; empty for the file as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Option<Pos>,
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &str, pos: Option<Pos>, path: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            pos,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one load, in file order; displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorted by file then position, so the list reads top to bottom whatever found each one.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.pos.map_or((usize::MAX, usize::MAX), |p| (p.line, p.col));
            a.file.cmp(&b.file).then(key(a).cmp(&key(b)))
        });
        self.0.dedup();
        self
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shapes() {
        let d = Diagnostic::new("t.yml", Some(Pos { line: 3, col: 5 }), "a.b", "bad");
        assert_eq!(d.to_string(), "t.yml:3:5: a.b: bad");
        let d = Diagnostic::new("t.yml", None, "", "bad");
        assert_eq!(d.to_string(), "t.yml: bad");
    }
}
