//! Prometheus-style durations (`1h30m`, `15d`, `500ms`) and sizes (`512MB`, `10GB`, base 1024).

/// Parses a Prometheus duration into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "invalid duration {s:?}: expected a number at position {start}"
            ));
        }
        let n: i64 = s[start..i]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult: i64 = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            u => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {u:?} (use ms, s, m, h, d, w, y)"
                ))
            }
        };
        total = n
            .checked_mul(mult)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
    }
    Ok(total)
}

/// Formats milliseconds as Prometheus prints durations (`1h30m`, `10s`, `1d`, `500ms`; `0s` for
/// zero). Weeks and years are not used, so the reader never has to convert them back.
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let (sign, mut left) = if ms < 0 {
        ("-", -(ms as i128))
    } else {
        ("", ms as i128)
    };
    let mut out = String::from(sign);
    for (unit, size) in [
        ("d", 86_400_000i128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

/// Parses a size such as `512MB` (units B, KB, MB, GB, TB, PB; base 1024, as Prometheus).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number followed by a unit"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" => 1 << 10,
        "MB" | "MIB" => 1 << 20,
        "GB" | "GIB" => 1 << 30,
        "TB" | "TIB" => 1 << 40,
        "PB" | "PIB" => 1 << 50,
        u => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {u:?} (use B, KB, MB, GB, TB, PB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_prometheus_style() {
        assert_eq!(format_duration_ms(0), "0s");
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(90_061_500), "1d1h1m1s500ms");
        assert_eq!(format_duration_ms(-10_000), "-10s");
        for s in ["1h30m", "10s", "2d", "500ms"] {
            assert_eq!(format_duration_ms(parse_duration_ms(s).unwrap_or(0)), s);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("15d").unwrap(), 15 * 86_400_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("0s").unwrap(), 0);
        assert!(parse_duration_ms("5x").is_err());
        assert!(parse_duration_ms("h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1GB").unwrap(), 1 << 30);
        assert!(parse_size("1XB").is_err());
    }
}
