//! Number parsing for sample values and timestamps, accepting what Prometheus accepts (Go's
//! `strconv.ParseFloat` without hex floats or `_`), with a fast path for the short decimals that
//! make up nearly every scrape.

/// Why a number did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumError {
    Syntax,
    /// Well-formed but beyond `f64` (or, for integer timestamps, `i64`).
    Range,
}

/// Exact powers of ten: dividing an exact integer below 2^53 by one of these is correctly
/// rounded, which is the classic fast path.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

fn eq_fold(a: &[u8], lower: &[u8]) -> bool {
    a.len() == lower.len()
        && a.iter()
            .zip(lower)
            .all(|(x, y)| x.to_ascii_lowercase() == *y)
}

/// Parses a sample value or an OpenMetrics timestamp.
pub(super) fn parse_float(b: &[u8]) -> Result<f64, NumError> {
    let (neg, body) = match b.first() {
        Some(b'-') => (true, b.get(1..).unwrap_or_default()),
        Some(b'+') => (false, b.get(1..).unwrap_or_default()),
        _ => (false, b),
    };
    let signed = body.len() != b.len();
    let sign = if neg { -1.0 } else { 1.0 };

    // Walk the decimal syntax, accumulating the mantissa for the fast path as we go.
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut digits = 0usize;
    let mut frac_digits = 0usize;
    while let Some(d) = body.get(i).filter(|c| c.is_ascii_digit()) {
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        digits += 1;
        i += 1;
    }
    if body.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = body.get(i).filter(|c| c.is_ascii_digit()) {
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            digits += 1;
            frac_digits += 1;
            i += 1;
        }
    }
    if digits == 0 {
        return special(body, signed).map(|v| sign * v);
    }
    if i == body.len() && digits <= 19 && mant <= 1 << 53 && frac_digits < POW10.len() {
        let v = mant as f64 / POW10[frac_digits];
        return Ok(sign * v);
    }
    if matches!(body.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while body.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return Err(NumError::Syntax);
        }
    }
    if i != body.len() {
        return Err(NumError::Syntax);
    }
    // The syntax checked above is a subset of what Rust's parser takes, so this cannot fail on
    // syntax; it does the correctly rounded conversion of long or exponent forms.
    let s = std::str::from_utf8(b).map_err(|_| NumError::Syntax)?;
    let v: f64 = s.parse().map_err(|_| NumError::Syntax)?;
    if v.is_infinite() {
        return Err(NumError::Range);
    }
    Ok(v)
}

/// `Inf`, `Infinity` (signed or not) and unsigned `NaN`, in any case, as Go reads them.
#[cold]
fn special(body: &[u8], signed: bool) -> Result<f64, NumError> {
    if eq_fold(body, b"inf") || eq_fold(body, b"infinity") {
        Ok(f64::INFINITY)
    } else if !signed && eq_fold(body, b"nan") {
        Ok(f64::NAN)
    } else {
        Err(NumError::Syntax)
    }
}

/// Parses a text-format timestamp: unsigned decimal milliseconds that fit an `i64`.
pub(super) fn parse_ms(b: &[u8]) -> Result<i64, NumError> {
    if b.is_empty() {
        return Err(NumError::Syntax);
    }
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return Err(NumError::Syntax);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or(NumError::Range)?;
    }
    Ok(v)
}

/// Converts OpenMetrics float seconds to milliseconds the way Prometheus does (truncating the
/// product toward zero); NaN and infinities are errors, out-of-range values saturate.
pub(super) fn seconds_to_ms(ts: f64) -> Option<i64> {
    ts.is_finite().then_some((ts * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_what_go_accepts() {
        for (s, v) in [
            ("0", 0.0f64),
            ("1", 1.0),
            ("-1", -1.0),
            ("+1", 1.0),
            ("1.5", 1.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1E+3", 1000.0),
            ("2.5e-3", 0.0025),
            ("0.005", 0.005),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            ("0.1", 0.1),
            ("1e-400", 0.0),
            ("-0", -0.0),
        ] {
            let got = parse_float(s.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), v.to_bits(), "{s}");
        }
        for s in ["Inf", "+Inf", "inf", "INF", "Infinity", "+infinity"] {
            assert_eq!(parse_float(s.as_bytes()), Ok(f64::INFINITY), "{s}");
        }
        for s in ["-Inf", "-inf", "-Infinity"] {
            assert_eq!(parse_float(s.as_bytes()), Ok(f64::NEG_INFINITY), "{s}");
        }
        for s in ["NaN", "nan", "NAN", "nAn"] {
            assert!(parse_float(s.as_bytes()).unwrap().is_nan(), "{s}");
        }
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for s in [
            "", "+", "-", ".", "e3", "1e", "1e+", "0x10", "0x1p3", "1_000", "+NaN", "-nan",
            "infin", "1.2.3", "1 ", " 1", "1\r", "Infinit", "--1", "1e3.5",
        ] {
            assert_eq!(parse_float(s.as_bytes()), Err(NumError::Syntax), "{s:?}");
        }
        assert_eq!(parse_float(b"1e400"), Err(NumError::Range));
        assert_eq!(parse_float(b"-1e400"), Err(NumError::Range));
    }

    #[test]
    fn fast_path_matches_std() {
        for s in [
            "0.1",
            "0.25",
            "3.14159",
            "1234567.891",
            "9007199254740992",
            "9007199254740993",
            "0.3333333333333333",
            "1.0000000000000002",
            "99999999999999999999",
        ] {
            let want: f64 = s.parse().unwrap();
            assert_eq!(
                parse_float(s.as_bytes()).unwrap().to_bits(),
                want.to_bits(),
                "{s}"
            );
        }
    }

    #[test]
    fn millisecond_timestamps() {
        assert_eq!(parse_ms(b"1395066363000"), Ok(1395066363000));
        assert_eq!(parse_ms(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_ms(b"9223372036854775808"), Err(NumError::Range));
        assert_eq!(parse_ms(b"-5"), Err(NumError::Syntax));
        assert_eq!(seconds_to_ms(1.5), Some(1500));
        assert_eq!(seconds_to_ms(-1.5), Some(-1500));
        assert_eq!(seconds_to_ms(f64::NAN), None);
    }
}
