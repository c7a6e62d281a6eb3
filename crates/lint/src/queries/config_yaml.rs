//! The configuration files as YAML trees (tocsin.yml and a separate alertmanager file), for
//! rules about what is written rather than what it means (inline secrets), with a line lookup.

use serde_norway::Value;

pub struct ConfigFile {
    pub file: String,
    pub text: String,
    /// The parse error when the text is not YAML (it loaded, so this only happens for text
    /// handed in by hand).
    pub tree: Result<Value, String>,
}

impl ConfigFile {
    pub fn parse(file: &str, text: &str) -> ConfigFile {
        ConfigFile {
            file: file.to_string(),
            text: text.to_string(),
            tree: serde_norway::from_str(text).map_err(|e| e.to_string()),
        }
    }

    /// The 1-based line of the `n`th (0-based) `key:` mapping entry in the text, in document
    /// order as the tree walk meets them (block and flow style alike); 0 when not found.
    pub fn line_of_key(&self, key: &str, n: usize) -> usize {
        let want = format!("{key}:");
        let mut seen = 0;
        for (i, line) in self.text.lines().enumerate() {
            // Comments can mention keys too.
            let line = line.split(" #").next().unwrap_or(line);
            let mut from = 0;
            while let Some(at) = line[from..].find(&want) {
                let start = from + at;
                let before = line[..start].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"') {
                    if seen == n {
                        return i + 1;
                    }
                    seen += 1;
                }
                from = start + want.len();
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::ConfigFile;

    #[test]
    fn lines_of_keys_in_document_order() {
        let f = ConfigFile::parse(
            "t.yml",
            "a:\n  - basic_auth:\n      password: x\n  - basic_auth: {password: y}\n  - password: z\n",
        );
        assert!(f.tree.is_ok());
        assert_eq!(f.line_of_key("password", 0), 3);
        assert_eq!(f.line_of_key("password", 1), 4);
        assert_eq!(f.line_of_key("password", 2), 5);
        assert_eq!(f.line_of_key("password", 3), 0);
        assert_eq!(f.line_of_key("basic_auth", 1), 4);
    }
}
