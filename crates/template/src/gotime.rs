//! Go's `time.Time` (UTC, or a fixed offset with a zone abbreviation, as `time.In` gives) and
//! `time.Duration` as template values: printed as Go prints
//! them (`2009-02-13 23:31:30 +0000 UTC`, `1h1m1s`) and with the methods templates call on
//! them (`.Unix`, `.Format "2006-01-02"`, `.Seconds`, ...).

use std::any::Any;

use crate::error::FuncError;
use crate::value::{Object, Value};

const NANOS: i64 = 1_000_000_000;

/// An instant with nanosecond precision, shown in UTC or at a zone's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    secs: i64,
    nanos: u32,
    /// Seconds east of UTC the time is shown at.
    offset: i32,
    /// The zone abbreviation (`CET`, `PDT`), at most 8 bytes; empty = `UTC` at offset 0, the
    /// numeric offset otherwise (as Go prints zones without an abbreviation).
    zone: [u8; 8],
}

/// A signed span in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub i64);

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

use tocsin_model::time::civil_from_days;

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

impl Time {
    /// Go's `time.Unix(secs, nanos)`, normalising `nanos` into `[0, 1e9)`.
    pub fn from_unix(secs: i64, nanos: i64) -> Time {
        let secs = secs.saturating_add(nanos.div_euclid(NANOS));
        Time {
            secs,
            nanos: nanos.rem_euclid(NANOS) as u32,
            offset: 0,
            zone: [0; 8],
        }
    }

    /// The same instant shown at `offset` seconds east of UTC under the abbreviation `zone`
    /// (Go's `t.In(loc)`); an abbreviation longer than 8 bytes is cut.
    pub fn in_zone(self, offset: i32, zone: &str) -> Time {
        let mut z = [0u8; 8];
        let b = zone.as_bytes();
        let n = b.len().min(8);
        z[..n].copy_from_slice(&b[..n]);
        Time {
            offset,
            zone: z,
            ..self
        }
    }

    /// The zone's abbreviation as Go prints it for `MST`.
    fn zone_name(&self) -> String {
        let n = self.zone.iter().position(|&c| c == 0).unwrap_or(8);
        match std::str::from_utf8(&self.zone[..n]) {
            Ok(z) if !z.is_empty() => z.to_string(),
            _ if self.offset == 0 => "UTC".to_string(),
            _ => offset_text(self.offset, "+0000"),
        }
    }

