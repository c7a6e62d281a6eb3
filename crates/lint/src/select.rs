//! `--include` / `--exclude`: which rules run, by id or glob (`*` any run of characters,
//! `?` one character), e.g. `rules/*`, `*/ERR/*`.

use crate::rule::LintRule;

/// The rules of `all` matching any include (all when none is given) and no exclude.
pub fn select(
    all: &[&'static dyn LintRule],
    include: &[String],
    exclude: &[String],
) -> Vec<&'static dyn LintRule> {
    all.iter()
        .copied()
        .filter(|r| {
            let id = r.meta().id;
            (include.is_empty() || include.iter().any(|p| glob(p, id)))
                && !exclude.iter().any(|p| glob(p, id))
        })
        .collect()
}

/// Case-insensitive glob match of the whole `text`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative matcher with one backtrack point: linear enough for ids.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("rules/*", "rules/ERR/001"));
        assert!(glob("*/err/*", "rules/ERR/001"));
        assert!(glob("rules/ERR/001", "rules/ERR/001"));
        assert!(!glob("rules/ERR/00", "rules/ERR/001"));
        assert!(glob("rules/???/001", "rules/ERR/001"));
        assert!(!glob("alerting/*", "rules/ERR/001"));
    }
}
