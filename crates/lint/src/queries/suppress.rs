//! `# tocsin lint ignore ID` and `# tocsin lint snooze ID until YYYY-MM-DD` comments in rule
//! files. A comment applies to the rule whose first line it is on, or whose first line follows it
//! (comments directly above a rule, any number of them). `ID` may be a glob (`rules/*`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::select::glob;

/// One comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub pattern: String,
    /// None: ignore for good; Some: snoozed until this day (inclusive), as (y, m, d).
    pub until: Option<(i32, u32, u32)>,
    /// 1-based line of the comment.
    pub line: usize,
    /// Set when the comment is malformed: it then suppresses nothing and says why.
    pub error: Option<String>,
}

/// Directives per file, keyed by the 1-based line of the rule they apply to.
#[derive(Default)]
pub struct Suppressions {
    by_file: BTreeMap<String, BTreeMap<usize, Vec<Directive>>>,
}

/// Why an entry is not reported as failed, or why a directive did not apply.
pub enum Verdict {
    Suppressed(String),
    Malformed(String),
    None,
}

impl Suppressions {
    pub fn load(paths: &[PathBuf]) -> Suppressions {
        let mut s = Suppressions::default();
        for p in paths {
            // An unreadable file is reported by config/ERR/001; it has no rules to suppress.
            if let Ok(text) = std::fs::read_to_string(p) {
                s.by_file.insert(p.display().to_string(), parse(&text));
            }
        }
        s
    }

    /// What the comments say about rule `id` failing at `file:line`, on day `today`.
    pub fn verdict(&self, id: &str, file: &str, line: usize, today: (i32, u32, u32)) -> Verdict {
        let Some(ds) = self.by_file.get(file).and_then(|f| f.get(&line)) else {
            return Verdict::None;
        };
        for d in ds.iter().filter(|d| glob(&d.pattern, id)) {
            if let Some(e) = &d.error {
                return Verdict::Malformed(format!("{file}:{}: {e}", d.line));
            }
            match d.until {
                None => {
                    return Verdict::Suppressed(format!(
                        "ignored by the comment at {file}:{}",
                        d.line
                    ))
                }
                Some(u) if today <= u => {
                    return Verdict::Suppressed(format!(
                        "snoozed until {:04}-{:02}-{:02} by the comment at {file}:{}",
                        u.0, u.1, u.2, d.line
                    ))
                }
                Some(_) => {}
            }
        }
        Verdict::None
    }
}

/// Directives of one file, attached to the line of the next non-comment, non-blank line (or
/// their own line when they trail code).
pub fn parse(text: &str) -> BTreeMap<usize, Vec<Directive>> {
    let mut out: BTreeMap<usize, Vec<Directive>> = BTreeMap::new();
    let mut pending: Vec<Directive> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let (code, comment) = match line.find('#') {
            Some(at) => (line[..at].trim(), Some(line[at + 1..].trim())),
            None => (line.trim(), None),
        };
        let d = comment.and_then(|c| directive(c, n));
        if code.is_empty() {
            pending.extend(d);
            continue;
        }
        let mut here = std::mem::take(&mut pending);
        here.extend(d);
        if !here.is_empty() {
            out.entry(n).or_default().extend(here);
        }
    }
    out
}

fn directive(comment: &str, line: usize) -> Option<Directive> {
    let rest = comment.strip_prefix("tocsin lint ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mut d = Directive {
        pattern: words.get(1).unwrap_or(&"").to_string(),
        until: None,
        line,
        error: None,
    };
    match words.as_slice() {
        ["ignore", _] => {}
        ["snooze", _, "until", date] => match parse_date(date) {
            Some(u) => d.until = Some(u),
            None => d.error = Some(format!("snooze date {date:?} is not YYYY-MM-DD")),
        },
        _ => {
            d.error = Some(format!(
                "unrecognised comment {comment:?}: expected `tocsin lint ignore ID` or `tocsin lint snooze ID until YYYY-MM-DD`"
            ))
        }
    }
    Some(d)
}

fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let mut it = s.split('-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    (it.next().is_none() && (1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// Today's date in UTC from the system clock.
pub fn today_utc() -> (i32, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days((secs / 86_400) as i64)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn comments_attach_to_the_next_rule() {
        let text = "groups:\n  - name: g\n    rules:\n      # tocsin lint ignore rules/WARN/003\n      # tocsin lint snooze rules/BP/* until 2030-01-31\n      - alert: A\n        expr: x_total > 1\n      - alert: B  # tocsin lint ignore *\n        expr: y\n      # tocsin lint snooze x until soon\n      - alert: C\n";
        let s = Suppressions {
            by_file: [("f".to_string(), parse(text))].into(),
        };
        let today = (2026, 12, 4);
        assert!(
            matches!(s.verdict("rules/WARN/003", "f", 6, today), Verdict::Suppressed(r) if r.contains("f:4"))
        );
        assert!(
            matches!(s.verdict("rules/BP/001", "f", 6, today), Verdict::Suppressed(r) if r.contains("snoozed until 2030-01-31"))
        );
        assert!(matches!(
            s.verdict("rules/BP/001", "f", 6, (2030, 2, 1)),
            Verdict::None
        ));
        assert!(matches!(
            s.verdict("rules/ERR/001", "f", 6, today),
            Verdict::None
        ));
        assert!(matches!(
            s.verdict("rules/ERR/001", "f", 8, today),
            Verdict::Suppressed(_)
        ));
        assert!(
            matches!(s.verdict("x", "f", 11, today), Verdict::Malformed(r) if r.contains("\"soon\""))
        );
    }
}