    pub fn from_unix_millis(ms: i64) -> Time {
        Time::from_unix(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
    }

    pub fn unix(&self) -> i64 {
        self.secs
    }

    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    pub fn unix_nanos(&self) -> i64 {
        self.secs
            .saturating_mul(NANOS)
            .saturating_add(i64::from(self.nanos))
    }

    fn parts(&self) -> Parts {
        let local = self.secs.saturating_add(i64::from(self.offset));
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut yday = day;
        for m in 1..month {
            yday += match m {
                2 if is_leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
        }
        Parts {
            year,
            month,
            day,
            yday,
            hour: (sod / 3600) as u32,
            min: (sod / 60 % 60) as u32,
            sec: (sod % 60) as u32,
            nanos: self.nanos,
            weekday: (days + 4).rem_euclid(7) as usize,
        }
    }

    /// Go's `Time.Format` with a Go layout (`2006-01-02T15:04:05Z07:00`), at the time's offset.
    pub fn format(&self, layout: &str) -> String {
        let p = self.parts();
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (tok, len) = next_chunk(rest);
            match tok {
                Chunk::Lit => {
                    let c = rest.chars().next().unwrap_or(' ');
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                    continue;
                }
                Chunk::LongMonth => out.push_str(MONTHS[(p.month - 1) as usize]),
                Chunk::Month => out.push_str(&MONTHS[(p.month - 1) as usize][..3]),
                Chunk::NumMonth => out.push_str(&p.month.to_string()),
                Chunk::ZeroMonth => out.push_str(&format!("{:02}", p.month)),
                Chunk::LongWeekDay => out.push_str(DAYS[p.weekday]),
                Chunk::WeekDay => out.push_str(&DAYS[p.weekday][..3]),
                Chunk::Day => out.push_str(&p.day.to_string()),
                Chunk::UnderDay => out.push_str(&format!("{:>2}", p.day)),
                Chunk::ZeroDay => out.push_str(&format!("{:02}", p.day)),
                Chunk::UnderYearDay => out.push_str(&format!("{:>3}", p.yday)),
                Chunk::ZeroYearDay => out.push_str(&format!("{:03}", p.yday)),
                Chunk::Hour => out.push_str(&format!("{:02}", p.hour)),
                Chunk::Hour12 | Chunk::ZeroHour12 => {
                    let h = match p.hour % 12 {
                        0 => 12,
                        h => h,
                    };
                    if tok == Chunk::Hour12 {
                        out.push_str(&h.to_string());
                    } else {
                        out.push_str(&format!("{h:02}"));
                    }
                }
                Chunk::Minute => out.push_str(&p.min.to_string()),
                Chunk::ZeroMinute => out.push_str(&format!("{:02}", p.min)),
                Chunk::Second => out.push_str(&p.sec.to_string()),
                Chunk::ZeroSecond => out.push_str(&format!("{:02}", p.sec)),
                Chunk::LongYear => {
                    if p.year < 0 {
                        out.push_str(&format!("-{:04}", -p.year));
                    } else {
                        out.push_str(&format!("{:04}", p.year));
                    }
                }
                Chunk::Year => out.push_str(&format!("{:02}", p.year.rem_euclid(100))),
                Chunk::PM => out.push_str(if p.hour >= 12 { "PM" } else { "AM" }),
                Chunk::Pm => out.push_str(if p.hour >= 12 { "pm" } else { "am" }),
                Chunk::TzName => out.push_str(&self.zone_name()),
                Chunk::Iso(_) if self.offset == 0 => out.push('Z'),
                Chunk::Iso(shape) | Chunk::NumTz(shape) => {
                    out.push_str(&offset_text(self.offset, shape))
                }
                Chunk::Frac { sep, digits, trim } => {
                    let f = format!("{:09}", p.nanos);
                    let mut f = f[..digits].to_string();
                    if trim {
                        while f.ends_with('0') {
                            f.pop();
                        }
                    }
                    if !f.is_empty() {
                        out.push(sep);
                        out.push_str(&f);
                    }
                }
            }
            rest = &rest[len..];
        }
        out
    }
}

/// An offset in the shape of a layout's UTC rendering (`+00:00`, `+0000`, `+00`, `+00:00:00`,
/// `+000000`): sign, hours, then minutes and seconds as the shape has them.
fn offset_text(offset: i32, shape: &str) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    let (h, m, sec) = (a / 3600, a / 60 % 60, a % 60);
    let colon = shape.contains(':');
    let sep = if colon { ":" } else { "" };
    let digits = shape.chars().filter(char::is_ascii_digit).count();
    match digits {
        2 => format!("{sign}{h:02}"),
        4 => format!("{sign}{h:02}{sep}{m:02}"),
        _ => format!("{sign}{h:02}{sep}{m:02}{sep}{sec:02}"),
    }
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    yday: u32,
    hour: u32,
    min: u32,
    sec: u32,
    nanos: u32,
    weekday: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Lit,
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TzName,
    /// `Z07:00`-style: prints `Z` for UTC, else the offset in the shape given.
    Iso(&'static str),
    /// `-07:00`-style: the UTC offset text.
    NumTz(&'static str),
    Frac {
        sep: char,
        digits: usize,
        trim: bool,
    },
}

/// The layout element at the start of `s` and its length, as Go's `nextStdChunk` finds them.
fn next_chunk(s: &str) -> (Chunk, usize) {
    const TABLE: &[(&str, Chunk)] = &[
        ("January", Chunk::LongMonth),
        ("Jan", Chunk::Month),
        ("Monday", Chunk::LongWeekDay),
        ("Mon", Chunk::WeekDay),
        ("MST", Chunk::TzName),
        ("2006", Chunk::LongYear),
        ("002", Chunk::ZeroYearDay),
        ("01", Chunk::ZeroMonth),
        ("02", Chunk::ZeroDay),
        ("03", Chunk::ZeroHour12),
        ("04", Chunk::ZeroMinute),
        ("05", Chunk::ZeroSecond),
        ("06", Chunk::Year),
        ("15", Chunk::Hour),
        ("1", Chunk::NumMonth),
        ("2", Chunk::Day),
        ("__2", Chunk::UnderYearDay),
        ("_2", Chunk::UnderDay),
        ("3", Chunk::Hour12),
        ("4", Chunk::Minute),
        ("5", Chunk::Second),
        ("PM", Chunk::PM),
        ("pm", Chunk::Pm),
        ("-07:00:00", Chunk::NumTz("+00:00:00")),
        ("-070000", Chunk::NumTz("+000000")),
        ("-07:00", Chunk::NumTz("+00:00")),
        ("-0700", Chunk::NumTz("+0000")),
        ("-07", Chunk::NumTz("+00")),
        ("Z07:00:00", Chunk::Iso("+00:00:00")),
        ("Z070000", Chunk::Iso("+000000")),
        ("Z07:00", Chunk::Iso("+00:00")),
        ("Z0700", Chunk::Iso("+0000")),
        ("Z07", Chunk::Iso("+00")),
    ];
    let b = s.as_bytes();
    if let Some(&sep @ (b'.' | b',')) = b.first() {
        if let Some(&d @ (b'0' | b'9')) = b.get(1) {
            let n = b[1..].iter().take_while(|c| **c == d).count();
            if !b.get(1 + n).is_some_and(u8::is_ascii_digit) {
                return (
                    Chunk::Frac {
                        sep: sep as char,
                        digits: n.min(9),
                        trim: d == b'9',
                    },
                    1 + n,
                );
            }
        }
    }
    for (pat, chunk) in TABLE {
        if s.starts_with(pat) {
            // "Mon" inside "Month" and "Jan" before a lowercase letter are literal text.
            if matches!(chunk, Chunk::WeekDay | Chunk::Month)
                && b.get(3).is_some_and(u8::is_ascii_lowercase)
            {
                continue;
            }
            return (*chunk, pat.len());
        }
    }
    (Chunk::Lit, 0)
}

impl Duration {
    pub fn from_secs_f64(s: f64) -> Duration {
        Duration((s * 1e9) as i64)
    }

    pub fn as_secs_f64(&self) -> f64 {
        let secs = self.0 / NANOS;
        let nsec = self.0 % NANOS;
        secs as f64 + nsec as f64 / 1e9
    }
}

/// Go's `Duration.String`: `1h1m1s`, `1.5s`, `500ms`, `2µs`, `0s`.
impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let neg = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        if u == 0 {
            return f.write_str("0s");
        }
        let mut s = String::new();
        if u < 1_000_000_000 {
            let (prec, unit) = if u < 1_000 {
                (0, "ns")
            } else if u < 1_000_000 {
                (3, "µs")
            } else {
                (6, "ms")
            };
            let frac = frac_digits(&mut u, prec);
            s.push_str(&u.to_string());
            s.push_str(&frac);
            s.push_str(unit);
        } else {
            let frac = frac_digits(&mut u, 9);
            let secs = u % 60;
            u /= 60;
            let mut tail = format!("{secs}{frac}s");
            if u > 0 {
                tail = format!("{}m{tail}", u % 60);
                u /= 60;
                if u > 0 {
                    tail = format!("{u}h{tail}");
                }
            }
            s = tail;
        }
        if neg {
            f.write_str("-")?;
        }
        f.write_str(&s)
    }
}

