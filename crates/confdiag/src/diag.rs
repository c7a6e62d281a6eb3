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

impl Diagnostic {
    /// A message another checker already shaped `file:line[:col]: rest`, read back so it sorts
    /// and prints with the others; anything else is kept whole as the message.
    pub fn from_line(line: &str) -> Diagnostic {
        let parts: Vec<&str> = line.splitn(4, ':').collect();
        let num = |i: usize| parts.get(i).and_then(|s| s.trim().parse::<usize>().ok());
        match (num(1), num(2)) {
            (Some(l), Some(c)) if parts.len() == 4 => Diagnostic::new(
                parts[0],
                Some(Pos { line: l, col: c }),
                "",
                parts[3].trim_start(),
            ),
            (Some(l), _) if parts.len() >= 3 => Diagnostic::new(
                parts[0],
                Some(Pos { line: l, col: 0 }),
                "",
                parts[2..].join(":").trim_start(),
            ),
            _ => Diagnostic::new("", None, "", line),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            return f.write_str(&self.message);
        }
        f.write_str(&self.file)?;
        match self.pos {
            // Column 0: only the line is known.
            Some(p) if p.col == 0 => write!(f, ":{}", p.line)?,
            Some(p) => write!(f, ":{}:{}", p.line, p.col)?,
            None => {}
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
        for l in [
            "r.yml:4:9: group \"g\": bad",
            "am.yml:15: receivers[1]: x",
            "plain: text",
        ] {
            assert_eq!(Diagnostic::from_line(l).to_string(), l);
        }
    }
}
