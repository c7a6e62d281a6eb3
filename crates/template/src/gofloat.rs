//! Go's float formatting (`strconv.FormatFloat` and the `#` flag of `fmt`), split from `gofmt`:
//! exact decimal digits of an `f64`, rounded to a precision or the shortest that reads back.

/// Go's `strconv.FormatFloat(v, fmt, prec, 64)` for `fmt` in `e E f g G`; `prec` < 0 asks for
/// the fewest digits that read back as `v`.
pub fn format_float(v: f64, fmt: char, prec: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    match fmt {
        'f' | 'F' => {
            if prec < 0 {
                let d = Digits::shortest(a);
                let p = (d.nd() - d.dp).max(0);
                d.fmt_f(&mut out, p);
            } else {
                // Rust's formatter refuses a precision over u16::MAX (it panics), while Go
                // takes up to about 10^7. A double's exact value has at most 1074 digits after
                // the point, so the digits past them are zeros: no rounding happens there.
                let p = prec as usize;
                let exact = p.min(MAX_FRACTION_DIGITS);
                out.push_str(&format!("{:.*}", exact, a));
                out.extend(std::iter::repeat_n('0', p - exact));
            }
        }
        'e' | 'E' => {
            let (d, p) = if prec < 0 {
                let d = Digits::shortest(a);
                let p = d.nd() - 1;
                (d, p)
            } else {
                (Digits::rounded(a, prec + 1), prec)
            };
            d.fmt_e(&mut out, p, fmt);
        }
        'g' | 'G' => {
            let shortest = prec < 0;
            let (d, mut prec) = if shortest {
                let d = Digits::shortest(a);
                let n = d.nd();
                (d, n)
            } else {
                let p = prec.max(1);
                (Digits::rounded(a, p), p)
            };
            let nd = d.nd();
            let mut eprec = prec;
            if eprec > nd && nd >= d.dp {
                eprec = nd;
            }
            // Go decides on the exponent form with precision 6 when printing the fewest digits.
            if shortest {
                eprec = 6;
            }
            let exp = d.dp - 1;
            let e = if fmt == 'G' { 'E' } else { 'e' };
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                d.fmt_e(&mut out, prec - 1, e);
            } else {
                if prec > d.dp {
                    prec = nd;
                }
                d.fmt_f(&mut out, (prec - d.dp).max(0));
            }
        }
        other => {
            out.clear();
            out.push('%');
            out.push(other);
        }
    }
    out
}

/// More digits after the point than the exact decimal value of any `f64` has (1074, for the
/// smallest subnormal).
const MAX_FRACTION_DIGITS: usize = 1100;
/// More significant digits than the exact decimal value of any `f64` has (767).
const MAX_SIGNIFICANT_DIGITS: usize = 800;

/// Decimal digits of a non-negative float: `d` without trailing zeros, the value being
/// `0.d × 10^dp`; zero has no digits.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

impl Digits {
    fn nd(&self) -> i32 {
        self.d.len() as i32
    }

    fn from_sci(s: &str) -> Digits {
        // Rust's `{:e}` renders as `d.ddde[-]x`, exactly rounded.
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Digits { d, dp: 0 };
        }
        Digits { d, dp: exp + 1 }
    }

    fn shortest(a: f64) -> Digits {
        if a == 0.0 {
            return Digits {
                d: Vec::new(),
                dp: 0,
            };
        }
        Digits::from_sci(&format!("{a:e}"))
    }

    /// `n` (≥ 1) significant digits, rounded half to even on the exact binary value as Go.
    fn rounded(a: f64, n: i32) -> Digits {
        if a == 0.0 {
            return Digits {
                d: Vec::new(),
                dp: 0,
            };
        }
        // A double's exact value has at most 767 significant digits; past them the digits
        // are zeros, which `from_sci` trims anyway. Capping keeps Rust's formatter (which
        // panics on a precision over u16::MAX) away from the precisions Go accepts.
        let n = (n.max(1) as usize).min(MAX_SIGNIFICANT_DIGITS);
        Digits::from_sci(&format!("{:.*e}", n - 1, a))
    }

    fn digit(&self, i: i32) -> char {
        if i >= 0 && i < self.nd() {
            self.d[i as usize] as char
        } else {
            '0'
        }
    }

    /// `d.ddddde±dd` with `prec` digits after the point.
    fn fmt_e(&self, out: &mut String, prec: i32, e: char) {
        out.push(self.digit(0));
        if prec > 0 {
            out.push('.');
            for i in 1..=prec {
                out.push(self.digit(i));
            }
        }
        out.push(e);
        let mut exp = if self.d.is_empty() { 0 } else { self.dp - 1 };
        if exp < 0 {
            out.push('-');
            exp = -exp;
        } else {
            out.push('+');
        }
        if exp < 10 {
            out.push('0');
        }
        out.push_str(&exp.to_string());
    }

    /// `ddd.ddd` with `prec` digits after the point.
    fn fmt_f(&self, out: &mut String, prec: i32) {
        if self.dp > 0 {
            for i in 0..self.dp {
                out.push(self.digit(i));
            }
        } else {
            out.push('0');
        }
        if prec > 0 {
            out.push('.');
            for i in 0..prec {
                out.push(self.digit(self.dp + i));
            }
        }
    }
}

/// The `#` flag on floats: keep a decimal point, and for `%g` the trailing zeros up to the
/// precision.
pub(crate) fn sharp_float(num: String, verb: char, prec: i32) -> String {
    let mut digits: i32 = match verb {
        'g' | 'G' => {
            if prec == -1 {
                6
            } else {
                prec
            }
        }
        _ => 0,
    };
    let (mut body, tail) = match num[1..].find(['e', 'E']) {
        Some(p) => (num[..p + 1].to_string(), num[p + 1..].to_string()),
        None => (num.clone(), String::new()),
    };
    let mut has_point = false;
    let mut saw_nonzero = false;
    for c in body[1..].chars() {
        if c == '.' {
            has_point = true;
        } else {
            if c != '0' {
                saw_nonzero = true;
            }
            if saw_nonzero {
                digits -= 1;
            }
        }
    }
    if !has_point {
        if body.len() == 2 && body.ends_with('0') {
            digits -= 1;
        }
        body.push('.');
    }
    while digits > 0 {
        body.push('0');
        digits -= 1;
    }
    body.push_str(&tail);
    body
}
