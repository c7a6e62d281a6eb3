//! "Did you mean" for misspelt field names: the closest known name by edit distance, offered only
//! when it is close enough to be the likely intent.

/// Levenshtein distance between two strings, by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, when at most a third of its letters (and at least one) differ.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Serde's `unknown field `x`, expected one of `a`, `b`` (or `expected `a` or `b``) turned into
/// `unknown field `x`, did you mean `a`?` (or just `unknown field `x``), plus the field name.
pub(crate) fn unknown_field(msg: &str) -> Option<(String, String)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let field = &rest[..end];
    let tail = &rest[end + 1..];
    let candidates: Vec<&str> = match tail.find("expected") {
        Some(i) => tail[i..].split('`').skip(1).step_by(2).collect(),
        None => Vec::new(),
    };
    let text = match did_you_mean(field, &candidates) {
        Some(c) => format!("unknown field `{field}`, did you mean `{c}`?"),
        None => format!("unknown field `{field}`"),
    };
    Some((field.to_string(), text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggests_close_names_only() {
        let c = ["scrape_interval", "scrape_timeout", "job_name"];
        assert_eq!(did_you_mean("scrape_intervl", &c), Some("scrape_interval"));
        assert_eq!(did_you_mean("scrap_timeout", &c), Some("scrape_timeout"));
        assert_eq!(did_you_mean("jobname", &c), Some("job_name"));
        assert_eq!(did_you_mean("bogus", &c), None);
    }

    #[test]
    fn rewrites_serde_unknown_field() {
        let (f, m) = unknown_field(
            "unknown field `scrape_intervl`, expected one of `job_name`, `scrape_interval`",
        )
        .unwrap();
        assert_eq!(f, "scrape_intervl");
        assert_eq!(
            m,
            "unknown field `scrape_intervl`, did you mean `scrape_interval`?"
        );
        let (_, m) = unknown_field("unknown field `zzz`, expected `a` or `b`").unwrap();
        assert_eq!(m, "unknown field `zzz`");
        let (_, m) = unknown_field("unknown field `x`, there are no fields").unwrap();
        assert_eq!(m, "unknown field `x`");
        assert!(unknown_field("invalid type").is_none());
    }
}
