//! Alertmanager's template functions (`toUpper`, `toLower`, `title`, `join`, `match`,
//! `safeHtml`, `safeUrl`, `urlUnescape`, `reReplaceAll`, `stringSlice`, `trimSpace`, `date`,
//! `tz`, `since`, `humanizeDuration`), on top of Go's builtins.

use tocsin_template::gotime::{Duration, Time};
use tocsin_template::{gofmt, FuncError, Funcs, Value};

use super::data::strings_arg;

fn arity(args: &[Value], want: usize) -> Result<(), FuncError> {
    if args.len() == want {
        Ok(())
    } else {
        Err(FuncError::ArgCount {
            want,
            got: args.len(),
            at_least: false,
        })
    }
}

fn str_fn(f: &mut Funcs<'static>, name: &str, g: fn(&str) -> String) {
    f.add(name, move |a| {
        arity(a, 1)?;
        Ok(Value::Str(g(a[0].expect_str()?)))
    });
}

/// Go's `strings.Title`: the first letter of each word upper-cased; letters, digits and `_`
/// make up words.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// Go's `%.4g`.
pub use tocsin_template::humanize::humanize_duration;

fn to_seconds(v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => s.trim().parse::<f64>().map_err(|_| {
            FuncError::Failed(format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                gofmt::quote(s)
            ))
        }),
        other => match other.downcast::<Duration>() {
            Some(d) => Ok(d.as_secs_f64()),
            None => Err(FuncError::Failed(format!(
                "can't convert {} to float",
                other.type_name()
            ))),
        },
    }
}

fn time_arg(v: &Value) -> Result<Time, FuncError> {
    v.downcast::<Time>()
        .copied()
        .ok_or_else(|| FuncError::wrong_type("time.Time", v))
}

fn regex(p: &str) -> Result<regex::Regex, FuncError> {
    regex::Regex::new(p).map_err(|e| FuncError::Failed(format!("error parsing regexp: {e}")))
}

/// Go's `$1`/`${name}` expansion differs from the regex crate's only in that `$1x` names group
/// `1x` in both: the syntax is the same, so the replacement is passed through.
fn re_replace_all(pattern: &str, repl: &str, text: &str) -> Result<String, FuncError> {
    Ok(regex(pattern)?.replace_all(text, repl).into_owned())
}

fn url_unescape(s: &str) -> Result<String, FuncError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        FuncError::Failed(format!(
                            "invalid URL escape {}",
                            gofmt::quote(s.get(i..(i + 3).min(s.len())).unwrap_or("%"))
                        ))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The functions of a notification template run; `now_ms` is what `since` measures from.
pub fn funcs(now_ms: i64) -> Funcs<'static> {
    let mut f = Funcs::new();
    str_fn(&mut f, "toUpper", str::to_uppercase);
    str_fn(&mut f, "toLower", str::to_lowercase);
    str_fn(&mut f, "title", title);
    str_fn(&mut f, "trimSpace", |s| s.trim().to_string());
    // Alertmanager marks these as trusted for html/template; text output is unchanged.
    str_fn(&mut f, "safeHtml", str::to_string);
    str_fn(&mut f, "safeUrl", str::to_string);
    f.add("urlUnescape", |a| {
        arity(a, 1)?;
        url_unescape(a[0].expect_str()?).map(Value::Str)
    });
    f.add("join", |a| {
        arity(a, 2)?;
        let sep = a[0].expect_str()?;
        Ok(Value::Str(strings_arg(&a[1])?.join(sep)))
    });
    f.add("match", |a| {
        arity(a, 2)?;
        Ok(Value::Bool(
            regex(a[0].expect_str()?)?.is_match(a[1].expect_str()?),
        ))
    });
    f.add("reReplaceAll", |a| {
        arity(a, 3)?;
        re_replace_all(a[0].expect_str()?, a[1].expect_str()?, a[2].expect_str()?).map(Value::Str)
    });
    f.add("stringSlice", |a| {
        let items: Result<Vec<Value>, FuncError> =
            a.iter().map(|v| v.expect_str().map(Value::str)).collect();
        Ok(Value::list(items?))
    });
    f.add("date", |a| {
        arity(a, 2)?;
        Ok(Value::Str(time_arg(&a[1])?.format(a[0].expect_str()?)))
    });
    f.add("tz", |a| {
        arity(a, 2)?;
        let name = a[0].expect_str()?;
        let t = time_arg(&a[1])?;
        match name {
            "UTC" | "" => Ok(Value::object(t)),
            other => Ok(Value::object(in_zone(t, other)?)),
        }
    });
    f.add("since", move |a| {
        arity(a, 1)?;
        let t = time_arg(&a[0])?;
        let now = Time::from_unix_millis(now_ms);
        Ok(Value::object(Duration(
            now.unix_nanos().saturating_sub(t.unix_nanos()),
        )))
    });
    f.add("humanizeDuration", |a| {
        arity(a, 1)?;
        Ok(Value::Str(humanize_duration(to_seconds(&a[0])?)))
    });
    f
}

/// Go's `t.In(time.LoadLocation(name))` for an IANA zone name (`Europe/Berlin`), from the tz
/// database compiled into chrono-tz.
fn in_zone(t: Time, name: &str) -> Result<Time, FuncError> {
    use chrono::{Offset as _, TimeZone as _};
    use chrono_tz::OffsetName as _;
    let tz: chrono_tz::Tz = name
        .parse()
        .map_err(|_| FuncError::Failed(format!("unknown time zone {}", gofmt::quote(name))))?;
    let dt = tz
        .timestamp_opt(t.unix(), t.subsec_nanos())
        .single()
        .ok_or_else(|| FuncError::Failed(format!("time out of range for zone {name}")))?;
    let off = dt.offset();
    let abbr = off.abbreviation().unwrap_or("").to_string();
    Ok(t.in_zone(off.fix().local_minus_utc(), &abbr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_behave_like_go() {
        assert_eq!(title("hello world-wide web"), "Hello World-Wide Web");
        assert_eq!(humanize_duration(3725.0), "1h 2m 5s");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(
            re_replace_all("a(b)", "x$1", "ab ab").ok(),
            Some("xb xb".into())
        );
        assert_eq!(url_unescape("a%20b+c").ok(), Some("a b c".into()));
        assert!(url_unescape("%zz").is_err());
    }

    #[test]
    fn tz_shows_the_instant_at_the_zone_offset_with_its_abbreviation() {
        // 2009-02-13 23:31:30 UTC: winter in Berlin, and a date change in Tokyo.
        let t = Time::from_unix(1_234_567_890, 0);
        let layout = "2006-01-02 15:04:05 -0700 MST Z07:00";
        let berlin = in_zone(t, "Europe/Berlin").unwrap();
        assert_eq!(
            berlin.format(layout),
            "2009-02-14 00:31:30 +0100 CET +01:00"
        );
        let tokyo = in_zone(t, "Asia/Tokyo").unwrap();
        assert_eq!(tokyo.format(layout), "2009-02-14 08:31:30 +0900 JST +09:00");
        let ny = in_zone(Time::from_unix(1_246_000_000, 0), "America/New_York").unwrap();
        assert_eq!(ny.format("15:04 MST -07:00"), "03:06 EDT -04:00");
        assert_eq!(t.format(layout), "2009-02-13 23:31:30 +0000 UTC Z");
        assert!(in_zone(t, "Mars/Olympus").is_err());
    }
}
