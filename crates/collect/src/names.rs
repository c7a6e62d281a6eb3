//! Turning foreign identifiers (InfluxDB measurements and tags, Graphite paths, Cloud Monitoring
//! metric types) into valid Prometheus metric and label names, the way Prometheus-side converters
//! do: every character outside the allowed set becomes `_`, and a leading digit gets a `_` prefix.
//! Sanitizing only allocates when the input actually needs it.

/// Whether `s` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(s: &str) -> bool {
    valid(s, true)
}

/// Whether `s` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(s: &str) -> bool {
    valid(s, false)
}

fn valid(s: &str, colon: bool) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':');
    !first.is_ascii_digit() && b.iter().all(|&c| ok(c))
}

/// Appends `s` to `out` as a metric-name fragment. With `first`, the fragment starts the name and a
/// leading digit is prefixed with `_`.
pub fn push_sanitized(out: &mut String, s: &str, colon: bool, first: bool) {
    if first && s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    // Nearly every name is already valid: one byte scan and a copy.
    if s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        // One `_` per character, not per byte, so a non-ASCII letter does not turn into several.
        if c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':') {
            out.push(c);
        } else {
            out.push('_');
        }
    }
}

/// `s` as a valid label name; an empty input stays empty (callers reject it).
pub fn sanitize_label_name(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_empty() || is_valid_label_name(s) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 1);
    push_sanitized(&mut out, s, false, true);
    std::borrow::Cow::Owned(out)
}

/// `s` as a valid metric name; an empty input stays empty (callers reject it).
pub fn sanitize_metric_name(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_empty() || is_valid_metric_name(s) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 1);
    push_sanitized(&mut out, s, true, true);
    std::borrow::Cow::Owned(out)
}

/// Sorts label pairs by name and checks names are unique; returns the first duplicated name.
/// Empty values are removed first: in Prometheus an empty value means the label is absent.
pub fn sort_pairs<'a>(pairs: &mut Vec<(&'a str, &'a str)>) -> Result<(), &'a str> {
    pairs.retain(|(_, v)| !v.is_empty());
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for w in pairs.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(w[0].0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_like_prometheus_converters() {
        assert_eq!(sanitize_metric_name("cpu.usage-idle"), "cpu_usage_idle");
        assert_eq!(sanitize_metric_name("a:b"), "a:b");
        assert_eq!(sanitize_label_name("a:b"), "a_b");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name("héllo"), "h_llo");
        assert_eq!(sanitize_label_name(""), "");
        assert!(matches!(
            sanitize_label_name("ok_name"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn sort_pairs_finds_duplicates_and_drops_empty() {
        let mut p = vec![("b", "1"), ("a", "2"), ("c", "")];
        assert!(sort_pairs(&mut p).is_ok());
        assert_eq!(p, vec![("a", "2"), ("b", "1")]);
        let mut p = vec![("b", "1"), ("b", "2")];
        assert_eq!(sort_pairs(&mut p), Err("b"));
    }
}
