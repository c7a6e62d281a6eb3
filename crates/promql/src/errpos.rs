//! Where in an expression a parse error is. The parser we use reports a grammar error only as
//! "invalid promql query", with no position, so the position is found from the outside: the
//! longest prefix of the expression that can still be completed into a valid one ends just
//! before the offending token. A prefix counts as completable when one of a few typical
//! continuations (an operand, a label value, a range, the missing closing brackets) makes it
//! parse. Messages then read as Prometheus's do: `1:9: parse error: unexpected "}"`.

use std::ops::Range;

/// Longer expressions keep the parser's message without a position: each probe is a full parse.
const MAX_LOCATED_LEN: usize = 16 * 1024;

/// Continuations tried after a prefix (closing brackets are added after each).
const CONTINUATIONS: &[&str] = &[
    "", " x", "x", " 1", "1", "\"\"", "=\"\"", "m", "[1m]", " (x)", " (x) (x)", "(x)", "(1)", "]",
];

/// The message for a failed parse of `q`: `line:col: parse error: reason`.
pub(crate) fn locate(q: &str, msg: &str) -> String {
    if q.len() > MAX_LOCATED_LEN {
        return msg.to_string();
    }
    let tokens = tokens(q);
    // tokens[..lo] is completable, tokens[..hi] is not (hi = len + 1: the whole is completable).
    let (mut lo, mut hi) = (0usize, tokens.len() + 1);
    if completable(&q[..tokens.last().map_or(0, |t| t.end)]) {
        lo = tokens.len();
    } else {
        hi = tokens.len();
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if completable(&q[..tokens[mid - 1].end]) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    let generic = msg == "invalid promql query";
    let (offset, reason) = match tokens.get(lo) {
        Some(t) if hi <= tokens.len() => {
            let tok = &q[t.clone()];
            let r = if generic {
                format!("unexpected {tok:?}")
            } else {
                msg.to_string()
            };
            (t.start, r)
        }
        _ => {
            let r = if generic {
                "unexpected end of input".to_string()
            } else {
                msg.to_string()
            };
            (q.trim_end().len(), r)
        }
    };
    let (line, col) = line_col(q, offset);
    format!("{line}:{col}: parse error: {reason}")
}

fn line_col(q: &str, offset: usize) -> (usize, usize) {
    let before = &q[..offset.min(q.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn completable(prefix: &str) -> bool {
    let Some(close) = closers(prefix) else {
        return false;
    };
    let parses = |s: String| -> bool {
        match closers(&s) {
            Some(rest) => crate::depth::parse_guarded(&(s + &rest)).is_ok(),
            None => false,
        }
    };
    // A continuation inside the innermost open bracket (`sum(` + `x`), or after closing the
    // brackets (`sum by (job` + `)` + ` (x)`).
    CONTINUATIONS.iter().any(|c| {
        parses(format!("{prefix}{c}"))
            || (!close.is_empty() && parses(format!("{prefix}{close}{c}")))
    })
}

/// The brackets that close what `s` left open (strings and comments skipped), or None when a
/// closing bracket does not match.
fn closers(s: &str) -> Option<String> {
    let mut stack = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut closed = false;
                while let Some(d) = it.next() {
                    if d == '\\' && c != '`' {
                        it.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    stack.push(c);
                }
            }
            '#' => {
                for d in it.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' => stack.push(')'),
            '[' => stack.push(']'),
            '{' => stack.push('}'),
            ')' | ']' | '}' if stack.pop() != Some(c) => return None,
            _ => {}
        }
    }
    Some(stack.iter().rev().collect())
}

/// Token spans, coarse but on the boundaries the grammar cares about: identifiers and numbers
/// (with `:` `.`), quoted strings, two-character operators, and single punctuation.
fn tokens(q: &str) -> Vec<Range<usize>> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == b'_'
                    || b[i] == b':'
                    || b[i] == b'.'
                    || b[i] >= 0x80)
            {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' && c != b'`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else if i + 1 < b.len()
            && matches!(&b[i..i + 2], b"==" | b"!=" | b"=~" | b"!~" | b">=" | b"<=")
        {
            i += 2;
        } else {
            i += 1;
        }
        // Never split inside a UTF-8 character.
        while i < b.len() && !q.is_char_boundary(i) {
            i += 1;
        }
        out.push(start..i);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(q: &str) -> String {
        let msg = promql_parser::parser::parse(q).unwrap_err();
        locate(q, &msg)
    }

    #[test]
    fn positions_of_typical_mistakes() {
        assert_eq!(at("foo{a=}"), "1:7: parse error: unexpected \"}\"");
        assert_eq!(at("up +"), "1:5: parse error: unexpected end of input");
        assert_eq!(at("sum(up"), "1:7: parse error: unclosed left parenthesis");
        assert_eq!(
            at("rate(up[5m)"),
            "1:11: parse error: unexpected character inside brackets: ')'"
        );
        assert_eq!(at("up * * 1"), "1:6: parse error: unexpected \"*\"");
        assert_eq!(
            at("sum by (job) (up) )"),
            "1:19: parse error: unexpected right parenthesis ')'"
        );
        assert_eq!(
            at("sum(rate(x[5m]))\n  + bogus bogus"),
            "2:11: parse error: unexpected \"bogus\""
        );
    }

    #[test]
    fn tokens_keep_strings_and_operators_whole() {
        let q = r#"a{b=~"x y"} != 1"#;
        let t: Vec<&str> = tokens(q).into_iter().map(|r| &q[r]).collect();
        assert_eq!(t, ["a", "{", "b", "=~", "\"x y\"", "}", "!=", "1"]);
    }
}
