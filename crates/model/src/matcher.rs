//! Label matchers (`=`, `!=`, `=~`, `!~`) with fully anchored regexes and cheap paths for the common
//! regex shapes (literal alternations, literal prefixes, `.*`, `.+`), plus a parser for series
//! selectors such as `up{job=~"node|api"}` used by CLI flags.

use std::fmt;

use regex::Regex;

use crate::error::{Error, Result};
use crate::labels::METRIC_NAME;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(&self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// How a regex can be evaluated without running the regex engine.
#[derive(Debug, Clone)]
enum Fast {
    /// `a|b|c`: a set of literals (sorted, deduplicated).
    Set(Vec<String>),
    /// `foo.*`
    Prefix(String),
    /// `.*`
    Any,
    /// `.+`
    NonEmpty,
    /// Anything else: the anchored regex.
    None,
}

#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
    fast: Fast,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl Matcher {
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let value = value.into();
        let (re, fast) = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                let re =
                    Regex::new(&format!("^(?s:{value})$")).map_err(|e| Error::InvalidRegex {
                        re: value.clone(),
                        reason: e.to_string(),
                    })?;
                (Some(re), analyze(&value))
            }
            _ => (None, Fast::None),
        };
        Ok(Self {
            name,
            op,
            value,
            re,
            fast,
        })
    }

    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
            fast: Fast::None,
        }
    }

    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.re_matches(v),
            MatchOp::NotRegex => !self.re_matches(v),
        }
    }

    fn re_matches(&self, v: &str) -> bool {
        match &self.fast {
            Fast::Set(s) => s.binary_search_by(|x| x.as_str().cmp(v)).is_ok(),
            Fast::Prefix(p) => v.starts_with(p.as_str()),
            Fast::Any => true,
            Fast::NonEmpty => !v.is_empty(),
            Fast::None => self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether a series without this label (value "") is selected.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=~` with a literal alternation: the exact set of values, so the index can look up each
    /// value's postings directly instead of scanning every value of the label.
    pub fn set_values(&self) -> Option<&[String]> {
        match (&self.fast, self.op) {
            (Fast::Set(s), MatchOp::Regex) => Some(s),
            _ => None,
        }
    }

    /// A literal prefix every matching value must start with (for `=~"foo.*"` and for `=`), so the
    /// index can seek in its sorted value list.
    pub fn prefix(&self) -> Option<&str> {
        match (&self.fast, self.op) {
            (Fast::Prefix(p), MatchOp::Regex) => Some(p),
            _ => None,
        }
    }

    /// Parses a series selector: `metric`, `metric{a="b",c!~"d"}` or `{__name__=~"x.*"}`.
    pub fn parse_selector(input: &str) -> Result<Vec<Matcher>> {
        SelectorParser {
            s: input.as_bytes(),
            pos: 0,
            input,
        }
        .parse()
    }
}

fn analyze(re: &str) -> Fast {
    if re == ".*" {
        return Fast::Any;
    }
    if re == ".+" {
        return Fast::NonEmpty;
    }
    let literal = |s: &str| !s.chars().any(regex_syntax::is_meta_character);
    if let Some(p) = re.strip_suffix(".*") {
        if !p.is_empty() && literal(p) {
            return Fast::Prefix(p.to_string());
        }
    }
    // Case-insensitive flags and the like contain meta characters, so they never reach here.
    if re.split('|').all(literal) {
        let mut v: Vec<String> = re.split('|').map(str::to_string).collect();
        v.sort();
        v.dedup();
        return Fast::Set(v);
    }
    Fast::None
}

struct SelectorParser<'a> {
    s: &'a [u8],
    pos: usize,
    input: &'a str,
}

impl SelectorParser<'_> {
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::InvalidSelector {
            input: self.input.to_string(),
            reason: format!("{} at position {}", reason.into(), self.pos),
        }
    }
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn ident(&mut self, colon: bool) -> String {
        let start = self.pos;
        while self.pos < self.s.len() {
            let c = self.s[self.pos];
            if c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':') {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.input[start..self.pos].to_string()
    }
    fn string(&mut self) -> Result<String> {
        let q = match self.s.get(self.pos) {
            Some(c @ (b'"' | b'\'' | b'`')) => *c,
            _ => return Err(self.err("expected a quoted string")),
        };
        self.pos += 1;
        let mut out = String::new();
        let rest = &self.input[self.pos..];
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c as u32 == q as u32 {
                self.pos += i + 1;
                return Ok(out);
            }
            if c == '\\' && q != b'`' {
                match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, c)) => out.push(c),
                    None => break,
                }
            } else {
                out.push(c);
            }
        }
        Err(self.err("unterminated string"))
    }
    fn parse(mut self) -> Result<Vec<Matcher>> {
        let mut out = Vec::new();
        self.ws();
        let name = self.ident(true);
        if !name.is_empty() {
            out.push(Matcher::equal(METRIC_NAME, name));
        }
        self.ws();
        if self.pos < self.s.len() && self.s[self.pos] == b'{' {
            self.pos += 1;
            loop {
                self.ws();
                if self.s.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    break;
                }
                let lname = if self.s.get(self.pos) == Some(&b'"') {
                    self.string()?
                } else {
                    self.ident(false)
                };
                if lname.is_empty() {
                    return Err(self.err("expected a label name"));
                }
                self.ws();
                let op = match (self.s.get(self.pos), self.s.get(self.pos + 1)) {
                    (Some(b'='), Some(b'~')) => MatchOp::Regex,
                    (Some(b'!'), Some(b'~')) => MatchOp::NotRegex,
                    (Some(b'!'), Some(b'=')) => MatchOp::NotEqual,
                    (Some(b'='), _) => MatchOp::Equal,
                    _ => return Err(self.err("expected one of = != =~ !~")),
                };
                self.pos += if op == MatchOp::Equal { 1 } else { 2 };
                self.ws();
                let value = self.string()?;
                out.push(Matcher::new(op, lname, value)?);
                self.ws();
                match self.s.get(self.pos) {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {}
                    _ => return Err(self.err("expected , or }")),
                }
            }
        }
        self.ws();
        if self.pos != self.s.len() {
            return Err(self.err("unexpected trailing input"));
        }
        if out.is_empty() {
            return Err(self.err("empty selector"));
        }
        if out.iter().all(|m| m.matches_empty()) {
            return Err(self.err(
                "selector must contain at least one matcher that does not match the empty string",
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::Regex, "a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
    }

    #[test]
    fn fast_paths_agree_with_regex() {
        let cases = [
            "a|b|c", "foo.*", ".*", ".+", "a.b", "x|", "(a|b)c", "a\\.b", "ab*",
        ];
        let inputs = [
            "", "a", "b", "c", "foo", "foobar", "xfoo", "a.b", "axb", "x", "ac", "ab", "abbb",
            "a\\.b",
        ];
        for c in cases {
            let m = Matcher::new(MatchOp::Regex, "l", c).unwrap();
            let r = Regex::new(&format!("^(?s:{c})$")).unwrap();
            for i in inputs {
                assert_eq!(m.matches(i), r.is_match(i), "re {c} input {i}");
            }
        }
        assert_eq!(
            Matcher::new(MatchOp::Regex, "l", "b|a")
                .unwrap()
                .set_values(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(
            Matcher::new(MatchOp::Regex, "l", "foo.*").unwrap().prefix(),
            Some("foo")
        );
    }

    #[test]
    fn parse_selector() {
        let m = Matcher::parse_selector(r#"up{job=~"a|b", x!="y",z!~'q'}"#).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].to_string(), "__name__=\"up\"");
        assert_eq!(m[1].op, MatchOp::Regex);
        assert!(Matcher::parse_selector("{a=~\".*\"}").is_err());
        assert!(Matcher::parse_selector("up{").is_err());
        assert!(Matcher::parse_selector("{__name__=~\"node_.*\"}").is_ok());
    }
}