/// Splits off the last `prec` decimal digits of `v` as a fraction without trailing zeros
/// (`.5`, or nothing when zero); `v` keeps the integer part.
fn frac_digits(v: &mut u64, prec: u32) -> String {
    let mut digits = Vec::new();
    let mut print = false;
    for _ in 0..prec {
        let d = (*v % 10) as u8;
        print = print || d != 0;
        if print {
            digits.push(b'0' + d);
        }
        *v /= 10;
    }
    if digits.is_empty() {
        return String::new();
    }
    digits.push(b'.');
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

fn no_args(name: &str, args: &[Value]) -> Result<(), FuncError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(FuncError::Failed(format!(
            "wrong number of args for {name}: want 0 got {}",
            args.len()
        )))
    }
}

impl Object for Time {
    fn type_name(&self) -> String {
        "*time.Time".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        let p = self.parts();
        let v = match name {
            "Format" => {
                return Some(match args {
                    [Value::Str(layout)] => Ok(Value::Str(self.format(layout))),
                    [other] => Err(FuncError::wrong_type("string", other)),
                    _ => Err(FuncError::ArgCount {
                        want: 1,
                        got: args.len(),
                        at_least: false,
                    }),
                })
            }
            "Unix" => Value::Int(self.secs),
            "UnixMilli" => Value::Int(self.unix_nanos() / 1_000_000),
            "UnixMicro" => Value::Int(self.unix_nanos() / 1_000),
            "UnixNano" => Value::Int(self.unix_nanos()),
            "UTC" | "Local" => Value::object(*self),
            "String" => Value::Str(self.display()),
            "Year" => Value::Int(p.year),
            "Month" => Value::str(MONTHS[(p.month - 1) as usize]),
            "Day" => Value::Int(i64::from(p.day)),
            "YearDay" => Value::Int(i64::from(p.yday)),
            "Weekday" => Value::str(DAYS[p.weekday]),
            "Hour" => Value::Int(i64::from(p.hour)),
            "Minute" => Value::Int(i64::from(p.min)),
            "Second" => Value::Int(i64::from(p.sec)),
            "Nanosecond" => Value::Int(i64::from(p.nanos)),
            "IsZero" => Value::Bool(self.secs == -62_135_596_800 && self.nanos == 0),
            _ => return None,
        };
        Some(no_args(name, args).map(|_| v))
    }

