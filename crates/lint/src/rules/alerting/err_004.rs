//! alerting/ERR/004: every time interval can match some instant.

use serde_norway::Value;
use tocsin_alerts::timeinterval::{TimeIntervalConfig, TimeIntervalSpec};

use crate::queries::config_yaml::ConfigFile;
use crate::queries::positions::{resource, Positions};
use crate::queries::suppress::today_utc;
use crate::{Class, Context, LintRule, Product, Report, RuleMeta};

pub struct Rule;

static META: RuleMeta = RuleMeta {
    id: "alerting/ERR/004",
    product: Product::Alerting,
    class: Class::Err,
    title: "Every time interval can contain some instant",
    description: "A time interval that contains no instant never applies: as a route's \
        `mute_time_intervals` it never mutes, as its `active_time_intervals` the route never \
        notifies at all. Times whose start is not before their end, reversed weekday, day or \
        month ranges (the server refuses those), days of the month that none of the listed \
        months has (the 31st of February, April, June, September or November), and years that \
        are all past are caught here, read from the file as written so they are reported even \
        when the server refuses the configuration. Fix the ranges.",
};

/// The alert manager's section as written: a separate file's top level, or tocsin.yml's
/// `alertmanager:` mapping.
fn am_section(files: &[ConfigFile]) -> Option<&Value> {
    let keys = ["route", "receivers", "inhibit_rules", "time_intervals"];
    for f in files {
        if let Ok(t) = &f.tree {
            if keys.iter().any(|k| t.get(k).is_some()) {
                return Some(t);
            }
        }
    }
    files.first()?.tree.as_ref().ok()?.get("alertmanager")
}

const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The longest each month gets (February in leap years).
const MONTH_DAYS: [i32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn range(s: &str) -> Option<(&str, &str)> {
    match s.trim().split_once(':') {
        Some((a, b)) => Some((a.trim(), b.trim())),
        None => Some((s.trim(), s.trim())),
    }
}

fn month(s: &str) -> Option<usize> {
    let l = s.to_ascii_lowercase();
    MONTH_NAMES
        .iter()
        .position(|m| *m == l)
        .map(|i| i + 1)
        .or_else(|| l.parse().ok())
}

/// Why a spec the server accepts still contains no instant, if it does not.
fn empty(spec: &TimeIntervalSpec, this_year: i32) -> Option<String> {
    if !spec.days_of_month.is_empty() {
        let months: Vec<usize> = if spec.months.is_empty() {
            (1..=12).collect()
        } else {
            spec.months
                .iter()
                .filter_map(|m| range(&m.0))
                .filter_map(|(a, b)| Some(month(a)?..=month(b)?))
                .flatten()
                .collect()
        };
        let longest = months
            .iter()
            .filter_map(|m| MONTH_DAYS.get(m.wrapping_sub(1)))
            .max()
            .copied()
            .unwrap_or(31);
        let possible = spec
            .days_of_month
            .iter()
            .filter_map(|d| range(&d.0))
            .any(|(a, b)| {
                match (a.parse::<i32>(), b.parse::<i32>()) {
                    (Ok(a), Ok(_)) if a > 0 => a <= longest,
                    // Negative days count from the month's end: -b must exist.
                    (Ok(_), Ok(b)) => -b <= longest,
                    _ => true,
                }
            });
        if !possible {
            let days: Vec<&str> = spec.days_of_month.iter().map(|d| d.0.as_str()).collect();
            let names: Vec<&str> = months
                .iter()
                .filter_map(|m| MONTH_NAMES.get(m.wrapping_sub(1)).copied())
                .collect();
            return Some(format!(
                "days_of_month [{}] exist in none of the months [{}] (at most {longest} days)",
                days.join(", "),
                names.join(", ")
            ));
        }
    }
    if !spec.years.is_empty() {
        let last = spec
            .years
            .iter()
            .filter_map(|y| range(&y.0))
            .filter_map(|(_, b)| b.parse::<i32>().ok())
            .max();
        if let Some(last) = last.filter(|&l| l < this_year) {
            return Some(format!("its years all ended (the last is {last})"));
        }
    }
    None
}

impl LintRule for Rule {
    fn meta(&self) -> &'static RuleMeta {
        &META
    }

    fn run(&self, ctx: &Context, report: &mut Report) {
        let files = ctx.config_files();
        let Some(am) = am_section(files) else {
            report.skipped(
                "time intervals",
                "no built-in alert manager configured (alerts go to an external Alertmanager)",
            );
            return;
        };
        let pos = Positions::new(files);
        let this_year = today_utc().0;
        let mut any = false;
        for key in ["time_intervals", "mute_time_intervals"] {
            let Some(Value::Sequence(list)) = am.get(key) else {
                continue;
            };
            for (i, v) in list.iter().enumerate() {
                any = true;
                let path = format!("{key}[{i}]");
                let ti: TimeIntervalConfig = match serde_norway::from_value(v.clone()) {
                    Ok(t) => t,
                    Err(e) => {
                        report.skipped(
                            resource(path.clone(), pos.alertmanager(&path)),
                            format!("does not parse: {e} (config/ERR/002)"),
                        );
                        continue;
                    }
                };
                let name = format!("time interval {}", ti.name);
                let mut invalid = Vec::new();
                let mut empties = Vec::new();
                for (j, spec) in ti.time_intervals.iter().enumerate() {
                    match spec.compile() {
                        Err(e) => invalid.push((j, e)),
                        Ok(_) => empties.extend(empty(spec, this_year).map(|w| (j, w))),
                    }
                }
                // A name with several specs contains an instant when any spec does; a spec the
                // server refuses is wrong whatever its siblings hold.
                let dead = invalid.len() + empties.len() == ti.time_intervals.len()
                    && !ti.time_intervals.is_empty();
                if invalid.is_empty() && !dead {
                    report.ok(resource(name, pos.alertmanager(&path)));
                    continue;
                }
                let mut problems = invalid;
                if dead {
                    problems.extend(empties);
                }
                for (j, why) in problems {
                    let p = format!("{path}.time_intervals[{j}]");
                    report.failed(
                        resource(name.clone(), pos.alertmanager(&p)),
                        format!("never contains any instant: {why}"),
                    );
                }
            }
        }
        if !any {
            report.skipped("time intervals", "no time intervals are defined");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TimeIntervalSpec {
        serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn empty_specs() {
        let e = |y: &str| empty(&spec(y), 2026);
        assert!(e("days_of_month: ['31']\nmonths: [february, april]").is_some());
        assert!(e("days_of_month: ['30:31']\nmonths: ['2']").is_some());
        assert!(
            e("days_of_month: ['29']\nmonths: [february]").is_none(),
            "leap years"
        );
        assert!(e("days_of_month: ['31']\nmonths: ['february:march']").is_none());
        assert!(e("days_of_month: ['-31:-30']\nmonths: [february]").is_some());
        assert!(e("days_of_month: ['-3:-1']\nmonths: [february]").is_none());
        assert!(e("days_of_month: ['31']").is_none());
        assert!(e("years: ['2019:2020', '2024']").is_some());
        assert!(e("years: ['2020', '2026:2030']").is_none());
        assert!(e("weekdays: [monday]").is_none());
    }
}
