//! The text of the files findings point into (rule files, configuration files), read once, for
//! the column of a finding that only knows its line: SARIF regions and code hosts want a column,
//! and a rule's line holds `- alert:` whose key is where the rule starts.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Default)]
pub struct SourceTexts {
    by_file: BTreeMap<String, Vec<String>>,
}

impl SourceTexts {
    /// Reads `paths` (an unreadable one is reported by the rules about it, and has no columns)
    /// and keeps the texts already in memory.
    pub fn load(paths: &[PathBuf], texts: &[(String, String)]) -> SourceTexts {
        let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in paths {
            if let Ok(t) = std::fs::read_to_string(p) {
                by_file.insert(
                    p.display().to_string(),
                    t.lines().map(str::to_string).collect(),
                );
            }
        }
        for (f, t) in texts {
            by_file.insert(f.clone(), t.lines().map(str::to_string).collect());
        }
        SourceTexts { by_file }
    }

    /// The 1-based column where line `line` (1-based) of `file` starts its content: past the
    /// indentation and a list item's `- `.
    pub fn column(&self, file: &str, line: usize) -> Option<usize> {
        let text = self.by_file.get(file)?.get(line.checked_sub(1)?)?;
        let indent = text.len() - text.trim_start().len();
        let rest = &text[indent..];
        let dash = match rest.strip_prefix("- ") {
            Some(item) => 2 + item.len() - item.trim_start().len(),
            None => 0,
        };
        // Columns count characters, as editors and SARIF (by default) do.
        Some(text[..indent + dash].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::SourceTexts;

    #[test]
    fn columns_skip_indentation_and_list_dashes() {
        let s = SourceTexts::load(
            &[],
            &[(
                "f".into(),
                "groups:\n  - name: g\n    rules:\n      -   alert: A\n".into(),
            )],
        );
        assert_eq!(s.column("f", 1), Some(1));
        assert_eq!(s.column("f", 2), Some(5));
        assert_eq!(s.column("f", 4), Some(11));
        assert_eq!(s.column("f", 9), None);
        assert_eq!(s.column("g", 1), None);
    }
}