    fn display(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Object for Duration {
    fn type_name(&self) -> String {
        "*time.Duration".into()
    }

    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
        let v = match name {
            "Seconds" => Value::Float(self.as_secs_f64()),
            "Minutes" => Value::Float(self.as_secs_f64() / 60.0),
            "Hours" => Value::Float(self.as_secs_f64() / 3600.0),
            "Milliseconds" => Value::Int(self.0 / 1_000_000),
            "Microseconds" => Value::Int(self.0 / 1_000),
            "Nanoseconds" => Value::Int(self.0),
            "String" => Value::Str(self.to_string()),
            _ => return None,
        };
        Some(no_args(name, args).map(|_| v))
    }

    fn display(&self) -> String {
        self.to_string()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn is_true(&self) -> bool {
        self.0 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go() {
        assert_eq!(
            Time::from_unix(1_234_567_890, 0).display(),
            "2009-02-13 23:31:30 +0000 UTC"
        );
        assert_eq!(
            Time::from_unix_millis(1_435_065_584_128).display(),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            Time::from_unix(-1, 0).display(),
            "1969-12-31 23:59:59 +0000 UTC"
        );
        assert_eq!(
            Time::from_unix(9_223_372_036, 0).display(),
            "2262-04-11 23:47:16 +0000 UTC"
        );
        assert_eq!(
            Time::from_unix(951_782_400, 0).display(),
            "2000-02-29 00:00:00 +0000 UTC"
        );
    }

    #[test]
    fn layouts() {
        let t = Time::from_unix(1_234_567_890, 123_456_789);
        let cases = [
            ("2006-01-02T15:04:05Z07:00", "2009-02-13T23:31:30Z"),
            ("2006-01-02T15:04:05.000Z", "2009-02-13T23:31:30.123Z"),
            (
                "Mon Jan _2 15:04:05 MST 2006",
                "Fri Feb 13 23:31:30 UTC 2009",
            ),
            (
                "Monday, 02-January-06 3:04PM -0700",
                "Friday, 13-February-09 11:31PM +0000",
            ),
            ("Month 1 day 2, yday 002", "Month 2 day 13, yday 044"),
            ("15:04:05.999999", "23:31:30.123456"),
        ];
        for (layout, want) in cases {
            assert_eq!(t.format(layout), want, "{layout}");
        }
    }

    #[test]
    fn durations_print_as_go() {
        let cases = [
            (0, "0s"),
            (3_661_000_000_000, "1h1m1s"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500, "1.5µs"),
            (12, "12ns"),
            (-2_000_000_000, "-2s"),
        ];
        for (ns, want) in cases {
            assert_eq!(Duration(ns).to_string(), want);
        }
    }
}
